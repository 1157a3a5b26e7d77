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
cut into batches; an interrupted run resumes by batch: finished batches are kept as
``.partial/batch-XXXXX.safetensors`` (uint8 clips) until the store is written. Seeding
(recorded per clip in the manifest, ``meta.seed``, so any clip can be regenerated):

* ``seeding="batch"`` (the CLI's default) — batch ``b`` draws its initial and DDPM noise
  from one generator seeded ``seed + b`` (``meta.batch``, ``meta.slot``);
* ``seeding="clip"`` (``vidistill run``) — clip ``i`` of pool class ``c`` has its own
  generator, seeded ``clip_seed(seed, c, i)``; its noise does not depend on the batch size
  or on ``per_class``, so a pool of 10 per class is the first 10 clips of a pool of 100
  (``meta.class_index``, ``meta.index``).

``class_names``: sample only these classes (matched to the generator's by name, ignoring
case), in this order — e.g. the 50 MiniUCF classes from a 101-class UCF101 Latte; pool
label ``c`` is ``class_names[c]``. ``frames`` / ``size``: the pool's clip spec when it
differs from the generator's (the evaluator needs the real store's): every ``T/frames``-th
frame when that divides (16 → 8 frames = the clip at twice the stride), else frames at
``round(linspace(0, T−1, frames))``; each frame resized bilinearly (antialiased).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vidistill import distributed
from vidistill.atomic import save_safetensors_atomic, write_json_atomic
from vidistill.clipstore import ClipRecord, ClipSpec, ClipStore, write_store
from vidistill.generate.config import GenerateConfig
from vidistill.generate.latte import Latte, build_latte
from vidistill.generate.train import make_scheduler
from vidistill.generate.vae import decode_latents, downsample_factor, load_vae
from vidistill.integrity import load_safetensors, read_json
from vidistill.poolplan import PoolPlan, sample_batches

SAMPLERS = ("ddim", "dpm", "ddpm")
SEEDINGS = ("batch", "clip")


