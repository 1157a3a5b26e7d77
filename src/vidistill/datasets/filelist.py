"""Shared base of the real-dataset adapters (UCF101, MiniUCF, HMDB51, Kinetics-400, SSv2).

Each adapter reads the dataset's *own* split files (or a benchmark CSV shipped with
vidistill) and turns them into a fixed, deterministic list of ``(file, class, split)``.
Why it looks like this:

* **Listing never touches the videos.** Real copies are partial (YouTube take-downs in
  Kinetics, half-finished downloads), so a listed file that is absent is not an error
  at listing time: ``load`` raises :class:`VideoError` ``"missing file ..."`` and
  ``prepare`` skips and records it, like a corrupt file. Only a layout that cannot be
  right (no split files, no video folder at all) fails early, naming what was expected.
* **Cheap to pickle.** ``prepare`` ships the adapter to worker processes with every
  job; the item list (240k entries for Kinetics) is dropped from the pickled state and
  rebuilt on demand, since workers only call ``load``.
* **Class subsets** (``classes=[...]``) keep the dataset's class order and renumber
  labels 0..k-1; ``describe()`` records the subset, so a store says what it holds.
"""

from __future__ import annotations

import csv
import importlib.resources
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidistill import video  # module, not name: safe when vidistill.video is imported first
from vidistill.clipstore import ClipSpec
from vidistill.datasets.base import Dataset, VideoError, VideoItem

# A listed video: (path relative to root, class name, store split, meta).
Row = tuple[str, str, str, dict[str, Any]]

# VDSD's light-weight track (UCF101, MiniUCF, HMDB51): 16 frames, 112², stride 4.
LIGHT_SPEC = ClipSpec(frames=16, size=112, stride=4)
# Heavy track (K400, SSv2): 8 frames, 64². The paper states no stride; we keep the light
# track's 4, which spans 32 source frames (~1.1 s of K400 at 25–30 fps, ~2.7 s of SSv2 at 12 fps).
HEAVY_SPEC = ClipSpec(frames=8, size=64, stride=4)


def resource_path(name: str) -> Path:
    """A file shipped in ``vidistill/resources`` (class lists, benchmark split CSVs)."""
    return Path(str(importlib.resources.files("vidistill") / "resources" / name))


def read_resource_csv(name: str) -> list[dict[str, str]]:
    with open(resource_path(name), newline="") as fh:
        return list(csv.DictReader(fh))


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines (the official split files use CRLF and trailing blanks)."""
    return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]


def first_dir(root: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


class FileListDataset(Dataset):
    """Base: subclasses implement ``_list()`` → (class order, rows); the rest is shared."""

    layout: str = ""  # the expected on-disk layout, quoted in every layout error

    def __init__(self, root: str | Path, classes: Sequence[str] | str | None = None):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.name}: dataset root {self.root} does not exist; expected {self.layout}"
            )
        if isinstance(classes, str):
            classes = [c.strip() for c in classes.split(",") if c.strip()]
        self.class_subset: list[str] | None = list(classes) if classes else None
        self._items: list[VideoItem] | None = None

    # -- subclass API -------------------------------------------------------------------
    @abstractmethod
    def _list(self) -> tuple[list[str], list[Row]]:
        """Full class order and every listed video of the chosen split definition."""

    def _candidates(self, item: VideoItem) -> list[str]:
        """Relative paths to try for ``item`` (first existing wins); layouts with known
        variants (Kinetics) add alternatives here."""
        return [item.source]

    def _describe(self) -> dict[str, Any]:
        return {}

    # -- shared -------------------------------------------------------------------------
    def _build(self) -> list[VideoItem]:
        order, rows = self._list()
        if self.class_subset is not None:
            unknown = [c for c in self.class_subset if c not in order]
            if unknown:
                raise ValueError(
                    f"{self.name}: unknown class(es) {unknown}; valid names are e.g. {order[:5]} "
                    f"({len(order)} classes)"
                )
            keep = set(self.class_subset)
            order = [c for c in order if c in keep]
        index = {c: i for i, c in enumerate(order)}
        self.class_names = order
        items = [
            VideoItem(src, index[c], c, split, meta) for src, c, split, meta in rows if c in index
        ]
        if not items:
            raise FileNotFoundError(
                f"{self.name}: no videos listed under {self.root}; expected {self.layout}"
            )
        return items

    def items(self) -> list[VideoItem]:
        if self._items is None:
            self._items = self._build()
        return list(self._items)

    def load(self, item: VideoItem, spec: ClipSpec) -> np.ndarray:
        tried = self._candidates(item)
        for rel in tried:
            path = self.root / rel
            if path.is_file():
                return video.decode_clip(path, spec)
        also = f" (also tried {', '.join(tried[1:])})" if len(tried) > 1 else ""
        raise VideoError(f"missing file {self.root / tried[0]}{also}")

    def default_spec(self) -> ClipSpec:
        return LIGHT_SPEC

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": self.name,
            "root": str(self.root),
            **self._describe(),
            "classes": self.class_subset or "all",
        }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_items"] = None  # workers only call load(); rebuilt lazily if ever needed
        return state
