"""Benchmark: `prepare` clips/s vs a bare PyAV decode loop over the same files, same cores.

The bare loop opens each file and decodes every frame (no colour conversion, no
resize, no writes) in a pool of the same size: the floor any decoder-based cache must
pay. Prints both rates and their ratio (aim ≥ 0.8).

    python benchmarks/bench_prepare.py [--videos 60] [--frames 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np

from vidistill.clipstore import ClipSpec
from vidistill.datasets.folder import FolderDataset
from vidistill.prepare import prepare
from vidistill.video import write_video


def bare_decode(path: str) -> int:
    with av.open(path) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def make_videos(root: Path, n: int, frames: int, h: int, w: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        split = "train" if i % 4 else "test"
        base = rng.uniform(0, 255, (1, h // 8, w // 8, 3))
        still = np.kron(base, np.ones((1, 8, 8, 1)))[0]
        video = np.stack([np.roll(still, 2 * t, axis=1) for t in range(frames)])  # a panning camera
        video = np.clip(video + rng.normal(0, 8, video.shape), 0, 255).astype(np.uint8)
        paths.append(write_video(root / split / f"class{i % 5}" / f"v{i:04d}.mp4", video))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=60)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "videos"
        paths = make_videos(root, args.videos, args.frames, args.height, args.width)
        t = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            decoded = sum(pool.map(bare_decode, [str(p) for p in paths]))
        bare = time.perf_counter() - t
        assert decoded == args.videos * args.frames
        t = time.perf_counter()
        spec = ClipSpec(frames=16, size=112, stride=4)
        store = prepare(
            FolderDataset(root),
            Path(tmp) / "store",
            spec=spec,
            workers=args.workers,
            progress=False,
        )
        ours = time.perf_counter() - t
        assert len(store) == args.videos
    print(
        f"videos: {args.videos} × {args.frames} frames {args.width}×{args.height} h264, workers {args.workers}"
    )
    print(f"bare PyAV decode loop : {args.videos / bare:7.1f} videos/s ({bare:.2f} s)")
    print(
        f"vidistill prepare     : {args.videos / ours:7.1f} clips/s  ({ours:.2f} s, 16×112², stride 4)"
    )
    print(f"ratio prepare / bare  : {bare / ours:.2f}  (aim ≥ 0.8)")


if __name__ == "__main__":
    main()
