"""Generator speed: `generate train`'s own loop (steps/s, clips/s) and sampling clips/s.

    python benchmarks/bench_generate.py                 # toy preset on the CPU
    python benchmarks/bench_generate.py --paper-scale   # 16 frames, 4×32² latents, Latte-S,
                                                        # SD-VAE-shaped VAE, bf16 on CUDA

Training is timed inside ``vidistill.generate.train`` itself — the loop a user runs, with
accelerate (bf16 autocast on CUDA), label dropout, gradient clipping, the AdamW step and
the EMA update — through its ``on_step`` hook: the first ``--warmup`` steps are excluded,
the window ends before the final step (whose checkpoint save is reported on its own line).
Data (stated): a ClipStore of random uint8 clips and a randomly initialised VAE of the
preset's shape passed as ``--vae``, so no VAE is trained; its latents are encoded once
before the loop, as in a real run. Speed does not depend on pixel values or weights.
Sampling: DDIM + CFG on the trained run's EMA weights, then the VAE decode.
DESIGN §6 reference (one H100, bf16): Latte-S training 85 clips/s at batch 16; sampling
(DDIM 50 steps + CFG) 2.8 clips/s at batch 64.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidistill.clipstore import ClipRecord, ClipSpec, write_store
from vidistill.generate import load_generator, train
from vidistill.generate.config import preset
from vidistill.generate.latte import count_params
from vidistill.generate.sample import sample_latents
from vidistill.generate.vae import build_vae, decode_latents, load_vae


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def random_store(root: Path, n: int, classes: int, frames: int, size: int) -> Path:
    """``n`` random uint8 clips (labels round-robin over ``classes``), all in "train"."""
    rng = np.random.default_rng(0)
    spec = ClipSpec(frames=frames, size=size)
    names = [f"c{i}" for i in range(classes)]
    records = [
        ClipRecord(f"random/{i}", i % classes, names[i % classes], "train") for i in range(n)
    ]
    clips = (rng.integers(0, 256, spec.shape, dtype=np.uint8) for _ in range(n))
    write_store(root, spec, names, clips, records, dataset="random")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper-scale", action="store_true")
    ap.add_argument("--train-steps", type=int, default=None, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed first training steps")
    ap.add_argument("--batch", type=int, default=None, help="training batch")
    ap.add_argument("--sample-batch", type=int, default=None)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--cpu", action="store_true", help="stay on the CPU even with CUDA")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument(
        "--no-decode",
        action="store_true",
        help="skip the VAE decode (paper scale on a CPU: 16 SD-VAE decodes at 256² take minutes)",
    )
    args = ap.parse_args()

    dev = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    bf16 = dev.type == "cuda"
    if args.paper_scale:
        cfg = preset("latte-s").override(
            vae_channels=(128, 256, 512, 512), vae_layers_per_block=2, vae_norm_groups=32
        )  # the SD-VAE's shape (8× down)
        frames, size = 16, 256
        batch, sbatch = args.batch or 16, args.sample_batch or 64
        timed = args.train_steps or (20 if dev.type == "cuda" else 1)
    else:
        cfg = preset("toy")
        frames, size = 8, 64
        batch, sbatch = args.batch or cfg.batch, args.sample_batch or 16
        timed = args.train_steps or 5
    if dev.type == "cpu" and args.paper_scale:
        sbatch = args.sample_batch or 2
    warm = max(1, args.warmup)
    total = warm + timed + 1  # +1: the final step (it saves a checkpoint) is outside the window
    cfg = cfg.override(steps=total, batch=batch, checkpoint_every=max(total, cfg.checkpoint_every))

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_generate_"))
    store = random_store(work / "store", max(batch, args.classes), args.classes, frames, size)
    build_vae(cfg, size).save_pretrained(work / "vae", safe_serialization=True)
    run = work / "run"
    stamps: dict[int, float] = {}

    def on_step(step: int) -> None:
        _sync(dev)
        stamps[step] = time.perf_counter()

    summary = train(
        store, run, cfg, vae_dir=str(work / "vae"), progress=False, cpu=args.cpu, on_step=on_step
    )
    dt = (stamps[warm + timed] - stamps[warm]) / timed
    save = (stamps[total] - stamps[total - 1]) - dt
    model, run_cfg = load_generator(run, device=dev)
    c, t, h, _ = run_cfg["data"]["latent_shape"]
    print(
        f"device {summary['device']} (mixed precision: {summary['mixed_precision']}), threads "
        f"{torch.get_num_threads()}; Latte {count_params(model) / 1e6:.2f} M params (hidden "
        f"{cfg.hidden}, depth {cfg.depth}, {cfg.heads} heads, patch {cfg.patch}); "
        f"latents {c}×{t}×{h}²"
    )
    print(
        f"train (vidistill.generate.train, EMA + grad clip + accelerate): batch {batch}: "
        f"{1 / dt:.3f} steps/s = {batch / dt:.1f} clips/s ({timed} timed steps after {warm} "
        f"warm-up); checkpoint save ≈ {max(save, 0.0):.2f} s (every {preset(cfg.preset).checkpoint_every} "
        f"steps in the preset)"
    )

    vae = load_vae(work / "vae").to(dev).eval()
    labels = torch.arange(sbatch, device=dev) % args.classes
    _sync(dev)
    t0 = time.perf_counter()
    z = sample_latents(
        model, labels, (c, t, h, h), cfg, "ddim", args.sample_steps, 4.0, seed=0, autocast=bf16
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
