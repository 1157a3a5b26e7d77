"""Per-frame VAE (``diffusers.AutoencoderKL``): load a pretrained one or train a small one.

Latte encodes every frame independently with the Stable-Diffusion VAE (8× down, 4
channels); on toy there is no such VAE offline, so a small ``AutoencoderKL`` is trained
here on the training frames: pixels in [-1, 1] (SD convention), loss = MSE + a KL weight
of 1e-6 (SD's weight, without its LPIPS/GAN terms — toy frames are flat shapes). After
training, ``shift_factor``/``scaling_factor`` are set from the latents' mean and std so
the diffusion model sees unit-variance latents (SD chose 0.18215 the same way). A
pretrained VAE keeps its own factors.

Latents are cached as the posterior **mean** (deterministic; with KL weight 1e-6 the
posterior std is tiny), shape ``(N, C, T, h, w)``, in ``latents.safetensors``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vidistill.atomic import save_safetensors_atomic
from vidistill.clipstore import ClipStore
from vidistill.errors import stop_if_not_finite
from vidistill.generate.config import GenerateConfig


def _autoencoder_cls():
    from diffusers import AutoencoderKL

    return AutoencoderKL


def build_vae(cfg: GenerateConfig, size: int):
    """A fresh small ``AutoencoderKL`` (downsampling 2^(len(channels)-1))."""
    n = len(cfg.vae_channels)
    return _autoencoder_cls()(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.vae_channels),
        layers_per_block=cfg.vae_layers_per_block,
        latent_channels=cfg.vae_latent_channels,
        norm_num_groups=cfg.vae_norm_groups,
        sample_size=size,
        mid_block_add_attention=False,
        scaling_factor=1.0,
        shift_factor=0.0,
    )


def _is_autoencoder_dir(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text()).get("_class_name") == "AutoencoderKL"
    except (OSError, ValueError):
        return False


def load_vae(path: str | Path):
    """``AutoencoderKL.from_pretrained(DIR)``; DIR may also be a pipeline root with ``vae/``."""
    path = Path(path)
    if (path / "vae" / "config.json").is_file() and not _is_autoencoder_dir(path):
        path = path / "vae"  # a pipeline root or a `vidistill generate train` run folder
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"--vae {path}: no config.json (pass an AutoencoderKL folder, "
            f"e.g. the 'vae' folder of a Stable-Diffusion checkpoint)"
        )
    vae = _autoencoder_cls().from_pretrained(path)
    vae.eval().requires_grad_(False)
    return vae


def downsample_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _factors(vae) -> tuple[float, float]:
    shift = vae.config.get("shift_factor", None) or 0.0
    return float(shift), float(vae.config.scaling_factor)


def frames_to_pixels(clips_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N,T,H,W,3)`` → float ``(N*T,3,H,W)`` in [-1, 1]."""
    n, t, h, w, _ = clips_u8.shape
    return clips_u8.reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def pixels_to_u8(x: torch.Tensor, n: int) -> torch.Tensor:
    """float ``(N*T,3,H,W)`` in [-1, 1] → uint8 ``(N,T,H,W,3)``."""
    x = x.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    nt, _, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, nt // n, h, w, 3).contiguous()


@torch.no_grad()
def encode_clips(vae, clips_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N,T,H,W,3)`` → scaled latents ``(N,C,T,h,w)`` (posterior mean)."""
    n, t = clips_u8.shape[:2]
    dev = next(vae.parameters()).device
    dtype = next(vae.parameters()).dtype
    z = vae.encode(frames_to_pixels(clips_u8).to(dev, dtype)).latent_dist.mean.float()
    shift, scale = _factors(vae)
    z = (z - shift) * scale
    return z.reshape(n, t, *z.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def decode_latents(vae, z: torch.Tensor) -> torch.Tensor:
    """Scaled latents ``(N,C,T,h,w)`` → uint8 clips ``(N,T,H,W,3)`` on the CPU."""
    n, c, t, h, w = z.shape
    shift, scale = _factors(vae)
    dtype = next(vae.parameters()).dtype
    flat = z.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w) / scale + shift
    x = vae.decode(flat.to(dtype)).sample
    return pixels_to_u8(x, n).cpu()


@torch.no_grad()
def reconstruction_error(vae, frames: torch.Tensor, batch: int = 64) -> tuple[float, int]:
    """Summed squared error and value count of ``vae``'s reconstruction (posterior mean, as
    the denoiser's latents) of float frames ``(N,3,H,W)`` in [-1, 1] — summed so that
    per-class errors add up to the whole set's."""
    dev = next(vae.parameters()).device
    total = 0.0
    for x in frames.split(batch):
        x = x.to(dev)
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        total += float(F.mse_loss(rec, x, reduction="sum"))
    return total, frames.numel()


