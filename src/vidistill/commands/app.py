"""The root click group. Command modules import ``main`` from here and decorate onto it."""

from __future__ import annotations

import click

from vidistill import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vidistill")
def main() -> None:
    """vidistill: video dataset distillation — prepare, embed, select, generate, synthesize,
    evaluate and report, each usable alone, or all at once with `vidistill run CONFIG`."""
