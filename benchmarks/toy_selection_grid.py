"""Toy selection grid: every registered selector at VPC 1, 5, 10 on the REAL toy training
pool, beside full-real and random, evaluated with ConvNet3D (preset toy-quick), 3 runs.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/toy_selection_grid.py [--work DIR] [--out DIR]

VST-UNet runs on VAE latents (the paper's input): embed them first
(``vidistill embed STORE --embedder latent --weights GEN_RUN``) and add its rows with
``--embedder latent --plan vst-unet@1 vst-unet@5 vst-unet@10 --no-analysis``.

Embeddings: the ``classifier`` embedder (half-width ConvNet3D, toy-quick recipe, trained on
all real training clips, seed 0). Selections use seed 0; each is evaluated by 3 fresh
networks (seeds 0, 1, 2), so their std is training noise only. ``random`` is the
evaluator's own reference: a fresh draw per run (seed 0, 1, 2). Each row also records
sub-mode coverage: the mean number of distinct visual sub-modes (manifest meta "mode",
4 per class) among a class's selected clips — how much of the class's variety a VPC set
keeps. Rows are saved as they finish (results.json), so a killed grid resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vidistill import registry
from vidistill.clipstore import ClipSpec, ClipStore
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/vidistill_toy_grid"))
    ap.add_argument("--store", type=Path, help="toy store to use (default: WORK/toy, prepared)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "toy_selection_grid")
    ap.add_argument("--vpcs", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument(
        "--methods", nargs="+", default=None, help="default: every registered selector but random"
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--preset", default="toy-quick")
    ap.add_argument("--embedder", default="classifier")
    ap.add_argument("--no-full-real", action="store_true")
    ap.add_argument(
        "--embedder-epochs", type=int, help="classifier embedder: epochs (default: the preset's)"
    )
    ap.add_argument("--plan", nargs="+", help="explicit rows in order: METHOD@VPC or full-real")
    ap.add_argument(
        "--analyse-only", action="store_true", help="embedding/coverage analysis, no training"
    )
    ap.add_argument(
        "--no-analysis", action="store_true", help="skip the embedding/coverage analysis"
    )
    args = ap.parse_args()

    from vidistill.datasets.toy import ToyDataset
    from vidistill.embed import embed_store, embeddings_path
    from vidistill.prepare import prepare

    store_dir = args.store or args.work / "toy"
    if not (store_dir / "store.json").is_file():
        prepare(ToyDataset(), store_dir, spec=ClipSpec(frames=8, size=64), workers=1)
    store = ClipStore(store_dir)
    # TAC-DT first (the paper's method, beside random), then the baselines: on 2 shared
    # cores a killed grid should have the comparison that matters most.
    methods = args.methods or sorted(
        (m for m in registry.names("selector") if m not in ("random", "vst-unet")),
        key=lambda m: (m != "tac-dt", m),
    )
    plan: list[tuple[str, int | None]] = []
    if args.plan:  # explicit order, e.g. random@5 tac-dt@5 full-real
        for item in args.plan:
            m, _, v = item.partition("@")
            plan.append((m, int(v) if v else None))
    else:
        for vpc in args.vpcs:
            plan += [("random", vpc)] + [(m, vpc) for m in methods]
        if not args.no_full_real:  # last: the most expensive row (every training clip)
            plan.append(("full-real", None))
    needs_embeddings = args.analyse_only or any(m not in ("random", "full-real") for m, _ in plan)
    if needs_embeddings and not embeddings_path(store_dir, args.embedder).is_file():
        t0 = time.perf_counter()
        opts = {"epochs": args.embedder_epochs} if args.embedder_epochs else {}
        embed_store(store, args.embedder, seed=0, **opts)
        print(f"embedder ready in {time.perf_counter() - t0:.0f}s")
    recipe = Recipe.preset(args.preset)
    args.out.mkdir(parents=True, exist_ok=True)
    if needs_embeddings and not args.no_analysis:
        info = analyse(store, args.embedder, args.vpcs, methods, args.runs)
        (args.out / "analysis.json").write_text(json.dumps(info, indent=2) + "\n")
        print(json.dumps(info, indent=2), flush=True)
    if args.analyse_only:
        return
    results = args.out / "results.json"
    # a row counts as done only if it was trained with the CURRENT recipe (presets change)
    done = {
        (r["method"], r["vpc"])
        for r in load_results(results)
        if r.get("recipe") == recipe.to_dict()
    }

    def run(method: str, vpc: int | None, source, extra: dict) -> None:
        if (method, vpc) in done:
            print(f"skip {method} vpc={vpc} (done)")
            return
        row = evaluate(
            source,
            store,
            recipe,
            runs=args.runs,
            seed=0,
            method=method,
            vpc=vpc,
            source="toy-real-train",
            progress=False,
        )
        row.update(extra)
        update_results(results, [row])
        print(
            f"{method:10s} vpc={vpc}: top1 {row['top1_mean']:.2f} ± {row['top1_std']:.2f}  "
            f"AUC {row['auc_mean']:.2f}  F1 {row['f1_mean']:.2f}  "
            f"modes {extra.get('mode_coverage')}"
            f"  ({row['seconds_total']:.0f}s)",
            flush=True,
        )

    for method, vpc in plan:
        if method == "full-real":
            run(method, None, full_real(store), {"mode_coverage": 4.0})
        elif method == "random":
            cov = float(
                np.mean(
                    [mode_coverage(store, random_indices(store, vpc, s)) for s in range(args.runs)]
                )
            )
            run(
                method,
                vpc,
                lambda s, v=vpc: random_subset(store, v, s),
                {"mode_coverage": cov, "selection": "fresh draw per run"},
            )
        else:
            sel = select_store(
                store,
                method,
                vpc,
                seed=0,
                embedder=args.embedder,
                progress=False,
                out=args.out / f"selection_{method}_vpc{vpc}.json",
            )
            idx = np.array([i for v in sel["indices"].values() for i in v])
            run(
                method,
                vpc,
                TrainingSet.from_store(store, idx),
                {
                    "mode_coverage": mode_coverage(store, idx),
                    "select_seconds": sel["seconds"],
                    "embedder": args.embedder,
                },
            )
        rows = sorted(load_results(results), key=lambda r: (r["vpc"] or 10**9, r["method"]))
        md = format_markdown_table(rows)
        md += "\n\nSub-mode coverage (distinct modes among a class's selected clips, of 4):\n\n"
        md += "\n".join(
            f"- {r['method']} VPC {r['vpc']}: {r.get('mode_coverage', float('nan')):.2f}"
            for r in rows
            if r["vpc"]
        )
        (args.out / "results.md").write_text(md + "\n")
    print(json.dumps({"results": str(results), "markdown": str(args.out / "results.md")}))


if __name__ == "__main__":
    main()
