"""Figure: docs/img/toy_strip.png — one toy training clip per class (rows), 8 frames (columns).

python benchmarks/figure_toy_strip.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare
from vidistill.report import clip_gif, frame_strip

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        store = prepare(ToyDataset(train_per_class=8, test_per_class=1), tmp, progress=False)
        # One clip per class, cycling through the 4 visual sub-modes.
        idx = [int(store.indices("train", c)[c % 4]) for c in range(store.num_classes)]
        frame_strip(store.clips(idx), OUT / "toy_strip.png", scale=2, labels=store.class_names)
        clip_gif(store.clips([idx[4]])[0], OUT / "toy_rotate_cw.gif")
    print(f"wrote {OUT / 'toy_strip.png'} and {OUT / 'toy_rotate_cw.gif'}")
