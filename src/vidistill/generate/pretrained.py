"""Official Latte checkpoints: read them (never unpickling objects), convert them into a folder
the generate stage loads, and start a fine-tuning run from one (``--init``).

Readable sources:

* an official ``.pt``/``.pth``/``.bin`` (``torch.load(weights_only=True)``; a file that needs
  Python objects unpickled is refused). ``train.py`` saves ``{"model": …, "ema": …}``;
  like the official ``find_model`` we take ``"ema"`` when present, else ``"model"``, else a
  bare state dict. The released ``ucf101.pt`` holds the EMA weights;
* a ``.safetensors`` file with the official keys;
* a folder written by ``vidistill convert latte`` (``config.json`` + ``ema.safetensors``).

The architecture is read from the shapes (hidden size, patch, in/out channels, depth, MLP
ratio, frames, latent size, class count); the head count is not in them — taken from the
official variants by hidden size (:data:`~vidistill.generate.latte.HEADS_BY_DIM`), or
``num_heads``. Class names are not in an official checkpoint either: a 101-class one is
taken to be UCF101 with the official training order — ``sorted()`` of the class-folder
names (``datasets/ucf101_datasets.py``, ``find_classes``), which differs from
``classInd.txt`` (HammerThrow/Hammering, JumpRope/JumpingJack swap); pass ``class_names``
for any other.

A converted folder is a generator folder like a finished ``generate train`` run:
``config.json`` (``generator``: the config; ``data``: classes, frames, pixel size, latent
shape, VAE folder if given; ``converted_from``: the source) and ``ema.safetensors`` (the
official keys), so ``generate sample`` samples from it and ``generate train --init`` starts
from it.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidistill.atomic import save_safetensors_atomic, write_json_atomic
from vidistill.generate.config import PRESETS, GenerateConfig
from vidistill.generate.latte import HEADS_BY_DIM, VARIANTS, Latte, build_latte, sincos_1d

UCF101_CLASSES_FILE = "ucf101_classes_latte.txt"  # sorted UCF101 folder names (official order)
WEIGHTS_FILE = "ema.safetensors"
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
LABEL_KEY = "y_embedder.embedding_table.weight"
_ARCH_FIELDS = ("hidden", "depth", "heads", "patch", "mlp_ratio", "learn_sigma")
_DIFFUSION_FIELDS = (
    "prediction_type",
    "num_train_timesteps",
    "beta_schedule",
    "beta_start",
    "beta_end",
)


def ucf101_latte_classes() -> list[str]:
    """The 101 UCF101 classes in the order the official Latte was trained with."""
    from vidistill.datasets.filelist import read_lines, resource_path

    return read_lines(resource_path(UCF101_CLASSES_FILE))


@dataclass
class PretrainedLatte:
    """A Latte checkpoint in memory: official-key weights, the generator config that builds
    it, and what is known about its classes and latents."""

    state_dict: dict[str, torch.Tensor]
    cfg: GenerateConfig
    num_classes: int
    in_channels: int
    frames: int
    latent_size: int
    class_names: list[str] | None
    names_source: str
    vae_dir: str | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Latte:
        """The model, loaded strictly."""
        model = build_latte(
            self.cfg, self.num_classes, self.in_channels, self.frames, self.latent_size
        )
        load_strict(model, self.state_dict, self.source.get("path", "checkpoint"))
        return model


# -- reading --------------------------------------------------------------------------------
def read_latte_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Official-key state dict of ``path`` and where it came from (``weights``: which entry
    of the checkpoint; ``config``: a converted folder's ``config.json``)."""
    from vidistill.integrity import load_safetensors, read_json

    path = Path(path)
    info: dict[str, Any] = {"path": str(path.resolve())}
    remake = "`vidistill convert latte` (or download the checkpoint again)"
    if path.is_dir():
        cfg_file, weights = path / "config.json", path / WEIGHTS_FILE
        if not (cfg_file.is_file() and weights.is_file()):
            raise FileNotFoundError(
                f"{path}: not a Latte folder (needs config.json and {WEIGHTS_FILE}, as "
                "`vidistill convert latte` writes them)"
            )
        info.update(format="folder", weights="ema", config=read_json(cfg_file, remake))
        return load_safetensors(weights, remake)[0], info
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        info.update(format="safetensors", weights="state_dict")
        return _strip(load_safetensors(path, remake)[0]), info
    if path.suffix not in TORCH_SUFFIXES:
        raise ValueError(
            f"{path}: not a checkpoint vidistill reads (expected {', '.join(TORCH_SUFFIXES)}, "
            ".safetensors or a folder from `vidistill convert latte`)"
        )
    from vidistill.embed.videomae_v2 import _torch_load_weights_only  # the one safe loader

    obj = _torch_load_weights_only(path)
    which = "state_dict"
    if isinstance(obj, dict):
        for key in ("ema", "model"):  # the official find_model's order
            if isinstance(obj.get(key), dict):
                obj, which = obj[key], key
                break
    sd = {k: v for k, v in obj.items() if torch.is_tensor(v)} if isinstance(obj, dict) else {}
    if not sd:
        raise ValueError(f"{path}: no state dict of tensors found (official: {{'ema': …}})")
    info.update(format="torch", weights=which)
    return _strip(sd), info


