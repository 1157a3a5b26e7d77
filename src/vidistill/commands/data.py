"""`prepare`, `info`, `list`: build a ClipStore and look at what is registered."""

from __future__ import annotations

import inspect
import json

import click

from vidistill import registry
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.commands.app import clean_errors, key_value_option, main, parse_key_values


@main.command()
@click.argument("dataset")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Store directory to create."
)
@click.option(
    "--root", type=click.Path(exists=True, file_okay=False), help="Dataset root (real datasets)."
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(),
    help="folder: CSV with path,label,split (relative to --root); kinetics400: "
    "annotation CSV or folder of CSVs (default: ROOT/annotations/*.csv).",
)
@click.option(
    "--split",
    type=click.IntRange(1, 3),
    default=None,
    help="ucf101/hmdb51: official split 1, 2 or 3 [default: 1, the benchmark split].",
)
@click.option(
    "--variant",
    type=click.Choice(["official", "vdsd"]),
    default=None,
    help="hmdb51: 'official' (tag 1 train / 2 test) or 'vdsd' (all non-test clips of "
    "split 1 train, VDSD benchmark) [default: official].",
)
@click.option(
    "--eval-split",
    type=click.Choice(["val", "test"]),
    default=None,
    help="kinetics400: which CSV split becomes the store's test split [default: val].",
)
@click.option(
    "--only-classes",
    default=None,
    help="Real datasets: comma-separated class names to keep (labels renumbered in "
    "dataset order), e.g. for a quick subset.",
)
@click.option(
    "--frames",
    type=int,
    default=None,
    help="Frames T per clip [default: the dataset's benchmark spec; toy/folder 8, "
    "ucf101/miniucf/hmdb51 16, kinetics400/ssv2 8].",
)
@click.option(
    "--size",
    type=int,
    default=None,
    help="Frame size S (S×S, short side + centre crop) [default: dataset's; "
    "toy/folder 64, ucf101/miniucf/hmdb51 112, kinetics400/ssv2 64].",
)
@click.option(
    "--stride",
    type=int,
    default=None,
    help="Temporal stride between kept frames [default: dataset's; toy/folder 1, real datasets 4].",
)
@click.option(
    "--short-policy",
    type=click.Choice(["loop", "pad"]),
    default="loop",
    show_default=True,
    help="Videos shorter than T·stride frames: loop around or repeat the last frame.",
)
@click.option("--workers", type=int, default=None, help="Decode processes (default: all cores).")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="toy, toy-motion: generation seed."
)
@click.option(
    "--classes", type=int, default=10, show_default=True, help="toy: number of motion classes."
)
@click.option(
    "--train-per-class",
    type=int,
    default=100,
    show_default=True,
    help="toy: train clips per class.",
)
@click.option(
    "--test-per-class", type=int, default=30, show_default=True, help="toy: test clips per class."
)
@key_value_option("toy / toy-motion knob, e.g. -o hue_spread=90 (docs/toy.md lists them).")
@clean_errors()
def prepare(
    dataset,
    out,
    root,
    csv_file,
    split,
    variant,
    eval_split,
    only_classes,
    frames,
    size,
    stride,
    short_policy,
    workers,
    seed,
    classes,
    train_per_class,
    test_per_class,
    options,
):
    """Decode DATASET once into a memory-mapped ClipStore at --out (resumable).

    \b
    Examples:
      vidistill prepare toy --out stores/toy
      vidistill prepare toy --out stores/toy-h90 -o hue_spread=90
      vidistill prepare toy-motion --out stores/toy-motion
      vidistill prepare ucf101 --root data/UCF101 --out stores/ucf101 --split 1
      vidistill prepare miniucf --root data/UCF101 --out stores/miniucf
      vidistill prepare hmdb51 --root data/hmdb51 --variant vdsd --out stores/hmdb51
      vidistill prepare kinetics400 --root data/k400 --out stores/k400
      vidistill prepare ssv2 --root data/ssv2 --out stores/ssv2
    Layouts: docs/datasets.md.
    """
    from vidistill.prepare import prepare as run_prepare

    factory = registry.get("dataset", dataset)
    if getattr(factory, "procedural", False):  # toy, toy-motion: generated, no files
        knobs = {
            "num_classes": classes,
            "train_per_class": train_per_class,
            "test_per_class": test_per_class,
            "seed": seed,
            **parse_key_values(options),
        }
        accepted = inspect.signature(factory).parameters
        unknown = sorted(set(knobs) - set(accepted))
        if unknown:
            raise click.UsageError(
                f"{dataset} has no option {', '.join(unknown)}; its options: "
                f"{', '.join(k for k in accepted if k != 'self')}"
            )
        ds = factory(**knobs)
    else:
        if options:
            raise click.UsageError(f"-o/--option applies to toy datasets only, not {dataset!r}")
        if root is None:
            raise click.UsageError(f"dataset {dataset!r} needs --root PATH (where its videos are)")
        # option → (adapter keyword, value); an option the adapter does not take is an error.
        given = {
            "--csv": ("csv_file", csv_file),
            "--split": ("split", split),
            "--variant": ("variant", variant),
            "--eval-split": ("eval_split", eval_split),
            "--only-classes": ("classes", only_classes),
        }
        accepted = inspect.signature(factory).parameters
        kwargs = {}
        for flag, (key, value) in given.items():
            if value is None:
                continue
            if key not in accepted:
                raise click.UsageError(f"{flag} does not apply to dataset {dataset!r}")
            kwargs[key] = value
        try:
            ds = factory(root, **kwargs)
        except (FileNotFoundError, ValueError) as err:  # bad layout/option: a message
            raise click.ClickException(str(err)) from err
    base = ds.default_spec()
    spec = ClipSpec(
        frames=base.frames if frames is None else frames,
        size=base.size if size is None else size,
        stride=base.stride if stride is None else stride,
        short_policy=short_policy,
    )
    store = run_prepare(ds, out, spec=spec, workers=workers)
    _print_summary(store.summary())


