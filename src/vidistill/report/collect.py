"""Gather a report's inputs: from a run directory (`vidistill run`, `vidistill report RUN`) or
from a results file plus a store and selection files (`vidistill report results.json
--store S --selection F ...`).

What a run directory gives (pipeline.py documents its layout):

* ``results.json`` — the rows (tables, plot, costs);
* ``select/M_vpcK_seedS.json`` and ``synth/M_vpcK_seedS/preview/`` — the chosen and learned
  clips of run seed S (the report shows the first run's, ``evaluate.seed``), and random's
  draw of that seed recomputed (``random_indices``: the exact clips random run S trained on);
* ``data/embeddings/<embedder>.safetensors`` — the pool projection;
* ``data/`` — the full training set's bytes (compression ratio);
* ``generate/pool/`` (a run with ``generate:``) — the pool the selectors chose from: a note
  on it, a strip of one real then one generated clip per class, and the pool projection
  (its ``embeddings/``) in place of the real store's;
* ``stages/*.json`` — wall time and peak RSS of every stage (costs).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidistill.clipstore import ClipStore
from vidistill.report.figures import PoolProjection
from vidistill.report.media import ClipSet, gallery_vpc
from vidistill.report.page import _can_import, missing_note, write_report
from vidistill.report.tables import read_rows, row_labels

SYNTH_DIR = re.compile(r"^(?P<method>.+)_vpc(?P<vpc>\d+)_seed(?P<seed>\d+)$")
PROJECTION_CLASSES = 4
MAX_POINTS = 2000  # per class in the projection: beyond, an even subsample (+ every chosen clip)


def _open_store(path: Any) -> ClipStore | None:
    if not path:
        return None
    try:
        return ClipStore(path)
    except (FileNotFoundError, ValueError):
        return None


def selection_clip_set(sel: dict[str, Any], store: ClipStore) -> ClipSet:
    """The clips a selection JSON names (``indices``: class name → store indices)."""
    clips, indices = {}, {}
    for name, idx in sel["indices"].items():
        idx = [int(i) for i in idx]
        indices[name] = idx
        clips[name] = store.clips(idx) if idx else None
    return ClipSet(
        str(sel.get("method", "?")),
        int(sel.get("vpc", max((len(v) for v in indices.values()), default=0))),
        "chosen",
        {k: v for k, v in clips.items() if v is not None},
        seed=sel.get("seed"),
        store=str(store.root),
        indices=indices,
    )


def random_clip_set(store: ClipStore, vpc: int, seed: int, method: str = "random") -> ClipSet:
    """Random's draw for run seed ``seed``: the clips random run ``seed`` trained on."""
    from vidistill.evaluate.protocol import random_indices  # lazy: imports torch

    idx = random_indices(store, vpc, seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        by_class[store.class_names[store.labels[i]]].append(int(i))
    return ClipSet(
        method,
        vpc,
        "chosen",
        {c: store.clips(v) for c, v in by_class.items()},
        seed=seed,
        store=str(store.root),
        indices=dict(by_class),
    )


def learned_clip_set(synth_dir: Path) -> ClipSet | None:
    """A synthesized set's videos from its uint8 ``preview/`` store (``M_vpcK_seedS`` dir)."""
    m = SYNTH_DIR.match(synth_dir.name)
    pv = _open_store(synth_dir / "preview")
    if m is None or pv is None:
        return None
    clips = {
        name: pv.clips(pv.indices(label=c))
        for c, name in enumerate(pv.class_names)
        if len(pv.indices(label=c))
    }
    return ClipSet(m["method"], int(m["vpc"]), "learned", clips, seed=int(m["seed"]))


def random_sets(
    rows: Sequence[dict[str, Any]], vpc: int, seed: int, default: ClipStore | None
) -> list[ClipSet]:
    """Random's draw at ``vpc`` for each pool a random row at that VPC was drawn from (named
    as the tables name it); a pool no longer on disk falls back to ``default``."""
    sets, seen = [], set()
    for lab, r in zip(row_labels(rows), rows, strict=True):
        if r.get("method") != "random" or r.get("vpc") != vpc or lab in seen:
            continue
        store = _open_store(r.get("pool")) or default
        if store is None:
            continue
        seen.add(lab)
        try:
            sets.append(random_clip_set(store, vpc, seed, method=lab))
        except ValueError:  # a class with fewer clips than vpc: not this store's row
            continue
    return sets


def _embeddings_file(store: ClipStore, embedder: str | None) -> Path | None:
    from vidistill.embed.store import embeddings_path

    if embedder and embeddings_path(store.root, embedder).is_file():
        return embeddings_path(store.root, embedder)
    found = sorted((store.root / "embeddings").glob("*.safetensors"))
    found = [p for p in found if not p.stem.endswith("-net")]  # the classifier's weights
    return found[0] if len(found) == 1 else None


def pool_projections(
    store: ClipStore,
    sets: Sequence[ClipSet],
    embedder: str | None = None,
    max_classes: int = PROJECTION_CLASSES,
) -> tuple[list[PoolProjection], str]:
    """Per class (the first ``max_classes`` a set chose from), the class's pool embeddings in
    ``store`` and each chosen set's clips; plus a caption naming the embedder. Empty without
    an embeddings file."""
    from vidistill.embed.store import EmbeddingFile

    path = _embeddings_file(store, embedder)
    chosen = [
        s
        for s in sets
        if s.kind == "chosen" and s.store and Path(s.store).resolve() == store.root.resolve()
    ]
    if path is None or not chosen:
        return [], ""
    ef = EmbeddingFile(path)
    out = []
    for c, name in enumerate(store.class_names):
        if len(out) >= max_classes:
            break
        pos = np.flatnonzero(ef.labels == c)
        if pos.size == 0 or not any(s.indices.get(name) for s in chosen):
            continue
        picked = {int(i) for s in chosen for i in s.indices.get(name, [])}
        if pos.size > MAX_POINTS:
            keep = set(pos[np.linspace(0, pos.size - 1, MAX_POINTS).astype(int)].tolist())
            keep |= {int(p) for p in pos if int(ef.indices[p]) in picked}
            pos = np.array(sorted(keep))
        emb = np.concatenate([b for _, b in ef.iter_rows(pos, chunk_rows=4096)])
        idx = ef.indices[pos]
        modes = [store.records[int(i)].get("meta", {}).get("mode") for i in idx]
        out.append(
            PoolProjection(
                name,
                emb,
                idx,
                {s.label: s.indices.get(name, []) for s in chosen},
                np.array(modes) if all(isinstance(m, int) for m in modes) else None,
            )
        )
    vpc = chosen[0].vpc
    caption = (
        f"Each class's {ef.metadata.get('split', 'train')} pool in '{ef.embedder}' embedding "
        f"space ({ef.dim}-D), on the class's own first two principal axes; marked: the clips "
        f"each selector chose at VPC {vpc}"
        + (" (colours: the toy's recorded sub-modes)" if out and out[0].modes is not None else "")
        + ". Learned videos have no pool embedding and are not shown."
    )
    return out, caption


def stage_costs(root: Path) -> list[dict[str, Any]]:
    """Stage markers, per-seed stages folded into one line: runs, s/run, s total, peak RSS."""
    agg: dict[str, dict[str, Any]] = {}
    for p in sorted((root / "stages").glob("*.json")):
        try:
            m = json.loads(p.read_text())
        except ValueError:
            continue
        name = re.sub(r"/seed\d+$", "", str(m.get("stage", p.stem)))
        a = agg.setdefault(name, {"stage": name, "runs": 0, "seconds_total": 0.0})
        a["runs"] += 1
        a["seconds_total"] += float(m.get("seconds") or 0)
        rss = m.get("peak_rss_mb")
        if rss is not None:
            a["peak_rss_mb"] = max(a.get("peak_rss_mb", 0.0), float(rss))
    for a in agg.values():
        a["seconds"] = a["seconds_total"] / a["runs"]
    return list(agg.values())


def report_run(
    root: str | Path,
    out: str | Path | None = None,
    config: dict[str, Any] | None = None,
    store: ClipStore | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[Path, Path]:
    """The whole report of a run directory into ``out`` (default ``RUN/report``)."""
    import yaml

    root = Path(root)
    out = Path(out) if out else root / "report"
    if config is None:
        cfg_path = root / "config.yaml"
        config = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
    rows = read_rows(root / "results.json") if (root / "results.json").is_file() else []
    store = store or _open_store(root / "data")
    ev = config.get("evaluate") or {}
    seed = int(ev.get("seed", 0))  # the first run's selections / learned sets
    sets: list[ClipSet] = []
    for p in sorted((root / "select").glob(f"*_seed{seed}.json")):
        sel = json.loads(p.read_text())
        sel_store = _open_store(sel.get("store")) or store
        if sel_store is not None:
            sets.append(selection_clip_set(sel, sel_store))
    for d in sorted((root / "synth").glob(f"*_seed{seed}")):
        learned = learned_clip_set(d)
        if learned is not None:
            sets.append(learned)
    vpc = gallery_vpc(sets) or max((r["vpc"] for r in rows if r.get("vpc")), default=None)
    if vpc is not None:
        sets = random_sets(rows, vpc, seed, store) + sets
    pool = _open_store(root / "generate" / "pool")  # a generate run: selections index it
    chosen_from = pool or store
    projections, caption = (
        pool_projections(chosen_from, [s for s in sets if s.vpc == vpc], config.get("embedder"))
        if chosen_from is not None
        else ([], "")
    )
    notes = []
    if config:
        notes.append(
            f"config: {config.get('name', '?')} — dataset {config.get('dataset', '?')}, preset "
            f"{ev.get('preset', '?')}, {ev.get('runs', '?')} paired runs (run s re-selects / "
            "re-synthesises with seed s and shares evaluator seed s with random); final-epoch "
            "metrics on the real test split."
        )
    moves = learned_moves(root / "synth", seed)
    if moves:
        notes.append(moves)
    images: list[tuple[str, str]] = []
    if pool is not None:
        notes.append(pool_note(pool))
        strip, caption_or_note = pool_strip(pool, store, Path(out))
        if strip is not None:
            images.append((caption_or_note, strip))
        else:
            notes.append(caption_or_note)
    full = {store.dataset: store.bytes_on_disk(store.indices("train"))} if store else None
    return write_report(
        rows,
        out,
        title=f"vidistill — {config.get('name', root.name)}",
        images=images,
        notes=notes,
        clip_sets=sets,
        class_names=store.class_names if store else None,
        projections=projections,
        projection_caption=caption,
        stage_costs=stage_costs(root),
        full_bytes=full,
    )


def learned_moves(synth_root: Path, seed: int) -> str | None:
    """One line on how far each learned set (run ``seed``) moved from its initialisation —
    ``done.json``'s ``moved_from_init``: a set that barely moved is its initialisation, and
    its row measures that, not the method."""
    parts = []
    for d in sorted(synth_root.glob(f"*_seed{seed}")):
        try:
            done = json.loads((d / "done.json").read_text())
        except (OSError, ValueError):
            continue
        moved = done.get("moved_from_init")
        if moved:
            parts.append(
                f"{done.get('method', d.name)} VPC {done.get('vpc', '?')}: "
                f"{moved['mean_abs_levels']:g} levels ({100 * moved['changed_fraction']:.0f} % "
                f"of values changed) in {done.get('iterations', '?')} iterations"
            )
    if not parts:
        return None
    return (
        f"learned sets (run {seed}) moved from their initialisation by a mean absolute "
        "change, in uint8 grey levels of 255: " + "; ".join(parts) + "."
    )


def pool_note(pool: ClipStore) -> str:
    """What a generate run's rows mean, and the pool they were drawn from."""
    g = pool.info_json.get("generator", {})
    return (
        f"generate-then-select: the selectors chose from a GENERATED pool of "
        f"{g.get('per_class', '?')} clips per class ({len(pool)} in all; sampler "
        f"{g.get('sampler', '?')}, {g.get('steps', '?')} steps, CFG {g.get('guidance', '?')}). "
        "Rows: full-real = every real training clip; full-syn = every pool clip; "
        "random-from-pool = VPC pool clips per class at random (the selectors' IOR partner); "
        "random-real = VPC real clips per class at random; every other row = a selector "
        "choosing VPC pool clips per class. All are tested on the REAL test split."
    )


def pool_strip(pool: ClipStore, real: ClipStore | None, out: Path) -> tuple[str | None, str]:
    """``strip_pool.png`` in ``out`` (one real clip, then a generated one, per class):
    ``(its name, caption)``, or — without matplotlib / Pillow — ``(None, a note naming the
    extra to install)``."""
    what = "real-vs-generated strip of the pool"
    for module, dist in (("matplotlib", "matplotlib"), ("PIL", "Pillow")):
        if not _can_import(module):
            return None, missing_note(dist, what)
    from vidistill.generate.quality import frame_strip

    out.mkdir(parents=True, exist_ok=True)
    frame_strip(pool, out / "strip_pool.png", real=real)
    return "strip_pool.png", "Generated pool — one real clip, then generated ones, per class"


def report_results(
    rows: Sequence[dict[str, Any]],
    out: str | Path,
    store: ClipStore | None = None,
    selections: Sequence[dict[str, Any]] = (),
    title: str = "vidistill report",
    notes: Sequence[str] = (),
) -> tuple[Path, Path]:
    """A report of results rows; with ``store`` (the pool the selections index into) also the
    clips of each selection and random's draw at the gallery VPC, the pool projection
    (when the store has the selections' embeddings) and the compression ratio."""
    sets: list[ClipSet] = []
    stages = []
    for sel in selections:
        sel_store = _open_store(sel.get("store")) or store
        if sel_store is None:
            raise ValueError(f"selection {sel.get('method')!r}: no store to read its clips from")
        sets.append(selection_clip_set(sel, sel_store))
        if sel.get("seconds") is not None:
            stages.append(
                {
                    "stage": f"select/{sel.get('method')}/vpc{sel.get('vpc')}",
                    "runs": 1,
                    "seconds": float(sel["seconds"]),
                    "seconds_total": float(sel["seconds"]),
                }
            )
    vpc = gallery_vpc(sets)
    if vpc is not None and store is not None:
        seed = next((s.seed for s in sets if s.vpc == vpc and s.seed is not None), 0)
        sets = random_sets(rows, vpc, int(seed), store) + sets
    embedder = next((sel.get("embedder") for sel in selections if sel.get("embedder")), None)
    projections, caption = (
        pool_projections(store, [s for s in sets if s.vpc == vpc], embedder)
        if store is not None
        else ([], "")
    )
    return write_report(
        rows,
        out,
        title=title,
        notes=notes,
        clip_sets=sets,
        class_names=store.class_names if store else None,
        projections=projections,
        projection_caption=caption,
        stage_costs=stages,
        full_bytes={store.dataset: store.bytes_on_disk(store.indices("train"))} if store else None,
    )
