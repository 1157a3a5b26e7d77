"""`vidistill run CONFIG` and `vidistill demo`: the whole pipeline over one run directory."""

from __future__ import annotations

import click

from vidistill import distributed
from vidistill.commands.app import clean_errors, main


@main.command()
@click.argument("config")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Run directory (default: runs/<name>)."
)
@click.option(
    "--runs", type=int, help="Override evaluate.runs (paired runs; the protocol's default is 10)."
)
@clean_errors()
def run(config, out, runs):
    """Run every stage of CONFIG (a YAML file or a shipped preset name: toy-quick, toy-synth,
    toy-demo, toy-gen, miniucf, hmdb51, k400, ssv2). Finished stages are skipped; a killed run resumes.

    With a `generate:` section (toy-quick, toy-gen; docs/generation.md) a generator is trained (or
    given) first, a pool is sampled from it and the selectors select from the POOL; the
    rows are full-real, full-syn, random-from-pool, random-real and each selector.

    Paired protocol: evaluation run s re-selects / re-synthesises with seed s and shares
    evaluator seed s with random drawn from the same pool; every method row reports its
    improvement over random (IOR: mean paired top-1 difference with its 95 % t-interval,
    "no difference" when the interval contains 0).

    On N GPUs: `torchrun --nproc_per_node N -m vidistill.cli run CONFIG` shares the
    embedding, selections, syntheses and evaluator runs across ranks (docs/scaling.md)."""
    from vidistill.pipeline import load_config, run_pipeline

    cfg = load_config(config)
    if runs:
        cfg["evaluate"]["runs"] = runs
    root = run_pipeline(cfg, out or f"runs/{cfg['name']}", log=click.echo)
    if distributed.is_main():  # under torchrun: once, not once per rank
        click.echo(f"done: {root}/results.json, {root}/report/report.md, {root}/report/report.html")


@main.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@clean_errors()
def demo(out):
    """The toy demo (`make demo`): a pool sampled from the shipped toy generator → TAC-DT
    and VST-UNet select from it; IDTD (+τ) and DM synthesize; evaluated beside full-real,
    random-from-pool and random-real at VPC 1 and 5 → report. `make demo` runs it in one
    process (on 2 cores faster than 2 ranks); `torchrun --nproc_per_node N -m vidistill.cli
    demo` shares its stages out."""
    from vidistill.pipeline import load_config, run_pipeline

    root = run_pipeline(load_config("toy-demo"), out, log=click.echo)
    if not distributed.is_main():
        return
    report = root / "report" / "report.md"
    if report.is_file():
        click.echo(report.read_text())
    click.echo(f"open {root}/report/report.html for the page with frame strips")
