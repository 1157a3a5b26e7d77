"""A tiny real ClipStore on disk (2 classes, 2 clips of 2×8² pixels) for parser tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidistill.clipstore import ClipRecord, ClipSpec, write_store


def tiny_store(root: Path) -> Path:
    spec = ClipSpec(frames=2, size=8)
    recs = [ClipRecord("a", 0, "a", "train"), ClipRecord("b", 1, "b", "test")]
    clips = (np.full(spec.shape, i, np.uint8) for i in range(len(recs)))
    return write_store(root, spec, ["a", "b"], clips, recs).root
