"""`vidistill report`: Markdown + static HTML from results.json (+ frame strips of what was chosen)."""

from __future__ import annotations

from pathlib import Path

import click

from vidistill.commands.app import clean_errors, main


@main.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Report directory.")
@click.option(
    "--store",
    type=click.Path(exists=True, file_okay=False),
    help="Store the selections index into.",
)
@click.option(
    "--selection",
    "selections",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Selection JSON(s): a frame strip of the chosen clips per file.",
)
@click.option("--title", default="vidistill report", show_default=True)
@clean_errors()
def report(results, out, store, selections, title):
    """Render RESULTS (from `vidistill evaluate`) into OUT/report.md and OUT/report.html."""
    import json

    from vidistill.clipstore import ClipStore
    from vidistill.report import frame_strip, write_report

    try:
        rows = json.loads(Path(results).read_text())
    except ValueError as err:
        raise click.ClickException(f"{results} is not a results JSON: {err}") from err
    rows = rows.get("rows") if isinstance(rows, dict) else rows
    if not isinstance(rows, list):
        raise click.ClickException(f"{results}: expected a list of rows or {{'rows': [...]}}")
    images = []
    if selections and not store:
        raise click.UsageError("--selection needs --store (the store its indices point into)")
    for sel_path in selections:
        sel = json.loads(Path(sel_path).read_text())
        st = ClipStore(store)
        idx = [i for cls in st.class_names for i in sel["indices"].get(cls, [])][:40]
        name = f"strip_{sel['method']}_vpc{sel['vpc']}.png"
        frame_strip(
            st.clips(idx), Path(out) / name, labels=[st.class_names[st.labels[i]] for i in idx]
        )
        images.append((f"{sel['method']} VPC {sel['vpc']}: chosen clips", name))
    md, page = write_report(rows, out, title=title, images=images)
    click.echo(f"wrote {md} and {page}")
