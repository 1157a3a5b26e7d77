"""The embedder contract and the streaming ``embed_store`` loop behind `vidistill embed`.

An embedder is a registered class built as ``cls(store, weights=..., split=..., seed=...,
device=..., **options)``; its :meth:`Embedder.embed` maps a uint8 batch ``(n,T,H,W,3)``
to ``{"embeddings": (n, D)}`` and, if it has a classifier head, ``"probs": (n, C)`` and
``"logits": (n, C)`` (MAE-Score ranks by log-probabilities from the logits: probabilities
saturate at 1.0 in float32, which would leave the ranking to store order).
Construction may do one-off work (load weights, train a net) — per-batch work must not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vidistill import distributed, registry
from vidistill.clipstore import ClipStore
from vidistill.embed.store import StreamingSafetensorsWriter, embeddings_path


class Embedder:
    """Base class; subclasses set ``name`` and implement :meth:`embed`."""

    name = "embedder"
    # True when construction trains and caches something (under torchrun: rank 0 builds
    # first, the other ranks load its cache)
    builds_cache = False

    def __init__(
        self,
        store: ClipStore,
        weights: str | Path | None = None,
        split: str | None = "train",
        seed: int = 0,
        device: str = "cpu",
        **options: Any,
    ):
        self.store, self.weights, self.split, self.seed, self.device = (
            store,
            weights,
            split,
            seed,
            device,
        )
        if options:
            import inspect

            known = sorted(
                k
                for cls in type(self).__mro__
                if "__init__" in cls.__dict__
                for k in inspect.signature(cls.__dict__["__init__"]).parameters
                if k not in ("self", "store", "options")
            )
            raise ValueError(
                f"embedder {self.name!r} has no option(s) {sorted(options)}; its options: "
                f"{', '.join(dict.fromkeys(known))}"
            )

    def embed(self, clips: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the embeddings file records about how it was made."""
        return {}

    def file_metadata(self) -> dict[str, str]:
        """Extra top-level metadata of the embeddings file (e.g. ``train_store``), so a
        reader need not parse ``details`` for what identifies the embedding."""
        return {}


def create_embedder(name: str, store: ClipStore, **kwargs: Any) -> Embedder:
    return registry.get("embedder", name)(store, **kwargs)


def embed_store(
    store: ClipStore | str | Path,
    embedder: str,
    weights: str | Path | None = None,
    split: str | None = "train",
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    out: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Embed every clip of ``split`` (``None``: all clips) and write the embeddings file.

    Clips are read from the memory-mapped store ``batch_size`` at a time and each batch's
    vectors are written straight to their rows, so RAM use does not grow with the pool.

    Under ``torchrun`` (:mod:`vidistill.distributed`) every rank embeds a share of the
    batches and rank 0 writes the one file, round by round, in the original order: the same
    batches as in one process, so the same rows (bit for bit on the same device type and
    thread count). An embedder with ``builds_cache`` (``classifier``) is built on rank 0
    first, which trains and caches its net; the other ranks then load that cache.
    """
    ctx = distributed.init()
    store = store if isinstance(store, ClipStore) else ClipStore(store)
    idx = store.indices(split) if split is not None else np.arange(len(store))
    if len(idx) == 0:
        raise ValueError(f"{store.root}: no clips to embed in split {split!r}")
    t0 = time.perf_counter()
    cls = registry.get("embedder", embedder)
    # an embedder that trains and caches a net on construction builds on rank 0 first, so
    # the others load rank 0's cache instead of training it again
    model = distributed.call_all(
        lambda: cls(store, weights=weights, split=split, seed=seed, device=device, **options),
        f"build embedder {embedder!r}",
        main_first=cls.builds_cache,
    )
    path = Path(out) if out is not None else embeddings_path(store.root, embedder)
    # batch b holds rows [b·batch_size, (b+1)·batch_size) whatever the world size; in round k
    # rank r embeds batch k·world + r and rank 0 writes the round's batches (a block of at most
    # world·batch_size rows in memory), so the file equals the one-process file
    starts = list(range(0, len(idx), batch_size))
    writer: StreamingSafetensorsWriter | None = None
    try:
        bar = tqdm(
            total=len(idx),
            desc=f"embed {embedder}",
            unit="clip",
            disable=not (progress and ctx.is_main),
        )
        for first in range(0, len(starts), ctx.world):
            round_starts = starts[first : first + ctx.world]
            results = distributed.map_in_order(
                lambda j, rs=round_starts: model.embed(
                    store.clips(idx[rs[j] : rs[j] + batch_size])
                ),
                len(round_starts),
                mode="strided",
                what=f"embed batches {first}..{first + len(round_starts) - 1}",
            )
            if results is None:  # not rank 0: rank 0 writes
                continue
            for start, result in zip(round_starts, results, strict=True):
                if writer is None:
                    writer = _open_writer(path, store, embedder, model, idx, split, result)
                for key in ("embeddings", "probs", "logits"):
                    if key in result:
                        writer.write_rows(key, start, result[key])
                bar.update(len(result["embeddings"]))
        bar.close()
        error = None
        try:
            if ctx.is_main:
                assert writer is not None
                writer.commit()
        except Exception as err:
            if not ctx.distributed:
                raise
            error = err
        distributed.check("write the embeddings file", error)  # every rank sees the file
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if progress and ctx.is_main:
        secs = time.perf_counter() - t0
        ranks = f" on {ctx.world} ranks" if ctx.distributed else ""
        print(f"embedded {len(idx)} clips with {embedder}{ranks} in {secs:.1f}s → {path}")
    return path


def _open_writer(
    path: Path,
    store: ClipStore,
    embedder: str,
    model: Embedder,
    idx: np.ndarray,
    split: str | None,
    result: dict[str, np.ndarray],
) -> StreamingSafetensorsWriter:
    """The embeddings file laid out from the first batch's shapes (rank 0 only)."""
    layout: dict[str, tuple[Any, tuple[int, ...]]] = {
        "embeddings": (np.float32, (len(idx), result["embeddings"].shape[1])),
        "indices": (np.int64, (len(idx),)),
        "labels": (np.int64, (len(idx),)),
    }
    for key in ("probs", "logits"):
        if key in result:
            layout[key] = (np.float32, (len(idx), result[key].shape[1]))
    meta = {
        "embedder": embedder,
        "split": "all" if split is None else split,
        "store": str(store.root),
        "store_count": str(len(store)),
        "class_names": json.dumps(store.class_names),
        "details": json.dumps(model.describe(), default=str),
        **model.file_metadata(),
    }
    writer = StreamingSafetensorsWriter(path, layout, meta)
    writer.write_rows("indices", 0, idx.astype(np.int64))
    writer.write_rows("labels", 0, store.labels[idx].astype(np.int64))
    return writer
