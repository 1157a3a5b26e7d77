"""Reports: paper-shaped tables (methods × VPC), a plot, frame strips / GIFs, in Markdown + HTML.

Everything is rendered from ``results.json`` rows written by the evaluator, so a number in
a report is always one that a command in this repo produced. Hard- and soft-label results
never share a table (DESIGN §4): rows are grouped by ``(dataset, net, labels)``.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidistill.atomic import write_bytes_atomic

REFERENCE_ORDER = ("full-real", "full-syn", "random", "random-from-pool", "random-real")

IOR_NOTE = (
    "IOR = improvement over random, in top-1 points: the mean over runs of the paired "
    "difference method − random (run s of both shares evaluator seed s; the method's "
    "selection / synthesis is redone with seed s; random is drawn from the same pool), with "
    "its 95 % Student-t interval. 'no difference' when the interval contains 0."
)


def frame_strip(
    clips: np.ndarray, path: str | Path, scale: int = 1, labels: Sequence[str] | None = None
) -> Path:
    """PNG grid: one row per clip ``(n,T,H,W,3)`` uint8, frames left to right."""
    from PIL import Image, ImageDraw

    clips = np.asarray(clips)
    n, t, h, w, _ = clips.shape
    pad = 2
    label_w = 0 if labels is None else 90
    canvas = np.full((n * (h + pad) + pad, label_w + t * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        for j in range(t):
            y, x = pad + i * (h + pad), label_w + pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = clips[i, j]
    img = Image.fromarray(canvas)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    if labels is not None:
        draw = ImageDraw.Draw(img)
        for i, text in enumerate(labels):
            draw.text(
                (4, (pad + i * (h + pad) + h // 2 - 5) * scale), str(text)[:14], fill=(0, 0, 0)
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    img.save(tmp)
    tmp.replace(path)
    return path


def clip_gif(clip: np.ndarray, path: str | Path, fps: int = 6, scale: int = 2) -> Path:
    """Animated GIF of one uint8 clip ``(T,H,W,3)``."""
    from PIL import Image

    frames = [
        Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
        for f in clip
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.gif")
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    tmp.replace(path)
    return path


def _pm(mean: Any, std: Any, scale: float = 1.0) -> str:
    """Rows store metrics in percent already."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    s = f"{scale * mean:.1f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        s += f" ± {scale * std:.1f}"
    return s


def _ior_short(row: dict[str, Any]) -> str:
    """`` (IOR +2.3 [-0.4, +5.0])`` for a pivot cell; empty without a random partner."""
    if row.get("ior_mean") is None:
        return ""
    low, high = row["ior_ci95"]
    if math.isnan(low):
        return f" (IOR {row['ior_mean']:+.1f}, 1 run)"
    return f" (IOR {row['ior_mean']:+.1f} [{low:+.1f}, {high:+.1f}])"


def _ior_long(row: dict[str, Any]) -> str:
    from vidistill.evaluate.paired import format_ior  # lazy: the report needs no torch

    return format_ior(row)


def row_name(row: dict[str, Any]) -> str:
    """The name a report shows: ``row_name`` when a run sets one (a generate run has two
    ``random`` rows: random-from-pool and random-real), else the method."""
    return str(row.get("row_name") or row.get("method", "?"))


def _method_order(methods: set[str]) -> list[str]:
    refs = [m for m in REFERENCE_ORDER if m in methods]
    return refs + sorted(methods - set(refs))


def pivot_tables(rows: Sequence[dict[str, Any]], metric: str = "top1") -> list[dict[str, Any]]:
    """Group rows into paper-shaped tables: one per (dataset, net, labels); methods × VPC.

    A top-1 cell of a method with a random partner also shows its IOR and 95 % interval."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r.get("dataset", "?"), r.get("net", "?"), r.get("labels", "hard"))].append(r)
    tables = []
    for (dataset, net, labels), rs in sorted(groups.items()):
        vpcs = sorted({r["vpc"] for r in rs if r.get("vpc") is not None})
        cells: dict[tuple[str, Any], dict[str, Any]] = {}
        for r in rs:
            cells[(row_name(r), r.get("vpc"))] = r
        methods = _method_order({row_name(r) for r in rs})
        body = []
        for m in methods:
            whole = cells.get((m, None))  # full-real / full-syn have no VPC
            row = [m]
            for v in vpcs:
                c = cells.get((m, v)) or whole
                cell = _pm(c.get(f"{metric}_mean"), c.get(f"{metric}_std")) if c else ""
                row.append(cell + (_ior_short(c) if c and metric == "top1" else ""))
            runs = {c.get("runs") for (mm, _), c in cells.items() if mm == m}
            row.append(",".join(str(x) for x in sorted(runs, key=str)))
            body.append(row)
        tables.append(
            {
                "title": f"{dataset} — {net} — {labels} labels — {metric} (%)",
                "header": ["method", *[f"VPC {v}" for v in vpcs], "runs"],
                "rows": body,
            }
        )
    return tables


def detail_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Every result with its costs: the numbers a reader needs to judge a method fairly."""
    out = []
    for r in rows:
        out.append(
            [
                row_name(r),
                str(r.get("vpc") if r.get("vpc") is not None else "all"),
                r.get("net", "?"),
                _pm(r.get("top1_mean"), r.get("top1_std")),
                _ior_long(r),
                _pm(r.get("top5_mean"), None),
                _pm(r.get("auc_mean"), None),
                _pm(r.get("f1_mean"), None),
                f"{r.get('seconds', float('nan')):.0f}",
                f"{r.get('peak_rss_mb', float('nan')):.0f}",
                f"{r.get('train_bytes', 0) / 2**20:.2f}",
                f"{r['diverged_runs']}/{r.get('runs')}" if r.get("diverged_runs") else "",
            ]
        )
    return out


DETAIL_HEADER = [
    "method",
    "VPC",
    "net",
    "top-1",
    "IOR (95 % CI)",
    "top-5",
    "AUC",
    "F1",
    "s/run",
    "peak RSS MB",
    "train MB",
    "diverged",
]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def accuracy_plot(rows: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """top-1 vs VPC per method with ±std bars; full-real as a horizontal line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_method[row_name(r)].append(r)
    for m in _method_order(set(by_method)):
        rs = sorted((r for r in by_method[m] if r.get("vpc") is not None), key=lambda r: r["vpc"])
        if rs:
            ax.errorbar(
                [r["vpc"] for r in rs],
                [r["top1_mean"] for r in rs],
                yerr=[r.get("top1_std") or 0 for r in rs],
                marker="o",
                capsize=3,
                label=m,
            )
        else:
            for r in by_method[m]:
                ax.axhline(r["top1_mean"], ls="--", lw=1, label=m, color="grey")
    ax.set_xlabel("videos per class (VPC)")
    ax.set_ylabel("top-1 on the real test split (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(
    rows: Sequence[dict[str, Any]],
    out: str | Path,
    title: str = "vidistill report",
    images: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (static, no JS) into ``out``; returns both paths.

    ``images`` are ``(caption, path relative to out)`` pairs (frame strips, GIFs).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if any(r.get("ior_mean") is not None for r in rows):
        notes = [*notes, IOR_NOTE]
    plot = accuracy_plot(rows, out / "accuracy.png")
    tables = pivot_tables(rows)
    md = [f"# {title}", ""]
    md += [f"> {n}" for n in notes] + ([""] if notes else [])
    for t in tables:
        md += [f"## {t['title']}", "", markdown_table(t["header"], t["rows"]), ""]
    md += ["## All results with costs", "", markdown_table(DETAIL_HEADER, detail_rows(rows)), ""]
    if plot:
        md += ["![accuracy vs VPC](accuracy.png)", ""]
    md += [f"### {cap}\n\n![{cap}]({p})\n" for cap, p in images]
    (out / "report.md").parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "report.md", "\n".join(md).encode())

    parts = [f"<h1>{html.escape(title)}</h1>"] + [
        f"<blockquote>{html.escape(n)}</blockquote>" for n in notes
    ]
    for t in tables:
        parts += [f"<h2>{html.escape(t['title'])}</h2>", html_table(t["header"], t["rows"])]
    parts += ["<h2>All results with costs</h2>", html_table(DETAIL_HEADER, detail_rows(rows))]
    if plot:
        parts.append('<img src="accuracy.png" alt="accuracy vs VPC">')
    parts += [
        f'<h3>{html.escape(c)}</h3><img src="{html.escape(p)}" alt="{html.escape(c)}">'
        for c, p in images
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}</style>"
        "</head><body>" + "\n".join(parts) + "</body></html>"
    )
    write_bytes_atomic(out / "report.html", page.encode())
    return out / "report.md", out / "report.html"
