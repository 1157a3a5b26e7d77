"""VideoMAE-v2 checkpoints (OpenGVLab/VideoMAEv2) → transformers' ``VideoMAEModel`` + ``fc_norm``.

VideoMAE-v2 ships its own ViT (``models/modeling_finetune.py``, ``VisionTransformer``), not
a transformers model. Its fine-tuned and distilled encoders compute what
``transformers.VideoMAEModel`` computes — Conv3d tubelet embedding, fixed sinusoid
positions, pre-norm blocks with q/v biases (no k bias), exact-GELU MLP — except at the end:
VideoMAE-v2's feature is ``fc_norm(mean of the last tokens)`` (``forward_features``), and
``VideoMAEModel`` with ``use_mean_pooling`` has no ``fc_norm``. So a checkpoint converts by
renaming keys, and ``fc_norm`` is kept beside the model (``fc_norm.safetensors``, tensors
``weight``/``bias``, ``eps`` in its metadata) for the ``videomae`` embedder to apply.

Key map (official → ``VideoMAEModel``; N = block index)::

    patch_embed.proj.{weight,bias}    embeddings.patch_embeddings.projection.{weight,bias}
    blocks.N.norm1.{weight,bias}      encoder.layer.N.layernorm_before.{weight,bias}
    blocks.N.attn.qkv.weight          encoder.layer.N.attention.attention.{query,key,value}.weight
                                      (rows split in three: q, k, v)
    blocks.N.attn.q_bias, v_bias      ….attention.attention.query.bias, value.bias
                                      (q_bias, v_bias in transformers 4.x)
    blocks.N.attn.proj.{weight,bias}  encoder.layer.N.attention.output.dense.{weight,bias}
    blocks.N.norm2.{weight,bias}      encoder.layer.N.layernorm_after.{weight,bias}
    blocks.N.mlp.fc1.{weight,bias}    encoder.layer.N.intermediate.dense.{weight,bias}
    blocks.N.mlp.fc2.{weight,bias}    encoder.layer.N.output.dense.{weight,bias}
    blocks.N.gamma_1, gamma_2         layer scale (``init_values > 0``): folded into attn.proj
                                      and mlp.fc2 (``γ·(Wx+b) = (γW)x + γb``)
    fc_norm.{weight,bias}             fc_norm.safetensors {weight,bias}
    head.{weight,bias}                dropped (the K710/K400/… classifier)
    pos_embed                         normally absent (a fixed sinusoid table, recomputed);
                                      if present it must equal that table

The architecture is read from the shapes: hidden size, in-channels, tubelet and patch size
from ``patch_embed.proj.weight`` ``(D, 3, t, p, p)``; depth from the block indices; MLP
size from ``fc1``; q/v biases from their presence. Not in the shapes: the head count (a
table keyed on D, :data:`HEADS_BY_DIM`, from the official ``vit_*`` definitions; override
with ``num_heads``), the frame count and image size (official ``all_frames=16``,
``img_size=224``: they only fix the sinusoid table's length; override with ``num_frames``,
``image_size``) and LayerNorm's eps (1e-6 in every official size). A Hugging Face
remote-code folder's ``config.json`` ``model_config`` (``num_heads``, ``img_size``,
``num_frames``/``all_frames``) is used when present.

Checkpoints read (never unpickled beyond tensors): a ``.pth``/``.pt``/``.bin`` file via
``torch.load(weights_only=True)`` (``argparse.Namespace`` is also allowed, because the
official training script saves its ``args``); a ``.safetensors`` file; a directory with
``model.safetensors``. The tensors may sit under ``"model"`` or ``"module"`` (the keys the
official loader tries, in that order) and behind ``module.``/``model.``/``backbone.``/
``encoder.`` prefixes. Pre-training checkpoints (with a decoder) are refused: their encoder
has no trained ``fc_norm``; use a fine-tuned or distilled one (the K710-fine-tuned giant is
what the VideoMAE-v2 authors use for features).

Official preprocessing (``dataset/datasets.py`` validation transform): 16 frames, resize the
short side to 224 (bilinear), centre-crop 224², ImageNet mean/std. ``convert_videomae_v2``
writes that as ``preprocessor_config.json``. (``extract_tad_feature.py`` instead resizes to
224×224 and does not normalise; we follow the transform the weights were fine-tuned with.)
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidistill.atomic import save_safetensors_atomic, write_json_atomic
from vidistill.transforms import IMAGENET_MEAN, IMAGENET_STD

#: Attention heads of the official sizes (``models/modeling_finetune.py``): ViT-S, B, L, H, g.
HEADS_BY_DIM = {384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}
LAYER_NORM_EPS = 1e-6  # ``partial(nn.LayerNorm, eps=1e-6)`` in every official ``vit_*``
NUM_FRAMES, IMAGE_SIZE = 16, 224  # official ``all_frames`` and ``img_size``
FC_NORM_FILE = "fc_norm.safetensors"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_PREFIXES = ("module.", "model.", "backbone.", "encoder.")


# -- reading ------------------------------------------------------------------------------
def _torch_load_weights_only(path: Path) -> Any:
    """``torch.load`` that only rebuilds tensors and plain containers (and argparse.Namespace)."""
    safe = getattr(torch.serialization, "safe_globals", None)
    try:
        if safe is not None:
            with safe([argparse.Namespace]):
                return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: refusing to load — it holds pickled Python objects beyond tensors, and "
            "vidistill never unpickles files it cannot trust; on a trusted machine re-save "
            "its state dict (torch.save(sd, 'plain.pth') or safetensors) and pass that"
        ) from err
    except (RuntimeError, EOFError) as err:  # a cut-short or damaged zip / legacy file
        from vidistill.errors import CorruptArtifact

        raise CorruptArtifact(
            path, f"torch.load cannot read it: {err}", "the download (fetch it again)"
        ) from err


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: under 'model' or 'module', prefixes stripped."""
    if isinstance(obj, dict):
        for key in ("model", "module"):  # the official loader's order (--model_key model|module)
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: no state dict found (expected a dict of tensors)")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise ValueError(f"{path}: the checkpoint holds no tensors")
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                stripped = True
    return sd


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Official-key state dict of ``path`` and, for a Hugging Face remote-code folder, its
    ``config.json`` ``model_config`` (else ``{}``)."""
    from vidistill.integrity import load_safetensors, read_json

    path = Path(path)
    model_config: dict[str, Any] = {}
    remake = "the download (fetch the checkpoint again)"
    if path.is_dir():
        cfg = path / "config.json"
        if cfg.is_file():
            model_config = read_json(cfg, remake).get("model_config") or {}
        file = path / "model.safetensors"
        if not file.is_file():
            raise FileNotFoundError(
                f"{path}: no model.safetensors (a VideoMAE-v2 folder needs one)"
            )
        return _unwrap(load_safetensors(file, remake)[0], file), model_config
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        return _unwrap(load_safetensors(path, remake)[0], path), model_config
    if path.suffix in CHECKPOINT_SUFFIXES:
        return _unwrap(_torch_load_weights_only(path), path), model_config
    raise ValueError(
        f"{path}: not a checkpoint vidistill reads (expected {', '.join(CHECKPOINT_SUFFIXES)} "
        "or a directory)"
    )


# -- architecture -------------------------------------------------------------------------
def infer_config(
    sd: dict[str, torch.Tensor],
    num_heads: int | None = None,
    num_frames: int | None = None,
    image_size: int | None = None,
    model_config: dict[str, Any] | None = None,
    where: str = "checkpoint",
) -> Any:
    """``VideoMAEConfig`` of an official-key state dict (see the module docstring)."""
    from transformers import VideoMAEConfig

    model_config = model_config or {}
    if any(k.startswith("decoder.") for k in sd) or "mask_token" in sd:
        raise ValueError(
            f"{where}: a VideoMAE-v2 pre-training checkpoint (it has a decoder); its encoder "
            "has no trained fc_norm — use a fine-tuned or distilled checkpoint "
            "(e.g. vit_g_hybrid_pt_1200e_k710_ft.pth, vit_b_k710_dl_from_giant.pth)"
        )
    if "patch_embed.proj.weight" not in sd:
        raise ValueError(
            f"{where}: no patch_embed.proj.weight — not a VideoMAE-v2 VisionTransformer "
            f"state dict (first keys: {sorted(sd)[:4]})"
        )
    if any(re.fullmatch(r"blocks\.\d+\.attn\.scale", k) for k in sd):
        raise ValueError(f"{where}: cosine attention (cos_attn=True) has no transformers twin")
    if "fc_norm.weight" not in sd:
        raise ValueError(
            f"{where}: no fc_norm — VideoMAE-v2 features are fc_norm(mean of tokens); "
            "this checkpoint was not trained with use_mean_pooling"
        )
    dim, chans, tubelet, ph, pw = sd["patch_embed.proj.weight"].shape
    if ph != pw:
        raise ValueError(f"{where}: non-square patches {ph}×{pw}")
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
    if not blocks or blocks != set(range(len(blocks))):
        raise ValueError(f"{where}: block indices {sorted(blocks)[:8]} are not 0..depth-1")
    for key in ("blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight"):
        if key not in sd:
            raise ValueError(f"{where}: missing {key} (an incomplete VideoMAE-v2 checkpoint)")
    qkv = sd["blocks.0.attn.qkv.weight"].shape
    if tuple(qkv) != (3 * dim, dim):
        raise ValueError(
            f"{where}: attn.qkv.weight is {tuple(qkv)}, not (3·{dim}, {dim}): an attention "
            "width other than the hidden size has no transformers twin"
        )
    heads = num_heads or model_config.get("num_heads") or HEADS_BY_DIM.get(int(dim))
    if heads is None:
        raise ValueError(
            f"{where}: hidden size {dim} is not an official VideoMAE-v2 size "
            f"({sorted(HEADS_BY_DIM)}); the head count is not in the shapes — pass num_heads "
            "(convert: --num-heads H; embed: -o num_heads=H)"
        )
    if dim % heads:
        raise ValueError(f"{where}: hidden size {dim} is not a multiple of num_heads={heads}")
    frames = num_frames or model_config.get("num_frames") or model_config.get("all_frames")
    size = image_size or model_config.get("img_size") or IMAGE_SIZE
    return VideoMAEConfig(
        image_size=int(size),
        patch_size=int(ph),
        num_channels=int(chans),
        num_frames=int(frames or NUM_FRAMES),
        tubelet_size=int(tubelet),
        hidden_size=int(dim),
        num_hidden_layers=len(blocks),
        num_attention_heads=int(heads),
        intermediate_size=int(sd["blocks.0.mlp.fc1.weight"].shape[0]),
        hidden_act="gelu",  # nn.GELU: exact erf
        layer_norm_eps=LAYER_NORM_EPS,
        qkv_bias="blocks.0.attn.q_bias" in sd,
        use_mean_pooling=True,
    )


# -- key mapping --------------------------------------------------------------------------
def to_transformers(
    sd: dict[str, torch.Tensor], depth: int, target_keys: set[str], where: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Official state dict → (``VideoMAEModel`` state dict, ``{"weight", "bias"}`` of
    ``fc_norm``). ``target_keys`` (the model's own) picks the q/v bias names of the
    installed transformers. Every official key is used or deliberately dropped."""
    sd = dict(sd)
    out: dict[str, torch.Tensor] = {}
    legacy_bias = "encoder.layer.0.attention.attention.q_bias" in target_keys

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise ValueError(f"{where}: missing {key} (an incomplete VideoMAE-v2 checkpoint)")
        return sd.pop(key)

    def move(src: str, dst: str) -> None:
        for p in ("weight", "bias"):
            out[f"{dst}.{p}"] = take(f"{src}.{p}")

    move("patch_embed.proj", "embeddings.patch_embeddings.projection")
    for n in range(depth):
        o, h = f"blocks.{n}.", f"encoder.layer.{n}."
        att = h + "attention.attention."
        move(o + "norm1", h + "layernorm_before")
        move(o + "norm2", h + "layernorm_after")
        q, k, v = take(o + "attn.qkv.weight").chunk(3, dim=0)
        out[att + "query.weight"], out[att + "key.weight"] = q.clone(), k.clone()
        out[att + "value.weight"] = v.clone()
        if o + "attn.q_bias" in sd:
            qb, vb = take(o + "attn.q_bias"), take(o + "attn.v_bias")
            qn, vn = ("q_bias", "v_bias") if legacy_bias else ("query.bias", "value.bias")
            out[att + qn], out[att + vn] = qb, vb
        move(o + "mlp.fc1", h + "intermediate.dense")
        for src, dst, gamma in (
            ("attn.proj", "attention.output.dense", "gamma_1"),
            ("mlp.fc2", "output.dense", "gamma_2"),
        ):
            w, b = take(o + src + ".weight"), take(o + src + ".bias")
            g = sd.pop(o + gamma, None)
            if g is not None:  # layer scale: x + γ·(Wy + b) = x + (γW)y + γb
                w, b = g[:, None] * w, g * b
            out[h + dst + ".weight"], out[h + dst + ".bias"] = w, b
    fc_norm = {"weight": take("fc_norm.weight"), "bias": take("fc_norm.bias")}
    for key in ("head.weight", "head.bias", "pos_embed"):
        sd.pop(key, None)  # classifier dropped; pos_embed checked by load_videomae_v2
    if sd:
        raise ValueError(f"{where}: unexpected keys, not converted: {sorted(sd)[:6]}")
    return out, fc_norm


