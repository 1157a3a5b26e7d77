"""Toy selection grid: every registered selector at VPC 1, 5, 10 on the REAL toy training
pool, beside full-real and random, evaluated with ConvNet3D (preset toy-quick), 10 paired runs.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/toy_selection_grid.py [--dataset toy] [--out DIR]
    python benchmarks/toy_selection_grid.py --quick --work /tmp/x --out /tmp/x/out  # smoke test

Every selector, VST-UNet included, reads the same ``--embedder`` (default ``classifier``):
VST-UNet then treats each row as a (D, 1, 1, 1) latent. Its paper input, VAE latents, is
a separate run: ``vidistill embed STORE --embedder latent --weights GEN_RUN`` and
``--embedder latent --plan vst-unet@1 vst-unet@5 vst-unet@10 --no-analysis``.

Data: ``--dataset toy`` (default: the UCF-like toy, context correlated with the class) or
``toy-motion`` (the class is the motion only), prepared under ``WORK/<dataset>``.
Embeddings: the ``classifier`` embedder (toy-quick ConvNet3D trained on all real training
clips, seed 0), computed once.

Paired protocol (DESIGN §4): ``--runs`` (default 10) runs per row; run ``s`` re-runs the
method's selection with seed ``s`` (``select_store(..., seed=s)``, saved under
``OUT/selections/``) and trains evaluator net ``s`` on it; ``random`` draws its subset with
seed ``s`` from the same pool. Each method row thus gets a paired IOR against random
(mean, 95 % t-interval, verdict) in results.json / results.md. No default row runs fewer
than ``--runs``; a selector whose own fitting is expensive (``vst-unet`` trains a VST-UNet
per selection seed) may be cut with ``--runs-for vst-unet=5`` — the row records its
seeds and its IOR pairs only the seeds both rows ran. Each seed's one-run row is cached
in ``OUT/runs/`` and rows are merged into results.json as they finish, so a killed grid
resumes at the seed it was on. Each row also records sub-mode coverage: the mean number
of distinct visual sub-modes (manifest meta "mode", 4 per class) among a class's selected
clips (averaged over the runs' selections) — how much of the class's variety a VPC set
keeps.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from paired_grid import (
    DATASETS,
    DEFAULT_RUNS,
    dataset_options,
    has_seeds,
    paired_row,
    parse_runs_for,
    per_run_mean,
    prepare_store,
    seeds_for,
)
from vidistill import registry
from vidistill.atomic import write_json_atomic
from vidistill.clipstore import ClipStore
from vidistill.commands.app import parse_key_values
from vidistill.evaluate import (
    Recipe,
    TrainingSet,
    evaluate,
    format_markdown_table,
    full_real,
    load_results,
    random_indices,
    random_subset,
    update_results,
)
from vidistill.evaluate.paired import format_ior
from vidistill.evaluate.protocol import TrainSource
from vidistill.select import select_store

ROOT = Path(__file__).resolve().parent


def mode_coverage(store: ClipStore, idx: np.ndarray) -> float:
    modes = np.array([store.records[i]["meta"].get("mode", -1) for i in idx])
    labels = store.labels[idx]
    return float(np.mean([len(set(modes[labels == c].tolist())) for c in np.unique(labels)]))


def analyse(
    store: ClipStore, embedder: str, vpcs: list[int], methods: list[str], runs: int
) -> dict:
    """No training: how good are the embeddings, and which sub-modes does each method keep?

    * ``class_1nn`` — leave-one-out 1-NN class accuracy of the training embeddings;
    * ``mode_1nn`` — within each class, leave-one-out 1-NN accuracy at predicting the
      clip's visual sub-mode (chance 25%): can the embedding *see* the sub-modes at all?
    * ``coverage`` — mean distinct sub-modes per class among the selected clips.
    """
    from vidistill.embed import EmbeddingFile, embeddings_path

    f = EmbeddingFile(embeddings_path(store.root, embedder))
    x = torch.from_numpy(f.rows(0, f.n))
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    nn = d.argmin(1).numpy()
    modes = np.array([store.records[i]["meta"].get("mode", -1) for i in f.indices])
    same_class = f.labels[:, None] == f.labels[None]
    d_in = d.masked_fill(~torch.from_numpy(same_class), float("inf"))
    nn_in = d_in.argmin(1).numpy()
    out = {
        "class_1nn": float(np.mean(f.labels[nn] == f.labels)),
        "mode_1nn": float(np.mean(modes[nn_in] == modes)),
        "coverage": {},
    }
    for vpc in vpcs:
        rnd = [mode_coverage(store, random_indices(store, vpc, s)) for s in range(max(runs, 20))]
        out["coverage"][f"random@{vpc}"] = float(np.mean(rnd))
        for m in methods:
            sel = select_store(store, m, vpc, seed=0, embedder=embedder, progress=False)
            idx = np.array([i for v in sel["indices"].values() for i in v])
            out["coverage"][f"{m}@{vpc}"] = mode_coverage(store, idx)
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", choices=DATASETS, default="toy")
    ap.add_argument("--work", type=Path, default=Path("/tmp/vidistill_toy_grid"))
    ap.add_argument("--store", type=Path, help="store to use (default: WORK/<dataset>, prepared)")
    ap.add_argument(
        "--out", type=Path, help="default: benchmarks/results/toy_selection_grid_paired_<dataset>"
    )
    ap.add_argument("--vpcs", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument(
        "--methods", nargs="+", default=None, help="default: every registered selector but random"
    )
    ap.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="paired runs per row")
    ap.add_argument(
        "--runs-for",
        nargs="+",
        metavar="METHOD=N",
        help="fewer runs for a method whose own fitting is expensive (e.g. vst-unet=5)",
    )
    ap.add_argument("--preset", default="toy-quick")
    ap.add_argument("--embedder", default="classifier")
    ap.add_argument("--no-full-real", action="store_true")
    ap.add_argument(
        "--embedder-epochs", type=int, help="classifier embedder: epochs (default: the preset's)"
    )
    ap.add_argument(
        "--plan",
        nargs="+",
        help="explicit rows in order: METHOD@VPC, METHOD:key=value,...@VPC (an option "
        "variant, e.g. vst-unet:losses=ce@5 for Table 6), or full-real",
    )
    ap.add_argument(
        "--analyse-only", action="store_true", help="embedding/coverage analysis, no training"
    )
    ap.add_argument(
        "--no-analysis", action="store_true", help="skip the embedding/coverage analysis"
    )
    ap.add_argument(
        "--markdown-only", action="store_true", help="rewrite OUT/results.md from results.json"
    )
    ap.add_argument(
        "--toy-options", nargs="+", metavar="K=V", help="dataset knobs, e.g. num_classes=3"
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test only: a 3-class 6+2-clip toy, 1 evaluator epoch (no min_steps), "
        "1 embedder epoch (vdsd recipe)",
    )
    args = ap.parse_args()
    args.out = args.out or ROOT / "results" / f"toy_selection_grid_paired_{args.dataset}"
    return args


def make_plan(args: argparse.Namespace, methods: list[str]) -> list[tuple[str, int | None]]:
    """Rows in order: ``--plan`` as given, else per VPC random then the methods; full-real last."""
    if args.plan:  # explicit order, e.g. random@5 tac-dt@5 full-real
        return [(m, int(v) if v else None) for m, _, v in (i.partition("@") for i in args.plan)]
    plan: list[tuple[str, int | None]] = []
    for vpc in args.vpcs:
        plan += [("random", vpc)] + [(m, vpc) for m in methods]
    if not args.no_full_real:  # last: the most expensive row (every training clip)
        plan.append(("full-real", None))
    return plan


def seed_selection(
    store: ClipStore, method: str, vpc: int, seed: int, embedder: str, out: Path
) -> dict:
    """The method's selection with seed ``seed``, saved (and reused) under ``out``.

    ``method`` may carry options, ``NAME:key=value,key=value`` (e.g. ``vst-unet:losses=ce``
    for a Table-6 ablation row); the row is labelled with the whole string."""
    name, options = split_method(method)
    path = out / "selections" / f"{safe_name(method)}_vpc{vpc}_seed{seed}.json"
    if path.is_file():
        sel = json.loads(path.read_text())
        if sel.get("embedder") in (embedder, None) and sel.get("store") == str(store.root):
            return sel
    path.parent.mkdir(parents=True, exist_ok=True)
    return select_store(
        store, name, vpc, seed=seed, embedder=embedder, progress=False, out=path, **options
    )


def split_method(method: str) -> tuple[str, dict]:
    """``"vst-unet:losses=ce,epochs=50"`` → ``("vst-unet", {"losses": "ce", "epochs": 50})``."""
    name, _, opts = method.partition(":")
    return name, parse_key_values(tuple(o for o in opts.split(",") if o))


def safe_name(method: str) -> str:
    return method.replace(":", "__").replace("=", "-").replace(",", "_")


def seed_source(
    store: ClipStore, method: str, vpc: int | None, args: argparse.Namespace
) -> tuple[TrainSource, Callable[[int], dict]]:
    """``(train source, per-seed extras)`` of a row: random and methods are redone per seed."""
    if method == "full-real":
        return full_real(store), lambda s: {"mode_coverage": 4.0}
    if method == "random":
        return (
            lambda s: random_subset(store, vpc, s),
            lambda s: {"mode_coverage": mode_coverage(store, random_indices(store, vpc, s))},
        )

    def source(s: int) -> TrainingSet:
        sel = seed_selection(store, method, vpc, s, args.embedder, args.out)
        return TrainingSet.from_store(store, selected(sel))

    def extra(s: int) -> dict:
        sel = seed_selection(store, method, vpc, s, args.embedder, args.out)
        return {
            "mode_coverage": mode_coverage(store, selected(sel)),
            "select_seconds": sel["seconds"],
        }

    return source, extra


def selected(sel: dict) -> np.ndarray:
    return np.array([i for v in sel["indices"].values() for i in v])


def run_row(
    store: ClipStore, method: str, vpc: int | None, recipe: Recipe, args: argparse.Namespace
) -> dict | None:
    """Evaluate one row seed by seed (cached), merge it into results.json; None if done."""
    results = args.out / "results.json"
    seeds = seeds_for(method, args.runs, args.runs_for)
    this = (method, vpc, recipe.to_dict())
    if any((r["method"], r["vpc"], r.get("recipe")) == this and has_seeds(r, seeds)
           for r in load_results(results)):  # fmt: skip
        print(f"skip {method} vpc={vpc} (done)")
        return None
    source, extra = seed_source(store, method, vpc, args)
    pool = str(store.root)

    def one_seed(s: int) -> dict:
        row = evaluate(
            source,
            store,
            recipe,
            runs=1,
            seed=s,
            method=method,
            vpc=vpc,
            source=f"{args.dataset}-real-train",
            pool=pool,
            progress=False,
        )
        row["per_run"][0].update(extra(s))
        return row

    key = {"recipe": recipe.to_dict(), "embedder": args.embedder, "store": pool}
    cache = args.out / "runs" / f"{safe_name(method)}_vpc{vpc}"
    row = paired_row(cache, seeds, key, one_seed)
    row["mode_coverage"] = per_run_mean(row, "mode_coverage")
    if method not in ("random", "full-real"):
        row["select_seconds"] = per_run_mean(row, "select_seconds")
        row["embedder"] = args.embedder
        row["selection"] = "redone per run seed (paired)"
    elif method == "random":
        row["selection"] = "fresh draw per run seed (paired)"
    merged = update_results(results, [row])
    return next(r for r in merged if r["method"] == method and r["vpc"] == vpc)


def write_markdown(args: argparse.Namespace) -> None:
    rows = sorted(
        load_results(args.out / "results.json"), key=lambda r: (r["vpc"] or 10**9, r["method"])
    )
    md = format_markdown_table(rows)
    md += "\n\nSub-mode coverage (distinct modes among a class's selected clips, of 4):\n\n"
    md += "\n".join(
        f"- {r['method']} VPC {r['vpc']}: {r.get('mode_coverage') or float('nan'):.2f}"
        for r in rows
        if r["vpc"]
    )
    md += "\n\n" + paper_tables(rows)
    (args.out / "results.md").write_text(md + "\n")


def paper_tables(rows: list[dict]) -> str:
    """Table-2/4-shaped grid (method × VPC: top-1 mean ± std and the paired IOR) and the
    Table-6-shaped VST-UNet loss ablation (``vst-unet:losses=…`` rows)."""
    vpcs = sorted({r["vpc"] for r in rows if r["vpc"]})
    methods = sorted({r["method"] for r in rows if r["vpc"]}, key=lambda m: (m != "random", m))
    cell = {(r["method"], r["vpc"]): r for r in rows}

    def fmt(r: dict | None) -> str:
        if r is None:
            return "not run"
        ior = "" if r["method"] == "random" else f" (IOR {format_ior(r)})"
        return f"{r['top1_mean']:.1f} ± {r['top1_std']:.1f}{ior}"

    head = "| method | " + " | ".join(f"VPC {v}" for v in vpcs) + " |"
    lines = ["Paper-shaped grid (top-1 %, mean ± std over the runs; IOR = paired difference",
             "to random, 95 % t-interval, verdict):", "", head,
             "|---" * (len(vpcs) + 1) + "|"]  # fmt: skip
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(fmt(cell.get((m, v))) for v in vpcs) + " |")
    full = [r for r in rows if r["method"] == "full-real"]
    if full:
        lines.append(f"| full-real | {full[-1]['top1_mean']:.1f} ± {full[-1]['top1_std']:.1f} |")
    ablation = {"ce": "vst-unet:losses=ce", "ce+div": "vst-unet:losses=ce+div",
                "ce+rep": "vst-unet:losses=ce+rep", "ce+div+rep": "vst-unet"}  # fmt: skip
    if any((name, 5) in cell for name in list(ablation.values())[:3]):
        lines += ["", "VST-UNet losses at VPC 5 (paper Table 6 shape):", "",
                  "| CE | Div | Rep | top-1 | IOR vs random |", "|---|---|---|---|---|"]  # fmt: skip
        for losses, name in ablation.items():
            r = cell.get((name, 5))
            marks = ["✓", "✓" if "div" in losses else "", "✓" if "rep" in losses else ""]
            acc = f"{r['top1_mean']:.1f} ± {r['top1_std']:.1f}" if r else "not run"
            lines.append(f"| {' | '.join(marks)} | {acc} | {format_ior(r) if r else ''} |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if args.markdown_only:
        write_markdown(args)
        print(args.out / "results.md")
        return
    from vidistill.embed import embed_store, embeddings_path

    args.runs_for = parse_runs_for(args.runs_for)
    if args.store:
        store = ClipStore(args.store)
    else:
        opts = dataset_options(args.toy_options, args.quick)
        store = prepare_store(args.work, args.dataset, opts)
    # TAC-DT first (the paper's method, beside random), then the baselines: on 2 shared
    # cores a killed grid should have the comparison that matters most.
    methods = args.methods or sorted(
        (m for m in registry.names("selector") if m != "random"),
        key=lambda m: (m != "tac-dt", m),
    )
    plan = make_plan(args, methods)
    needs_embeddings = args.analyse_only or any(m not in ("random", "full-real") for m, _ in plan)
    if needs_embeddings and not embeddings_path(store.root, args.embedder).is_file():
        t0 = time.perf_counter()
        opts = {"epochs": args.embedder_epochs} if args.embedder_epochs else {}
        if args.quick:  # full width but no min_steps: one epoch is a few steps
            opts = {"recipe": "vdsd", "epochs": 1}
        embed_store(store, args.embedder, seed=0, progress=False, **opts)
        print(f"embedder ready in {time.perf_counter() - t0:.0f}s")
    recipe = Recipe.preset(args.preset)
    if args.quick:
        recipe = recipe.with_(epochs=1, min_steps=0)
    args.out.mkdir(parents=True, exist_ok=True)
    if needs_embeddings and not args.no_analysis:
        info = analyse(store, args.embedder, args.vpcs, methods, args.runs)
        write_json_atomic(args.out / "analysis.json", info)
        print(json.dumps(info, indent=2), flush=True)
    if args.analyse_only:
        return
    for method, vpc in plan:
        row = run_row(store, method, vpc, recipe, args)
        if row is not None:
            ior = format_ior(row, digits=2)
            print(
                f"{method:10s} vpc={vpc}: top1 {row['top1_mean']:.2f} ± {row['top1_std']:.2f}  "
                f"IOR {ior}  AUC {row['auc_mean']:.2f}  F1 {row['f1_mean']:.2f}  "
                f"modes {row.get('mode_coverage')}  ({row['seconds_total']:.0f}s)",
                flush=True,
            )
        write_markdown(args)
    print(
        json.dumps(
            {"results": str(args.out / "results.json"), "markdown": str(args.out / "results.md")}
        )
    )


if __name__ == "__main__":
    main()
