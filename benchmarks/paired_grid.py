"""Shared by the toy grids: the dataset store, and paired rows evaluated one seed at a time.

Paired runs (DESIGN §4): run ``s`` of every row uses evaluator seed ``s`` and redoes the
row's selection / synthesis with seed ``s``; ``random`` draws its subset with seed ``s``
from the same pool, so ``update_results`` / ``attach_ior`` can pair the rows seed by seed.
A row of 10 runs takes long on 2 cores, so each seed's one-run row is cached on disk
(``CACHE/seed<s>.json``, with the config it was made under) and the row is the
:func:`vidistill.evaluate.combine_runs` of its seeds: a killed grid resumes at the seed it
was on, and a changed recipe / config recomputes instead of mixing protocols.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidistill import registry
from vidistill.atomic import write_json_atomic
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.commands.app import parse_key_values
from vidistill.evaluate import combine_runs

DEFAULT_RUNS = 10
DATASETS = ("toy", "toy-motion")
QUICK_OPTIONS = {"num_classes": 3, "train_per_class": 6, "test_per_class": 2}


def dataset_options(items: Sequence[str] | None, quick: bool) -> dict[str, Any]:
    """``--toy-options K=V`` (``--quick`` defaults to a 3-class, 6+2-clip toy)."""
    opts = dict(QUICK_OPTIONS) if quick else {}
    opts.update(parse_key_values(tuple(items or ()), example="num_classes=3"))
    return opts


def prepare_store(work: Path, dataset: str, options: dict[str, Any], size: int = 64) -> ClipStore:
    """``WORK/<dataset>`` (``WORK/<dataset>-<hash>`` for non-default knobs), prepared or reused.

    ``prepare`` refuses a folder that holds a different plan (e.g. the old motion-only toy),
    so a stale store is never silently evaluated."""
    from vidistill.prepare import prepare

    name = dataset
    if options or size != 64:
        tag = json.dumps({"options": options, "size": size}, sort_keys=True).encode()
        name += "-" + hashlib.sha256(tag).hexdigest()[:8]
    ds = registry.get("dataset", dataset)(**options)
    return prepare(ds, work / name, spec=ClipSpec(frames=8, size=size), workers=1, progress=False)


def parse_runs_for(items: Sequence[str] | None) -> dict[str, int]:
    """``--runs-for METHOD=N``: fewer runs for a row whose own fitting is expensive."""
    return {k: int(v) for k, v in parse_key_values(tuple(items or ()), "vst-unet=5").items()}


def seeds_for(name: str, runs: int, runs_for: dict[str, int]) -> list[int]:
    return list(range(min(runs, runs_for.get(name, runs))))


def paired_row(
    cache: Path,
    seeds: Sequence[int],
    key: dict[str, Any],
    evaluate_seed: Callable[[int], dict[str, Any]],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The row over ``seeds``: each seed's one-run row from ``cache`` when made under
    ``key`` (recipe + config), else ``evaluate_seed(s)``, saved before the next seed."""
    key = json.loads(json.dumps(key, default=str))
    rows = []
    for s in seeds:
        path = cache / f"seed{s}.json"
        row = json.loads(path.read_text()) if path.is_file() else None
        if row is None or row.get("cache_key") != key:
            row = evaluate_seed(s)
            row["cache_key"] = key
            write_json_atomic(path, row)
            log(f"  seed {s}: top1 {row['top1_mean']:.2f} ({row['seconds_total']:.0f}s)")
        rows.append(row)
    out = combine_runs(rows)
    out.pop("cache_key", None)
    return out


def per_run_mean(row: dict[str, Any], field: str) -> float | None:
    """Mean of a per-seed extra (selection seconds, mode coverage...) over the row's runs."""
    vals = [p[field] for p in row["per_run"] if p.get(field) is not None]
    return float(np.mean(vals)) if vals else None


def has_seeds(row: dict[str, Any], seeds: Sequence[int]) -> bool:
    """A finished paired row: every wanted seed ran, with a per-run source."""
    return set(seeds) <= set(row.get("seeds", [])) and (
        row.get("per_run_source") or row.get("method") == "full-real"
    )