def make_fc_norm(weights: dict[str, torch.Tensor], eps: float = LAYER_NORM_EPS) -> nn.LayerNorm:
    norm = nn.LayerNorm(weights["weight"].shape[0], eps=eps)
    norm.load_state_dict({k: v.float() for k, v in weights.items()})
    return norm.eval()


def load_fc_norm(directory: str | Path) -> nn.LayerNorm | None:
    """``fc_norm`` stored beside a converted model, or ``None`` when the folder has none."""
    from safetensors import safe_open

    path = Path(directory) / FC_NORM_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as fh:
        eps = float((fh.metadata() or {}).get("eps", LAYER_NORM_EPS))
        weights = {k: fh.get_tensor(k) for k in ("weight", "bias")}
    return make_fc_norm(weights, eps)


def load_videomae_v2(
    path: str | Path,
    num_heads: int | None = None,
    num_frames: int | None = None,
    image_size: int | None = None,
) -> tuple[Any, nn.LayerNorm, dict[str, Any]]:
    """An official VideoMAE-v2 checkpoint as ``(VideoMAEModel, fc_norm, info)`` (eval mode,
    CPU, float32). ``info`` records the source and how the head count was chosen."""
    from transformers import VideoMAEModel

    sd, model_config = read_checkpoint(path)
    cfg = infer_config(sd, num_heads, num_frames, image_size, model_config, where=str(path))
    model = VideoMAEModel(cfg)
    hf, fc = to_transformers(sd, cfg.num_hidden_layers, set(model.state_dict()), str(path))
    model.load_state_dict(hf, strict=True)
    pos = sd.get("pos_embed")
    if pos is not None:
        table = model.embeddings.position_embeddings
        if pos.shape != table.shape or not torch.allclose(pos.float(), table, atol=1e-4):
            raise ValueError(
                f"{path}: pos_embed {tuple(pos.shape)} is not the sinusoid table of "
                f"{cfg.num_frames} frames × {cfg.image_size}² ({tuple(table.shape)}); learned "
                "position embeddings have no transformers twin (or pass num_frames/image_size)"
            )
    heads_from = (
        "num_heads"
        if num_heads
        else "config.json model_config"
        if model_config.get("num_heads")
        else "HEADS_BY_DIM"
    )
    info = {
        "source": str(Path(path).resolve()),
        "num_heads_from": heads_from,
        "dropped_head": "head.weight" in sd,
    }
    return model.eval(), make_fc_norm(fc), info


