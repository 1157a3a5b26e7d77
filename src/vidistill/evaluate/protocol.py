"""The protocol: N fresh networks on one training source, each tested on the REAL test
split; per-run metrics and mean ± std, with costs. Built-in references use the same code.

* ``full-real`` — every real training clip (the upper bound).
* ``random`` — VPC clips drawn uniformly without replacement per class, a fresh draw per
  run from that run's seed (``numpy.random.default_rng(seed)``, classes in order).
* a selection JSON ``{"method", "vpc", "seed", "seconds", "indices": {class_name: [i, ...]},
  optional "store": path}`` — indices into ``"store"`` (e.g. a generated pool), else into
  the test store itself (its training split).
* a synthetic set (:class:`vidistill.synthetic.SyntheticSet`).

Run ``r`` uses seed ``seed + r`` for everything random in it (weights, order, dropout, the
random draw); the seeds are recorded in the row. std is NumPy's (population, ddof 0), the
convention of VDSD's and the DD benchmarks' code. Accuracies, AUC and F1 are in percent.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidistill.clipstore import ClipStore
from vidistill.evaluate.costs import flops_per_clip, peak_rss_mb, peak_vram_mb, reset_peak_vram
from vidistill.evaluate.metrics import classification_metrics
from vidistill.evaluate.recipe import Recipe
from vidistill.evaluate.train import build_net, predict, resolve_device, train_net
from vidistill.evaluate.trainset import TrainingSet

TrainSource = TrainingSet | Callable[[int], TrainingSet]


# -- training sources --------------------------------------------------------------------
def full_real(store: ClipStore, split: str = "train") -> TrainingSet:
    """All real training clips of ``store``."""
    return TrainingSet.from_store(store, split=split, meta={"method": "full-real"})


def random_indices(store: ClipStore, vpc: int, seed: int, split: str = "train") -> np.ndarray:
    """VPC clip indices per class, uniformly without replacement (one rng, classes in order)."""
    if vpc < 1:
        raise ValueError(f"vpc must be >= 1, got {vpc}")
    rng = np.random.default_rng(seed)
    picked = []
    for c, name in enumerate(store.class_names):
        pool = store.indices(split, c)
        if len(pool) < vpc:
            fix = (
                "an empty class: add clips to it or leave it out of the store (--only-classes)"
                if len(pool) == 0
                else f"lower --vpc to at most {len(pool)}"
            )
            raise ValueError(
                f"class {name!r} has {len(pool)} {split} clips, fewer than vpc={vpc}: {fix}"
            )
        picked.append(np.sort(rng.choice(pool, size=vpc, replace=False)))
    return np.concatenate(picked)


def random_subset(store: ClipStore, vpc: int, seed: int, split: str = "train") -> TrainingSet:
    return TrainingSet.from_store(
        store,
        random_indices(store, vpc, seed, split),
        meta={"method": "random", "vpc": vpc, "draw_seed": seed},
    )


def load_selection(path: str | Path) -> dict[str, Any]:
    from vidistill.integrity import read_json

    path = Path(path)
    sel = read_json(path, "`vidistill select` for it")
    if not isinstance(sel, dict) or not isinstance(sel.get("indices"), dict):
        raise ValueError(
            f"{path}: a selection is a JSON object with "
            "'indices': {class_name: [clip index, ...]}"
        )
    sel.setdefault("method", path.stem)
    return sel


def selection_set(store: ClipStore, selection: dict[str, Any]) -> TrainingSet:
    """The clips a selection names, checked: every class known, every clip labelled with it."""
    name_to_label = {n: i for i, n in enumerate(store.class_names)}
    idx: list[int] = []
    for name, items in selection["indices"].items():
        if name not in name_to_label:
            raise ValueError(
                f"selection class {name!r} is not in {store.root} "
                f"(classes: {store.class_names[:5]}...)"
            )
        items = [int(i) for i in items]
        bad = [
            i for i in items if not 0 <= i < len(store) or store.labels[i] != name_to_label[name]
        ]
        if bad:
            raise ValueError(
                f"selection for class {name!r}: clips {bad[:5]} are not clips of that class in "
                f"{store.root} (wrong store? pass the pool it indexes with 'store' / --train-store)"
            )
        leaked = [i for i in items if store.splits[i] == "test"]
        if leaked:
            raise ValueError(
                f"selection for class {name!r} names test-split clips {leaked[:5]} of "
                f"{store.root}: training on the clips the evaluator tests on would inflate "
                "every metric. Select from the training split (`vidistill select --split train`)"
            )
        idx += items
    meta = {k: selection[k] for k in ("method", "vpc", "seed", "seconds") if k in selection}
    return TrainingSet.from_store(store, np.asarray(idx, np.int64), meta=meta)


# -- the protocol ----------------------------------------------------------------------
def _resolved(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    if np.isnan(a).all():
        return float("nan"), float("nan")
    return float(np.nanmean(a)), float(np.nanstd(a))


def summarise_runs(per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std (and costs) over the ``per_run`` records of one experiment."""
    out: dict[str, Any] = {}
    for k in ("top1", "top5", "auc", "f1", "train_acc", "train_loss"):
        out[f"{k}_mean"], out[f"{k}_std"] = _mean_std([p[k] for p in per_run])
    pca = np.asarray([p["per_class_acc"] for p in per_run], dtype=float)
    out["per_class_acc_mean"] = np.nanmean(pca, axis=0).tolist()
    out["runs"] = len(per_run)
    out["seeds"] = [p["seed"] for p in per_run]
    out["diverged_runs"] = sum(p["diverged"] for p in per_run)
    out["seconds"] = float(np.mean([p["seconds"] for p in per_run]))  # per run
    out["seconds_total"] = float(np.sum([p["seconds"] for p in per_run]))
    out["peak_rss_mb"] = max(p["peak_rss_mb"] for p in per_run)
    vram = [p["peak_vram_mb"] for p in per_run if p["peak_vram_mb"] is not None]
    out["peak_vram_mb"] = max(vram) if vram else None
    out["train_bytes"] = int(np.mean([p["train_bytes"] for p in per_run]))
    out["train_clips"] = int(np.mean([p["train_clips"] for p in per_run]))
    return out


