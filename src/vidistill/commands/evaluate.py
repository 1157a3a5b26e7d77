"""`vidistill evaluate`: train fresh networks on a training set, test on the real test split."""

from __future__ import annotations

from pathlib import Path

import click

from vidistill.commands.app import main, user_errors


def _vpc_of(counts: list[int]) -> int | None:
    """VPC of a class-balanced set; None when classes differ (then 'vpc' is reported as max)."""
    return counts[0] if counts and len(set(counts)) == 1 else (max(counts) if counts else None)


@main.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--selection",
    type=click.Path(exists=True, dir_okay=False),
    help="Selection JSON {method, vpc, seed, indices: {class: [clip index]}}.",
)
@click.option(
    "--train-store",
    type=click.Path(exists=True, file_okay=False),
    help="Store the selection indexes (e.g. a generated pool); default: the selection's "
    "'store' field, else STORE.",
)
@click.option(
    "--synthetic",
    type=click.Path(exists=True),
    help="Learned videos (synthetic.safetensors or its folder) from `vidistill synthesize`.",
)
@click.option(
    "--method",
    type=click.Choice(["random", "full-real"]),
    help="Built-in reference training set (same code, same recipe).",
)
@click.option("--vpc", type=int, help="Videos per class for --method random.")
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
    "--test-views",
    type=int,
    default=1,
    show_default=True,
    help="1 = centred clip (deterministic); N > 1 = VDSD-style N random shifts + flips.",
)
@click.option(
    "--runs", type=int, default=3, show_default=True, help="Fresh networks (seeds seed..seed+N-1)."
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
    help="results.json to merge the row into (rows keyed by source, method, VPC, net, recipe).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@user_errors()
def evaluate(
    store,
    selection,
    train_store,
    synthetic,
    method,
    vpc,
    preset,
    net,
    width,
    epochs,
    batch_size,
    lr,
    min_steps,
    grad_clip,
    augment,
    test_views,
    runs,
    seed,
    device,
    amp,
    out,
    quiet,
):
    """Train --runs fresh networks on a training set and test each on STORE's real test split.

    Exactly one of --selection, --synthetic, --method picks the training set. Prints the
    Markdown table of the new row and merges it into --out.
    """
    from vidistill.clipstore import ClipStore
    from vidistill.evaluate import (
        Recipe,
        TrainingSet,
        format_markdown_table,
        full_real,
        load_selection,
        random_subset,
        selection_set,
        update_results,
    )
    from vidistill.evaluate import evaluate as run_evaluate

    picked = [
        o
        for o, v in (("--selection", selection), ("--synthetic", synthetic), ("--method", method))
        if v
    ]
    if len(picked) != 1:
        raise click.UsageError(
            f"pass exactly one of --selection, --synthetic, --method (got {picked or 'none'})"
        )
    if method == "random" and not vpc:
        raise click.UsageError("--method random needs --vpc K (videos per class)")
    if vpc and method != "random":
        raise click.UsageError(
            "--vpc only applies to --method random (selections and synthetic sets carry theirs)"
        )
    test_store = ClipStore(store)
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
        test_views=test_views,
        amp_bf16=amp or None,
    )
    if method == "full-real":
        train, src, name = full_real(test_store), str(Path(store)), "full-real"
    elif method == "random":
        train, src, name = (lambda s: random_subset(test_store, vpc, s)), str(Path(store)), "random"
    elif selection:
        sel = load_selection(selection)
        pool = ClipStore(train_store or sel.get("store") or store)
        train, src, name = selection_set(pool, sel), str(Path(selection)), sel["method"]
        vpc = sel.get("vpc") or _vpc_of(train.class_counts())
    else:
        from vidistill.synthetic import SyntheticSet

        syn = SyntheticSet.load(synthetic)
        train, src = TrainingSet.from_synthetic(syn), str(Path(synthetic))
        name = syn.meta.get("method", "synthetic")
        vpc = syn.meta.get("vpc") or _vpc_of(train.class_counts())
    row = run_evaluate(
        train,
        test_store,
        recipe,
        runs=runs,
        seed=seed,
        method=name,
        vpc=vpc,
        source=src,
        device=None if device == "auto" else device,
        progress=not quiet,
    )
    update_results(out, [row])
    click.echo(format_markdown_table([row]))
    for p in row["per_run"]:
        flag = f"  DIVERGED: {p['diverged_reason']}" if p["diverged"] else ""
        click.echo(
            f"  seed {p['seed']}: top-1 {p['top1']:.2f}  train acc {p['train_acc']:.1f}  "
            f"loss {p['train_loss']:.4f}  {p['seconds']:.1f}s{flag}"
        )
    click.echo(f"wrote {out}")
