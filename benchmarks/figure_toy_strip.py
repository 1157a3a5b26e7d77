"""Figures: one training clip per class (rows), 8 frames (columns), for both toys.

    python benchmarks/figure_toy_strip.py

→ docs/img/toy_strip.png (UCF-like ``toy``; the rows cycle through the modes),
docs/img/toy_motion_strip.png (``toy-motion``) and docs/img/toy_rotate_cw.gif.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from vidistill.datasets.toy import ToyDataset
from vidistill.datasets.toy_motion import ToyMotionDataset
from vidistill.prepare import prepare
from vidistill.report import clip_gif, frame_strip

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def strip(dataset, path: Path) -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = prepare(dataset, tmp, workers=1, progress=False)
        # One clip per class, cycling through the visual modes.
        idx = [int(store.indices("train", c)[c % 4]) for c in range(store.num_classes)]
        labels = [store.class_names[store.labels[i]] for i in idx]
        frame_strip(store.clips(idx), path, scale=2, labels=labels)
        if path.name == "toy_strip.png":
            clip_gif(store.clips([idx[4]])[0], OUT / "toy_rotate_cw.gif")
    return idx


if __name__ == "__main__":
    strip(ToyDataset(train_per_class=8, test_per_class=1), OUT / "toy_strip.png")
    strip(ToyMotionDataset(train_per_class=8, test_per_class=1), OUT / "toy_motion_strip.png")
    print(f"wrote {OUT}/toy_strip.png, toy_motion_strip.png, toy_rotate_cw.gif")
