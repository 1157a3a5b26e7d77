"""`vidistill evaluate`: train fresh networks on a training set, test on the real test split.

Paired by default (DESIGN §4): run ``s`` of a method and run ``s`` of ``random`` from the
same pool share the evaluator seed ``s``, and ``--select`` redoes the selection with seed
``s``; every method row then reports its improvement over random (IOR) with a 95 % interval.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from vidistill import registry
from vidistill.commands.app import clean_errors, key_value_option, main, parse_key_values

FIXED_NOTE = (
    "note: {what} is fixed, not redone per run seed, so every paired difference carries the "
    "luck of that one draw and the IOR interval understates it; {fix}"
)


@dataclass
class Source:
    """What one evaluation trains on, and the pool its ``random`` partner is drawn from."""

    train: Any  # TrainingSet or seed -> TrainingSet
    source: str
    method: str
    vpc: int | None
    pool: Any = None  # ClipStore; None: a reference (no partner)
    note: str | None = None  # printed when the source is not redone per run
    extra: dict[str, Any] = field(default_factory=dict)


def _vpc_of(counts: list[int]) -> int | None:
    """VPC of a class-balanced set; None when classes differ (then 'vpc' is reported as max)."""
    return counts[0] if counts and len(set(counts)) == 1 else (max(counts) if counts else None)


def _store(path: str | Path, what: str):
    from vidistill.clipstore import ClipStore

    if not Path(path, "store.json").is_file():
        raise click.UsageError(f"{what} {path} is not a ClipStore (pass --train-store STORE)")
    return ClipStore(path)


def _from_method(a: dict[str, Any]) -> Source:
    from vidistill.evaluate import full_real, random_subset

    if a["method"] == "full-real":
        return Source(full_real(a["test_store"]), str(Path(a["store"])), "full-real", None)
    pool_path = a["train_store"] or a["store"]
    pool = _store(pool_path, "--train-store")
    return Source(
        lambda s: random_subset(pool, a["vpc"], s), str(Path(pool_path)), "random", a["vpc"]
    )


def _from_selection(a: dict[str, Any]) -> Source:
    from vidistill.evaluate import load_selection, selection_set

    sel = load_selection(a["selection"])
    pool = _store(a["train_store"] or sel.get("store") or a["store"], "selection store")
    train = selection_set(pool, sel)
    fix = "use --select METHOD to redo the selection with each run's seed"
    return Source(
        train,
        str(Path(a["selection"])),
        sel["method"],
        sel.get("vpc") or _vpc_of(train.class_counts()),
        pool,
        FIXED_NOTE.format(what="--selection", fix=fix),
    )


def _from_select(a: dict[str, Any]) -> Source:
    """``--select METHOD``: select from the pool afresh with every run's seed (the protocol)."""
    from vidistill.evaluate import selection_set
    from vidistill.select import select_store

    method, vpc, emb, opts = a["select"], a["vpc"], a["embedder"], a["options"]
    pool_path = a["train_store"] or a["store"]
    pool = _store(pool_path, "--train-store")
    out_dir = Path(a["out"]).with_name(f"{Path(a['out']).stem}_selections")
    files: list[str] = []

    def train(seed: int):
        path = out_dir / f"{method}_vpc{vpc}_seed{seed}.json"
        doc = select_store(
            pool, method, vpc, seed=seed, embedder=emb, progress=False, out=path, **opts
        )
        files.append(str(path))
        return selection_set(pool, doc)

    src = f"select {method} (embedder {emb}, options {json.dumps(opts, sort_keys=True)}) on {pool_path}"
    extra = {"select": {"embedder": emb, "options": opts, "files": files}}
    return Source(train, src, method, vpc, pool, extra=extra)


def _from_synthetic(a: dict[str, Any]) -> Source:
    from vidistill.evaluate import TrainingSet
    from vidistill.synthetic import SyntheticSet

    syn = SyntheticSet.load(a["synthetic"])
    train = TrainingSet.from_synthetic(syn)
    pool_path = a["train_store"] or syn.meta.get("store") or a["store"]
    pool = _store(pool_path, "the store it was learned from,") if a["paired"] else None
    fix = "`vidistill run` re-synthesises with each run's seed"
    return Source(
        train,
        str(Path(a["synthetic"])),
        syn.meta.get("method", "synthetic"),
        syn.meta.get("vpc") or _vpc_of(train.class_counts()),
        pool,
        FIXED_NOTE.format(
            what=f"the synthetic set (learned once, seed {syn.meta.get('seed')})", fix=fix
        ),
    )


# which training-set option builds the Source (exactly one is given)
SOURCES: dict[str, Callable[[dict[str, Any]], Source]] = {
    "method": _from_method,
    "selection": _from_selection,
    "select": _from_select,
    "synthetic": _from_synthetic,
}