def _strip(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a DDP ``module.`` / ``torch.compile`` ``_orig_mod.`` prefix on every key."""
    for prefix in ("module.", "_orig_mod."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def infer_architecture(
    sd: dict[str, torch.Tensor], num_heads: int | None = None, where: str = "checkpoint"
) -> dict[str, Any]:
    """Constructor arguments of the official ``Latte`` whose state dict is ``sd``."""
    if "x_embedder.proj.weight" not in sd:
        raise ValueError(
            f"{where}: no x_embedder.proj.weight — not an official Latte state dict "
            f"(first keys: {sorted(sd)[:4]})"
        )
    if LABEL_KEY not in sd:
        raise ValueError(
            f"{where}: no {LABEL_KEY} — an unconditional or text-to-video Latte; the generate "
            "stage needs the class-conditional one (extras=2, e.g. ucf101.pt)"
        )
    hidden, in_ch, patch, patch_w = sd["x_embedder.proj.weight"].shape
    if patch != patch_w:
        raise ValueError(f"{where}: non-square patches {patch}×{patch_w}")
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
    if not blocks or blocks != set(range(len(blocks))) or len(blocks) % 2:
        raise ValueError(
            f"{where}: blocks {sorted(blocks)[:6]}… are not 0..depth-1 with even depth"
        )
    out = sd["final_layer.linear.weight"].shape[0] // (patch * patch)
    if out not in (in_ch, 2 * in_ch):
        raise ValueError(f"{where}: {out} output channels for {in_ch} input channels")
    n_patches = sd["pos_embed"].shape[1]
    grid = math.isqrt(n_patches)
    if grid * grid != n_patches:
        raise ValueError(f"{where}: pos_embed has {n_patches} positions, not a square grid")
    heads = num_heads or HEADS_BY_DIM.get(int(hidden))
    if heads is None:
        raise ValueError(
            f"{where}: hidden size {hidden} is not an official Latte size "
            f"({sorted(HEADS_BY_DIM)}); pass the head count (`vidistill convert latte --num-heads`)"
        )
    arch = {
        "hidden": int(hidden),
        "depth": len(blocks),
        "heads": int(heads),
        "patch": int(patch),
        "mlp_ratio": sd["blocks.0.mlp.fc1.weight"].shape[0] / hidden,
        "learn_sigma": out == 2 * in_ch,
        "in_channels": int(in_ch),
        "frames": int(sd["temp_embed"].shape[1]),
        "latent_size": grid * int(patch),
        "num_classes": int(sd[LABEL_KEY].shape[0]) - 1,
    }
    arch["variant"] = next(
        (
            name
            for name, v in VARIANTS.items()
            if all(arch[k] == v[k] for k in ("depth", "hidden", "heads", "patch"))
        ),
        None,
    )
    return arch


def load_strict(model: Latte, sd: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with a message that names what does not fit."""
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        ours = model.state_dict()
        missing = sorted(set(ours) - set(sd))
        extra = sorted(set(sd) - set(ours))
        shapes = [k for k in set(ours) & set(sd) if ours[k].shape != sd[k].shape]
        raise ValueError(
            f"{where}: does not load into the official Latte (missing {missing[:4]}, "
            f"unexpected {extra[:4]}, shape mismatch {sorted(shapes)[:4]})"
        ) from err


def load_latte(
    path: str | Path, num_heads: int | None = None, class_names: list[str] | None = None
) -> PretrainedLatte:
    """Read an official checkpoint or a converted folder (see the module docstring)."""
    sd, info = read_latte_checkpoint(path)
    folder = info.pop("config", None)
    if folder is not None and num_heads is None:
        num_heads = folder["generator"]["heads"]
    arch = infer_architecture(sd, num_heads, where=str(path))
    vae_dir = None
    if folder is not None:  # a converted folder (or a finished run): its own config
        cfg = GenerateConfig.from_dict(folder["generator"])
        data = folder["data"]
        names, names_source = list(data["class_names"]), "the folder's config.json"
        vae_dir = data.get("vae_dir")
    else:
        base = PRESETS["latte-xl" if arch["variant"] == "Latte-XL/2" else "latte-s"]
        cfg = base.override(preset="converted", **{k: arch[k] for k in _ARCH_FIELDS})
        names, names_source = None, "none (the checkpoint names no classes)"
    if class_names is not None:
        names, names_source = list(class_names), "given"
    elif names is None and arch["num_classes"] == 101:
        names = ucf101_latte_classes()
        names_source = "UCF101, sorted class-folder names (the official training order)"
    if names is not None and len(names) != arch["num_classes"]:
        raise ValueError(
            f"{path}: {len(names)} class names for a checkpoint of {arch['num_classes']} "
            f"classes (+ the null label)"
        )
    info["architecture"] = arch
    return PretrainedLatte(
        state_dict=sd,
        cfg=cfg,
        num_classes=arch["num_classes"],
        in_channels=arch["in_channels"],
        frames=arch["frames"],
        latent_size=arch["latent_size"],
        class_names=names,
        names_source=names_source,
        vae_dir=vae_dir,
        source=info,
    )


# -- converting -------------------------------------------------------------------------------
def convert_latte(
    src: str | Path,
    dst: str | Path,
    num_heads: int | None = None,
    class_names: list[str] | None = None,
    vae_dir: str | Path | None = None,
    image_size: int | None = None,
) -> tuple[Path, PretrainedLatte]:
    """Write ``dst`` (``config.json`` + ``ema.safetensors``) from an official checkpoint, after
    checking that it loads strictly. ``vae_dir`` (the SD VAE for ``ucf101.pt``) is recorded
    so ``generate sample``/``--init`` need no ``--vae``; it also fixes the pixel size
    (latent size × its downsampling), else ``image_size`` or 8× (the SD VAE's) is assumed.
    All or nothing; ``dst`` must not exist or be empty."""
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"{dst} already exists and is not an empty directory")
    pre = load_latte(src, num_heads, class_names)
    pre.build()  # strict load: the layout is the official one
    arch = pre.source["architecture"]
    factor = 8
    if vae_dir is not None:
        from vidistill.generate.vae import downsample_factor, load_vae

        vae = load_vae(vae_dir)
        if vae.config.latent_channels != pre.in_channels:
            raise ValueError(
                f"--vae {vae_dir}: {vae.config.latent_channels} latent channels, the "
                f"checkpoint expects {pre.in_channels}"
            )
        factor, vae_dir = downsample_factor(vae), str(Path(vae_dir).resolve())
    size = pre.latent_size * factor if (vae_dir or not image_size) else image_size
    names = pre.class_names or [f"class_{i:03d}" for i in range(pre.num_classes)]
    config = {
        "generator": pre.cfg.to_dict(),
        "data": {
            "num_classes": pre.num_classes,
            "class_names": names,
            "frames": pre.frames,
            "size": size,
            "latent_shape": [pre.in_channels, pre.frames, pre.latent_size, pre.latent_size],
            "vae_dir": vae_dir,
            "store": None,
            "init": None,
        },
        "converted_from": {
            **pre.source,
            "class_names": pre.names_source if pre.class_names else "none: placeholders",
            "temp_embed_is_sincos": bool(
                torch.allclose(
                    pre.state_dict["temp_embed"][0].float(),
                    sincos_1d(arch["hidden"], pre.frames),
                    atol=1e-5,
                )
            ),
        },
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        save_safetensors_atomic(tmp / WEIGHTS_FILE, pre.state_dict)
        write_json_atomic(tmp / "config.json", config)
        if dst.exists():
            dst.rmdir()
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst, pre


# -- fine-tuning from a checkpoint (--init) ---------------------------------------------------
def init_config(cfg: GenerateConfig, pre: PretrainedLatte) -> tuple[GenerateConfig, list[str]]:
    """``cfg`` with the architecture and diffusion settings of the checkpoint (the weights were
    trained with them); returns the fields that changed."""
    new = cfg.override(**{k: getattr(pre.cfg, k) for k in _ARCH_FIELDS + _DIFFUSION_FIELDS})
    changed = [k for k in _ARCH_FIELDS + _DIFFUSION_FIELDS if getattr(cfg, k) != getattr(new, k)]
    return new, changed


def init_from_pretrained(
    model: Latte, pre: PretrainedLatte, class_names: list[str]
) -> dict[str, Any]:
    """Copy ``pre``'s weights into ``model`` (built by :func:`init_config`'s config for the
    store's classes, frames and latent size). Every weight is copied except:

    * the label table: the row of each store class whose name matches a checkpoint class
      (case-insensitive) is copied, the other rows keep their fresh N(0, 0.02) init; the
      null row (the last) is the checkpoint's null row. With no names in the checkpoint and
      the same class count, rows are copied by index;
    * ``pos_embed`` / ``temp_embed`` when the latent size / frame count differ: they are fixed
      sin-cos tables, recomputed for the new shape (not learned).

    Returns a report whose ``message`` says what was mapped."""
    sd = dict(pre.state_dict)
    table = sd.pop(LABEL_KEY)
    ours = model.state_dict()
    recomputed = [k for k in ("pos_embed", "temp_embed") if sd[k].shape != ours[k].shape]
    for k in recomputed:
        sd.pop(k)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or set(missing) != {LABEL_KEY, *recomputed}:
        raise ValueError(
            f"--init {pre.source.get('path')}: does not fit the model (missing {missing[:4]}, "
            f"unexpected {unexpected[:4]})"
        )
    new = model.y_embedder.embedding_table.weight.data
    if new.shape[1] != table.shape[1]:
        raise ValueError(f"--init: label width {table.shape[1]} ≠ hidden {new.shape[1]}")
    mapping: dict[str, int] = {}
    if pre.class_names is not None:
        index = {name.casefold(): j for j, name in enumerate(pre.class_names)}
        for i, name in enumerate(class_names):
            j = index.get(name.casefold())
            if j is not None:
                new[i] = table[j].to(new)
                mapping[name] = j
        how = f"by name from the checkpoint's {pre.num_classes} ({pre.names_source})"
    elif pre.num_classes == len(class_names):
        new[: len(class_names)] = table[:-1].to(new)
        mapping = {name: i for i, name in enumerate(class_names)}
        how = "by index (the checkpoint names no classes; same class count)"
    else:
        how = f"none: the checkpoint names no classes and has {pre.num_classes}, not {len(class_names)}"
    new[-1] = table[-1].to(new)  # the null label keeps its meaning (unconditional branch)
    fresh = [n for n in class_names if n not in mapping]
    moved = sum(1 for i, n in enumerate(class_names) if n in mapping and mapping[n] != i)
    msg = (
        f"--init {pre.source.get('path')} ({pre.source.get('weights')} weights, "
        f"{pre.source['architecture'].get('variant') or 'custom size'}): all weights loaded "
        f"except the label table; label rows mapped {how}: {len(mapping)}/{len(class_names)} "
        f"store classes ({moved} at a different row)"
        + (
            f", re-initialised: {', '.join(fresh[:8])}{' …' if len(fresh) > 8 else ''}"
            if fresh
            else ""
        )
        + f"; null label: checkpoint row {pre.num_classes} → row {len(class_names)}"
        + (f"; recomputed (sin-cos, new shape): {', '.join(recomputed)}" if recomputed else "")
    )
    return {
        "source": pre.source.get("path"),
        "weights": pre.source.get("weights"),
        "architecture": pre.source.get("architecture"),
        "class_names_source": pre.names_source,
        "mapped": mapping,
        "reinitialised": fresh,
        "recomputed": recomputed,
        "message": msg,
    }
