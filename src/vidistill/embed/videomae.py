"""``videomae``: pretrained VideoMAE backbone (HuggingFace ``transformers``), mean-pooled tokens.

The diffusion paper (TAC-DT, CSTA baselines) embeds each video with a pretrained
VideoMAE(-v2) classifier backbone. We load ``VideoMAEModel`` from a LOCAL directory only
(this project never downloads at run time) and mean-pool the last hidden states over
all tokens. ``VideoMAEModel`` has no final norm when ``use_mean_pooling`` is set (the
norm sits in the classification head), so the raw mean is what we return.

VideoMAE's position embeddings are fixed for the config's ``num_frames`` and
``image_size``; a store's clips rarely match, so we adapt the clip *explicitly*:

* frames: ``num_frames`` indices are sampled uniformly over the clip
  (``round(linspace(0, T-1, num_frames))``) — frames are repeated when the clip is
  shorter (8-frame toy clip → 16-frame model: each frame twice) and skipped when longer;
* size: bilinear resize (antialiased when shrinking) of each square frame to
  ``image_size`` (clips are already centre-cropped squares by `vidistill prepare`);
* normalisation: ``image_mean``/``image_std`` from ``preprocessor_config.json`` when the
  directory has one, else ImageNet's (VideoMAE's own default).

VideoMAE-v2 giant (D=1408, the paper's model) ships as remote code, not in
``transformers``; any checkpoint loadable by ``VideoMAEModel.from_pretrained`` works.
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
from vidistill.registry import register
from vidistill.transforms import IMAGENET_MEAN, IMAGENET_STD

HOW_TO_GET = (
    "VideoMAE weights are loaded from a local directory only. On a machine with internet run\n"
    "  huggingface-cli download MCG-NJU/videomae-base --local-dir DIR\n"
    "(or e.g. MCG-NJU/videomae-base-finetuned-kinetics), copy DIR here and pass --weights DIR."
)


def frame_indices(have: int, want: int) -> np.ndarray:
    """Uniform temporal resampling: ``want`` frame indices over a clip of ``have`` frames."""
    return np.round(np.linspace(0, have - 1, want)).astype(np.int64)


@register("embedder", "videomae")
class VideoMAEEmbedder(Embedder):
    name = "videomae"

    def __init__(self, store: ClipStore, **kwargs: Any):
        super().__init__(store, **kwargs)  # weights, split, seed, device → attributes
        weights, device = self.weights, self.device
        if weights is None:
            raise ValueError(f"the videomae embedder needs --weights DIR.\n{HOW_TO_GET}")
        wdir = Path(weights)
        if not (wdir / "config.json").is_file():
            raise FileNotFoundError(
                f"{wdir} has no config.json: not a saved VideoMAE model.\n{HOW_TO_GET}"
            )
        from transformers import VideoMAEModel

        self.model = (
            VideoMAEModel.from_pretrained(str(wdir), local_files_only=True).to(device).eval()
        )
        cfg = self.model.config
        size = cfg.image_size
        self.image_size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        self.num_frames = int(cfg.num_frames)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        pre = wdir / "preprocessor_config.json"
        if pre.is_file():
            p = json.loads(pre.read_text())
            mean, std = p.get("image_mean", mean), p.get("image_std", std)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 1, 3, 1, 1)
        self.weights_dir = wdir

    def preprocess(self, clips: np.ndarray) -> torch.Tensor:
        """uint8 ``(n,T,H,W,3)`` → float ``(n, num_frames, 3, *image_size)`` normalised."""
        x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)
        n, t, h, w, _ = x.shape
        x = x[:, torch.from_numpy(frame_indices(t, self.num_frames)).to(self.device)]
        x = x.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (n, F, 3, H, W)
        if (h, w) != self.image_size:
            flat = x.reshape(n * self.num_frames, 3, h, w)
            shrink = h > self.image_size[0] or w > self.image_size[1]
            flat = F.interpolate(
                flat, size=self.image_size, mode="bilinear", align_corners=False, antialias=shrink
            )
            x = flat.reshape(n, self.num_frames, 3, *self.image_size)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def embed(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(pixel_values=self.preprocess(clips))
        return {"embeddings": out.last_hidden_state.mean(dim=1).float().cpu().numpy()}

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "weights": str(self.weights_dir),
            "hidden_size": cfg.hidden_size,
            "num_frames": self.num_frames,
            "image_size": list(self.image_size),
            "pooling": "mean",
        }
