"""Run a registered synthesizer: the outer loop, progress bar, resumable checkpoints, outputs.

``DIR/checkpoint.safetensors`` (parameters + optimizer state + the iteration reached) is
rewritten atomically every ``checkpoint_every`` iterations; a re-run with the same
method, VPC, seed, config and store resumes from it (a checkpoint learned from another
store — e.g. the pipeline re-preparing a changed dataset into the same folder — is
discarded, never silently reused). Every iteration's random net and real
batches are drawn from a generator seeded by (seed, iteration), so a resumed run follows
the same trajectory as an uninterrupted one. The result is ``DIR/synthetic.safetensors``
(a :class:`~vidistill.synthetic.SyntheticSet`) plus a uint8 preview ClipStore in
``DIR/preview/`` and ``DIR/done.json`` (wall time, peak RSS, bytes stored, losses, and how far the videos moved
from their initialisation — :func:`moved_from_init`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vidistill import distributed, registry
from vidistill.atomic import save_safetensors_atomic, write_json_atomic
from vidistill.clipstore import ClipRecord, ClipStore, write_store
from vidistill.errors import NonFiniteLoss
from vidistill.evaluate.costs import peak_rss_mb
from vidistill.integrity import load_safetensors, safetensors_metadata
from vidistill.synthesize.common import RealSampler, Synthesizer, iteration_seed
from vidistill.synthetic import SyntheticSet
from vidistill.transforms import to_uint8

CHECKPOINT = "checkpoint.safetensors"
REMAKE = "`vidistill synthesize` (this synthesis then starts afresh)"  # a damaged checkpoint's fix


def build(
    store: ClipStore, method: str, vpc: int, options: dict[str, Any] | None = None, seed: int = 0
) -> Synthesizer:
    """Instantiate a registered synthesizer with its config built from ``options``."""
    cls = registry.get("synthesizer", method)
    config = cls.config_cls.from_options(options or {})
    return cls(store, vpc, config, seed)


def _store_identity(store: ClipStore) -> str:
    """What the checkpoint was learned from: the prepare plan (dataset + spec + item list),
    else the whole ``store.json`` (generated pools have no plan)."""
    plan = store.info_json.get("plan")
    return plan or hashlib.sha256((store.root / "store.json").read_bytes()).hexdigest()[:16]


def _config_hash(method: str, vpc: int, seed: int, config: dict, store: str = "") -> str:
    blob = json.dumps([method, vpc, seed, config, store], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _save_checkpoint(
    path: Path,
    synth: Synthesizer,
    opts: dict[str, torch.optim.Optimizer],
    it: int,
    key: str,
    history: list[dict],
    seconds: float,
) -> None:
    tensors = {f"param.{k}": v.detach().cpu() for k, v in synth.state_dict().items()}
    for name, opt in opts.items():
        for pid, state in opt.state_dict()["state"].items():
            for field, value in state.items():
                if torch.is_tensor(value):
                    tensors[f"opt.{name}.{pid}.{field}"] = value.detach().cpu().reshape(value.shape)
    meta = {
        "iteration": str(it),
        "key": key,
        "history": json.dumps(history),
        "seconds": str(seconds),
    }
    save_safetensors_atomic(path, tensors, metadata=meta)


def _load_checkpoint(
    path: Path, synth: Synthesizer, opts: dict[str, torch.optim.Optimizer], key: str
) -> tuple[int, list[dict], float] | None:
    if safetensors_metadata(path, REMAKE).get("key") != key:
        return None  # a different run's checkpoint: start afresh (it will be overwritten)
    tensors, meta = load_safetensors(path, REMAKE)
    synth.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("param.")})
    for name, opt in opts.items():
        sd = opt.state_dict()
        state: dict[int, dict[str, Any]] = {}
        prefix = f"opt.{name}."
        for k, v in tensors.items():
            if k.startswith(prefix):
                pid, field = k[len(prefix) :].split(".", 1)
                state.setdefault(int(pid), {})[field] = v
        sd["state"] = state
        opt.load_state_dict(sd)
    return (
        int(meta["iteration"]),
        json.loads(meta.get("history", "[]")),
        float(meta.get("seconds", 0)),
    )


def _checkpoint_iteration(path: Path, key: str) -> int | None:
    """The iteration a checkpoint of this run reached (None: none, or another run's)."""
    if not path.is_file():
        return None
    meta = safetensors_metadata(path, REMAKE)
    return int(meta["iteration"]) if meta.get("key") == key else None


def synthesize(
    store: str | Path | ClipStore,
    method: str,
    vpc: int,
    out: str | Path,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    checkpoint_every: int = 10,
    progress: bool = True,
    preview: bool = True,
) -> SyntheticSet:
    """Learn a synthetic set with ``method`` at ``vpc`` and write it under ``out``.

    Called by every rank of a launched job, the classes are shared out (rank r updates
    classes r, r + W, …, :meth:`Synthesizer.share`), each rank checkpoints its own
    ``checkpoint.rankR-of-W.safetensors`` (resumed at the same W), and rank 0 gathers every
    class's tensors and writes the set: the one-process set, as each class draws from its
    own generator."""
    ctx = distributed.init()
    store = store if isinstance(store, ClipStore) else ClipStore(store)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    synth = build(store, method, vpc, options, seed)
    # the start, before any resume: a set learned too briefly stays visibly its initialisation
    with torch.no_grad():
        init_u8 = to_uint8(synth.videos()[0].cpu()) if ctx.is_main else None
    cfg = asdict(synth.config)
    key = _config_hash(method, vpc, seed, cfg, _store_identity(store))
    opts = synth.make_optimizers()
    sampler = RealSampler(store, batch=synth.config.real_batch)
    start, history, prior = 0, [], 0.0
    ckpt = out / CHECKPOINT
    if ctx.distributed:
        synth.share(ctx.rank, ctx.world)
        ckpt = out / f"checkpoint.rank{ctx.rank}-of-{ctx.world}.safetensors"
    # resume only where every rank can (their classes must be at one iteration)
    reached = distributed.all_gather(_checkpoint_iteration(ckpt, key), "find checkpoints")
    if reached[0] is not None and len(set(reached)) == 1:
        loaded = _load_checkpoint(ckpt, synth, opts, key)
        if loaded is not None:
            start, history, prior = loaded
    saved = start  # the iteration the checkpoint on disk holds (0: none of this run)
    iterations = synth.config.iterations if opts else 0
    bar = tqdm(
        range(start, iterations),
        desc=f"{method} vpc={vpc}",
        disable=not (progress and ctx.is_main),
        initial=start,
        total=iterations,
    )
    t_loop = time.perf_counter()
    for it in bar:
        gen = torch.Generator().manual_seed(iteration_seed(seed, it))
        losses = synth.step(it, synth.make_net(it), sampler, gen, opts)
        _check_finite(losses, method, vpc, it, ckpt if saved else None, saved)
        history.append({"it": it, **{k: round(v, 6) for k, v in losses.items()}})
        bar.set_postfix(loss=f"{losses.get('loss', float('nan')):.4g}")
        if (it + 1) % checkpoint_every == 0 or it + 1 == iterations:
            _save_checkpoint(
                ckpt, synth, opts, it + 1, key, history, prior + time.perf_counter() - t0
            )
            saved = it + 1
    loop_seconds = time.perf_counter() - t_loop

    def finish() -> SyntheticSet:
        videos, labels = synth.videos()
        seconds = prior + time.perf_counter() - t0
        meta = {
            "method": method,
            "vpc": vpc,
            "seed": seed,
            "config": cfg,
            "store": str(store.root),
            "iterations": iterations,
            "seconds": round(seconds, 2),
            "seconds_per_iteration": round(loop_seconds / max(1, iterations - start), 4),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "bytes_stored": synth.bytes_stored(),
            "videos": int(videos.shape[0]),
            "final_loss": history[-1] if history else None,
            "moved_from_init": moved_from_init(init_u8, videos),
            **synth.meta(),
        }
        result = SyntheticSet(videos.float(), labels, list(store.class_names), meta)
        result.save(out)
        if preview:
            write_preview(result, out / "preview", store.spec)
        write_json_atomic(out / "done.json", {**meta, "history": history})
        return result

    if not ctx.distributed:
        return finish()
    # rank 0 takes every class's tensors from the rank that learned them, and writes
    states = distributed.gather_in_order(
        [synth.class_state(c) for c in synth.classes],
        synth.num_classes,
        mode="strided",
        what="gather the learned classes",
    )

    def write() -> None:
        for state in states or []:
            synth.load_state_dict(state, strict=False)
        finish()

    distributed.on_main(write, "write the synthetic set")
    return SyntheticSet.load(out)


def moved_from_init(init_u8: torch.Tensor, videos: torch.Tensor) -> dict[str, float]:
    """How far the learned videos are from their initialisation, as a viewer sees them (uint8):
    the mean absolute change in grey levels (of 255) and the fraction of values that changed.
    0 means the synthesis changed nothing visible — e.g. a real-initialised DM run too short
    for its lr."""
    diff = (to_uint8(videos.detach().cpu()).float() - init_u8.float()).abs()
    return {
        "mean_abs_levels": round(diff.mean().item(), 2),
        "changed_fraction": round((diff > 0).float().mean().item(), 4),
    }


def _check_finite(
    losses: dict[str, float], method: str, vpc: int, it: int, ckpt: Path | None, saved: int
) -> None:
    """Stop at the first NaN / Inf loss, before anything of this iteration is saved: the
    videos are already poisoned by its update, and a checkpoint of them would be too."""
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    if not bad:
        return
    kept = (
        f"the last good checkpoint, {ckpt} (iteration {saved}), is kept"
        if ckpt is not None
        else "no checkpoint of this run was written yet"
    )
    raise NonFiniteLoss(
        f"{method} vpc={vpc}: non-finite loss {bad} at iteration {it + 1}; stopped, {kept}. "
        "Lower the learning rate (--lr / -o lr_...) and run again (a changed option starts "
        "afresh)"
    )


def write_preview(syn: SyntheticSet, root: Path, spec) -> ClipStore:
    """uint8 ClipStore of the synthetic videos (clamped to [0,255]) for reports and frame strips."""
    u8 = to_uint8(syn.videos.detach().cpu())
    records = [
        ClipRecord(
            source=f"synthetic/{syn.meta.get('method', '?')}/{i}",
            label=int(y),
            class_name=syn.class_names[int(y)],
            split="train",
        )
        for i, y in enumerate(syn.labels.tolist())
    ]
    return write_store(
        root,
        spec,
        syn.class_names,
        (c.numpy() for c in u8),
        records,
        dataset="synthetic",
        extra={"method": syn.meta.get("method")},
    )