@main.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@clean_errors()
def info(store, as_json):
    """Summarise a ClipStore: clip spec, counts per split and class, skipped files."""
    summary = ClipStore(store).summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)


def _kind(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else registry.kind(value)
    except KeyError as err:
        raise click.BadParameter(str(err).strip("'\"")) from err


@main.command("list")
@click.argument("kind", required=False, metavar="[KIND]", callback=_kind)
def list_components(kind):
    """Print registered components; KIND (one of augment, dataset, embedder, net, selector,
    synthesizer, singular or plural: `vidistill list selectors`) prints one kind."""
    for k in [kind] if kind else registry.kinds():
        click.echo(f"{k}: {', '.join(registry.names(k)) or '(none yet)'}")


def _print_summary(s: dict) -> None:
    spec = s["spec"]
    click.echo(f"ClipStore {s['root']}  dataset={s['dataset']}")
    click.echo(
        f"  spec: {spec['frames']} frames × {spec['size']}×{spec['size']}, stride {spec['stride']}, "
        f"short clips: {spec['short_policy']}"
    )
    click.echo(
        f"  clips: {s['clips']} ok, {len(s['skipped'])} skipped, {s['classes']} classes, "
        f"{s['bytes'] / 2**20:.1f} MiB"
    )
    for split, counts in s["per_split"].items():
        vals = list(counts.values())
        click.echo(f"  {split}: {sum(vals)} clips, per class min {min(vals)} / max {max(vals)}")
    shown = 20  # partial copies of real datasets skip thousands: print a sample and a count
    for sk in s["skipped"][:shown]:
        click.echo(f"  skipped {sk['source']}: {sk['reason']}")
    if len(s["skipped"]) > shown:
        reasons: dict[str, int] = {}
        for sk in s["skipped"]:
            key = "missing file" if sk["reason"].startswith("missing file") else "unreadable"
            reasons[key] = reasons.get(key, 0) + 1
        counts = ", ".join(f"{v} {k}" for k, v in sorted(reasons.items()))
        click.echo(
            f"  ... {len(s['skipped']) - shown} more skipped ({counts} in all; "
            "`vidistill info STORE --json` lists every one)"
        )
