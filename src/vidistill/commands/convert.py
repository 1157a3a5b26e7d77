"""`vidistill convert FORMAT SRC DST`: third-party checkpoints → folders vidistill loads.

One sub-command per source format, each a plain function on the ``convert`` group
(``@convert.command("NAME")``); a new format is one more such function.
"""

from __future__ import annotations

from pathlib import Path

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


@convert.command("latte")
@click.argument("src", type=click.Path(exists=True))
@click.argument("dst", type=click.Path(file_okay=False))
@click.option(
    "--num-heads",
    type=click.IntRange(min=1),
    default=None,
    help="Attention heads (not in the shapes). Default by hidden size: 1152/1024→16, 768→12, "
    "384→6.",
)
@click.option(
    "--class-names",
    "class_names_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Text file, one class name per line in the checkpoint's label order. Default for "
    "101 classes: UCF101's sorted folder names (the official training order).",
)
@click.option(
    "--vae",
    "vae_dir",
    type=click.Path(exists=True, file_okay=False),
    help="The AutoencoderKL folder of its latents (ucf101.pt: sd-vae-ft-ema), recorded so "
    "sampling and --init need no --vae.",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=1),
    default=None,
    help="Pixel size of its clips when no --vae is given (default: latent size × 8).",
)
@clean_errors()
def latte(src, dst, num_heads, class_names_file, vae_dir, image_size):
    """Official class-conditional Latte checkpoint SRC (e.g. ucf101.pt, read weights-only;
    or .safetensors) → DST: config.json + ema.safetensors (official keys, checked to load
    strictly). Sample it with `vidistill generate sample DST`, fine-tune it with
    `vidistill generate train STORE --init DST`."""
    from vidistill.generate.pretrained import convert_latte

    names = None
    if class_names_file:
        from vidistill.datasets.filelist import read_lines

        names = read_lines(Path(class_names_file))
    out, pre = convert_latte(src, dst, num_heads, names, vae_dir, image_size)
    arch = pre.source["architecture"]
    click.echo(
        f"latte: {src} ({pre.source['weights']} weights) → {out}: "
        f"{arch['variant'] or 'custom size'}, hidden {arch['hidden']}, depth {arch['depth']}, "
        f"{arch['heads']} heads, learn_sigma {arch['learn_sigma']}, latents "
        f"{pre.in_channels}×{pre.frames}×{pre.latent_size}², {pre.num_classes} classes + null "
        f"(names: {pre.names_source if pre.class_names else 'placeholders class_000…'})"
    )