# -- conversion ---------------------------------------------------------------------------
def preprocessor_config(image_size: int) -> dict[str, Any]:
    """VideoMAE-v2's evaluation transform in transformers' ``VideoMAEImageProcessor`` terms."""
    return {
        "image_processor_type": "VideoMAEImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 2,  # bilinear
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
    }


def _save_pretrained_quietly(model: Any, directory: Path) -> None:
    """``save_pretrained`` without transformers' per-shard progress bar (one tiny file)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(str(directory))
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def convert_videomae_v2(
    src: str | Path,
    dst: str | Path,
    num_heads: int | None = None,
    num_frames: int | None = None,
    image_size: int | None = None,
) -> Path:
    """Write ``dst`` — ``config.json`` + ``model.safetensors`` (``save_pretrained``),
    ``fc_norm.safetensors``, ``preprocessor_config.json`` and ``conversion.json`` (source and
    inferred architecture) — all or nothing. ``dst`` must not exist or be empty."""
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"{dst} already exists and is not an empty directory")
    model, fc_norm, info = load_videomae_v2(src, num_heads, num_frames, image_size)
    cfg = model.config
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        _save_pretrained_quietly(model, tmp)
        save_safetensors_atomic(
            tmp / FC_NORM_FILE,
            {"weight": fc_norm.weight.detach(), "bias": fc_norm.bias.detach()},
            metadata={
                "eps": repr(fc_norm.eps),
                "what": "VideoMAE-v2 fc_norm: LayerNorm of the mean of last_hidden_state",
            },
        )
        write_json_atomic(tmp / "preprocessor_config.json", preprocessor_config(cfg.image_size))
        write_json_atomic(
            tmp / "conversion.json",
            {
                "from": "videomae-v2",
                **info,
                "hidden_size": cfg.hidden_size,
                "num_hidden_layers": cfg.num_hidden_layers,
                "num_attention_heads": cfg.num_attention_heads,
                "intermediate_size": cfg.intermediate_size,
                "patch_size": cfg.patch_size,
                "tubelet_size": cfg.tubelet_size,
                "num_frames": cfg.num_frames,
                "image_size": cfg.image_size,
                "features": "fc_norm(last_hidden_state.mean(1)), fc_norm in " + FC_NORM_FILE,
            },
        )
        if dst.exists():
            dst.rmdir()
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst
