"""The report's tables, from ``results.json`` rows: paper-shaped (methods × VPC), all results,
costs. Plain lists of cells, rendered to Markdown or HTML by the two helpers at the end.

Hard- and soft-label results never share a table (DESIGN §4): rows are grouped by
``(dataset, net, labels)``. A method evaluated on two pools in one group (random from the
real set and random from a generated pool) gets one table row per pool: named by the row's
``row_name`` when the run set one (`vidistill run` with ``generate:``: *random-from-pool*,
*random-real*), else by the pool.
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REFERENCE_ORDER = ("full-real", "full-syn", "random", "random-from-pool", "random-real")

IOR_NOTE = (
    "IOR = improvement over random, in top-1 points: the mean over runs of the paired "
    "difference method − random (run s of both shares evaluator seed s; the method's "
    "selection / synthesis is redone with seed s; random is drawn from the same pool), with "
    "its 95 % Student-t interval and the verdict: 'better' / 'worse' when the interval "
    "excludes 0, else 'no difference'."
)


class Html(str):
    """A cell that is HTML already: :func:`html_table` does not escape it."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``results.json`` (``{"rows": [...]}`` or a bare list); ValueError naming
    the file when it is neither (the CLI's one-line error)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not a results JSON: {err}") from None
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: expected a results JSON, a list of rows or {{'rows': [...]}}")
    return rows


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not (isinstance(x, float) and math.isnan(x))


def _pm(mean: Any, std: Any, scale: float = 1.0) -> str:
    """Rows store metrics in percent already."""
    if not _num(mean):
        return "–"
    s = f"{scale * mean:.1f}"
    if _num(std):
        s += f" ± {scale * std:.1f}"
    return s


def _ior_text(row: dict[str, Any]) -> str:
    """``IOR +8.0 [+5.5, +10.5] better``; ``IOR +3.0 (1 run)``; empty without a partner."""
    return f"IOR {_ior_long(row)}" if row.get("ior_mean") is not None else ""


def _ior_long(row: dict[str, Any]) -> str:
    """``+8.0 [+5.5, +10.5] better`` or ``–``: :func:`vidistill.evaluate.paired.format_ior`."""
    if row.get("ior_mean") is None:
        return "–"
    from vidistill.evaluate.paired import format_ior  # lazy: vidistill.evaluate imports torch

    return format_ior(row)


def _method_order(methods: set[str]) -> list[str]:
    refs = [m for m in REFERENCE_ORDER if m in methods]
    return refs + sorted(methods - set(refs))


def group_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (str(row.get("dataset", "?")), str(row.get("net", "?")), str(row.get("labels", "hard")))


def group_rows(rows: Sequence[dict[str, Any]]) -> list[tuple[tuple[str, str, str], list[dict]]]:
    """Rows by ``(dataset, net, labels)``, sorted: one paper table (and one plot) each."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[group_key(r)].append(r)
    return sorted(groups.items())


def group_title(key: tuple[str, str, str], metric: str = "top1") -> str:
    dataset, net, labels = key
    return f"{dataset} — {net} — {labels} labels — {metric} (%)"


def row_name(row: dict[str, Any]) -> str | None:
    """The name a run gave a row (``row_name``: a generate run's two ``random`` rows are
    *random-from-pool* and *random-real*), or None."""
    name = row.get("row_name")
    return str(name) if name else None


def row_labels(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The name each row goes by in a table or plot: its :func:`row_name` if it has one,
    else its method, plus ``[pool folder]`` when the same method was evaluated on more than
    one pool (e.g. random from the real set and random from a generated pool)."""
    pools: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.get("pool") and not row_name(r):
            pools[r["method"]].add(str(r["pool"]))
    out = []
    for r in rows:
        m = r["method"]
        if row_name(r):
            out.append(str(row_name(r)))
        elif len(pools[m]) > 1 and r.get("pool"):
            out.append(f"{m} [{Path(str(r['pool'])).name}]")
        else:
            out.append(m)
    return out


def _cells_by_label(rs: Sequence[dict[str, Any]]) -> dict[tuple[str, Any], dict[str, Any]]:
    """``(label, vpc) → row``; a later row of the same cell wins (results.json order)."""
    return {(lab, r.get("vpc")): r for lab, r in zip(row_labels(rs), rs, strict=True)}


def pivot_tables(rows: Sequence[dict[str, Any]], metric: str = "top1") -> list[dict[str, Any]]:
    """Paper-shaped tables, one per (dataset, net, labels): methods × VPC, ``mean ± std``.

    A top-1 cell of a method with a random partner also carries its paired IOR — mean, 95 %
    interval and verdict. Each table has ``rows`` (Markdown text cells) and ``html_rows``
    (the same, the IOR on its own line, coloured by verdict). A whole-set reference
    (full-real, full-syn: no VPC) spans every VPC column; a cell never run reads ``not run``.
    """
    tables = []
    for key, rs in group_rows(rows):
        vpcs = sorted({r["vpc"] for r in rs if r.get("vpc") is not None})
        cells = _cells_by_label(rs)
        labels = _method_order({lab for lab, _ in cells})
        body, body_html = [], []
        for lab in labels:
            whole = cells.get((lab, None))  # full-real / full-syn have no VPC
            row, row_html = [lab], [lab]
            for v in vpcs or [None]:
                c = cells.get((lab, v)) or whole
                if c is None:
                    row.append("not run")
                    row_html.append(Html('<span class="na">not run</span>'))
                    continue
                acc = _pm(c.get(f"{metric}_mean"), c.get(f"{metric}_std"))
                ior = _ior_text(c) if metric == "top1" else ""
                row.append(f"{acc} ({ior})" if ior else acc)
                cell = f'<span class="acc">{html.escape(acc)}</span>'
                if ior:
                    verdict = {"better": "better", "worse": "worse"}.get(c.get("ior_verdict"), "")
                    cell += f'<br><span class="ior {verdict}">{html.escape(ior)}</span>'
                row_html.append(Html(cell))
            runs = {c.get("runs") for (lb, _), c in cells.items() if lb == lab}
            runs_text = ",".join(str(x) for x in sorted(runs, key=str))
            row.append(runs_text)
            row_html.append(runs_text)
            body.append(row)
            body_html.append(row_html)
        header = ["method", *([f"VPC {v}" for v in vpcs] or ["all"]), "runs"]
        tables.append(
            {
                "key": key,
                "title": group_title(key, metric),
                "header": header,
                "rows": body,
                "html_rows": body_html,
            }
        )
    return tables


DETAIL_HEADER = [
    "method",
    "VPC",
    "net",
    "top-1",
    "IOR (95 % CI)",
    "top-5",
    "AUC",
    "F1",
    "train acc",
    "runs",
    "diverged",
]


def detail_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Every result with all its metrics (costs have their own table)."""
    out = []
    for lab, r in zip(row_labels(rows), rows, strict=True):
        out.append(
            [
                lab,
                str(r.get("vpc") if r.get("vpc") is not None else "all"),
                str(r.get("net", "?")),
                _pm(r.get("top1_mean"), r.get("top1_std")),
                _ior_long(r),
                _pm(r.get("top5_mean"), None),
                _pm(r.get("auc_mean"), None),
                _pm(r.get("f1_mean"), None),
                _pm(r.get("train_acc_mean"), None),
                str(r.get("runs", "")),
                f"{r['diverged_runs']}/{r.get('runs')}" if r.get("diverged_runs") else "",
            ]
        )
    return out


# -- costs ---------------------------------------------------------------------------------
COST_HEADER = [
    "method",
    "VPC",
    "stored as",
    "clips",
    "frames",
    "stored MB",
    "compression",
    "method s/run",
    "method peak RSS MB",
    "eval s/run",
    "eval peak RSS MB",
    "peak VRAM MB",
    "GFLOPs/clip",
]

COST_NOTE = (
    "Costs. stored MB: the distilled set as stored (real clips: uint8 T×H×W×3; learned "
    "videos: float32 tensors, 4 bytes a value). compression: the full real training set's "
    "bytes ÷ the stored bytes (×1 = the whole set). method s/run: the selection or synthesis "
    "stage, mean over its run seeds (selections also share the embedding stage, listed "
    "under Stages). eval: training + testing one evaluator run. Peak RSS is the process's "
    "peak so far (ru_maxrss), so a stage run after a larger one shows the larger peak. "
    "GFLOPs/clip: one forward pass of the evaluator (training ≈ 3×)."
)


def full_train_bytes(
    rows: Sequence[dict[str, Any]], known: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Bytes of each dataset's full real training set: ``known`` (e.g. from the store), else
    the ``train_bytes`` of a real full-real row."""
    out: dict[str, int] = {}
    for r in rows:
        if r.get("method") == "full-real" and r.get("train_bytes"):
            out[str(r.get("dataset", "?"))] = int(r["train_bytes"])
    out.update({k: int(v) for k, v in (known or {}).items() if v})
    return out


def _mb(b: Any) -> str:
    return f"{b / 2**20:.2f}" if _num(b) else "–"


def _f0(x: Any) -> str:
    return f"{x:.0f}" if _num(x) else "–"


def _secs(x: Any) -> str:
    """Seconds: one decimal below 10 s, whole seconds above."""
    return "–" if not _num(x) else f"{x:.1f}" if x < 10 else f"{x:.0f}"


def method_stage(stage_costs: Sequence[Mapping[str, Any]], method: str, vpc: Any) -> dict | None:
    """The aggregated ``select/M/vpcK`` or ``synthesize/M/vpcK`` stage of a method row."""
    for kind in ("select", "synthesize"):
        for s in stage_costs:
            if s.get("stage") == f"{kind}/{method}/vpc{vpc}":
                return dict(s)
    return None


def cost_rows(
    rows: Sequence[dict[str, Any]],
    full_bytes: Mapping[str, int] | None = None,
    stage_costs: Sequence[Mapping[str, Any]] = (),
) -> list[list[str]]:
    """Per result: what the distilled set stores (clips, frames, bytes, compression vs the
    full real training set), what making it cost (stage markers) and one evaluation run."""
    full = full_train_bytes(rows, full_bytes)
    out = []
    for lab, r in zip(row_labels(rows), rows, strict=True):
        stored = r.get("train_bytes")
        whole = full.get(str(r.get("dataset", "?")))
        ratio = f"×{whole / stored:,.0f}" if whole and stored else "–"
        if whole and stored and whole / stored < 10:
            ratio = f"×{whole / stored:.1f}"
        kind = {"real": "uint8 clips", "synthetic": "float32 tensors"}.get(
            r.get("train_kind", ""), r.get("train_kind", "?")
        )
        st = method_stage(stage_costs, r["method"], r.get("vpc")) or {}
        flops = r.get("flops_per_clip")
        out.append(
            [
                lab,
                str(r.get("vpc") if r.get("vpc") is not None else "all"),
                kind,
                str(r.get("train_clips", "–")),
                str(r.get("train_frames", "–")),
                _mb(stored),
                ratio,
                _secs(st.get("seconds")),
                _f0(st.get("peak_rss_mb")),
                _secs(r.get("seconds")),
                _f0(r.get("peak_rss_mb")),
                _f0(r.get("peak_vram_mb")),
                f"{flops / 1e9:.2f}" if _num(flops) else "–",
            ]
        )
    return out


STAGE_HEADER = ["stage", "runs", "s/run", "s total", "peak RSS MB"]


def stage_rows(stage_costs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            str(s["stage"]),
            str(s.get("runs", 1)),
            _secs(s.get("seconds")),
            _secs(s.get("seconds_total")),
            _f0(s.get("peak_rss_mb")),
        ]
        for s in stage_costs
    ]


# -- rendering -----------------------------------------------------------------------------
def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    def cell(c: Any) -> str:
        return c if isinstance(c, Html) else html.escape(str(c))

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    klass = f' class="{html.escape(cls)}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
