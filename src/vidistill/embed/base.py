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

from vidistill import registry
from vidistill.clipstore import ClipStore
from vidistill.embed.store import StreamingSafetensorsWriter, embeddings_path


class Embedder:
    """Base class; subclasses set ``name`` and implement :meth:`embed`."""

    name = "embedder"

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
            raise TypeError(f"embedder {self.name!r} got unknown options {sorted(options)}")

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
    """
    store = store if isinstance(store, ClipStore) else ClipStore(store)
    idx = store.indices(split) if split is not None else np.arange(len(store))
    if len(idx) == 0:
        raise ValueError(f"{store.root}: no clips to embed in split {split!r}")
    t0 = time.perf_counter()
    model = create_embedder(
        embedder, store, weights=weights, split=split, seed=seed, device=device, **options
    )
    path = Path(out) if out is not None else embeddings_path(store.root, embedder)
    writer: StreamingSafetensorsWriter | None = None
    try:
        bar = tqdm(total=len(idx), desc=f"embed {embedder}", unit="clip", disable=not progress)
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            result = model.embed(store.clips(chunk))
            if writer is None:
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
            for key in ("embeddings", "probs", "logits"):
                if key in result:
                    writer.write_rows(key, start, result[key])
            bar.update(len(chunk))
        bar.close()
        assert writer is not None
        out_path = writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if progress:
        secs = time.perf_counter() - t0
        print(f"embedded {len(idx)} clips with {embedder} in {secs:.1f}s → {out_path}")
    return out_path
