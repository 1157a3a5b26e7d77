"""Toy grid for the synthesizers: DM vs IDTD vs VDSD vs Random vs Herding at VPC 1 and 5,
and IDTD's Table 3 / Table 4 ablations at VPC 1, 10 paired runs. Writes results JSON + Markdown.

    OMP_NUM_THREADS=1 python benchmarks/toy_synthesis_grid.py --iterations 100 [--dataset toy]

Smoke test (seconds): add ``--quick --iterations 2 --runs 2 --vpcs 1 --rows random dm
--work /tmp/x --out /tmp/x/out``.

Protocol (stated, the same for every row): ``--dataset toy`` (default: the UCF-like toy,
10 classes, 100 train / 30 test per class, 8×64²) or ``toy-motion``; every training set is
evaluated with ``Recipe.preset("toy-quick")`` (quarter-width ConvNet3D, 30 epochs, ≥ 300
steps, VDSD's SGD recipe, no augmentation, final epoch, centred test clip), mean ± std
(population). Paired runs (DESIGN §4): ``--runs`` (default 10) per row; run ``s`` distils
the row's synthetic set anew with synthesis seed ``s`` (``WORK/<store>_synth/<tag>_vpc<V>
_seed<s>``), re-runs Herding's selection with seed ``s``, draws Random's subset with seed
``s`` from the same real pool, and trains evaluator net ``s`` on it — so every row gets a
paired IOR against Random (mean, 95 % t-interval, verdict; ``idtd+τ`` has none: it is
evaluated under another recipe than Random). No default row runs fewer; synthesis is each
seed's cost (one core at 300 / 400 iterations: IDTD at VPC 5 ~34 min per seed, VDSD ~10 min;
docs/synthesis.md), so a row may be cut
with ``--runs-for idtd=5`` (plan keys as in ``--rows``); IOR then pairs the seeds both rows
ran. Synthesis runs in a subprocess (``vidistill synthesize --seed s``, i.e.
``vidistill.synthesize.runner.synthesize(..., seed=s)``) so its wall time and peak RSS are
its own. All synthesizers get the same matching-net width and real batch; iterations are
``--iterations`` or, per method (and VPC), ``--iterations-for dm=800 idtd=300`` — each loss
flattens at its own pace (``benchmarks/synth_curve.py`` shows it). Each seed's loss curve
(block means) is kept and plotted (``OUT/loss_curves_vpc<V>.png``); the tables add paired
contrasts (IDTD − DM, variants − base, ablations − full IDTD) and IDTD's Table 3 / 4 in
the paper's shape (✓/✗ switches read from ``IDTDConfig``; the paper's MiniUCF figures
beside them). ``dm+aug`` is DM with its clip-consistent Siamese augmentation in matching
(``-o augment=clip``), beside plain ``dm`` (VDSD's DM). ``--standardize batch`` evaluates
every row, Random included, with VDSD's per-batch standardisation (its own results folder).
Opt-in rows (``--rows``): ``idtd-strided`` (the paper-literal stride-K fusor), ``idtd-printed``
/ ``idtd-text`` / ``idtd-normalised`` (the other L_div forms), ``vdsd-all`` (all 4 pairs per
slot every evaluator epoch). The IDTD row "idtd +τ" is the paper's evaluation (its stochastic temporal
augmentation on at training time, §4.3) and is labelled as such; every other row has no
augmentation. IDTD's main rows and its ablations start the Feature Pool from real clips
(``--idtd-init real``, DM's init: at a CPU budget of ~10² iterations a noise-initialised
pool has not left noise); the paper's noise init is its own row at VPC 1. Herding uses the ``classifier`` embedder (a toy-quick net trained on the
real training split); ``--embeddings-from STORE`` reuses that file from an identical
store (same clips byte for byte) instead of retraining it.

Each seed's synthetic set (``done.json``) and one-run evaluation (``OUT/runs/``) are cached,
and a row is skipped once the results JSON has it with all its seeds, so an interrupted
grid resumes at the seed it was on.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

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
from vidistill.atomic import write_bytes_atomic, write_json_atomic
from vidistill.clipstore import ClipStore
from vidistill.commands.app import parse_key_values
from vidistill.evaluate.paired import attach_ior, format_ior, paired_ior, partner_key
from vidistill.integrity import file_sha256
from vidistill.synthesize.history import block_means

ROOT = Path(__file__).resolve().parent

ABLATIONS_T3 = [
    ("t3-a", "IDTD T3-A stitch"),
    ("t3-b", "IDTD T3-B densify only"),
    ("t3-c", "IDTD T3-C diversify only"),
]
ABLATIONS_T4 = [
    ("t4-a", "IDTD T4-A fusor L_M"),
    ("t4-b", "IDTD T4-B fusor L_M + L_div"),
    ("t4-c", "IDTD T4-C sel L_M + fusor L_M"),
]


_REAL_MEANS: dict[tuple[int, int], object] = {}


def heldout_matching(store: ClipStore, videos, labels, nets: int = 5, width: float = 0.25) -> float:
    """Σ_c ‖mean φ(real_c) − mean φ(set_c)‖² averaged over ``nets`` fresh random ConvNet3Ds
    that no synthesizer saw (seeds 10⁹ + i), over ALL real training clips of each class: does
    a set match the real distribution better than a random real subset does? φ = ``embed``,
    the synthesizers' matching embedding (grids before issue 15 used the pooled ``features``)."""
    import torch

    from vidistill.synthesize.common import fresh_net

    total = 0.0
    with torch.no_grad():
        for i in range(nets):
            net = fresh_net(store.num_classes, store.spec.frames, store.spec.size, width, 10**9 + i)
            for c in range(store.num_classes):
                if (i, c) not in _REAL_MEANS:
                    idx = store.indices("train", c)
                    feats = [net.embed(store.tensor(chunk)) for chunk in np.array_split(idx, 4)]
                    _REAL_MEANS[i, c] = torch.cat(feats).mean(0)
                syn = net.embed(videos[labels == c].float())
                total += float((_REAL_MEANS[i, c] - syn.mean(0)).pow(2).sum())
    return total / nets


