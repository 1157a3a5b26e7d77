"""`vidistill report`: Markdown + static HTML from a run directory or a results.json."""

from __future__ import annotations

from pathlib import Path

import click

from vidistill.commands.app import clean_errors, main


@main.command()
@click.argument("results", type=click.Path(exists=True))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Report directory (default for a run directory: RUN/report).",
)
@click.option(
    "--store",
    type=click.Path(exists=True, file_okay=False),
    help="The pool the selections index into: their clips, random's draw, the pool "
    "projection (from its embeddings file) and the full training set's bytes.",
)
@click.option(
    "--selection",
    "selections",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Selection JSON(s): their clips per class, and in the pool projection.",
)
@click.option("--title", default=None, help="Page title (default: the run's name).")
@clean_errors()
def report(results, out, store, selections, title):
    """Render RESULTS into OUT/report.md and OUT/report.html.

    RESULTS is a run directory (`vidistill run`: everything it holds is shown) or a
    results.json (`vidistill evaluate`; add --store and --selection for the clips)."""
    import json

    from vidistill.clipstore import ClipStore
    from vidistill.report import read_rows, report_results, report_run

    path = Path(results)
    if path.is_dir():
        if not (path / "results.json").is_file():
            raise click.ClickException(
                f"{path} has no results.json: pass a run directory or a results file"
            )
        if selections or store:
            raise click.UsageError("--store / --selection are for a results file; a run "
                                   "directory's report uses its own")  # fmt: skip
        md, page = report_run(path, out)
        click.echo(f"wrote {md} and {page}")
        return
    if out is None:
        raise click.UsageError("--out is required with a results file")
    if selections and not store:
        raise click.UsageError("--selection needs --store (the store its indices point into)")
    rows = read_rows(path)
    sels = []
    for sel_path in selections:
        try:
            sel = json.loads(Path(sel_path).read_text())
        except ValueError as err:
            raise click.ClickException(f"{sel_path} is not a selection JSON: {err}") from err
        if not isinstance(sel, dict) or not isinstance(sel.get("indices"), dict):
            raise click.ClickException(f"{sel_path}: a selection needs 'indices': {{class: [...]}}")
        sels.append(sel)
    md, page = report_results(
        rows,
        out,
        store=ClipStore(store) if store else None,
        selections=sels,
        title=title or "vidistill report",
    )
    click.echo(f"wrote {md} and {page}")