def psnr_db(sq_err: float, count: int) -> float:
    """PSNR on [-1, 1] pixels (peak-to-peak 2, so 4 / MSE)."""
    return float(10 * math.log10(4.0 / (sq_err / count)))


def train_vae(
    store: ClipStore,
    cfg: GenerateConfig,
    out: str | Path,
    device: torch.device,
    progress: bool = True,
):
    """Train the small VAE on the store's training frames, set its latent factors, save it.

    Deterministic from ``cfg.seed``. Writes ``out/`` with ``config.json`` +
    ``diffusion_pytorch_model.safetensors`` (``save_pretrained``, safetensors).
    """
    out = Path(out)
    gen = torch.Generator().manual_seed(cfg.seed + 17)
    torch.manual_seed(cfg.seed + 17)
    vae = build_vae(cfg, store.spec.size).to(device)
    idx = store.indices("train")
    frames = frames_to_pixels(torch.from_numpy(store.clips(idx)))  # (N*T,3,H,W) float in RAM
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    steps = cfg.vae_steps
    bar = tqdm(range(steps), desc="vae", disable=not progress, dynamic_ncols=True)
    vae.train()
    for step in bar:
        lr = cfg.vae_lr * 0.5 * (1 + math.cos(math.pi * step / steps))  # cosine to 0
        for g in opt.param_groups:
            g["lr"] = lr
        b = torch.randint(len(frames), (cfg.vae_batch,), generator=gen)
        x = frames[b].to(device)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen).to(device)
        rec = vae.decode(z).sample
        mse = F.mse_loss(rec, x)
        kl = post.kl().mean() / x[0].numel()
        loss = mse + cfg.vae_kl_weight * kl
        stop_if_not_finite(
            float(loss.detach()),
            f"VAE training, step {step + 1}",
            f"nothing was written to {out}",
            "Lower vae_lr (or pass --vae, a pretrained AutoencoderKL) and train again",
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        bar.set_postfix(mse=f"{mse.item():.4f}")
    vae.eval().requires_grad_(False)
    # latent statistics → shift/scale so the denoiser sees ~N(0,1) latents
    with torch.no_grad():
        zs = torch.cat(
            [
                vae.encode(frames[i : i + 256].to(device)).latent_dist.mean.float().cpu()
                for i in range(0, len(frames), 256)
            ]
        )
    mean, std = float(zs.mean()), float(zs.std())
    vae.register_to_config(shift_factor=mean, scaling_factor=1.0 / max(std, 1e-6))
    sq_err, count = reconstruction_error(vae, frames[:64])
    psnr = psnr_db(sq_err, count)
    vae.save_pretrained(out, safe_serialization=True)
    return vae, {
        "vae_final_mse": float(mse.item()),
        "vae_psnr_db": psnr,
        "latent_mean": mean,
        "latent_std": std,
    }


def cache_latents(
    store: ClipStore, vae, path: str | Path, batch: int = 16, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode every training clip once; reuse ``path`` when it already holds them (a
    damaged cache is only a cache: encoded again)."""
    from vidistill.errors import CorruptArtifact
    from vidistill.integrity import load_safetensors

    path = Path(path)
    idx = store.indices("train")
    if path.is_file():
        try:
            d = load_safetensors(path, "generate train")[0]
        except CorruptArtifact:
            d = {"index": torch.empty(0)}
        if d["index"].numel() == len(idx) and torch.equal(d["index"], torch.from_numpy(idx)):
            return d["latents"], d["labels"]
    chunks = []
    for i in tqdm(
        range(0, len(idx), batch), desc="encode", disable=not progress, dynamic_ncols=True
    ):
        chunks.append(encode_clips(vae, torch.from_numpy(store.clips(idx[i : i + batch]))).cpu())
    latents = torch.cat(chunks)
    labels = torch.from_numpy(store.labels[idx].astype(np.int64))
    save_safetensors_atomic(
        path,
        {"latents": latents, "labels": labels, "index": torch.from_numpy(idx.astype(np.int64))},
    )
    return latents, labels
