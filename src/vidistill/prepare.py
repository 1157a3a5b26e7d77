"""`vidistill prepare`: decode every video once into a ClipStore, resumably, in a process pool.

Each video's clip (or its skip reason) is first written atomically to ``OUT/.parts/``;
a re-run after a kill only does the missing parts. When all parts exist they are
concatenated into the store and ``store.json`` is written last. The result does not
depend on worker count or interruptions: parts are keyed by the item's position in the
dataset's (deterministic) item list.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vidistill.atomic import remove_stale_temps, write_bytes_atomic, write_json_atomic
from vidistill.clipstore import ClipSpec, ClipStore, write_store
from vidistill.datasets.base import Dataset, VideoError, VideoItem
from vidistill.errors import CorruptArtifact
from vidistill.integrity import read_json

PARTS = ".parts"


def _plan_hash(dataset: Dataset, spec: ClipSpec, items: list[VideoItem]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([dataset.describe(), spec.to_dict()], sort_keys=True, default=str).encode())
    for it in items:
        h.update(f"{it.source}\t{it.label}\t{it.split}\n".encode())
    return h.hexdigest()[:16]


def _part_path(parts: Path, i: int) -> Path:
    return parts / f"{i:08d}.npy"


def _skip_path(parts: Path, i: int) -> Path:
    return parts / f"{i:08d}.skip.json"


_WORKER_DATASET: Dataset | None = None


def _init_worker(dataset: Dataset) -> None:
    """Ship the adapter to each worker once, not with every job."""
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def die_with_parent(parent: int) -> None:
    """Linux: the kernel SIGKILLs this process when its parent dies (``PR_SET_PDEATHSIG``), so
    a killed ``prepare`` leaves no worker behind holding memory on a shared node. Elsewhere a
    no-op (the pool's own shutdown handles normal exits)."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl: keep the old behaviour
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init_pool_worker(dataset: Dataset, parent: int) -> None:
    die_with_parent(parent)
    _init_worker(dataset)


def _work(args: tuple[VideoItem, ClipSpec, str, int]) -> tuple[int, str | None]:
    item, spec, parts, i = args
    dataset = _WORKER_DATASET
    parts_dir = Path(parts)
    try:
        clip = dataset.load(item, spec)
        if clip.shape != spec.shape or clip.dtype != np.uint8:
            raise VideoError(
                f"adapter returned {clip.shape} {clip.dtype}, expected {spec.shape} uint8"
            )
    except VideoError as err:
        write_json_atomic(
            _skip_path(parts_dir, i), {"source": item.source, "reason": str(err)}, durable=False
        )
        return i, str(err)
    buf = io.BytesIO()
    np.save(buf, clip)
    write_bytes_atomic(_part_path(parts_dir, i), buf.getvalue(), durable=False)
    return i, None


def prepare(
    dataset: Dataset,
    out: str | Path,
    spec: ClipSpec | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ClipStore:
    """Build (or resume building) the ClipStore of ``dataset`` at ``out``."""
    out = Path(out)
    spec = spec or dataset.default_spec()
    items = dataset.items()
    plan = _plan_hash(dataset, spec, items)
    if (out / "store.json").is_file():
        head = read_json(out / "store.json", f"`vidistill prepare` into {out}", out)
        if head.get("plan") == plan:
            return ClipStore(out)
        raise FileExistsError(
            f"{out} already holds a different store (dataset/spec changed); choose another --out or delete it"
        )
    parts = out / PARTS
    parts.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(parts)  # parts a killed run was writing
    plan_file = parts / "plan.txt"
    if plan_file.is_file() and plan_file.read_text() != plan:
        shutil.rmtree(parts)  # leftovers of a different plan: never mix them in
        parts.mkdir(parents=True)
    write_bytes_atomic(plan_file, plan.encode())

    todo = [
        i
        for i in range(len(items))
        if not (_part_path(parts, i).exists() or _skip_path(parts, i).exists())
    ]
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    start = time.perf_counter()
    jobs = ((items[i], spec, str(parts), i) for i in todo)
    _init_worker(dataset)
    with tqdm(  # closed on an error too, so the error starts its own line
        total=len(items),
        initial=len(items) - len(todo),
        desc=f"prepare {dataset.name}",
        unit="clip",
        disable=not progress,
    ) as bar:
        if workers == 1 or len(todo) <= 1:
            for job in jobs:
                _work(job)
                bar.update()
        else:
            chunks = max(1, min(16, len(todo) // (4 * workers)))
            with ProcessPoolExecutor(
                max_workers=workers, initializer=_init_pool_worker, initargs=(dataset, os.getpid())
            ) as pool:
                for _ in pool.map(_work, jobs, chunksize=chunks):
                    bar.update()

    ok = [i for i in range(len(items)) if _part_path(parts, i).exists()]
    skipped = []
    for i in range(len(items)):
        sp = _skip_path(parts, i)
        if sp.exists():
            rec = read_json(sp, f"`vidistill prepare` (only that video is decoded again): {out}")
            skipped.append({**asdict(items[i]), "status": "skipped", "reason": rec["reason"]})

    if not ok:
        reasons: dict[str, int] = {}
        for sk in skipped:
            reasons[sk["reason"]] = reasons.get(sk["reason"], 0) + 1
        top = "; ".join(f"{n} × {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        raise ValueError(
            f"prepare {dataset.name}: no clip could be read — all {len(skipped)} files were "
            f"skipped ({top or 'no files found'}); no store was written to {out}. Check the "
            "source path and that the files are videos PyAV can decode"
        )

    def stream() -> Iterator[np.ndarray]:
        for i in ok:
            part = _part_path(parts, i)
            try:
                clip = np.load(part, allow_pickle=False)
            except (ValueError, EOFError, OSError) as err:
                remake = "`vidistill prepare` (only that video is decoded again)"
                raise CorruptArtifact(part, f"unreadable part: {err}", remake) from err
            if clip.shape != spec.shape or clip.dtype != np.uint8:
                remake = "`vidistill prepare` (only that video is decoded again)"
                raise CorruptArtifact(part, f"holds {clip.shape} {clip.dtype}", remake)
            yield clip

    records = [{**asdict(items[i]), "status": "ok"} for i in ok]
    store = write_store(
        out,
        spec,
        dataset.class_names,
        stream(),
        records,
        skipped,
        dataset=dataset.name,
        extra={
            "plan": plan,
            "source": dataset.describe(),
            "prepare_seconds": time.perf_counter() - start,
        },
    )
    shutil.rmtree(parts, ignore_errors=True)
    return store
