"""`vidistill generate sample`: class-conditional sampling with CFG → a pool ClipStore.

Classifier-free guidance (Ho & Salimans): ε̂ = ε̂(x, ∅) + w·(ε̂(x, y) − ε̂(x, ∅)), both
branches in one batch, ∅ the null label (row ``num_classes``); w = ``guidance`` (4.0
default; 1.0 turns guidance off). As the official ``forward_with_cfg``, guidance acts on
the ε (or v) channels only; a ``learn_sigma`` model's variance channels are taken from the
conditional branch. Samplers, all from the training DDPM config with the official
respacing (timesteps round(linspace(0, 999, steps))):

* ``ddpm`` — ancestral DDPM (the official UCF101 sampler: 250 steps, CFG 7.0); with
  ``learn_sigma`` the model's variance (``learned_range``), else β_t; noise drawn from the
  batch's seeded generator;
* ``ddim`` — DDIM (η = 0, deterministic), ε channels only;
* ``dpm`` — DPM-Solver++ (2nd order multistep), ε channels only.

A run folder or a ``vidistill convert latte`` folder is sampled the same way (``vae``
overrides or supplies the VAE folder). The pool is ordered class by class (``per_class`` clips each) and
cut into batches; batch ``b`` starts from noise drawn with seed ``seed + b`` — recorded
per clip in the manifest (``meta.seed``, ``meta.batch``, ``meta.slot``) — so any clip can
be regenerated and an interrupted run resumes by batch: finished batches are kept as
``.partial/batch-XXXXX.safetensors`` (uint8 clips) until the store is written.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from vidistill.atomic import save_safetensors_atomic
from vidistill.clipstore import ClipRecord, ClipSpec, ClipStore, write_store
from vidistill.generate.config import GenerateConfig
from vidistill.generate.latte import Latte, build_latte
from vidistill.generate.train import make_scheduler
from vidistill.generate.vae import decode_latents, downsample_factor, load_vae

SAMPLERS = ("ddim", "dpm", "ddpm")


def load_generator(
    run_dir: str | Path, ema: bool = True, device: str | torch.device = "cpu"
) -> tuple[Latte, dict[str, Any]]:
    """The denoiser of a finished `generate train` run or a `convert latte` folder (EMA
    weights by default), loaded strictly."""
    run_dir = Path(run_dir)
    weights = run_dir / ("ema.safetensors" if ema else "model.safetensors")
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights} missing: is {run_dir} a finished `vidistill generate "
            f"train` run or a `vidistill convert latte` folder? (re-run train with the same "
            f"--out to finish it; a converted folder has only the EMA weights)"
        )
    run_cfg = json.loads((run_dir / "config.json").read_text())
    cfg = GenerateConfig.from_dict(run_cfg["generator"])
    d = run_cfg["data"]
    c, t, h, _ = d["latent_shape"]
    model = build_latte(cfg, d["num_classes"], c, t, h)
    model.load_state_dict(load_file(str(weights)), strict=True)
    return model.to(device).eval(), run_cfg


def make_sampler(cfg: GenerateConfig, name: str, steps: int):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    train_sch = make_scheduler(cfg)
    # DDIM / DPM-Solver get the ε half only; DPM-Solver's own "learned_range" handling would
    # keep 3 channels (DeepFloyd IF's), so the variance setting is not passed on.
    base = {k: v for k, v in train_sch.config.items() if k != "variance_type"}
    if name == "ddpm":
        sch = train_sch
    elif name == "ddim":
        sch = DDIMScheduler.from_config(base, clip_sample=False)
    elif name == "dpm":
        sch = DPMSolverMultistepScheduler.from_config(
            base, algorithm_type="dpmsolver++", solver_order=2
        )
    else:
        raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")
    sch.set_timesteps(steps)
    return sch


def guide(out: torch.Tensor, guidance: float, channels: int) -> torch.Tensor:
    """CFG on a batch ``[conditional; unconditional]``: the first ``channels`` (ε or v) are
    guided, the rest (learned variance) come from the conditional half (official)."""
    cond, uncond = out.chunk(2)
    eps = uncond[:, :channels] + guidance * (cond[:, :channels] - uncond[:, :channels])
    return torch.cat([eps, cond[:, channels:]], dim=1)


@torch.no_grad()
def sample_latents(
    model: Latte,
    labels: torch.Tensor,
    shape: tuple[int, ...],
    cfg: GenerateConfig,
    sampler: str = "ddim",
    steps: int = 50,
    guidance: float = 4.0,
    seed: int = 0,
    autocast: bool = False,
) -> torch.Tensor:
    """Latents ``(B, C, T, h, w)`` for ``labels`` (CFG with the null label when guidance ≠ 1).
    The initial noise and the DDPM noise come from one generator seeded with ``seed``."""
    device = next(model.parameters()).device
    sch = make_sampler(cfg, sampler, steps)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((len(labels), *shape), generator=gen).to(device) * sch.init_noise_sigma
    y = labels.to(device)
    null = torch.full_like(y, model.null_label)
    use_cfg = guidance != 1.0
    c = shape[0]
    keep = model.out_channels if sampler == "ddpm" else c  # DDPM reads the learned variance
    for t in sch.timesteps:
        xin = torch.cat([x, x]) if use_cfg else x
        tin = t.to(device).expand(len(xin))
        yin = torch.cat([y, null]) if use_cfg else y
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(sch.scale_model_input(xin, t), tin, yin).float()
        if use_cfg:
            out = guide(out, guidance, c)
        # the DDPM noise: from the CPU generator (diffusers moves it), so any device draws it alike
        x = sch.step(out[:, :keep], t, x, generator=gen).prev_sample
    return x


def sample_pool(
    run_dir: str | Path,
    out: str | Path,
    per_class: int,
    steps: int = 50,
    guidance: float = 4.0,
    sampler: str = "ddim",
    batch: int = 32,
    seed: int = 0,
    ema: bool = True,
    device: str | None = None,
    progress: bool = True,
    stop_after_batches: int | None = None,
    vae: str | Path | None = None,
) -> ClipStore | None:
    """Generate ``per_class`` clips of every class into a ClipStore at ``out`` (split "train").

    ``vae``: the VAE folder to decode with (default: the one recorded in ``run_dir``).
    Returns ``None`` if ``stop_after_batches`` ended the call early (tests of resume).
    """
    if per_class < 1:
        raise ValueError(f"--per-class must be >= 1, got {per_class}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, run_cfg = load_generator(run_dir, ema=ema, device=dev)
    cfg = GenerateConfig.from_dict(run_cfg["generator"])
    d = run_cfg["data"]
    vae_dir = vae or d.get("vae_dir")
    if not vae_dir:
        raise ValueError(
            f"{run_dir} records no VAE: pass --vae (for the official ucf101.pt the SD VAE, "
            "stabilityai/sd-vae-ft-ema, downloaded to a local folder)"
        )
    vae_model = load_vae(vae_dir).to(dev)
    if vae_model.config.latent_channels != d["latent_shape"][0]:
        raise ValueError(
            f"--vae {vae_dir}: {vae_model.config.latent_channels} latent channels, the "
            f"generator makes {d['latent_shape'][0]}"
        )
    out = Path(out)
    partial = out / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    settings = {
        "run": str(Path(run_dir).resolve()),
        "per_class": per_class,
        "steps": steps,
        "guidance": guidance,
        "sampler": sampler,
        "batch": batch,
        "seed": seed,
        "ema": ema,
        "vae": str(Path(vae_dir).resolve()),
    }
    sfile = partial / "settings.json"
    if sfile.is_file() and json.loads(sfile.read_text()) != settings:
        shutil.rmtree(partial)  # different settings: the finished batches do not belong here
        partial.mkdir(parents=True)
    sfile.write_text(json.dumps(settings))

    labels = torch.arange(d["num_classes"]).repeat_interleave(per_class)
    batches = [labels[i : i + batch] for i in range(0, len(labels), batch)]
    shape = tuple(d["latent_shape"])
    t0, done_now, clips_now = time.time(), 0, 0
    autocast = dev.type == "cuda"
    for b, lab in enumerate(tqdm(batches, desc="sample", disable=not progress, dynamic_ncols=True)):
        path = partial / f"batch-{b:05d}.safetensors"
        if path.is_file():
            continue
        if stop_after_batches is not None and done_now >= stop_after_batches:
            return None
        z = sample_latents(model, lab, shape, cfg, sampler, steps, guidance, seed + b, autocast)
        clips = decode_latents(vae_model, z)
        save_safetensors_atomic(path, {"clips": clips, "labels": lab})
        done_now += 1
        clips_now += len(lab)
    seconds = time.time() - t0

    # the decoded size (a run: its store's; a converted folder: latent size × VAE factor)
    spec = ClipSpec(frames=d["frames"], size=d["latent_shape"][2] * downsample_factor(vae_model))
    records = [
        ClipRecord(
            source=f"generated:{b}:{i}",
            label=int(lab),
            class_name=d["class_names"][lab],
            split="train",
            meta={"seed": seed + b, "batch": b, "slot": i},
        )
        for b, labs in enumerate(batches)
        for i, lab in enumerate(labs.tolist())
    ]

    def stream():
        for b in range(len(batches)):
            yield load_file(str(partial / f"batch-{b:05d}.safetensors"))["clips"].numpy()

    info = {
        **settings,
        "seconds": round(seconds, 1),
        "clips_this_call": clips_now,
        "clips_per_second": round(clips_now / max(seconds, 1e-9), 4),
    }
    store = write_store(
        out,
        spec,
        d["class_names"],
        stream(),
        records,
        dataset="generated",
        extra={"generator": info},
    )
    shutil.rmtree(partial)
    return store
