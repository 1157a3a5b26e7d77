"""Figures for reports (matplotlib, the ``report`` extra): accuracy vs VPC with error bars,
and a 2-D PCA projection of a class's pool embeddings with each selector's chosen clips.

matplotlib is used through ``matplotlib.figure.Figure`` only (no pyplot, no global backend
switch), so a report can be drawn from any thread or inside a user's own plotting session.
Each function returns ``None`` when matplotlib is missing; the page then says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidistill.atomic import write_atomic
from vidistill.report.tables import _method_order, row_labels

MARKERS = ("*", "D", "^", "s", "P", "X", "v", "o", "h", "<")


def _figure(**kwargs: Any):
    """A matplotlib ``Figure`` (Agg canvas), or None without matplotlib."""
    try:
        import matplotlib  # noqa: F401  (explicit: an absent package fails here)
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure(**kwargs)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=110), durable=False)


def accuracy_plot(
    rows: Sequence[dict[str, Any]], path: str | Path, title: str | None = None
) -> Path | None:
    """top-1 vs VPC, one line per method with ±std error bars (points nudged apart so bars
    do not hide each other); random dashed black; full-real / full-syn as horizontal lines
    with their ±std band; chance dotted. ``rows`` should be one table's group."""
    fig = _figure(figsize=(7, 4.4))
    if fig is None:
        return None
    ax = fig.add_subplot()
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lab, r in zip(row_labels(rows), rows, strict=True):
        by_label[lab].append(r)
    vpcs = sorted({r["vpc"] for r in rows if r.get("vpc") is not None})
    curves = [m for m in _method_order(set(by_label)) if any(r.get("vpc") for r in by_label[m])]
    colours = iter(f"C{i}" for i in range(100))
    for k, m in enumerate(curves):
        rs = sorted((r for r in by_label[m] if r.get("vpc") is not None), key=lambda r: r["vpc"])
        rs = list({r["vpc"]: r for r in rs}.values())  # a later row of a cell wins
        nudge = 1 + 0.025 * (k - (len(curves) - 1) / 2)
        base = m.split(" [")[0]  # random [pool] / random-from-pool / random-real: random
        is_random = base in ("random", "random-from-pool", "random-real")
        ax.errorbar(
            [r["vpc"] * nudge for r in rs],
            [r["top1_mean"] for r in rs],
            yerr=[r.get("top1_std") or 0 for r in rs],
            marker="s" if is_random else "o",
            ls="--" if is_random else "-",
            color="black" if m in ("random", "random-from-pool") else next(colours),
            capsize=3,
            label=f"{m} (mean ± std, {rs[-1].get('runs', '?')} runs)",
        )
    ref_styles = {"full-real": "tab:grey", "full-syn": "tab:brown"}
    for m in _method_order(set(by_label)):
        whole = [r for r in by_label[m] if r.get("vpc") is None]
        if not whole:
            continue
        r = whole[-1]
        colour = ref_styles.get(m, "tab:olive")
        ax.axhline(r["top1_mean"], ls="--", lw=1.2, color=colour, label=f"{m} (all clips)")
        if r.get("top1_std"):
            ax.axhspan(
                r["top1_mean"] - r["top1_std"],
                r["top1_mean"] + r["top1_std"],
                color=colour,
                alpha=0.12,
                lw=0,
            )
    classes = next((len(r["class_names"]) for r in rows if r.get("class_names")), None)
    if classes:
        ax.axhline(100 / classes, ls=":", lw=1, color="tab:red", label=f"chance (1/{classes})")
    if vpcs:
        if vpcs[-1] / vpcs[0] >= 4:
            ax.set_xscale("log")
        ax.set_xticks(vpcs)
        ax.set_xticklabels([str(v) for v in vpcs])
        ax.minorticks_off()
    ax.set_xlabel("videos per class (VPC)")
    ax.set_ylabel("top-1 on the real test split (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path)


def loss_curves_plot(
    curves: dict[str, Sequence[dict[str, Sequence[float]]]],
    path: str | Path,
    term: str = "loss",
    title: str | None = None,
) -> Path | None:
    """One small panel per synthesis row: ``term`` (block means over iterations, as the
    grids record them) averaged over the row's seeds, with the seeds' min–max as a band.
    Panels, not one axis: the methods' losses differ by orders of magnitude, and the
    question a panel answers is its own — has this loss flattened?"""
    rows = {name: [c for c in cs if c.get(term)] for name, cs in curves.items()}
    rows = {name: cs for name, cs in rows.items() if cs}
    if not rows:
        return None
    cols = min(4, len(rows))
    lines = -(-len(rows) // cols)
    fig = _figure(figsize=(max(3.2 * cols, 6.4), 2.4 * lines + 0.4))
    if fig is None:
        return None
    for i, (name, cs) in enumerate(rows.items()):
        ax = fig.add_subplot(lines, cols, i + 1)
        n = min(len(c[term]) for c in cs)
        its = np.asarray(cs[0]["it"][:n]) + 1
        vals = np.array([c[term][:n] for c in cs], dtype=float)  # None (not logged) → nan
        ax.plot(its, np.nanmean(vals, 0), color="C0", lw=1.3)
        if len(cs) > 1:
            ax.fill_between(
                its, np.nanmin(vals, 0), np.nanmax(vals, 0), color="C0", alpha=0.2, lw=0
            )
        ax.set_title(f"{name} ({len(cs)} seeds)", fontsize=8)
        ax.set_xlabel("iteration", fontsize=7)
        ax.set_ylabel(term, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9, wrap=True)
    return _save(fig, path)


@dataclass
class PoolProjection:
    """One class's pool in embedding space and the clips each selector chose from it."""

    class_name: str
    embedding: np.ndarray  # (n, D) the class's pool rows
    indices: np.ndarray  # (n,) the store index of each row
    chosen: dict[str, Sequence[int]] = field(default_factory=dict)  # label → store indices
    modes: np.ndarray | None = None  # (n,) sub-mode id from the manifest, when recorded


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2)`` coordinates on the first two principal axes and their explained-variance
    ratios (SVD of the centred rows; signs fixed so the largest loading is positive)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2)), np.zeros(2)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    sign = np.sign(vt[:2, np.argmax(np.abs(vt[:2]), axis=1)].diagonal())
    vt = vt[:2] * np.where(sign == 0, 1.0, sign)[:, None]
    xy = x @ vt.T
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    var = s**2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return xy, np.pad(ratio, (0, 2 - ratio.size))


