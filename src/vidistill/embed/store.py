"""Embedding files: one vector per clip, saved beside the pool as safetensors.

``STORE/embeddings/<embedder>.safetensors`` holds

* ``embeddings`` float32 ``(n, D)`` — one row per embedded clip,
* ``indices``    int64   ``(n,)``   — the store clip index of each row (ascending),
* ``labels``     int64   ``(n,)``   — the class of each row (copied so selection never
  needs the manifest to group rows),
* ``probs``      float32 ``(n, C)`` — optional class probabilities (``classifier``),
* ``logits``     float32 ``(n, C)`` — optional class logits (``classifier``; unsaturated),

plus metadata (embedder, split, options). The file is written *streaming*: the
safetensors header is laid out first (all shapes are known once the first batch is
embedded), then every batch is written at its offset, so a pool far larger than RAM is
embedded in constant memory. Readers slice rows through ``safe_open`` (memory-mapped),
never loading the whole matrix. The temp file is renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidistill.atomic import FILE_MODE, remove_stale_temps, temp_prefix

MAX_WINDOW_ROWS = 8192  # file rows per read: 46 MB at D=1408, however large the budget
_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}


def embeddings_path(store_root: str | Path, embedder: str) -> Path:
    return Path(store_root) / "embeddings" / f"{embedder}.safetensors"


class StreamingSafetensorsWriter:
    """Write a safetensors file whose tensors are filled row-block by row-block.

    ``layout`` maps tensor name → (numpy dtype, shape). Rows are written with
    :meth:`write_rows`; :meth:`commit` fsyncs and atomically renames the temp file.
    """

    def __init__(
        self,
        path: str | Path,
        layout: dict[str, tuple[Any, tuple[int, ...]]],
        metadata: dict[str, str] | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header: dict[str, Any] = {}
        self._offsets: dict[str, tuple[int, np.dtype, tuple[int, ...]]] = {}
        pos = 0
        for name, (dtype, shape) in layout.items():
            dtype = np.dtype(dtype)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            header[name] = {
                "dtype": _DTYPES[dtype],
                "shape": list(shape),
                "data_offsets": [pos, pos + nbytes],
            }
            self._offsets[name] = (pos, dtype, tuple(shape))
            pos += nbytes
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # the format aligns the data section to 8 bytes
        self._data_start = 8 + len(blob)
        remove_stale_temps(self.path.parent, self.path.name)
        fd, tmp = tempfile.mkstemp(
            prefix=temp_prefix(self.path), suffix=".tmp", dir=self.path.parent
        )
        self._tmp = Path(tmp)
        os.fchmod(fd, FILE_MODE)
        self._fh = os.fdopen(fd, "w+b")
        self._fh.write(struct.pack("<Q", len(blob)) + blob)
        self._fh.truncate(self._data_start + pos)

    def write_rows(self, name: str, start: int, rows: np.ndarray) -> None:
        base, dtype, shape = self._offsets[name]
        rows = np.ascontiguousarray(rows, dtype=dtype)
        if rows.shape[1:] != shape[1:] or start + rows.shape[0] > shape[0]:
            raise ValueError(f"{name}: rows {rows.shape} at {start} do not fit shape {shape}")
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self._fh.seek(self._data_start + base + start * row_bytes)
        self._fh.write(rows.tobytes())

    def commit(self) -> Path:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


class EmbeddingFile:
    """Read side: metadata and small vectors eagerly, the ``(n, D)`` matrix by row slices."""

    def __init__(self, path: str | Path):
        from vidistill.errors import CorruptArtifact
        from vidistill.integrity import open_safetensors

        self.path = Path(path)
        remake = f"`vidistill embed {self.path.parent.parent} --embedder {self.path.stem}`"
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no embeddings at {self.path}; compute them first with {remake}"
            )
        self._fh = open_safetensors(self.path, remake, framework="numpy")
        self.metadata: dict[str, str] = self._fh.metadata() or {}
        keys = set(self._fh.keys())
        missing = {"indices", "labels", "embeddings"} - keys
        if missing:
            raise CorruptArtifact(self.path, f"no {sorted(missing)} tensor(s)", remake)
        self.indices = self._fh.get_tensor("indices")
        self.labels = self._fh.get_tensor("labels")
        self._emb = self._fh.get_slice("embeddings")
        shape = [int(s) for s in self._emb.get_shape()]
        if len(shape) != 2 or len(self.indices) != shape[0] or len(self.labels) != shape[0]:
            raise CorruptArtifact(
                self.path,
                f"embeddings {shape} do not match {len(self.indices)} indices / "
                f"{len(self.labels)} labels",
                remake,
            )
        self.n, self.dim = shape
        self._probs = self._fh.get_slice("probs") if "probs" in keys else None
        self._logits = self._fh.get_slice("logits") if "logits" in keys else None

    @property
    def has_probs(self) -> bool:
        return self._probs is not None

    @property
    def has_logits(self) -> bool:
        return self._logits is not None

    @property
    def embedder(self) -> str:
        return self.metadata.get("embedder", self.path.stem)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Embedding rows ``[start, stop)`` as float32 (only these bytes are read)."""
        return np.asarray(self._emb[start:stop], dtype=np.float32)

    def prob_rows(self, start: int, stop: int) -> np.ndarray:
        if self._probs is None:
            raise ValueError(f"{self.path} has no class probabilities (embedder {self.embedder!r})")
        return np.asarray(self._probs[start:stop], dtype=np.float32)

    def logit_rows(self, start: int, stop: int) -> np.ndarray:
        if self._logits is None:
            raise ValueError(f"{self.path} has no class logits (embedder {self.embedder!r})")
        return np.asarray(self._logits[start:stop], dtype=np.float32)

    def iter_rows(
        self, positions: np.ndarray, chunk_rows: int, probs: bool = False, logits: bool = False
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(k, block)``: rows ``positions[k:k+len(block)]`` (positions ascending).

        Each block is read as one contiguous file slice spanning at most ``chunk_rows``
        (and at most ``MAX_WINDOW_ROWS``) file rows, so memory stays bounded even when a
        class's rows are interleaved with other classes'.
        """
        read = self.logit_rows if logits else self.prob_rows if probs else self.rows
        positions = np.asarray(positions, dtype=np.int64)
        window = max(1, min(chunk_rows, MAX_WINDOW_ROWS))
        k = 0
        while k < len(positions):
            lo = positions[k]
            j = int(np.searchsorted(positions, lo + window, side="left"))
            j = max(j, k + 1)
            block = read(int(lo), int(positions[j - 1]) + 1)
            yield k, block[positions[k:j] - lo]
            k = j
