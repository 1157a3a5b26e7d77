"""`vidistill export`: a distilled set as lossless videos + the field's CSV + exact tensors."""

from __future__ import annotations

import click

from vidistill.commands.app import clean_errors, main
from vidistill.export import CODECS, DEFAULT_CODEC


@main.command()
@click.argument("run_or_set", metavar="RUN_OR_SET", type=click.Path())
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Folder to write (atomically)."
)
@click.option("--method", default=None, help="Run folder: the method whose set to export.")
@click.option("--vpc", type=int, default=None, help="Run folder: its VPC.")
@click.option("--seed", type=int, default=None, help="Run folder: its run seed.")
@click.option(
    "--store",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Selections: the ClipStore the indices point into [default: the one the JSON names].",
)
@click.option(
    "--codec",
    type=click.Choice(sorted(CODECS)),
    default=DEFAULT_CODEC,
    show_default=True,
    help="libx264rgb: <clip>.mp4, H.264 coding the RGB planes at qp 0, lossless (plays in "
    "ffmpeg/VLC, not in most browsers); ffv1: <clip>.mkv, lossless.",
)
@click.option(
    "--fps", type=int, default=8, show_default=True, help="Playback rate written in the videos."
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier export at --out.")
@clean_errors()
def export(run_or_set, out, method, vpc, seed, store, codec, fps, overwrite):
    """Write a distilled set to --out as videos: OUT/<class>/<clip>.mp4, OUT/videos.csv
    (folder_name,label,split, the field's form), OUT/classes.txt (label order),
    OUT/distilled.safetensors (uint8 clips, labels, class names; a synthesized set's learned
    float tensors too) and OUT/export.json.

    RUN_OR_SET is a selection JSON (`vidistill select`), a synthesized set folder
    (`vidistill synthesize`) or a `vidistill run` folder, where --method, --vpc and --seed
    pick one set (the error lists what the run holds). Videos are lossless: `vidistill
    prepare folder` on OUT gives back the same training set, pixel for pixel (a synthesized
    set's videos are its uint8 rendering, as in its preview store).

    \b
    Examples:
      vidistill export sel.json --out exported/tac-dt-vpc5
      vidistill export runs/toy-quick --method tac-dt --vpc 5 --seed 0 --out exported/tac
      vidistill export runs/toy-synth/synth/dm_vpc1_seed0 --out exported/dm --codec ffv1
      vidistill prepare folder --root exported/tac --out stores/tac --frames 8 --size 64 --stride 1
    """
    from vidistill.export import export as write_export
    from vidistill.export import load_distilled

    ds = load_distilled(run_or_set, method=method, vpc=vpc, seed=seed, store=store)
    info = write_export(ds, out, codec=codec, fps=fps, overwrite=overwrite)
    what = " ".join(f"{k} {info[k]}" for k in ("method", "vpc", "seed") if info.get(k) is not None)
    click.echo(
        f"exported {info['clips']} clips ({info['kind']} {what}) of {info['classes']} classes "
        f"→ {out}/: <class>/<clip>.{info['container']} ({CODECS[codec][0]}), "
        f"{info['files']['csv']}, {info['files']['classes']}, {info['files']['tensors']}"
    )
    rendering = info.get("rendering")
    if rendering:
        click.echo(
            f"  videos = uint8 rendering of the learned tensors: max error "
            f"{rendering['max_abs_error_px']} px, {100 * rendering['clamped_fraction']:.2f} % "
            "of values clamped; the tensors themselves are in distilled.safetensors"
        )
    click.echo(f"  read back: {info['prepare']}")