def projection_plot(
    projections: Sequence[PoolProjection], path: str | Path, title: str | None = None
) -> Path | None:
    """Small multiples, one per class: its pool's embeddings projected on their own first
    two principal axes (grey, or coloured by sub-mode when recorded), each selector's chosen
    clips marked on top (one marker per selector; later ones drawn smaller so shared
    choices stay visible)."""
    if not projections:
        return None
    n = len(projections)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig = _figure(figsize=(5.2 * cols + 1.6, 4.2 * rows))
    if fig is None:
        return None
    labels = list(dict.fromkeys(lab for p in projections for lab in p.chosen))
    handles = {}
    for k, p in enumerate(projections):
        ax = fig.add_subplot(rows, cols, k + 1)
        xy, ratio = pca_2d(p.embedding)
        if p.modes is not None:
            for mode in np.unique(p.modes):
                sel = p.modes == mode
                h = ax.scatter(
                    *xy[sel].T, s=10, alpha=0.45, color=f"C{int(mode) % 10}", lw=0,
                )  # fmt: skip
                handles.setdefault(f"pool, sub-mode {int(mode)}", h)
        else:
            h = ax.scatter(*xy.T, s=10, alpha=0.45, color="tab:grey", lw=0)
            handles.setdefault("pool clip", h)
        where = {int(i): j for j, i in enumerate(p.indices)}
        for j, lab in enumerate(labels):
            pos = [where[int(i)] for i in p.chosen.get(lab, []) if int(i) in where]
            if not pos:
                continue
            h = ax.scatter(
                *xy[pos].T,
                s=max(30, 170 - 35 * j),
                marker=MARKERS[j % len(MARKERS)],
                facecolor="none" if lab.split(" [")[0] == "random" else "white",
                edgecolor="black",
                lw=1.3,
                zorder=3 + len(labels) - j,
            )
            handles.setdefault(f"chosen by {lab}", h)
        ax.set_title(f"{p.class_name} ({len(p.indices)} pool clips)", fontsize=9)
        ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.0f} % of variance)", fontsize=8)
        ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.0f} %)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="center right",
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / fig.get_figwidth(), 1))
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=100), durable=False)
