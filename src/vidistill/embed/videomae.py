"""``videomae``: pretrained VideoMAE / VideoMAE-v2 backbone, mean-pooled tokens.

The diffusion paper (TAC-DT, CSTA baselines) embeds each video with a pretrained
VideoMAE(-v2) classifier backbone. The model runs as transformers' ``VideoMAEModel``,
loaded from a LOCAL path only (this project never downloads at run time). ``--weights``:

* a ``save_pretrained`` directory (``config.json`` with ``model_type: videomae``) — e.g.
  ``MCG-NJU/videomae-base``, or one written by ``vidistill convert videomae-v2``;
* an official VideoMAE-v2 checkpoint (OpenGVLab/VideoMAEv2 ``VisionTransformer`` keys): a
  ``.pth``/``.pt`` file (``torch.load(weights_only=True)``: a file that needs arbitrary
  unpickling is refused), a ``.safetensors`` file, or a directory with ``model.safetensors``.
  It is converted in memory on every load (:mod:`vidistill.embed.videomae_v2`); convert
  once with ``vidistill convert videomae-v2 SRC DST`` to skip that. Options for these
  only: ``-o num_heads=H`` (not in the shapes; default by hidden size: 384→6, 768→12,
  1024/1280/1408→16), ``-o num_frames=16``, ``-o image_size=224``.

The vector is the mean of the last hidden states over all tokens, then — for VideoMAE-v2 —
its ``fc_norm`` LayerNorm (``VisionTransformer.forward_features``; kept in
``fc_norm.safetensors`` beside a converted model). Plain transformers VideoMAE has no final
norm when ``use_mean_pooling`` is set (the norm sits in the classification head), so a
directory without ``fc_norm.safetensors`` gives the raw mean.

VideoMAE's position embeddings are fixed for the config's ``num_frames`` and
``image_size``; a store's clips rarely match, so we adapt the clip *explicitly*, following
VideoMAE-v2's evaluation transform (16 frames; short side resized to 224, bilinear;
centre crop 224²; ImageNet mean/std):

* frames: ``num_frames`` indices are sampled uniformly over the clip
  (``round(linspace(0, T-1, num_frames))``) — frames are repeated when the clip is
  shorter (8-frame toy clip → 16-frame model: each frame twice) and skipped when longer
  (VideoMAE-v2 reads 16 frames at a fixed stride from a longer video; a store's clip is
  all we have);
* size: bilinear resize (antialiased when shrinking) of the short side to the model's
  size, then a centre crop (clips from `vidistill prepare` are already centre-cropped
  squares, so this is one resize);
* normalisation: ``image_mean``/``image_std`` from ``preprocessor_config.json`` when the
  directory has one, else ImageNet's (VideoMAE's and VideoMAE-v2's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidistill.clipstore import ClipStore
from vidistill.embed.base import Embedder
from vidistill.embed.videomae_v2 import CHECKPOINT_SUFFIXES, load_fc_norm, load_videomae_v2
from vidistill.registry import register
from vidistill.transforms import IMAGENET_MEAN, IMAGENET_STD

HOW_TO_GET = (
    "VideoMAE weights are loaded from a local path only. On a machine with internet run\n"
    "  huggingface-cli download MCG-NJU/videomae-base --local-dir DIR\n"
    "(or e.g. MCG-NJU/videomae-base-finetuned-kinetics), copy DIR here and pass --weights DIR;\n"
    "or pass an official VideoMAE-v2 checkpoint (e.g. vit_g_hybrid_pt_1200e_k710_ft.pth, "
    "vit_b_k710_dl_from_giant.pth) as --weights FILE."
)


def frame_indices(have: int, want: int) -> np.ndarray:
    """Uniform temporal resampling: ``want`` frame indices over a clip of ``have`` frames."""
    return np.round(np.linspace(0, have - 1, want)).astype(np.int64)


def weights_format(path: str | Path) -> str:
    """``"transformers"`` (a ``save_pretrained`` VideoMAE directory) or ``"videomae-v2"``
    (an official checkpoint file or a directory of official-key ``model.safetensors``)."""
    path = Path(path)
    if path.is_dir():
        cfg = path / "config.json"
        if cfg.is_file() and json.loads(cfg.read_text()).get("model_type") == "videomae":
            return "transformers"
        if (path / "model.safetensors").is_file():
            return "videomae-v2"
        raise FileNotFoundError(
            f"{path} has neither a VideoMAE config.json nor a model.safetensors: not a saved "
            f"VideoMAE model.\n{HOW_TO_GET}"
        )
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return "videomae-v2"
    if path.is_file():
        raise ValueError(
            f"{path}: not a VideoMAE checkpoint (expected a directory or one of "
            f"{', '.join(CHECKPOINT_SUFFIXES)})"
        )
    raise FileNotFoundError(f"{path}: no such file or directory.\n{HOW_TO_GET}")


@register("embedder", "videomae")
class VideoMAEEmbedder(Embedder):
    name = "videomae"

    def __init__(
        self,
        store: ClipStore,
        num_heads: int | None = None,
        num_frames: int | None = None,
        image_size: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(store, **kwargs)  # weights, split, seed, device → attributes
        weights, device = self.weights, self.device
        if weights is None:
            raise ValueError(f"the videomae embedder needs --weights DIR or FILE.\n{HOW_TO_GET}")
        path = Path(weights)
        self.format = weights_format(path)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if self.format == "transformers":
            given = {"num_heads": num_heads, "num_frames": num_frames, "image_size": image_size}
            if any(v is not None for v in given.values()):
                raise ValueError(
                    f"options {sorted(k for k, v in given.items() if v is not None)} are for "
                    f"official VideoMAE-v2 checkpoints; {path}'s config.json already fixes them"
                )
            from transformers import VideoMAEModel

            model = VideoMAEModel.from_pretrained(str(path), local_files_only=True)
            self.fc_norm = load_fc_norm(path)
            pre = path / "preprocessor_config.json"
            if pre.is_file():
                p = json.loads(pre.read_text())
                mean, std = p.get("image_mean", mean), p.get("image_std", std)
        else:
            model, self.fc_norm, _ = load_videomae_v2(path, num_heads, num_frames, image_size)
        self.model = model.to(device).eval()
        if self.fc_norm is not None:
            self.fc_norm = self.fc_norm.to(device).eval()
        cfg = self.model.config
        size = cfg.image_size
        self.image_size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        self.num_frames = int(cfg.num_frames)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 1, 3, 1, 1)
        self.weights_dir = path

    def preprocess(self, clips: np.ndarray) -> torch.Tensor:
        """uint8 ``(n,T,H,W,3)`` → float ``(n, num_frames, 3, *image_size)`` normalised:
        uniform frame resampling, short side resized to the model's size, centre crop."""
        x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)
        n, t, h, w, _ = x.shape
        x = x[:, torch.from_numpy(frame_indices(t, self.num_frames)).to(self.device)]
        x = x.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (n, F, 3, H, W)
        th, tw = self.image_size
        if (h, w) != (th, tw):
            scale = max(th / h, tw / w)  # short side → size (both sides when square)
            rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
            flat = x.reshape(n * self.num_frames, 3, h, w)
            flat = F.interpolate(
                flat, size=(rh, rw), mode="bilinear", align_corners=False, antialias=scale < 1
            )
            top, left = (rh - th) // 2, (rw - tw) // 2
            x = flat[:, :, top : top + th, left : left + tw].reshape(n, self.num_frames, 3, th, tw)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def embed(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(pixel_values=self.preprocess(clips))
        pooled = out.last_hidden_state.mean(dim=1)
        if self.fc_norm is not None:
            pooled = self.fc_norm(pooled)
        return {"embeddings": pooled.float().cpu().numpy()}

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "weights": str(self.weights_dir),
            "format": self.format,
            "hidden_size": cfg.hidden_size,
            "num_frames": self.num_frames,
            "image_size": list(self.image_size),
            "pooling": "mean+fc_norm" if self.fc_norm is not None else "mean",
        }
