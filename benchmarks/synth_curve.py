"""Print how a synthesis run's loss evolved: each term's means over blocks of iterations,
how far the set moved from its initialisation, and its time — to choose iteration counts.

    python benchmarks/synth_curve.py runs/idtd_vpc1 [more synthesis folders] [--block 50]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidistill.synthesize.history import block_means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", type=Path, nargs="+", help="folders written by vidistill synthesize")
    ap.add_argument("--block", type=int, default=50, help="iterations per block")
    args = ap.parse_args()
    for run in args.runs:
        done = json.loads((run / "done.json").read_text())
        print(
            f"{run}: {done['method']} VPC {done['vpc']}, {done['iterations']} its in "
            f"{done['seconds']:.0f} s ({done['seconds_per_iteration']:.2f} s/it), moved "
            f"{done['moved_from_init']}"
        )
        for term, vals in block_means(done["history"], block=args.block).items():
            print(f"  {term:>10}: " + " ".join(f"{v:.4g}" for v in vals))


if __name__ == "__main__":
    main()
