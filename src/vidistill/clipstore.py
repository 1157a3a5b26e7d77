"""ClipStore: one on-disk format for real clips, generated pools and synthetic previews.

Layout of a store directory::

    store.json      spec, class names, counts — written LAST, so its presence means "complete"
    manifest.json   one record per kept clip (array order) + the skipped files with reasons
    clips.u8        raw uint8, shape (N, T, H, W, 3), C-order — memory-mapped on read

Raw bytes (not .npy) so any tool can memory-map it given ``store.json``; uint8 so a
100k-clip pool of 8×64² clips is 9.8 GB on disk and never has to fit in RAM.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidistill.atomic import write_json_atomic
from vidistill.transforms import to_model_input

FORMAT = "vidistill-clipstore/1"
SHORT_POLICIES = ("loop", "pad")


@dataclass(frozen=True)
class ClipSpec:
    """How one fixed clip is cut from a video.

    ``stride`` is the temporal step between kept frames. Videos shorter than
    ``frames * stride`` follow ``short_policy``: ``loop`` wraps around to the first
    frame (keeps motion statistics), ``pad`` repeats the last frame.
    """

    frames: int = 8
    size: int = 64
    stride: int = 1
    short_policy: str = "loop"

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 8 or self.stride < 1:
            raise ValueError(f"bad clip spec {self}: need frames>=1, size>=8, stride>=1")
        if self.short_policy not in SHORT_POLICIES:
            raise ValueError(
                f"short_policy must be one of {SHORT_POLICIES}, got {self.short_policy!r}"
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.frames, self.size, self.size, 3)

    @property
    def clip_bytes(self) -> int:
        return int(np.prod(self.shape))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ClipRecord:
    """Manifest entry of one kept clip."""

    source: str
    label: int
    class_name: str
    split: str
    meta: dict[str, Any] = field(default_factory=dict)


class ClipStore:
    """Read side: memory-mapped clips plus manifest. Cheap to open; nothing is loaded eagerly."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        head = self.root / "store.json"
        if not head.is_file():
            hint = (
                " (an interrupted `vidistill prepare`? re-run it to resume)"
                if self.root.exists()
                else ""
            )
            raise FileNotFoundError(f"{self.root} is not a ClipStore: no store.json{hint}")
        info = json.loads(head.read_text())
        if info.get("format") != FORMAT:
            raise ValueError(
                f"{head}: unsupported format {info.get('format')!r}, expected {FORMAT!r}"
            )
        self.info_json = info
        self.spec = ClipSpec(**info["spec"])
        self.class_names: list[str] = list(info["class_names"])
        self.dataset: str = info.get("dataset", "unknown")
        manifest = json.loads((self.root / "manifest.json").read_text())
        self.records: list[dict[str, Any]] = manifest["clips"]
        self.skipped: list[dict[str, Any]] = manifest.get("skipped", [])
        n = len(self.records)
        self.labels = np.array([r["label"] for r in self.records], dtype=np.int64)
        self.splits = np.array([r["split"] for r in self.records], dtype=object)
        path = self.root / "clips.u8"
        expected = n * self.spec.clip_bytes
        if path.stat().st_size != expected:
            raise ValueError(
                f"{path}: {path.stat().st_size} bytes, expected {expected} for {n} clips"
            )
        self.videos = (
            np.memmap(path, dtype=np.uint8, mode="r", shape=(n, *self.spec.shape))
            if n
            else np.zeros((0, *self.spec.shape), np.uint8)
        )

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def indices(self, split: str | None = None, label: int | None = None) -> np.ndarray:
        """Clip indices (into this store) of a split and/or class."""
        mask = np.ones(len(self), dtype=bool)
        if split is not None:
            if split not in set(self.splits.tolist()):
                have = sorted(set(self.splits.tolist()))
                raise ValueError(f"{self.root}: no clips in split {split!r}; splits here: {have}")
            mask &= self.splits == split
        if label is not None:
            mask &= self.labels == label
        return np.flatnonzero(mask)

    def clips(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 ``(n,T,H,W,3)`` copy of the given clips.

        Read with ``pread`` (one call per run of consecutive clips), not through the memmap:
        pages touched through a mapping stay in the process's RSS, so a pass over a pool
        larger than RAM would show an RSS growing with the pool (benchmarks/bench_scale.py
        measured +83 MB over 1,280 clips). Read this way, the data sits only in the
        kernel's page cache, which it can drop.
        """
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), *self.spec.shape), dtype=np.uint8)
        if not len(idx):
            return out
        if idx.min() < -len(self) or idx.max() >= len(self):
            raise IndexError(f"{self.root}: clip index out of range for {len(self)} clips")
        idx = np.where(idx < 0, idx + len(self), idx)
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        is_sorted = bool(np.all(order == np.arange(len(idx))))
        buf = out if is_sorted else np.empty_like(out)
        cut = np.flatnonzero(np.diff(ordered) != 1) + 1
        size = self.spec.clip_bytes
        fd = os.open(self.root / "clips.u8", os.O_RDONLY)
        try:
            for a, b in zip(np.r_[0, cut], np.r_[cut, len(ordered)], strict=True):
                view = memoryview(buf[a:b].reshape(-1))
                offset, done = int(ordered[a]) * size, 0
                while done < len(view):
                    n = os.preadv(fd, [view[done:]], offset + done)
                    if n == 0:
                        raise ValueError(f"{self.root / 'clips.u8'}: file ends early (truncated?)")
                    done += n
        finally:
            os.close(fd)
        if not is_sorted:
            out[order] = buf
        return out

    def tensor(
        self, idx: Sequence[int] | np.ndarray, device: str | torch.device = "cpu"
    ) -> torch.Tensor:
        """Normalised float ``(n,3,T,H,W)`` for networks."""
        return to_model_input(torch.from_numpy(self.clips(idx)).to(device))

    def bytes_on_disk(self, idx: Sequence[int] | None = None) -> int:
        n = len(self) if idx is None else len(idx)
        return n * self.spec.clip_bytes

    def summary(self) -> dict[str, Any]:
        """What `vidistill info` prints: spec, counts per split and class, skipped files."""
        per_split: dict[str, dict[str, int]] = {}
        for split in sorted(set(self.splits.tolist())):
            counts = np.bincount(self.labels[self.splits == split], minlength=self.num_classes)
            per_split[split] = {c: int(k) for c, k in zip(self.class_names, counts, strict=True)}
        return {
            "root": str(self.root),
            "dataset": self.dataset,
            "spec": self.spec.to_dict(),
            "clips": len(self),
            "classes": self.num_classes,
            "bytes": self.bytes_on_disk(),
            "per_split": per_split,
            "skipped": self.skipped,
            **{k: v for k, v in self.info_json.items() if k in ("source", "created")},
        }


def write_store(
    root: str | Path,
    spec: ClipSpec,
    class_names: Sequence[str],
    clips: Iterable[np.ndarray],
    records: Sequence[ClipRecord | dict[str, Any]],
    skipped: Sequence[dict[str, Any]] = (),
    dataset: str = "unknown",
    extra: dict[str, Any] | None = None,
) -> ClipStore:
    """Write a complete store atomically: clips and manifest first, ``store.json`` last.

    ``clips`` is streamed (one array of shape ``spec.shape`` or a batch of them at a
    time), so a pool never has to be in memory at once.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "store.json").unlink(missing_ok=True)  # the store is incomplete from here on
    tmp = root / ".clips.u8.tmp"
    n = 0
    with open(tmp, "wb") as fh:
        for clip in clips:
            arr = np.asarray(clip)
            if arr.dtype != np.uint8:
                raise TypeError(f"clips must be uint8, got {arr.dtype}")
            if arr.shape == spec.shape:
                arr = arr[None]
            if arr.shape[1:] != spec.shape:
                raise ValueError(f"clip shape {arr.shape[1:]} does not match spec {spec.shape}")
            fh.write(np.ascontiguousarray(arr).tobytes())
            n += arr.shape[0]
        fh.flush()
        os.fsync(fh.fileno())
    recs = [r if isinstance(r, dict) else asdict(r) for r in records]
    if n != len(recs):
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{n} clips but {len(recs)} manifest records")
    for r in recs:
        if not 0 <= int(r["label"]) < len(class_names):
            raise ValueError(f"label {r['label']} out of range for {len(class_names)} classes")
    os.replace(tmp, root / "clips.u8")
    write_json_atomic(root / "manifest.json", {"clips": recs, "skipped": list(skipped)})
    head = {
        "format": FORMAT,
        "dataset": dataset,
        "spec": spec.to_dict(),
        "class_names": list(class_names),
        "count": n,
        **(extra or {}),
    }
    write_json_atomic(root / "store.json", head)
    return ClipStore(root)
