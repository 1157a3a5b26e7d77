"""results.json (a grid that accumulates across commands) and the Markdown table."""

from __future__ import annotations

import fcntl
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidistill.atomic import write_json_atomic
from vidistill.evaluate.paired import attach_ior, format_ior

# A row is replaced only by a rerun of the same experiment: same training source, method,
# VPC and the whole recipe (net, width, epochs, batch, min_steps, test views, ...), so a
# changed preset adds rows instead of silently overwriting older numbers.
KEY_FIELDS = ("dataset", "source", "method", "vpc", "recipe")


def row_key(row: dict[str, Any]) -> tuple:
    return tuple(json.dumps(row.get(k), sort_keys=True) for k in KEY_FIELDS)


def load_results(path: str | Path) -> list[dict[str, Any]]:
    from vidistill.errors import CorruptArtifact
    from vidistill.integrity import read_json

    path = Path(path)
    if not path.is_file():
        return []
    remake = "the `vidistill evaluate` commands that filled it (or restore a copy)"
    data = read_json(path, remake)
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise CorruptArtifact(path, "no list of result rows", remake)
    return rows


def update_results(path: str | Path, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge ``rows`` into ``path`` (replace same-key rows, append new ones), atomically and
    under a lock file, so parallel `vidistill evaluate` commands can share one results.json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = load_results(path)
        index = {row_key(r): i for i, r in enumerate(merged)}
        for r in rows:
            k = row_key(r)
            if k in index:
                merged[index[k]] = r
            else:
                index[k] = len(merged)
                merged.append(r)
        attach_ior(merged)  # every method row against its pool's random row, paired by seed
        write_json_atomic(path, {"format": "vidistill-results/1", "rows": merged})
    return merged


def _pm(mean: Any, std: Any) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def _epochs(row: dict[str, Any]) -> str:
    """Epochs actually trained (``min_steps`` raises them for small sets)."""
    ran = sorted({p.get("epochs_run") for p in row.get("per_run", []) if p.get("epochs_run")})
    return "/".join(map(str, ran)) if ran else str(row.get("epochs", "?"))


def format_markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per row: accuracies in %, mean ± std over runs, storage and cost beside VPC.

    IOR = the method's paired improvement over random from the same pool, in top-1 points:
    mean [95 % t-interval] and its verdict (``vidistill.evaluate.paired``)."""
    head = [
        "dataset",
        "method",
        "VPC",
        "net",
        "train MB",
        "runs",
        "epochs",
        "top-1 %",
        "IOR (95 % CI)",
        "top-5 %",
        "AUC %",
        "F1 %",
        "train acc %",
        "diverged",
        "s/run",
        "peak RSS MB",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        net = r.get("net", "?")
        if r.get("width", 1.0) != 1.0:
            net = f"{net}×{r['width']:g}"
        rec = r.get("recipe") or {}
        if rec.get("augment"):
            net = f"{net} +{rec['augment']}"
        if rec.get("standardize"):
            net = f"{net} std={rec['standardize']}"
        cells = [
            str(r.get("dataset", "?")),
            str(r.get("row_name") or r.get("method", "?")),
            "all" if r.get("vpc") is None else str(r["vpc"]),
            net,
            f"{r.get('train_bytes', 0) / 1e6:.3f}",
            str(r.get("runs", "?")),
            _epochs(r),
            _pm(r.get("top1_mean"), r.get("top1_std")),
            format_ior(r, digits=2),
            _pm(r.get("top5_mean"), r.get("top5_std")),
            _pm(r.get("auc_mean"), r.get("auc_std")),
            _pm(r.get("f1_mean"), r.get("f1_std")),
            _pm(r.get("train_acc_mean"), r.get("train_acc_std")),
            f"{r.get('diverged_runs', 0)}/{r.get('runs', '?')}",
            f"{r.get('seconds', float('nan')):.1f}",
            f"{r.get('peak_rss_mb', float('nan')):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
