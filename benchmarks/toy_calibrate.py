"""Calibrate a toy against the real benchmarks — with random subsets, full-real and one frame only.

    OMP_NUM_THREADS=1 python benchmarks/toy_calibrate.py --dataset toy --variant hue_spread=40 \
        --runs 10 --full-runs 3

Prints one Markdown row per variant: full-real (every training clip), single frame (the same
net and recipe fed the middle frame repeated, so only the motion is removed; as a fraction of
the clip accuracy), and random real VPC 1 / 5 with the normalised gain
g = (acc − chance) / (full − chance). Targets (DESIGN §2, from MiniUCF's ConvNet3D numbers):
``toy`` g(1) 0.10–0.20, g(5) 0.30–0.45, single frame 50–85 % of the clip;
``toy-motion`` single frame at chance. No selector or synthesizer is ever run here: the toys
are calibrated blind to the methods they will rank.

Each variant's summary is written to ``--results`` (one JSON per variant, parts saved as
they finish, so a killed calibration resumes where it stopped), and the full evaluator rows
(full-real, random VPC k: the docs' reference tables) to ``<same name>.results.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vidistill import registry
from vidistill.atomic import write_json_atomic
from vidistill.clipstore import ClipSpec
from vidistill.commands.app import parse_key_values
from vidistill.evaluate import (
    Recipe,
    TrainingSet,
    evaluate,
    format_markdown_table,
    full_real,
    load_results,
    random_subset,
    update_results,
)
from vidistill.prepare import prepare

RESULTS = Path(__file__).resolve().parent / "results" / "toy_calibration"


def single_frame(ts: TrainingSet) -> TrainingSet:
    """The middle frame repeated T times: same shapes, same net, no motion."""
    v = ts.videos
    mid = v.shape[1] // 2
    still = v[:, mid : mid + 1].expand_as(v).contiguous()
    return TrainingSet.from_tensors(still, ts.labels, ts.class_names)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("top1_mean", "top1_std", "auc_mean", "train_acc_mean", "runs", "seeds", "seconds")
    return {k: row[k] for k in keep} | {"per_run_top1": [p["top1"] for p in row["per_run"]]}


def calibrate(
    dataset: str,
    knobs: dict[str, Any],
    runs: int,
    full_runs: int,
    vpcs: list[int],
    preset: str,
    out: Path,
    store_dir: Path | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    record.update({"dataset": dataset, "knobs": knobs, "preset": preset})
    recipe = Recipe.preset(preset)
    ds = registry.get("dataset", dataset)(**knobs)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = prepare(
            ds, store_dir or tmp, spec=ClipSpec(frames=8, size=64), workers=1, progress=False
        )
        record["prepare_seconds"] = round(time.perf_counter() - t0, 1)
        # name → (evaluator method, VPC, training source, runs), in the order they run (the
        # last, costliest VPC after the single frame); single frame is special
        parts: dict[str, tuple[str, int | None, Any, int]] = {
            "full-real": ("full-real", None, lambda: full_real(store), full_runs),
            **{f"random-vpc{v}": ("random", v, lambda v=v: partial(random_subset, store, v), runs)
               for v in vpcs[:-1]},
            "single-frame": ("single-frame", None, None, full_runs),
            **{f"random-vpc{v}": ("random", v, lambda v=v: partial(random_subset, store, v), runs)
               for v in vpcs[-1:]},
        }  # fmt: skip
        for name, (method, vpc, make, n) in parts.items():
            if name in record and record[name]["runs"] >= n:
                continue
            if make is None:
                test = single_frame(TrainingSet.from_store(store, split="test"))
                row = _evaluate_frames(single_frame(full_real(store)), test, store, recipe, n)
            else:
                # A kept store is the pool later commands pair with (`vidistill evaluate
                # --out` the same results.json reuses these random rows); a temporary one is
                # named by dataset and variant.
                where = str(store_dir) if store_dir else out.stem
                row = evaluate(make(), store, recipe, runs=n, seed=0, method=method, vpc=vpc,
                               source=where, pool=where, progress=False)  # fmt: skip
                update_results(out.with_suffix(".results.json"), [row])
            record[name] = _summary(row)
            write_json_atomic(out, record)
            print(f"  {name}: {row['top1_mean']:.1f} ± {row['top1_std']:.1f} ({n} runs)",
                  flush=True)  # fmt: skip
    chance = 100.0 / store.num_classes
    full = record["full-real"]["top1_mean"]
    record["chance"] = chance
    record["single_frame_ratio"] = record["single-frame"]["top1_mean"] / full
    for v in vpcs:
        record[f"g{v}"] = (record[f"random-vpc{v}"]["top1_mean"] - chance) / (full - chance)
    write_json_atomic(out, record)
    return record


def _evaluate_frames(
    train: TrainingSet, test: TrainingSet, store: Any, recipe: Recipe, runs: int
) -> dict[str, Any]:
    """The evaluator protocol on an in-memory test set (the single-frame view of the test split)."""
    from vidistill.evaluate import classification_metrics, predict, train_net

    accs, aucs, train_accs, secs = [], [], [], []
    for s in range(runs):
        t0 = time.perf_counter()
        model, stats = train_net(train, recipe, seed=s, progress=False)
        m = classification_metrics(test.labels.numpy(), predict(model, test, recipe, seed=s),
                                   store.num_classes, scores_are_probs=True)  # fmt: skip
        accs.append(100 * m["top1"])
        aucs.append(100 * m["auc"])
        train_accs.append(100 * stats.train_acc)
        secs.append(time.perf_counter() - t0)
    return {
        "top1_mean": float(np.mean(accs)), "top1_std": float(np.std(accs)),
        "auc_mean": float(np.mean(aucs)), "train_acc_mean": float(np.mean(train_accs)),
        "runs": runs, "seeds": list(range(runs)), "seconds": float(np.mean(secs)),
        "per_run": [{"top1": a} for a in accs],
    }  # fmt: skip


def markdown_row(rec: dict[str, Any], vpcs: list[int]) -> str:
    knobs = " ".join(f"{k}={v}" for k, v in rec["knobs"].items()) or "defaults"
    fr, sf = rec["full-real"], rec["single-frame"]
    cells = [
        f"`{rec['dataset']}` {knobs}",
        f"{fr['top1_mean']:.1f} ± {fr['top1_std']:.1f} ({fr['runs']})",
        f"{sf['top1_mean']:.1f} ({100 * rec['single_frame_ratio']:.0f} %)",
    ]
    for v in vpcs:
        r = rec[f"random-vpc{v}"]
        cells.append(f"{r['top1_mean']:.1f} ± {r['top1_std']:.1f} (g = {rec[f'g{v}']:.2f})")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="toy", choices=["toy", "toy-motion"])
    ap.add_argument("--variant", nargs="*", default=[], help="dataset knobs, KEY=VALUE")
    ap.add_argument("--runs", type=int, default=10, help="runs per random VPC row")
    ap.add_argument("--full-runs", type=int, default=3, help="runs of full-real and single frame")
    ap.add_argument("--vpcs", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--preset", default="toy-quick")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--store", type=Path, help="keep the prepared store here (default: temporary)")
    args = ap.parse_args()
    knobs = parse_key_values(args.variant)
    tag = "_".join(f"{k}={v}" for k, v in sorted(knobs.items())) or "defaults"
    out = args.results / f"{args.dataset}__{tag}.json"
    rec = calibrate(
        args.dataset, knobs, args.runs, args.full_runs, args.vpcs, args.preset, out, args.store
    )
    head = ["variant", "full-real %", "single frame % (of clip)"]
    head += [f"random VPC {v} % (g)" for v in args.vpcs]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    print(markdown_row(rec, args.vpcs))
    rows = load_results(out.with_suffix(".results.json"))
    if rows:
        print("\n" + format_markdown_table(rows))


if __name__ == "__main__":
    main()