def combine_runs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from rows of the SAME experiment run as separate commands (e.g. one seed per
    process, to use several cores): per-run records are pooled, sorted by seed, summarised.
    Because run ``r`` depends only on its seed, ``--seed 1 --runs 1`` reproduces run 1 of
    ``--seed 0 --runs 3`` exactly, so the combined row equals the single command's."""
    from vidistill.evaluate.results import KEY_FIELDS

    if not rows:
        raise ValueError("combine_runs needs at least one row")
    key = {k: rows[0].get(k) for k in KEY_FIELDS}
    for r in rows[1:]:
        diff = [k for k in KEY_FIELDS if r.get(k) != key[k]]
        if diff or r.get("recipe") != rows[0].get("recipe"):
            what = diff or ["recipe"]
            raise ValueError(f"rows are not runs of one experiment: they differ in {what}")
    per_run = sorted((p for r in rows for p in r["per_run"]), key=lambda p: p["seed"])
    seeds = [p["seed"] for p in per_run]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"duplicate seeds across rows: {seeds}")
    row = {k: v for k, v in rows[0].items() if k != "per_run"}
    row.update(summarise_runs(per_run))
    row["train_frames"] = row["train_clips"] * (
        rows[0]["train_frames"] // max(rows[0]["train_clips"], 1)
    )
    row["per_run"] = per_run
    return row