def clip_seed(seed: int, class_index: int, index: int) -> int:
    """The noise seed of clip ``index`` of pool class ``class_index`` (``seeding="clip"``):
    NumPy's ``SeedSequence`` of the three numbers, so nearby seeds give unrelated streams."""
    state = np.random.SeedSequence([seed, class_index, index]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def frame_indices(have: int, want: int) -> np.ndarray:
    """Which of ``have`` frames make a ``want``-frame clip: every ``have/want``-th when that
    divides (16 → 8: 0, 2, …, 14 — a clip at twice the stride), else
    ``round(linspace(0, have−1, want))`` (the VideoMAE embedder's rule)."""
    if have % want == 0:
        return np.arange(0, have, have // want)
    return np.round(np.linspace(0, have - 1, want)).astype(np.int64)


def resize_clips(clips: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    """uint8 ``(N,T,H,W,3)`` → ``(N,frames,size,size,3)``: frames by :func:`frame_indices`,
    bilinear antialiased resize of each frame."""
    n, t, h, w, _ = clips.shape
    if t != frames:
        clips = clips[:, frame_indices(t, frames)]
    if (h, w) != (size, size):
        x = clips.reshape(n * frames, h, w, 3).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        clips = x.reshape(n, frames, size, size, 3)
    return clips.contiguous()


def class_rows(generator_names: list[str], wanted: list[str]) -> list[int]:
    """The generator's label row of each wanted class (names compared ignoring case)."""
    index = {name.casefold(): j for j, name in enumerate(generator_names)}
    missing = [n for n in wanted if n.casefold() not in index]
    if missing:
        raise ValueError(
            f"the generator has no class {missing[:5]}{' …' if len(missing) > 5 else ''} "
            f"({len(missing)} of {len(wanted)} missing; it knows {generator_names[:5]}…): "
            "fine-tune it on these classes (`generate train --init`) or pass its class names"
        )
    return [index[n.casefold()] for n in wanted]


def _read_settings(path: Path) -> dict[str, Any] | None:
    """The settings the finished batches were sampled with; None when unreadable (its
    batches are then not trusted: sampled again)."""
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


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
    remake = f"`vidistill generate train --out {run_dir}` (or convert the checkpoint again)"
    run_cfg = read_json(run_dir / "config.json", remake)
    cfg = GenerateConfig.from_dict(run_cfg["generator"])
    d = run_cfg["data"]
    c, t, h, _ = d["latent_shape"]
    model = build_latte(cfg, d["num_classes"], c, t, h)
    model.load_state_dict(load_safetensors(weights, remake)[0], strict=True)
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
    seed: int | Sequence[int] = 0,
    autocast: bool = False,
) -> torch.Tensor:
    """Latents ``(B, C, T, h, w)`` for ``labels`` (CFG with the null label when guidance ≠ 1).
    The initial noise and the DDPM noise come from one generator seeded with ``seed``, or,
    with one seed per clip, from each clip's own generator (independent of the batch)."""
    device = next(model.parameters()).device
    sch = make_sampler(cfg, sampler, steps)
    gen: torch.Generator | list[torch.Generator]
    if isinstance(seed, int):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((len(labels), *shape), generator=gen)
    else:
        if len(seed) != len(labels):
            raise ValueError(f"{len(seed)} seeds for {len(labels)} clips")
        gen = [torch.Generator().manual_seed(int(s)) for s in seed]
        x = torch.stack([torch.randn(shape, generator=g) for g in gen])
    x = x.to(device) * sch.init_noise_sigma
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
        # the DDPM noise: from the CPU generator(s) (diffusers moves it; a list gives each clip
        # its own draw), so any device draws it alike
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
    seeding: str = "batch",
    class_names: Sequence[str] | None = None,
    frames: int | None = None,
    size: int | None = None,
) -> ClipStore | None:
    """Generate ``per_class`` clips of every class into a ClipStore at ``out`` (split "train").

    ``vae``: the VAE folder to decode with (default: the one recorded in ``run_dir``).
    ``seeding``, ``class_names``, ``frames``, ``size``: see the module docstring.
    Returns ``None`` if ``stop_after_batches`` (per rank) ended the call early (tests of
    resume). Called by every rank of a launched job, rank r samples batches r, r + W, …
    (:mod:`vidistill.poolplan`) and rank 0 writes the store: the one-process pool, byte for
    byte, as a batch's noise depends only on its seeds.
    """
    if per_class < 1:
        raise ValueError(f"--per-class must be >= 1, got {per_class}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    if seeding not in SEEDINGS:
        raise ValueError(f"unknown seeding {seeding!r}; choose one of {SEEDINGS}")
    ctx = distributed.init()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, run_cfg = load_generator(run_dir, ema=ema, device=dev)
    cfg = GenerateConfig.from_dict(run_cfg["generator"])
    d = run_cfg["data"]
    vae_dir = vae or d.get("vae_dir")
    if vae_dir and not vae and not Path(vae_dir).is_absolute():
        vae_dir = str(Path(run_dir) / vae_dir)  # a shipped folder's own VAE (generate/shipped.py)
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
        "seeding": seeding,
    }
    names = list(d["class_names"]) if class_names is None else list(class_names)
    rows = class_rows(list(d["class_names"]), names)
    # the decoded size (a run: its store's; a converted folder: latent size × VAE factor)
    native = ClipSpec(frames=d["frames"], size=d["latent_shape"][2] * downsample_factor(vae_model))
    spec = ClipSpec(frames=frames or native.frames, size=size or native.size)
    if class_names is not None or spec != native:
        settings.update(class_names=names, frames=spec.frames, size=spec.size)

    def ready() -> None:
        partial.mkdir(parents=True, exist_ok=True)
        sfile = partial / "settings.json"
        if sfile.is_file() and _read_settings(sfile) != settings:
            shutil.rmtree(partial)  # different settings: the finished batches do not belong here
            partial.mkdir(parents=True)
        write_json_atomic(sfile, settings)

    distributed.on_main(ready, "ready the pool's .partial folder")

    plan = PoolPlan(num_classes=len(names), per_class=per_class, batch=batch, seed=seed)
    labels = torch.from_numpy(plan.labels)  # pool labels, class by class
    index = torch.from_numpy(plan.class_index)  # clip index within its class
    # the noise seed each clip's manifest records: its batch's, or its own
    if seeding == "clip":
        seeds = [clip_seed(seed, int(c), int(i)) for c, i in zip(labels, index, strict=True)]
    else:
        seeds = [seed + p // batch for p in range(plan.size)]
    gen_rows = torch.tensor(rows)  # the generator's label of each pool class
    batches = [labels[plan.positions(b)] for b in range(plan.num_batches)]
    shape = tuple(d["latent_shape"])
    autocast = dev.type == "cuda"
    main_rank = distributed.is_main()
    bar = tqdm(
        total=len(plan.batches_of(ctx.rank, ctx.world)),
        desc="sample",
        disable=not (progress and main_rank),
        dynamic_ncols=True,
    )

    def path(b: int) -> Path:
        return partial / f"batch-{b:05d}.safetensors"

    def sample(lab: np.ndarray, noise: np.ndarray) -> torch.Tensor:
        noise_seed = int(noise[0]) if seeding == "batch" else [int(s) for s in noise]
        y = gen_rows[torch.from_numpy(lab)]
        z = sample_latents(model, y, shape, cfg, sampler, steps, guidance, noise_seed, autocast)
        clips = decode_latents(vae_model, z)
        return resize_clips(clips, spec.frames, spec.size) if spec != native else clips

    def save(b: int, clips: torch.Tensor) -> None:
        save_safetensors_atomic(path(b), {"clips": clips, "labels": batches[b]})
        bar.update(1)

    # rank r samples batches r, r + W, ... (none of them depends on who samples it)
    t0 = time.time()
    now = sample_batches(
        plan,
        sample,
        save,
        done=lambda b: path(b).is_file(),
        seeds=np.asarray(seeds, dtype=object),  # clip seeds use all 64 bits
        limit=stop_after_batches,
    )
    bar.close()
    seconds = time.time() - t0
    clips_now = sum(distributed.all_gather(sum(len(batches[b]) for b in now), "clips sampled"))
    cuts = [plan.positions(b).start for b in range(plan.num_batches)]

    def meta(b: int, i: int) -> dict[str, int]:
        if seeding == "batch":
            return {"seed": seed + b, "batch": b, "slot": i}
        k = cuts[b] + i
        return {"seed": seeds[k], "class_index": int(labels[k]), "index": int(index[k])}

    records = [
        ClipRecord(
            source=f"generated:{b}:{i}",
            label=int(lab),
            class_name=names[lab],
            split="train",
            meta=meta(b, i),
        )
        for b, labs in enumerate(batches)
        for i, lab in enumerate(labs.tolist())
    ]

    def stream():
        for b in range(len(batches)):
            remake = "`vidistill generate sample` (only that batch is sampled again)"
            yield load_safetensors(path(b), remake)[0]["clips"].numpy()

    info = {
        **settings,
        "seconds": round(seconds, 1),
        "clips_this_call": clips_now,
        "clips_per_second": round(clips_now / max(seconds, 1e-9), 4),
    }

    def write() -> bool:
        if not all(path(b).is_file() for b in range(len(batches))):
            return False  # stopped early (stop_after_batches): resume later
        write_store(
            out, spec, names, stream(), records, dataset="generated", extra={"generator": info}
        )
        shutil.rmtree(partial)
        return True

    # rank 0 writes the store from every rank's batches, in order
    return ClipStore(out) if distributed.on_main(write, "write the pool") else None
