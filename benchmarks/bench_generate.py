"""Generator speed: Latte training steps/s and sampling clips/s (DDIM + CFG + VAE decode).

    python benchmarks/bench_generate.py                 # toy preset on the CPU
    python benchmarks/bench_generate.py --paper-scale   # 16 frames, 4×32² latents, Latte-S,
                                                        # SD-VAE-shaped decoder, bf16 on CUDA

Weights are random (speed does not depend on them); data are random latents, so this
times the model, the optimizer step, the sampler and the decoder — not data loading.
DESIGN §6 reference (one H100, bf16): Latte-S training 85 clips/s at batch 16; sampling
(DDIM 50 steps + CFG) 2.8 clips/s at batch 64.
"""

from __future__ import annotations

import argparse
import time

import torch

from vidistill.generate.config import preset
from vidistill.generate.latte import build_latte, count_params
from vidistill.generate.sample import sample_latents
from vidistill.generate.train import diffusion_loss, make_scheduler
from vidistill.generate.vae import build_vae, decode_latents


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper-scale", action="store_true")
    ap.add_argument("--train-steps", type=int, default=None, help="timed training steps")
    ap.add_argument("--batch", type=int, default=None, help="training batch")
    ap.add_argument("--sample-batch", type=int, default=None)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--cpu", action="store_true", help="stay on the CPU even with CUDA")
    ap.add_argument(
        "--no-decode",
        action="store_true",
        help="skip the VAE decode (paper scale on a CPU: 16 SD-VAE decodes at 256² take minutes)",
    )
    args = ap.parse_args()

    dev = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    bf16 = dev.type == "cuda"
    if args.paper_scale:
        cfg = preset("latte-s")
        frames, lat, size = 16, 32, 256
        vae_cfg = cfg.override(
            vae_channels=(128, 256, 512, 512), vae_layers_per_block=2, vae_norm_groups=32
        )  # the SD-VAE's shape (8× down)
        batch, sbatch = args.batch or 16, args.sample_batch or 64
        train_steps = args.train_steps or (20 if dev.type == "cuda" else 1)
    else:
        cfg = preset("toy")
        frames, lat, size = 8, 16, 64
        vae_cfg = cfg
        batch, sbatch = args.batch or cfg.batch, args.sample_batch or 16
        train_steps = args.train_steps or 5
    if dev.type == "cpu" and args.paper_scale:
        sbatch = args.sample_batch or 2
    torch.manual_seed(0)
    model = build_latte(cfg, args.classes, 4, frames, lat).to(dev)
    prec = "bf16 autocast" if bf16 else "fp32"
    print(
        f"device {dev} ({prec}), threads {torch.get_num_threads()}; "
        f"Latte {count_params(model) / 1e6:.2f} M params (hidden {cfg.hidden}, {cfg.layers}+"
        f"{cfg.layers} blocks, {cfg.heads} heads, patch {cfg.patch}); latents 4×{frames}×{lat}²"
    )

    sch = make_scheduler(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    x0 = torch.randn(batch, 4, frames, lat, lat, device=dev)
    y = torch.randint(0, args.classes + 1, (batch,), device=dev)

    def step() -> None:
        t = torch.randint(0, 1000, (batch,), device=dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = diffusion_loss(model, sch, x0, y, torch.randn_like(x0), t, cfg.prediction_type)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(train_steps):
        step()
    _sync(dev)
    dt = (time.perf_counter() - t0) / train_steps
    print(
        f"train: batch {batch}: {1 / dt:.3f} steps/s = {batch / dt:.1f} clips/s "
        f"({train_steps} timed steps)"
    )

    model.eval()
    vae = build_vae(vae_cfg, size).to(dev).eval()
    labels = torch.arange(sbatch, device=dev) % args.classes
    _sync(dev)
    t0 = time.perf_counter()
    z = sample_latents(
        model,
        labels,
        (4, frames, lat, lat),
        cfg,
        "ddim",
        args.sample_steps,
        4.0,
        seed=0,
        autocast=bf16,
    )
    _sync(dev)
    t1 = time.perf_counter()
    if args.no_decode:
        print(
            f"sample: DDIM {args.sample_steps} steps + CFG, batch {sbatch}: denoise "
            f"{t1 - t0:.1f} s → {sbatch / (t1 - t0):.3f} clips/s (no VAE decode)"
        )
        return
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        clips = decode_latents(vae, z)
    _sync(dev)
    t2 = time.perf_counter()
    print(
        f"sample: DDIM {args.sample_steps} steps + CFG, batch {sbatch}: denoise {t1 - t0:.1f} s, "
        f"VAE decode {t2 - t1:.1f} s → {sbatch / (t2 - t0):.3f} clips/s "
        f"(clips {tuple(clips.shape)} uint8)"
    )


if __name__ == "__main__":
    main()
