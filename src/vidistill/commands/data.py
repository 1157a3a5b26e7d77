"""`prepare`, `info`, `list`: build a ClipStore and look at what is registered."""

from __future__ import annotations

import json

import click

from vidistill import registry
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.commands.app import main


@main.command()
@click.argument("dataset")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Store directory to create.")
@click.option("--root", type=click.Path(exists=True, file_okay=False), help="Dataset root (real datasets).")
@click.option("--csv", "csv_file", type=click.Path(), help="folder: CSV with path,label,split (relative to --root).")
@click.option("--frames", type=int, default=8, show_default=True, help="Frames T per clip.")
@click.option("--size", type=int, default=64, show_default=True, help="Frame size S (S×S, short side + centre crop).")
@click.option("--stride", type=int, default=1, show_default=True, help="Temporal stride between kept frames.")
@click.option("--short-policy", type=click.Choice(["loop", "pad"]), default="loop", show_default=True,
              help="Videos shorter than T·stride frames: loop around or repeat the last frame.")
@click.option("--workers", type=int, default=None, help="Decode processes (default: all cores).")
@click.option("--seed", type=int, default=0, show_default=True, help="toy: generation seed.")
@click.option("--classes", type=int, default=10, show_default=True, help="toy: number of motion classes.")
@click.option("--train-per-class", type=int, default=40, show_default=True, help="toy: train clips per class.")
@click.option("--test-per-class", type=int, default=20, show_default=True, help="toy: test clips per class.")
def prepare(dataset, out, root, csv_file, frames, size, stride, short_policy, workers, seed, classes,
            train_per_class, test_per_class):
    """Decode DATASET once into a memory-mapped ClipStore at --out (resumable)."""
    from vidistill.prepare import prepare as run_prepare

    factory = registry.get("dataset", dataset)
    if dataset == "toy":
        ds = factory(num_classes=classes, train_per_class=train_per_class, test_per_class=test_per_class, seed=seed)
    else:
        if root is None:
            raise click.UsageError(f"dataset {dataset!r} needs --root PATH (where its videos are)")
        ds = factory(root, csv_file=csv_file) if dataset == "folder" else factory(root)
    spec = ClipSpec(frames=frames, size=size, stride=stride, short_policy=short_policy)
    store = run_prepare(ds, out, spec=spec, workers=workers)
    _print_summary(store.summary())


@main.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(store, as_json):
    """Summarise a ClipStore: clip spec, counts per split and class, skipped files."""
    summary = ClipStore(store).summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)


@main.command("list")
@click.argument("kind", required=False, type=click.Choice(registry.kinds()))
def list_components(kind):
    """Print registered components (datasets, nets, embedders, selectors, synthesizers)."""
    for k in [kind] if kind else registry.kinds():
        click.echo(f"{k}: {', '.join(registry.names(k)) or '(none yet)'}")


def _print_summary(s: dict) -> None:
    spec = s["spec"]
    click.echo(f"ClipStore {s['root']}  dataset={s['dataset']}")
    click.echo(f"  spec: {spec['frames']} frames × {spec['size']}×{spec['size']}, stride {spec['stride']}, "
               f"short clips: {spec['short_policy']}")
    click.echo(f"  clips: {s['clips']} ok, {len(s['skipped'])} skipped, {s['classes']} classes, "
               f"{s['bytes'] / 2**20:.1f} MiB")
    for split, counts in s["per_split"].items():
        vals = list(counts.values())
        click.echo(f"  {split}: {sum(vals)} clips, per class min {min(vals)} / max {max(vals)}")
    for sk in s["skipped"]:
        click.echo(f"  skipped {sk['source']}: {sk['reason']}")
