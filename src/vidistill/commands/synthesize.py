"""`vidistill synthesize`: learn a small set of float videos (DM, IDTD, VDSD) from a ClipStore."""

from __future__ import annotations

import click

from vidistill import registry
from vidistill.commands.app import clean_errors, key_value_option, main, parse_key_values


@main.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--method",
    required=True,
    type=click.Choice(registry.names("synthesizer")),
    help="Synthesis method.",
)
@click.option(
    "--vpc", required=True, type=int, help="Synthetic videos per class (VDSD: storage unit)."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: synthetic.safetensors, preview/ ClipStore, done.json, checkpoint.",
)
@click.option("--iterations", type=int, help="Outer iterations (default: the method's).")
@click.option(
    "--lr",
    type=float,
    help="Learning rate (default: the method's — dm 30, idtd 0.01, vdsd 100 for the stills; "
    "VDSD's dynamic rates: -o lr_dynamic=… -o lr_hal=…).",
)
@click.option("--real-batch", type=int, help="Real clips per class per iteration (default 32).")
@click.option(
    "--net-width",
    type=float,
    help="Channel multiplier of the random matching ConvNet3D (default 1).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@key_value_option(
    "Method option, repeatable, e.g. -o ablation=t4-b -o alpha1=0.05 (see docs/synthesis.md)."
)
@click.option(
    "--checkpoint-every",
    type=int,
    default=10,
    show_default=True,
    help="Iterations between atomic checkpoints (an interrupted run resumes from the last).",
)
@click.option("--no-preview", is_flag=True, help="Skip the uint8 preview ClipStore.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synthesize(
    store,
    method,
    vpc,
    out,
    iterations,
    lr,
    real_batch,
    net_width,
    seed,
    options,
    checkpoint_every,
    no_preview,
    quiet,
):
    """Distil STORE's training split into VPC learned videos per class at --out.

    Under torchrun rank r learns classes r, r + W, … and rank 0 writes the set."""
    from vidistill import distributed
    from vidistill.synthesize import synthesize as run

    opts: dict[str, object] = parse_key_values(options, example="ablation=t3-a")
    for key, value in (
        ("iterations", iterations),
        ("lr", lr),
        ("real_batch", real_batch),
        ("net_width", net_width),
    ):
        if value is not None:
            opts[key] = value
    with clean_errors():
        result = run(
            store,
            method,
            vpc,
            out,
            options=opts,
            seed=seed,
            checkpoint_every=checkpoint_every,
            progress=not quiet,
            preview=not no_preview,
        )
    if not distributed.is_main():
        return
    m = result.meta
    click.echo(
        f"{method}: {len(result)} videos ({m['bytes_stored'] / 2**20:.2f} MiB stored) in "
        f"{m['seconds']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MiB → {out}/synthetic.safetensors"
    )
