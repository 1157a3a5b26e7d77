"""Benchmark: is toy a real video problem? Single frame vs whole clip, same classifier, same recipe.

The single-frame model sees the middle frame repeated T times (so the network, its
FLOPs and the recipe are identical); only the motion is removed. On a motion-defined
dataset its accuracy should sit near chance while the clip model's is far above.

    python benchmarks/bench_toy_single_frame.py [--runs 2] [--epochs N] [--width W]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from vidistill.datasets.toy import ToyDataset
from vidistill.evaluate import Recipe, TrainingSet, classification_metrics, predict, train_net
from vidistill.prepare import prepare


def single_frame(videos: torch.Tensor) -> torch.Tensor:
    mid = videos.shape[1] // 2
    return videos[:, mid : mid + 1].expand_as(videos).contiguous()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="default: the toy-quick preset's")
    ap.add_argument("--width", type=float, default=None)
    args = ap.parse_args()
    recipe = Recipe.preset("toy-quick", epochs=args.epochs, width=args.width)
    with tempfile.TemporaryDirectory() as tmp:
        store = prepare(ToyDataset(), tmp, progress=False)
        train = TrainingSet.from_store(store, split="train")
        test = TrainingSet.from_store(store, split="test")
        views = {
            "clip (8 frames)": (train, test),
            "single frame": (
                TrainingSet.from_tensors(
                    single_frame(train.videos), train.labels, store.class_names
                ),
                TrainingSet.from_tensors(single_frame(test.videos), test.labels, store.class_names),
            ),
        }
        print(
            f"toy: {len(train)} train / {len(test)} test clips, {store.num_classes} classes; "
            f"recipe {recipe.net} width {recipe.width}, {recipe.epochs} epochs, batch {recipe.batch_size}"
        )
        for name, (tr, te) in views.items():
            accs = []
            t = time.perf_counter()
            for run in range(args.runs):
                model, _ = train_net(tr, recipe, seed=run)
                accs.append(classification_metrics(te.labels, predict(model, te, recipe))["top1"])
            sec = (time.perf_counter() - t) / args.runs
            print(
                f"{name:16s} top-1 {100 * np.mean(accs):5.1f} ± {100 * np.std(accs):4.1f} %  "
                f"(chance {100 / store.num_classes:.0f} %, {sec:.0f} s/run)"
            )


if __name__ == "__main__":
    main()