def _check_args(a: dict[str, Any]) -> str:
    """The one training-set option given; wrong combinations → one-line usage errors."""
    picked = [k for k in SOURCES if a[k]]
    if len(picked) != 1:
        flags = ", ".join(f"--{k}" for k in SOURCES)
        raise click.UsageError(f"pass exactly one of {flags} (got {picked or 'none'})")
    kind = picked[0]
    needs_vpc = a["method"] == "random" or kind == "select"
    if a["vpc"] is not None and a["vpc"] < 1:
        raise click.UsageError(f"--vpc must be at least 1 (videos per class), got {a['vpc']}")
    if needs_vpc and a["vpc"] is None:
        raise click.UsageError(f"--{kind} {a[kind]} needs --vpc K (videos per class)")
    if a["vpc"] is not None and not needs_vpc:
        raise click.UsageError(
            "--vpc applies to --method random and --select (selections and synthetic sets "
            "carry theirs)"
        )
    if kind != "select" and (a["embedder"] or a["options"]):
        raise click.UsageError("--embedder and -o/--option only apply to --select")
    if kind == "select":
        if a["select"] == "random":
            raise click.UsageError("random is the reference itself: use --method random --vpc K")
        if a["select"] not in registry.names("selector"):
            raise click.UsageError(
                f"unknown selector {a['select']!r}; one of: {', '.join(registry.names('selector'))}"
            )
        if a["embedder"] and a["embedder"] not in registry.names("embedder"):
            raise click.UsageError(
                f"unknown embedder {a['embedder']!r}; one of: {', '.join(registry.names('embedder'))}"
            )
    return kind


def _echo_runs(row: dict[str, Any], partner: dict[str, Any] | None) -> None:
    theirs = {p["seed"]: p["top1"] for p in (partner or {}).get("per_run", [])}
    for p in row["per_run"]:
        flag = f"  DIVERGED: {p['diverged_reason']}" if p["diverged"] else ""
        paired = ""
        if p["seed"] in theirs:
            paired = f"  random {theirs[p['seed']]:.2f} (diff {p['top1'] - theirs[p['seed']]:+.2f})"
        click.echo(
            f"  seed {p['seed']}: top-1 {p['top1']:.2f}{paired}  train acc {p['train_acc']:.1f}  "
            f"loss {p['train_loss']:.4f}  {p['seconds']:.1f}s{flag}"
        )


def ior_summary(row: dict[str, Any], out: str) -> str:
    """``IOR tac-dt vs random (VPC 5, 10 paired runs): +2.31 [-0.40, +5.02] no difference``."""
    from vidistill.evaluate.paired import format_ior

    if row.get("ior_mean") is None:
        return (
            f"IOR {row['method']}: no random row of the same pool, VPC and recipe with shared "
            f"seeds in {out} (drop --no-paired)"
        )
    return (
        f"IOR {row['method']} vs random (VPC {row['vpc']}, {row['ior_runs']} paired runs): "
        f"{format_ior(row, digits=2)}"
    )