def _load_rows(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def _fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _markdown(rows: list[dict], args) -> str:
    r0 = rows[0] if rows else {}
    rec = r0.get("recipe", {})
    head = (
        f"Toy synthesis grid ({r0.get('train_clips_total', '?')} real train clips) — evaluator "
        f"`{rec.get('preset_name', '?')}` (ConvNet3D width {rec.get('width')}, {rec.get('epochs')} "
        f"epochs, batch {rec.get('batch_size')}, min steps {rec.get('min_steps', 0)}), "
        f"paired runs (run s: synthesis / selection / random draw and evaluator all seed s), "
        f"mean ± std (population); IOR = paired top-1 difference to Random, mean [95 % "
        f"t-interval]. Synthesis: iterations per row (its), matching ConvNet3D width "
        f"{args.net_width}, real batch {args.real_batch}; synth s and RSS are per seed; moved = mean |Δ| of the "
        f"learned videos from their initialisation in uint8 grey levels, mean over seeds; "
        f"'IOR, neither diverged' is a diagnostic, not the result: the paired IOR over the "
        f"seeds where neither evaluator run was flagged diverged (their count).\n\n"
    )
    lines = [
        "| method | VPC | runs | top-1 % | IOR (95 % CI) | train acc % | clips | stored MiB "
        "| its | moved | synth s | synth peak RSS MB | eval s/run | diverged | IOR, neither diverged "
        "| held-out L_M |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    random_of = {partner_key(r): r for r in rows if r.get("method") == "random"}
    for r in rows:
        synth_s = r.get("synth_seconds")
        synth_m = r.get("synth_peak_rss_mb")
        lines.append(
            f"| {r['row']} | {r['vpc']} | {r['runs']} | {r['top1_mean']:.2f} ± "
            f"{r['top1_std']:.2f} | {format_ior(r, digits=2)} | "
            f"{r['train_acc_mean']:.1f} | {r['train_clips']} | {r['stored_bytes'] / 2**20:.2f} | "
            f"{r.get('synth_iterations') or '–'} | {_fmt(_mean_moved(r['per_run']), 1)} | "
            f"{'–' if synth_s is None else f'{synth_s:.0f}'} | "
            f"{'–' if synth_m is None else f'{synth_m:.0f}'} | {r['seconds']:.0f} | "
            f"{r['diverged_runs']} | {_ior_neither_diverged(r, random_of.get(partner_key(r)))} | "
            f"{_fmt(r.get('heldout_matching'))} |"
        )
    return (
        head
        + "\n".join(lines)
        + "\n"
        + _contrasts_markdown(rows, args)
        + _ablation_markdown(rows, args)
    )


def _ior_neither_diverged(row: dict, random_row: dict | None) -> str:
    """A diagnostic, not the result: the paired IOR over the seeds where neither this row's
    nor Random's evaluator run was flagged diverged — how much of an IOR is "this set is
    easier to fit under VDSD's recipe" rather than "this set teaches more"."""
    if random_row is None or row.get("ior_mean") is None:  # Random itself, or not paired
        return "–"
    mine, theirs = (
        {"per_run": [p for p in r["per_run"] if not p.get("diverged")]} for r in (row, random_row)
    )
    try:
        d = paired_ior(mine, theirs)
    except ValueError:  # no shared seed left
        return "–"
    if d["ior_runs"] < 2:
        return "–"
    low, high = d["ior_ci95"]
    return f"{d['ior_mean']:+.2f} [{low:+.2f}, {high:+.2f}] ({d['ior_runs']})"


# rows evaluated with IDTD's temporal augmentation τ (§4.3): idtd+τ's IOR is against
# random+τ, the same real random subsets under the same τ recipe (``attach_ior`` pairs by recipe)
TAU_ROWS = ("idtd+tau", "random+tau")
REAL_ROWS = ("random", "random+tau", "herding")  # subsets of the real clips, nothing learned

# paired contrasts beside IOR: the papers' claims (IDTD > DM), a variant against its base
# (augmentation, init), and IDTD's Table 3 / 4 ablations against the full method
CONTRASTS = [("idtd", "dm"), ("idtd+tau", "dm"), ("vdsd", "dm"), ("dm+aug", "dm")] + [
    (a, "idtd") for a in ("idtd-noise", *(k for k, _ in ABLATIONS_T3 + ABLATIONS_T4))
]


def _contrasts_markdown(rows: list[dict], args) -> str:
    """Paired differences between synthesis rows (same seeds → same evaluator seed and the
    same synthesis seed), mean [95 % t-interval], in top-1 points."""
    labels = row_labels(args)
    by_cell = {(r["row"], r["vpc"]): r for r in rows}
    lines = []
    for vpc in sorted({r["vpc"] for r in rows}):
        for a, b in CONTRASTS:
            ra, rb = (by_cell.get((labels.get(k, k), vpc)) for k in (a, b))
            if ra is None or rb is None:
                continue
            d = paired_ior(ra, rb)
            low, high = d["ior_ci95"]
            lines.append(
                f"| {labels.get(a, a)} − {labels.get(b, b)} | {vpc} | {d['ior_runs']} | "
                f"{d['ior_mean']:+.2f} [{low:+.2f}, {high:+.2f}] | {d['ior_verdict']} |"
            )
    if not lines:
        return ""
    return (
        "\nPaired contrasts (top-1 points, run s of each row shares seed s; mean [95 % "
        "t-interval]):\n\n| contrast | VPC | runs | difference | verdict |\n|---|---|---|---|---|\n"
        + "\n".join(lines)
        + "\n"
    )


# IDTD's ablation tables in the paper's shape (Table 3: modules, Table 4: losses): the
# switch columns are read from IDTDConfig itself, so a table says what actually trained;
# the paper's MiniUCF top-1 at VPC 1 (its Tables 3 / 4, "" = full IDTD) sits beside ours
# so the orderings can be compared (the absolute numbers cannot: another dataset and net)
ABLATION_TABLES = [
    (
        "Table 3 (modules)",
        ABLATIONS_T3,
        ("Feature Pool & Selectors", "Temporal Fusor"),
        lambda cfg: (cfg.learns_pool, cfg.learns_fusor),
        {"t3-a": 14.99, "t3-b": 18.40, "t3-c": 18.57, "": 22.52},
    ),
    (
        "Table 4 (losses)",
        ABLATIONS_T4,
        ("Selector L_M", "Selector L_div", "Fusor L_M"),
        lambda cfg: (cfg.loss_sel_match, cfg.loss_div, cfg.loss_fusor_match),
        {"t4-a": 13.82, "t4-b": 15.81, "t4-c": 20.04, "": 22.52},
    ),
]


def _ablation_markdown(rows: list[dict], args) -> str:
    """IDTD's Table 3 / 4 at each VPC that has ablation rows: ✓/✗ switches, top-1, IOR to
    Random and the paired difference to the full method (A, B, C as the paper letters them)."""
    from vidistill.synthesize.idtd import IDTDConfig

    labels = row_labels(args)
    by_cell = {(r["row"], r["vpc"]): r for r in rows}
    out = []
    for vpc in sorted({r["vpc"] for r in rows}):
        full = by_cell.get((labels["idtd"], vpc))
        for title, ablations, columns, switches, paper in ABLATION_TABLES:
            present = [(k, n) for k, n in ablations if (labels.get(k, k), vpc) in by_cell]
            if full is None or not present:
                continue
            paper_top1 = {k: f"{v:.2f}" if vpc == 1 else "–" for k, v in paper.items()}
            lines = [
                f"\nIDTD {title}, VPC {vpc} (init {args.idtd_init}; difference = paired, "
                "this row − full IDTD, top-1 points):\n",
                "| | " + " | ".join(columns) + " | top-1 % | IOR (95 % CI) | difference to IDTD "
                "| paper: MiniUCF top-1 % |",
                "|---" * (len(columns) + 5) + "|",
            ]
            for key, name in present:
                r = by_cell[(name, vpc)]
                d = paired_ior(r, full)
                low, high = d["ior_ci95"]
                marks = switches(IDTDConfig(ablation=key))
                lines.append(
                    f"| {key[-1].upper()} ({name}) | "
                    + " | ".join("✓" if m else "✗" for m in marks)
                    + f" | {r['top1_mean']:.2f} ± {r['top1_std']:.2f} | {format_ior(r, digits=2)} | "
                    f"{d['ior_mean']:+.2f} [{low:+.2f}, {high:+.2f}] {d['ior_verdict']} | "
                    f"{paper_top1[key]} |"
                )
            marks = switches(IDTDConfig())
            lines.append(
                f"| IDTD ({labels['idtd']}) | "
                + " | ".join("✓" if m else "✗" for m in marks)
                + f" | {full['top1_mean']:.2f} ± {full['top1_std']:.2f} | "
                f"{format_ior(full, digits=2)} | – | {paper_top1['']} |"
            )
            out.append("\n".join(lines) + "\n")
    return "".join(out)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", choices=DATASETS, default="toy")
    ap.add_argument("--work", type=Path, default=Path("/tmp/vidistill_synth_grid"))
    ap.add_argument("--iterations", type=int, default=60, help="synthesis iterations (all methods)")
    ap.add_argument(
        "--iterations-for",
        nargs="+",
        metavar="METHOD=N",
        help="per synthesizer (dm, idtd, vdsd), optionally per VPC (dm@5=300): each loss "
        "flattens at its own pace (e.g. dm=800 idtd=300); rows of a method share it (idtd+τ "
        "and the ablations: idtd's)",
    )
    ap.add_argument("--net-width", type=float, default=0.25, help="matching ConvNet3D width")
    ap.add_argument("--real-batch", type=int, default=16)
    ap.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="paired runs per row")
    ap.add_argument(
        "--runs-for",
        nargs="+",
        metavar="ROW=N",
        help="fewer runs for a row whose synthesis is expensive (e.g. idtd=5; keys of --rows)",
    )
    ap.add_argument("--vpcs", type=int, nargs="+", default=[1, 5])
    ap.add_argument(
        "--idtd-init",
        choices=("real", "noise"),
        default="real",
        help="pool init of the 'idtd' rows and ablations (the paper: noise; 'idtd-noise' row "
        "always uses it). real = DM's init, fair at a short CPU budget",
    )
    ap.add_argument(
        "--rows",
        nargs="+",
        default=None,
        help="subset: random herding dm dm+aug idtd idtd+tau random+tau vdsd idtd-noise t3-a "
        "t3-b t3-c t4-a t4-b t4-c (opt-in only: " + " ".join(OPT_IN) + ")",
    )
    ap.add_argument(
        "--standardize",
        choices=("batch",),
        default=None,
        help="evaluate EVERY row (Random too, so IOR stays paired) with VDSD's per-batch "
        "scalar standardisation (Recipe(standardize='batch')); default off",
    )
    ap.add_argument(
        "--embeddings-from",
        type=Path,
        default=None,
        help="identical toy store whose embeddings/classifier.safetensors to reuse for herding",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for results.json and results.md "
        "(default: benchmarks/results/toy_synthesis_grid_paired_<dataset>)",
    )
    ap.add_argument(
        "--merge-from",
        type=Path,
        nargs="*",
        default=[],
        help="also include the rows of these --out folders (e.g. blocks run in parallel)",
    )
    ap.add_argument(
        "--diagnose",
        action="store_true",
        help="only add the held-out matching loss to existing rows (no training)",
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
    std = f"_std{args.standardize}" if args.standardize else ""
    args.out = args.out or ROOT / "results" / f"toy_synthesis_grid_paired_{args.dataset}{std}"
    args.out_json, args.out_md = args.out / "results.json", args.out / "results.md"
    args.runs_for = parse_runs_for(args.runs_for)
    args.iterations_for = {
        k: int(v) for k, v in parse_key_values(tuple(args.iterations_for or ()), "dm=800").items()
    }
    unknown = {k for k in args.iterations_for if k.split("@")[0] not in ("dm", "idtd", "vdsd")}
    if unknown:
        ap.error(f"--iterations-for: unknown method(s) {sorted(unknown)}; use dm, idtd, vdsd")
    return args


def synth_settings(args: argparse.Namespace, method: str, vpc: int, options: dict) -> dict:
    """What a synthetic set depends on besides its seed and VPC — the per-seed cache key and
    the set's folder name (hashed). It holds the method's whole config, defaults included:
    a grid resumed in a later session recomputes a seed whose method defaults changed since."""
    config = registry.get("synthesizer", method).config_cls.from_options(
        {k: str(v) for k, v in options.items()}
    )
    return {
        "iterations": iterations_of(args, method, vpc),
        **{k: getattr(args, k) for k in ("net_width", "real_batch", "idtd_init")},
        "config": dataclasses.asdict(config),
    }


def iterations_of(args: argparse.Namespace, method: str, vpc: int) -> int:
    """A synthesizer's iteration count: ``--iterations-for`` ``METHOD@VPC``, then ``METHOD``,
    then ``--iterations``."""
    its = args.iterations_for
    return its.get(f"{method}@{vpc}", its.get(method, args.iterations))


def make_plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    plan: list[tuple[str, int]] = []
    for vpc in args.vpcs:
        plan += [
            (n, vpc)
            for n in ("random", "herding", "dm", "dm+aug", "idtd", "idtd+tau", "random+tau", "vdsd")
        ]
    if 1 in args.vpcs:
        plan += [(a, 1) for a, _ in ABLATIONS_T3 + ABLATIONS_T4]
        plan += [("idtd-noise", 1)]  # the paper's init, at the grid's (short) budget
    # opt-in rows (named in --rows): the paper-literal fusor layout, the other L_div forms,
    # VDSD's all-combinations evaluation
    wanted = set(args.rows or ())
    for opt_in in OPT_IN:
        plan += [(opt_in, vpc) for vpc in args.vpcs if opt_in in wanted]
    return plan


# opt-in rows: key → (label suffix, options on top of the idtd / vdsd defaults)
OPT_IN = {
    "idtd-strided": ("literal stride-K fusor", {"fusor": "strided"}),
    "idtd-printed": ("printed +L_div", {"div": "printed"}),
    "idtd-text": ("text −L_div, unbounded", {"div": "text"}),
    "idtd-normalised": ("−L_div on unit-norm φ", {"div": "normalised"}),
    "vdsd-all": ("all 4 pairs per slot each epoch", {"eval_pairs": "all"}),
}


def row_labels(args: argparse.Namespace) -> dict[str, str]:
    labels = dict(ABLATIONS_T3 + ABLATIONS_T4)
    labels.update(
        {
            "dm+aug": "dm (clip-consistent DSA in matching)",
            "idtd": f"idtd (init {args.idtd_init})",
            "idtd+tau": f"idtd+τ (init {args.idtd_init})",
            "random+tau": "random+τ",
            "idtd-noise": "idtd (init noise, paper)",
        }
    )
    for key, (what, _) in OPT_IN.items():
        method = key.split("-")[0]
        init = f", init {args.idtd_init}" if method == "idtd" else ""
        labels[key] = f"{method} ({what}{init})"
    return labels


def synth_job(key: str, idtd_init: str) -> tuple[str, str, dict]:
    """``(method, folder tag, options)`` of a synthetic row (idtd+τ reuses idtd's sets)."""
    if key in ("dm", "vdsd"):
        return key, key, {}
    if key == "dm+aug":
        return "dm", "dm_aug", {"augment": "clip"}
    if key == "vdsd-all":
        return "vdsd", "vdsd_all", dict(OPT_IN[key][1])
    if key in ("idtd", "idtd+tau", "idtd-noise"):
        init = "noise" if key == "idtd-noise" else idtd_init
        return "idtd", f"idtd_init{init}", {"init": init}
    opts: dict = {"init": idtd_init}
    if key in OPT_IN:
        opts.update(OPT_IN[key][1])
    else:
        opts["ablation"] = key
    return "idtd", f"idtd_{key}_init{idtd_init}", opts


def diagnose(rows: list[dict], store: ClipStore) -> None:
    """Add the held-out matching loss to existing rows (seed 0's sets), no training."""
    from synthesis_probe import row_sets  # the grid's row → its sets, seed by seed

    for r in rows:
        if "heldout_matching" in r:
            continue
        first = next(row_sets(r, store), None)  # seed 0's set; None for herding
        if first is None:
            continue
        _, videos, labs = first
        r["heldout_matching"] = heldout_matching(store, videos, labs)
        print(
            f"{r['row']} vpc={r['vpc']}: held-out matching {r['heldout_matching']:.4f}",
            flush=True,
        )


def _synth_summary(row: dict) -> dict:
    """Row-level synthesis costs from the per-seed records (mean time, max RSS)."""
    runs = row["per_run"]
    first = runs[0]
    return {
        "synth_dir": first["synth_dir"],  # seed 0's: the one --diagnose measures
        "synth_dirs": [p["synth_dir"] for p in runs],
        "synth_seconds": per_run_mean(row, "synth_seconds"),
        "synth_peak_rss_mb": max(p["synth_peak_rss_mb"] for p in runs),
        "stored_bytes": int(per_run_mean(row, "stored_bytes")),
        "synth_iterations": first["synth_iterations"],
        "synth_config": first["synth_config"],
        "synth_final_loss": first["synth_final_loss"],  # seed 0's (a dict of terms)
        "synth_seconds_per_iteration": per_run_mean(row, "synth_seconds_per_iteration"),
        "synth_seeds": [p["seed"] for p in runs],
    }


def _mean_moved(runs: list[dict]) -> float | None:
    """Mean over seeds of how far the set moved from its init (uint8 grey levels)."""
    moved = [
        p["synth_moved_from_init"]["mean_abs_levels"]
        for p in runs
        if p.get("synth_moved_from_init")
    ]
    return float(np.mean(moved)) if moved else None


def main() -> None:
    args = parse_args()
    from vidistill.evaluate import Recipe, TrainingSet, evaluate, random_subset, selection_set
    from vidistill.synthetic import SyntheticSet

    store = prepare_store(args.work, args.dataset, dataset_options(args.toy_options, args.quick))
    store_dir = store.root
    synth_root = args.work / f"{store_dir.name}_synth"
    recipe = Recipe.preset("toy-quick", standardize=args.standardize)
    if args.quick:
        recipe = recipe.with_(epochs=1, min_steps=0)
    labels = row_labels(args)
    rows = _load_rows(args.out_json)
    for other in args.merge_from:
        have = {(r["row"], r["vpc"]) for r in rows}
        rows += [r for r in _load_rows(other / "results.json") if (r["row"], r["vpc"]) not in have]
    wanted = set(args.rows) if args.rows else None

    def save() -> None:
        attach_ior(rows)  # each row against Random of the same pool, paired by seed
        write_json_atomic(args.out_json, rows)
        write_bytes_atomic(args.out_md, _markdown(rows, args).encode())
        plot_loss_curves(rows, args.out, args.dataset)

    if args.diagnose:
        diagnose(rows, store)
        save()
        return

    def synth(method: str, vpc: int, tag: str, options: dict, seed: int) -> tuple:
        settings = json.dumps(synth_settings(args, method, vpc, options), sort_keys=True).encode()
        out = synth_root / f"{tag}_vpc{vpc}_{hashlib.sha256(settings).hexdigest()[:8]}_seed{seed}"
        if not (out / "done.json").is_file():
            cmd = [
                sys.executable, "-m", "vidistill.cli", "synthesize", str(store_dir),
                "--method", method, "--vpc", str(vpc), "--out", str(out),
                "--iterations", str(iterations_of(args, method, vpc)), "--net-width", str(args.net_width),
                "--real-batch", str(args.real_batch), "--seed", str(seed),
                "--quiet", "--no-preview",
            ]  # fmt: skip
            for k, v in options.items():
                cmd += ["-o", f"{k}={v}"]
            subprocess.run(cmd, check=True)
        meta = json.loads((out / "done.json").read_text())
        extra = {
            "synth_dir": str(out),
            "synth_seconds": meta["seconds"],
            "synth_peak_rss_mb": meta["peak_rss_mb"],
            "stored_bytes": meta["bytes_stored"],
            "synth_iterations": meta["iterations"],
            "synth_config": meta["config"],
            "synth_final_loss": meta.get("final_loss"),
            "synth_seconds_per_iteration": meta.get("seconds_per_iteration"),
            "synth_moved_from_init": meta.get("moved_from_init"),
            "synth_loss_curve": block_means(meta.get("history", [])),
        }
        return TrainingSet.from_synthetic(SyntheticSet.load(out)), extra

    def herding(vpc: int, seed: int) -> tuple:
        from vidistill.embed import embed_store, embeddings_path
        from vidistill.select import select_store

        emb = embeddings_path(store_dir, "classifier")
        if not emb.is_file() and args.embeddings_from is not None:
            other = embeddings_path(args.embeddings_from, "classifier")
            if other.is_file() and file_sha256(args.embeddings_from / "clips.u8") == file_sha256(
                store_dir / "clips.u8"
            ):
                emb.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(other, emb)
                print(f"reusing classifier embeddings from {other}", flush=True)
        if not emb.is_file():
            embed_store(store, "classifier", seed=0, progress=False, **quick_embedder(args))
        t0 = time.perf_counter()
        sel = select_store(store, "herding", vpc, seed=seed, embedder="classifier", progress=False)
        extra = {"select_seconds": round(time.perf_counter() - t0, 2)}
        return selection_set(store, sel), extra

    def make_source(key: str, vpc: int):
        """``seed -> (TrainingSet, per-seed extras)`` of a plan row."""
        if key in ("random", "random+tau"):  # the same draws; random+τ evaluates them with τ
            return lambda s: (random_subset(store, vpc, s), {})
        if key == "herding":
            return lambda s: herding(vpc, s)
        method, tag, options = synth_job(key, args.idtd_init)
        return lambda s: synth(method, vpc, tag, options, s)

    def record(key: str, vpc: int) -> None:
        name = labels.get(key, key)
        seeds = seeds_for(key, args.runs, args.runs_for)
        recipe_ = recipe.with_(augment="idtd-temporal") if key in TAU_ROWS else recipe
        old = [r for r in rows if (r["row"], r["vpc"]) == (name, vpc)]
        if old and old[0].get("recipe") == recipe_.to_dict() and has_seeds(old[0], seeds):
            return
        make = make_source(key, vpc)
        t0 = time.perf_counter()

        def one_seed(s: int) -> dict:
            extra: dict = {}

            def source(seed: int) -> TrainingSet:
                train_set, more = make(seed)
                extra.update(more)
                return train_set

            row = evaluate(
                source, store, recipe_, runs=1, seed=s, vpc=vpc,
                method="random" if key == "random+tau" else name,  # Random's partner: its method
                source=f"{args.dataset}-real-train", pool=str(store_dir), progress=False,
            )  # fmt: skip
            row["per_run"][0].update(extra)
            return row

        key_ = {"recipe": recipe_.to_dict(), "store": str(store_dir)}
        if key not in REAL_ROWS:  # a real subset does not depend on synthesis knobs
            method, _, options = synth_job(key, args.idtd_init)
            key_["synth"] = synth_settings(args, method, vpc, options)
        row = paired_row(args.out / "runs" / f"{key}_vpc{vpc}", seeds, key_, one_seed)
        if row["train_kind"] == "synthetic":
            row.update(_synth_summary(row))
        if key == "herding":
            row["select_seconds"] = per_run_mean(row, "select_seconds")
        if key in TAU_ROWS:
            row["eval_augment"] = "idtd-temporal"
        row["row"] = name
        row["train_clips_total"] = int(len(store.indices("train")))
        row.setdefault("stored_bytes", row["train_bytes"])
        row.pop("class_names", None)
        rows[:] = [r for r in rows if (r["row"], r["vpc"]) != (name, vpc)] + [row]
        save()
        print(
            f"[{time.strftime('%H:%M:%S')}] {name} vpc={vpc}: top1 {row['top1_mean']:.2f} ± "
            f"{row['top1_std']:.2f} IOR {format_ior(row, digits=2)} (train acc "
            f"{row['train_acc_mean']:.1f}; {time.perf_counter() - t0:.0f} s; "
            f"synth {_fmt_s(row.get('synth_seconds'))} s/seed)",
            flush=True,
        )

    for key, vpc in make_plan(args):
        if wanted is None or key in wanted:
            record(key, vpc)
    save()
    print(_markdown(rows, args))
    print("top-1 per row:", {f"{r['row']}@{r['vpc']}": round(r["top1_mean"], 2) for r in rows})


def plot_loss_curves(rows: list[dict], out: Path, dataset: str) -> None:
    """``OUT/loss_curves_vpc<V>.png``: each synthesis row's total loss over its seeds."""
    from vidistill.report.figures import loss_curves_plot

    for vpc in sorted({r["vpc"] for r in rows}):
        curves = {
            f"{r['row']} ({r.get('synth_iterations')} its)": [
                p["synth_loss_curve"] for p in r["per_run"] if p.get("synth_loss_curve")
            ]
            for r in rows
            if r["vpc"] == vpc and r.get("train_kind") == "synthetic" and "τ" not in r["row"]
        }
        title = f"{dataset}, VPC {vpc}: synthesis loss (block means; band = seeds' min–max)"
        loss_curves_plot(curves, out / f"loss_curves_vpc{vpc}.png", title=title)


def _fmt_s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.0f}"


def quick_embedder(args: argparse.Namespace) -> dict:
    """``--quick``: a full-width net for one epoch (no min_steps), seconds not minutes."""
    return {"recipe": "vdsd", "epochs": 1} if args.quick else {}


if __name__ == "__main__":
    main()