def evaluate(
    train_source: TrainSource,
    test_store: ClipStore,
    recipe: Recipe,
    runs: int = 3,
    seed: int = 0,
    *,
    method: str = "custom",
    vpc: int | None = None,
    source: str | None = None,
    pool: str | None = None,
    device: str | torch.device | None = None,
    test_split: str = "test",
    progress: bool = True,
    trained: Callable[[int], tuple[torch.nn.Module, Any] | None] | None = None,
) -> dict[str, Any]:
    """Train ``runs`` fresh nets (seeds ``seed, seed+1, ...``) and test each on the real test split.

    ``train_source`` is a :class:`TrainingSet` or a callable ``run_seed -> TrainingSet``
    (a fresh draw per run, as for ``random``, or a selection / synthesis redone with the
    run's seed — the paired protocol). ``pool`` names the store the clips are drawn from
    (default: the training set's ``store``); a method row is paired with the ``random`` row
    of the same pool (:mod:`vidistill.evaluate.paired`). ``trained(seed)`` may return a
    net already trained for run ``seed`` on this very set with this recipe, and its stats
    (the classifier embedder's full-real net): that run is tested, not trained again, and
    its row says so (``net_reused``). Returns one result row.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    device = resolve_device(device)
    test_idx = test_store.indices(test_split)
    test_set = TrainingSet.from_store(test_store, test_idx).to(device)
    y_test = test_set.labels.cpu().numpy()
    per_run: list[dict[str, Any]] = []
    flops = None
    seeds = [seed + r for r in range(runs)]
    first: TrainingSet | None = None
    for r, s in enumerate(seeds):
        train_set = train_source(s) if callable(train_source) else train_source
        first = first or train_set
        if (train_set.frames, train_set.size) != (test_set.frames, test_set.size):
            raise ValueError(
                f"training clips are {train_set.frames}×{train_set.size}² but the test store's "
                f"are {test_set.frames}×{test_set.size}²: distil at the store's clip spec"
            )
        if train_set.class_names != test_store.class_names:
            raise ValueError(
                "training and test class names differ (order matters): "
                f"{train_set.class_names[:4]}... vs {test_store.class_names[:4]}..."
            )
        if flops is None:
            flops = flops_per_clip(
                build_net(recipe, train_set.num_classes, train_set.frames, train_set.size),
                train_set.frames,
                train_set.size,
            )
        reset_peak_vram(device)
        t0 = time.perf_counter()
        desc = f"{method} vpc={vpc if vpc is not None else 'all'} run {r + 1}/{runs}"
        reused = trained(s) if trained is not None else None
        if reused is not None:
            model, stats = reused[0].to(device), reused[1]
        else:
            model, stats = train_net(
                train_set, recipe, seed=s, device=device, progress=progress, desc=desc
            )
        probs = predict(model, test_set, recipe, device=device, seed=s)
        m = classification_metrics(y_test, probs, test_store.num_classes, scores_are_probs=True)
        per_run.append(
            {
                "seed": s,
                "top1": 100 * m["top1"],
                "top5": 100 * m["top5"],
                "auc": 100 * m["auc"],
                "f1": 100 * m["f1"],
                "per_class_acc": [100 * v for v in m["per_class_acc"]],
                "train_acc": 100 * stats.train_acc,
                "train_loss": stats.train_loss,
                "diverged": stats.diverged,
                "diverged_reason": stats.diverged_reason,
                "epochs_run": stats.epochs_run,
                "seconds": time.perf_counter() - t0,
                "train_seconds": stats.seconds,
                "train_clips_per_s": stats.clips_per_s,
                "peak_rss_mb": peak_rss_mb(),
                "peak_vram_mb": peak_vram_mb(device),
                "train_clips": train_set.num_clips,
                "train_bytes": train_set.bytes_stored(),
                "net_reused": reused is not None,
            }
        )
        del model
    assert first is not None
    row: dict[str, Any] = {
        "dataset": test_store.dataset,
        "source": source or first.meta.get("store") or first.kind,
        "method": method,
        "vpc": vpc,
        "net": recipe.net,
        "width": recipe.width,
        "epochs": recipe.epochs,
        "test_views": recipe.test_views,
        "augment": recipe.augment,
        "standardize": recipe.standardize,
        "preset": recipe.preset_name,
        "runs": runs,
        "seeds": seeds,
        "pool": _resolved(pool or first.meta.get("pool") or first.meta.get("store")),
        "per_run_source": callable(train_source),
    }
    row.update(summarise_runs(per_run))
    row["flops_per_clip"] = flops
    row["train_frames"] = row["train_clips"] * first.frames
    row["train_kind"] = first.kind
    row["test_clips"] = int(len(test_idx))
    row["class_names"] = test_store.class_names
    row["recipe"] = recipe.to_dict()
    row["device"] = str(device)
    row["env"] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    row["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    row["per_run"] = per_run
    return row