@main.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--select",
    "select",
    metavar="METHOD",
    help="Selector to re-run on the pool with each run's seed (the paired protocol); needs "
    "--vpc. Each run's selection is saved under <out stem>_selections/.",
)
@click.option("--embedder", help="Embeddings --select uses (from `vidistill embed`).")
@key_value_option("Option of the --select method, e.g. -o threshold=0.5 (tac-dt).")
@click.option(
    "--selection",
    type=click.Path(exists=True, dir_okay=False),
    help="A fixed selection JSON {method, vpc, seed, indices: {class: [clip index]}} (not "
    "redone per run: prefer --select).",
)
@click.option(
    "--train-store",
    type=click.Path(exists=True, file_okay=False),
    help="The pool: store the method selects from / the selection indexes (e.g. a generated "
    "pool) and random is drawn from; default: the selection's 'store' field, else STORE.",
)
@click.option(
    "--synthetic",
    type=click.Path(exists=True),
    help="Learned videos (synthetic.safetensors or its folder) from `vidistill synthesize`; "
    "fixed (not re-synthesised per run: `vidistill run` does that).",
)
@click.option(
    "--method",
    type=click.Choice(["random", "full-real"]),
    help="Built-in reference training set (same code, same recipe).",
)
@click.option("--vpc", type=int, help="Videos per class for --method random and --select.")
@click.option(
    "--paired/--no-paired",
    default=True,
    show_default=True,
    help="Also evaluate random from the same pool on the same seeds (reusing a random row "
    "of --out that covers them) and report IOR.",
)
@click.option(
    "--preset",
    type=click.Choice(["toy-quick", "vdsd"]),
    default="vdsd",
    show_default=True,
    help="Recipe preset: vdsd = the paper's (500 epochs, exact ConvNet3D); toy-quick = stated "
    "cheaper one for CPUs (see docs/evaluation.md).",
)
@click.option("--net", help="Evaluator network (see `vidistill list net`); default: the preset's.")
@click.option("--width", type=float, help="Channel multiplier of the net; default: the preset's.")
@click.option("--epochs", type=int, help="Training epochs; default: the preset's.")
@click.option("--batch-size", type=int, help="Default 256 (VDSD).")
@click.option("--lr", type=float, help="Default 0.01 (VDSD).")
@click.option(
    "--min-steps",
    type=int,
    help="Raise the epochs of small sets to take at least this many SGD steps; default: the "
    "preset's (0 = off).",
)
@click.option(
    "--grad-clip", type=float, help="Stabiliser (off in the reference recipe): max grad norm."
)
@click.option("--augment", help="A registered training augmentation (off in the reference recipe).")
@click.option(
    "--standardize",
    type=click.Choice(["batch"]),
    help="VDSD's per-batch scalar standardisation (x − mean) / std of every train and test "
    "batch (off in our reference recipe; named in the rows).",
)
@click.option(
    "--test-views",
    type=int,
    default=1,
    show_default=True,
    help="1 = centred clip (deterministic); N > 1 = VDSD-style N random shifts + flips.",
)
@click.option(
    "--runs",
    type=int,
    default=10,
    show_default=True,
    help="Paired runs (seeds seed..seed+N-1; 10 = the protocol's): run s trains a fresh net "
    "with seed s on the method's set (--select: selected with seed s) and on random drawn "
    "with seed s from the same pool.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option("--amp", is_flag=True, help="bf16 autocast (CUDA only).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="results.json",
    show_default=True,
    help="results.json to merge the rows into (rows keyed by source, method, VPC, net, recipe).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@clean_errors()
def evaluate(
    store,
    preset,
    net,
    width,
    epochs,
    batch_size,
    lr,
    min_steps,
    grad_clip,
    augment,
    standardize,
    test_views,
    runs,
    seed,
    device,
    amp,
    out,
    quiet,
    **kwargs,
):
    """Train --runs fresh networks on a training set and test each on STORE's real test split.

    Exactly one of --select, --selection, --synthetic, --method picks the training set.
    A method is paired with random by default: run s of both shares evaluator seed s, the
    --select method re-selects with seed s, and random is drawn with seed s from the same
    pool. IOR (improvement over random) is the mean of the per-run differences of top-1
    (method − random, in points) with its 95 % Student-t interval over the runs; "no
    difference" when the interval contains 0. Prints the table (with the IOR column) and
    the IOR line, and merges the rows into --out.
    """
    from vidistill import distributed
    from vidistill.clipstore import ClipStore
    from vidistill.evaluate import Recipe, format_markdown_table, load_results, update_results
    from vidistill.evaluate import evaluate as run_evaluate
    from vidistill.evaluate.paired import find_random_partner, random_partner
    from vidistill.evaluate.results import row_key

    a = {**kwargs, "store": store, "out": out, "options": parse_key_values(kwargs["options"])}
    kind = _check_args(a)
    # under torchrun every rank trains each run together (data-parallel); rank 0 writes
    main_rank = distributed.init().is_main
    a["test_store"] = ClipStore(store)
    recipe = Recipe.preset(
        preset,
        net=net,
        width=width,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        min_steps=min_steps,
        grad_clip=grad_clip,
        augment=augment,
        standardize=standardize,
        test_views=test_views,
        amp_bf16=amp or None,
    )
    common = {"device": None if device == "auto" else device, "progress": not quiet and main_rank}
    with clean_errors():
        src = SOURCES[kind](a)
        if src.note and main_rank:
            click.echo(src.note)
        row = run_evaluate(
            src.train,
            a["test_store"],
            recipe,
            runs=runs,
            seed=seed,
            method=src.method,
            vpc=src.vpc,
            source=src.source,
            pool=None if src.pool is None else str(src.pool.root),
            **common,
        )
        row.update(src.extra)
        rows = [row]
        pairable = a["paired"] and src.method != "random" and src.pool is not None and src.vpc
        if pairable:
            partner = random_partner(
                load_results(out),
                src.pool,
                a["test_store"],
                recipe,
                src.vpc,
                row["seeds"],
                **common,
            )
            rows += [partner] if partner else []
    if not main_rank:
        return
    merged = {row_key(r): r for r in update_results(out, rows)}
    row = merged[row_key(row)]
    partner = None
    if row.get("pool") is not None and row.get("vpc") is not None and src.method != "random":
        partner = find_random_partner(
            list(merged.values()), row["dataset"], row["pool"], row["vpc"], row["recipe"]
        )
    click.echo(format_markdown_table([partner, row] if partner else [row]))
    _echo_runs(row, partner)
    if src.method != "random" and src.vpc is not None:
        click.echo(ior_summary(row, out))
    click.echo(f"wrote {out}")
