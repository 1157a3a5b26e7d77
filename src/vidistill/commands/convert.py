"""`vidistill convert FORMAT SRC DST`: third-party checkpoints → folders vidistill loads.

One sub-command per source format, each a plain function on the ``convert`` group
(``@convert.command("NAME")``); a new format (e.g. ``latte``) is one more such function.
"""

from __future__ import annotations

import click

from vidistill.commands.app import clean_errors, main


@main.group()
def convert() -> None:
    """Convert a released checkpoint into a local folder the other commands load."""


@convert.command("videomae-v2")
@click.argument("src", type=click.Path(exists=True))
@click.argument("dst", type=click.Path(file_okay=False))
@click.option(
    "--num-heads",
    type=click.IntRange(min=1),
    default=None,
    help="Attention heads (not in the shapes). Default by hidden size: 384→6, 768→12, "
    "1024/1280/1408→16.",
)
@click.option(
    "--num-frames",
    type=click.IntRange(min=1),
    default=None,
    help="Frames per clip the model sees (official: 16).",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=1),
    default=None,
    help="Input size in pixels (official: 224).",
)
@clean_errors()
def videomae_v2(src, dst, num_heads, num_frames, image_size):
    """Official VideoMAE-v2 checkpoint SRC (.pth/.pt, .safetensors, or a folder with
    model.safetensors) → DST: a transformers VideoMAEModel folder (config.json,
    model.safetensors) plus fc_norm.safetensors, preprocessor_config.json, conversion.json.
    Use it as `vidistill embed STORE --embedder videomae --weights DST`."""
    from vidistill.embed.videomae_v2 import convert_videomae_v2

    out = convert_videomae_v2(src, dst, num_heads, num_frames, image_size)
    click.echo(f"videomae-v2: {src} → {out}")
