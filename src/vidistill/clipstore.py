"""ClipStore: one on-disk format for real clips, generated pools and synthetic previews.

Layout of a store directory::

    store.json      spec, class names, counts — written LAST, so its presence means "complete"
    manifest.json   one record per kept clip (array order) + the skipped files with reasons
    clips.u8        raw uint8, shape (N, T, H, W, 3), C-order — memory-mapped on read

Raw bytes (not .npy) so any tool can memory-map it given ``store.json``; uint8 so a
100k-clip pool of 8×64² clips is 9.8 GB on disk and never has to fit in RAM.

``store.json`` carries a CRC-32 of itself and of ``manifest.json`` (checked on open: a
damaged store is refused, naming the file, instead of read with wrong labels); the size of
``clips.u8`` is checked against the clip count. Its pixels carry no checksum — hashing
gigabytes on every open would cost more than it protects, and any byte is a valid pixel.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidistill.atomic import json_default, named_os_error, write_json_atomic
from vidistill.errors import CorruptArtifact
from vidistill.fieldcheck import check_kinds
from vidistill.integrity import read_json
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
        check_kinds(self, "clip spec")
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
        remake = _remake(self.root)
        info = read_json(head, remake, self.root)
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            fmt = info.get("format") if isinstance(info, dict) else None
            raise ValueError(f"{head}: unsupported format {fmt!r}, expected {FORMAT!r}")
        _check_crc(head, info, _head_crc(info), "crc32", remake)
        self.info_json = info
        try:
            self.spec = ClipSpec(**info["spec"])
            self.class_names: list[str] = [str(c) for c in info["class_names"]]
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptArtifact(
                head, f"bad spec or class names: {err}", remake, self.root
            ) from err
        self.dataset: str = info.get("dataset", "unknown")
        mpath = self.root / "manifest.json"
        if not mpath.is_file():
            raise CorruptArtifact(mpath, "missing", remake, self.root)
        raw = mpath.read_bytes()
        _check_crc(mpath, info, f"{zlib.crc32(raw):08x}", "manifest_crc32", remake)
        manifest = read_json(mpath, remake, self.root)
        self.records, self.skipped = _manifest_records(mpath, manifest, info, remake)
        n = len(self.records)
        self.labels = np.array([r["label"] for r in self.records], dtype=np.int64)
        self.splits = np.array([r["split"] for r in self.records], dtype=object)
        path = self.root / "clips.u8"
        expected = n * self.spec.clip_bytes
        size = path.stat().st_size if path.is_file() else None
        if size != expected:
            have = "missing" if size is None else f"{size} bytes"
            raise CorruptArtifact(
                path, f"{have}, expected {expected} for {n} clips", remake, self.root
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


def _remake(root: Path) -> str:
    """The command that writes the store at ``root`` (for 'delete it and re-run ...')."""
    if root.name == "preview":
        return f"`vidistill synthesize` for {root.parent}"
    if root.name == "pool" or "generated" in root.name:
        return "`vidistill generate sample` for it"
    return f"`vidistill prepare` into {root}"


def _head_crc(head: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in head.items() if k != "crc32"}, sort_keys=True)
    return f"{zlib.crc32(body.encode()):08x}"


def _check_crc(path: Path, head: dict[str, Any], actual: str, key: str, remake: str) -> None:
    """Stores written before the CRCs existed have none: nothing to check."""
    if key in head and head[key] != actual:
        raise CorruptArtifact(
            path, "checksum mismatch: its bytes changed after writing", remake, path.parent
        )


def _manifest_records(
    path: Path, manifest: Any, head: dict[str, Any], remake: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The manifest's clip records, each checked for a label in range and a split name."""
    clips = manifest.get("clips") if isinstance(manifest, dict) else None
    if not isinstance(clips, list):
        raise CorruptArtifact(path, "no 'clips' list", remake, path.parent)
    num_classes = len(head.get("class_names", []))
    for i, r in enumerate(clips):
        ok = (
            isinstance(r, dict)
            and isinstance(r.get("label"), int)
            and 0 <= r["label"] < num_classes
            and isinstance(r.get("split"), str)
        )
        if not ok:
            raise CorruptArtifact(
                path, f"record {i} is not a clip with a valid label", remake, path.parent
            )
    if "count" in head and head["count"] != len(clips):
        raise CorruptArtifact(
            path,
            f"{len(clips)} records but store.json says {head['count']} clips",
            remake,
            path.parent,
        )
    skipped = manifest.get("skipped", [])
    return clips, skipped if isinstance(skipped, list) else []


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
    try:
        n = _write_clips(tmp, spec, clips)
        recs = [r if isinstance(r, dict) else asdict(r) for r in records]
        if n != len(recs):
            raise ValueError(f"{n} clips but {len(recs)} manifest records")
        for r in recs:
            if not 0 <= int(r["label"]) < len(class_names):
                raise ValueError(f"label {r['label']} out of range for {len(class_names)} classes")
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a pool-sized temp file on a full disk
        raise
    os.replace(tmp, root / "clips.u8")
    manifest = write_json_atomic(root / "manifest.json", {"clips": recs, "skipped": list(skipped)})
    head = {
        "format": FORMAT,
        "dataset": dataset,
        "spec": spec.to_dict(),
        "class_names": list(class_names),
        "count": n,
        **(extra or {}),
        "manifest_crc32": f"{zlib.crc32(manifest.read_bytes()):08x}",
    }
    head["crc32"] = _head_crc(json.loads(json.dumps(head, default=json_default)))
    write_json_atomic(root / "store.json", head)
    return ClipStore(root)


def _write_clips(tmp: Path, spec: ClipSpec, clips: Iterable[np.ndarray]) -> int:
    """Stream ``clips`` into ``tmp`` (fsynced); the number of clips written."""
    n = 0
    try:
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
    except OSError as err:
        named = named_os_error(err, tmp.with_name("clips.u8"))
        if named is err:
            raise
        raise named from err
    return n
