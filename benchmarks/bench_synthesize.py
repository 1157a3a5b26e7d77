"""Synthesis costs: seconds per iteration and peak RSS per method as the class count grows.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_synthesize.py --classes 2 6 --iterations 2

Each (method, classes) cell runs ``vidistill synthesize`` in its own process on a toy store
with ``--per-class`` training clips per class, so the peak RSS is that run's alone. With
class-by-class updates the per-step working set is one class, so seconds/iteration should
grow ~linearly with the class count while the peak RSS grows only by the (small) learned
tensors of the extra classes — not by their real clips or activations.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--methods", nargs="+", default=["dm", "idtd", "vdsd"])
    ap.add_argument("--classes", type=int, nargs="+", default=[2, 6])
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--vpc", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--net-width", type=float, default=0.25)
    ap.add_argument("--real-batch", type=int, default=16)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()

    from vidistill.clipstore import ClipSpec
    from vidistill.datasets.toy import ToyDataset
    from vidistill.prepare import prepare

    work = args.work or Path(tempfile.mkdtemp(prefix="vidistill_bench_synth_"))
    print("| method | classes | VPC | s / iteration | peak RSS MB | learned MB |")
    print("|---|---|---|---|---|---|")
    for c in args.classes:
        store = work / f"toy{c}"
        if not (store / "store.json").is_file():
            ds = ToyDataset(num_classes=c, train_per_class=args.per_class, test_per_class=1, seed=0)
            prepare(ds, store, spec=ClipSpec(frames=8, size=64), workers=1, progress=False)
        for method in args.methods:
            out = work / f"{method}_{c}"
            cmd = [
                sys.executable,
                "-m",
                "vidistill.cli",
                "synthesize",
                str(store),
                "--method",
                method,
                "--vpc",
                str(args.vpc),
                "--iterations",
                str(args.iterations),
                "--out",
                str(out),
                "--net-width",
                str(args.net_width),
                "--real-batch",
                str(args.real_batch),
                "--quiet",
                "--no-preview",
            ]
            if method == "vdsd":
                cmd += ["-o", "static_fraction=0"]  # time the (dearer) dynamic stage
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            meta = json.loads((out / "done.json").read_text())
            learned = meta.get("parameterisation_bytes", meta["bytes_stored"]) / 2**20
            print(
                f"| {method} | {c} | {args.vpc} | {meta['seconds_per_iteration']:.2f} | "
                f"{meta['peak_rss_mb']:.0f} | {learned:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
