"""Selection cost at scale: wall time and peak RSS of tac-dt, k-center and herding.

    OMP_NUM_THREADS=2 python benchmarks/bench_select.py [--sizes 1000 10000 100000] [--dim 1408]

Synthetic pool (stated): C classes (default 10) of D=1408 vectors (VideoMAE-v2-giant
size), each class a mixture of 8 Gaussian sub-modes (centres N(0, 3²), spread N(0, 1)),
written once per size to a streamed embeddings file exactly as `vidistill embed` writes
it. Each (method, size) runs in a fresh subprocess that reads the class rows from that
file (``safe_open`` slices) like `vidistill select`, so the peak RSS (``ru_maxrss``) is that
one selection's, not the benchmark's. VPC = 10. Times exclude writing the file. CPU
seconds (user + system, all threads) are printed beside wall time because on a shared
machine wall time mostly measures the other tenants.

The default memory budget is 64 MB, so the sizes show both paths: a class is streamed
when it is larger than a quarter of the budget (``ClassData.fits_in_memory``; at D=1408,
2,978 rows), i.e. the 100k pool's 10k-clip classes stream (IncrementalPCA,
``Birch.partial_fit``, one streamed pass per k-center/herding pick) while the 1k and 10k
pools' classes are read whole. The ``path`` column says which one ran; `vidistill
select`'s own default (1,024 MB) would read all three pools in memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vidistill.embed.store import EmbeddingFile, StreamingSafetensorsWriter
from vidistill.evaluate.costs import peak_rss_mb

MODES = 8


def make_pool(path: Path, n: int, dim: int, classes: int, seed: int = 0) -> None:
    if path.is_file():
        return
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, MODES, dim)).astype(np.float32)
    labels = np.arange(n) % classes  # interleaved, as a store's classes usually are
    w = StreamingSafetensorsWriter(
        path,
        {
            "embeddings": (np.float32, (n, dim)),
            "indices": (np.int64, (n,)),
            "labels": (np.int64, (n,)),
        },
        {"embedder": "synthetic", "split": "train"},
    )
    w.write_rows("indices", 0, np.arange(n))
    w.write_rows("labels", 0, labels)
    for s in range(0, n, 8192):
        lab = labels[s : s + 8192]
        mode = rng.integers(0, MODES, len(lab))
        block = centres[lab, mode] + rng.normal(size=(len(lab), dim)).astype(np.float32)
        w.write_rows("embeddings", s, block)
    w.commit()


def run_one(path: Path, method: str, vpc: int, budget_mb: int) -> dict:
    from vidistill.select import ClassData, run_selector

    f = EmbeddingFile(path)
    t0, c0 = time.perf_counter(), time.process_time()
    streamed = []
    for c in np.unique(f.labels):
        pos = np.flatnonzero(f.labels == c)
        data = ClassData(
            f"c{c}", int(c), len(pos), f.dim, reader=f, positions=pos, budget_bytes=budget_mb << 20
        )
        streamed.append(not data.fits_in_memory)
        run_selector(method, data, vpc, seed=0)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    path_taken = "streamed" if all(streamed) else "in memory" if not any(streamed) else "mixed"
    return {
        "method": method,
        "n": f.n,
        "path": path_taken,
        "budget_mb": budget_mb,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--dim", type=int, default=1408)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--vpc", type=int, default=10)
    ap.add_argument("--methods", nargs="+", default=["tac-dt", "k-center", "herding"])
    ap.add_argument(
        "--memory-budget-mb",
        type=int,
        default=64,
        help="per-class budget; classes over a quarter of it are streamed (see the module doc)",
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/vidistill_bench_select"))
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.one[1]), args.one[0], args.vpc, args.memory_budget_mb)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"memory budget {args.memory_budget_mb} MB")
    print("| method | pool | classes | D | VPC | path | wall s | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        path = args.work / f"pool_{n}_{args.dim}_{args.classes}.safetensors"
        make_pool(path, n, args.dim, args.classes)
        for method in args.methods:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    method,
                    str(path),
                    "--vpc",
                    str(args.vpc),
                    "--memory-budget-mb",
                    str(args.memory_budget_mb),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(classes=args.classes, dim=args.dim, vpc=args.vpc)
            rows.append(row)
            print(
                f"| {method} | {n} | {args.classes} | {args.dim} | {args.vpc} | {row['path']} "
                f"| {row['seconds']:.2f} | {row['cpu_seconds']:.2f} | {row['peak_rss_mb']:.0f} |",
                flush=True,
            )
    (args.work / "bench_select.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
