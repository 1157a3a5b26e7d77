"""How hard is toy for small training sets? Random real subsets (and full-real) per variant.

    OMP_NUM_THREADS=1 python benchmarks/toy_difficulty_probe.py \
        --variant motion_scale=3 object_scale=2 --vpcs 1 5 10 0 --runs 2

``--vpcs 0`` means full-real (every training clip). Each VPC row is ``--runs`` fresh
networks (seeds 0, 1, ...) on a fresh random draw per run, through the same evaluator and
``toy-quick`` recipe as every method. This is how the toy defaults (``motion_scale=3``,
``object_scale=2``) were chosen: only random subsets and full-real were looked at, never a
selector or synthesizer (docs/toy.md has the table).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial

from vidistill.clipstore import ClipSpec
from vidistill.commands.app import parse_key_values
from vidistill.datasets.toy import ToyDataset
from vidistill.evaluate import Recipe, evaluate, full_real, random_subset
from vidistill.prepare import prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", nargs="*", default=[], help="ToyDataset knobs, KEY=VALUE")
    ap.add_argument("--vpcs", type=int, nargs="+", default=[1, 5, 10, 0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--preset", default="toy-quick")
    args = ap.parse_args()
    knobs = parse_key_values(args.variant)
    recipe = Recipe.preset(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        store = prepare(ToyDataset(**knobs), tmp, spec=ClipSpec(frames=8, size=64), progress=False)
        for vpc in args.vpcs:
            t0 = time.perf_counter()
            # a fixed set, or a fresh random draw per run seed
            source = full_real(store) if vpc == 0 else partial(random_subset, store, vpc)
            row = evaluate(
                source,
                store,
                recipe,
                runs=args.runs,
                seed=0,
                method="random",
                vpc=vpc or None,
                progress=False,
            )
            print(
                f"{knobs or 'defaults'} {'full-real' if vpc == 0 else f'random VPC {vpc}'}: "
                f"top-1 {row['top1_mean']:.1f} ± {row['top1_std']:.1f} over {args.runs} runs "
                f"(train acc {row['train_acc_mean']:.0f}; {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
