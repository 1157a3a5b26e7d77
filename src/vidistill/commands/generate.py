"""`vidistill generate train | sample | quality`: latent video diffusion → a synthetic pool."""

from __future__ import annotations

import json

import click

from vidistill.commands.app import clean_errors, main


@main.group()
def generate() -> None:
    """Class-conditional latent video diffusion (VAE + Latte): train, sample a pool, measure it."""


@generate.command("train")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder (re-run with the same --out to resume).",
)
@click.option(
    "--preset",
    "preset_name",
    default="toy",
    show_default=True,
    help="Generator preset: toy, latte-s (Latte-S/2), latte-xl (Latte-XL/2), tiny.",
)
@click.option("--steps", type=int, help="Denoiser training steps (preset default otherwise).")
@click.option("--batch", type=int, help="Batch per device.")
@click.option("--lr", type=float, help="AdamW learning rate.")
@click.option(
    "--vae",
    "vae_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Pretrained AutoencoderKL folder (e.g. SD's vae/); default: train a small one.",
)
@click.option("--vae-steps", type=int, help="Steps for the small VAE trained here.")
@click.option(
    "--init",
    "init_dir",
    type=click.Path(exists=True),
    help="Fine-tune from an official class-conditional Latte checkpoint (e.g. ucf101.pt, read "
    "weights-only) or a `vidistill convert latte` folder: its architecture and diffusion "
    "settings replace the preset's; label rows are mapped by class name.",
)
@click.option(
    "--prediction",
    type=click.Choice(["epsilon", "v_prediction"]),
    help="What the denoiser predicts.",
)
@click.option("--checkpoint-every", type=int, help="Steps between safetensors checkpoints.")
@click.option("--seed", type=int, help="Seed of init, batches and noise.")
@click.option("--cpu", is_flag=True, help="Stay on the CPU even if CUDA is available.")
def train_cmd(
    store,
    out,
    preset_name,
    steps,
    batch,
    lr,
    vae_dir,
    vae_steps,
    init_dir,
    prediction,
    checkpoint_every,
    seed,
    cpu,
):
    """Train the generator on the train split of STORE (multi-GPU: `accelerate launch -m
    vidistill.cli generate train ...`)."""
    from vidistill.generate import preset, train

    try:
        cfg = preset(preset_name).override(
            steps=steps,
            batch=batch,
            lr=lr,
            vae_steps=vae_steps,
            prediction_type=prediction,
            checkpoint_every=checkpoint_every,
            seed=seed,
        )
        summary = train(
            store,
            out,
            cfg,
            vae_dir=vae_dir,
            init=init_dir,
            cpu=cpu,
            log=lambda m: click.echo(m, err=True),
        )
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    summary = {k: v for k, v in summary.items() if k != "loss_history"}
    click.echo(json.dumps(summary, indent=2))


@generate.command("sample")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--per-class", type=int, required=True, help="Clips to generate per class (N_c).")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Pool ClipStore to write."
)
@click.option("--steps", type=int, default=50, show_default=True, help="Sampler steps.")
@click.option(
    "--guidance",
    type=float,
    default=4.0,
    show_default=True,
    help="Classifier-free guidance scale (1.0 = none).",
)
@click.option(
    "--sampler",
    type=click.Choice(["ddim", "dpm", "ddpm"]),
    default="ddim",
    show_default=True,
    help="ddpm = the official Latte sampler (use --steps 250 --guidance 7 for ucf101.pt).",
)
@click.option("--batch", type=int, default=32, show_default=True, help="Clips per batch.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Noise seed: batch b uses seed + b (--seeding batch), or each clip its own.",
)
@click.option(
    "--seeding",
    type=click.Choice(["batch", "clip"]),
    default="batch",
    show_default=True,
    help="clip: clip i of class c is seeded from (seed, c, i), independent of --batch and "
    "--per-class (what `vidistill run` uses).",
)
@click.option("--no-ema", is_flag=True, help="Sample from the raw weights instead of the EMA.")
@click.option(
    "--vae",
    "vae_dir",
    type=click.Path(exists=True, file_okay=False),
    help="AutoencoderKL folder to decode with (default: the one RUN_DIR records).",
)
def sample_cmd(
    run_dir, per_class, out, steps, guidance, sampler, batch, seed, seeding, no_ema, vae_dir
):
    """Sample a class-balanced pool from RUN_DIR — a finished `generate train` run or a
    `vidistill convert latte` folder (resumes by batch). Under torchrun rank r samples
    batches r, r + W, … (each clip's noise does not depend on who samples it) and rank 0
    writes the store."""
    from vidistill import distributed
    from vidistill.generate import sample_pool

    try:
        store = sample_pool(
            run_dir,
            out,
            per_class,
            steps=steps,
            guidance=guidance,
            sampler=sampler,
            batch=batch,
            seed=seed,
            seeding=seeding,
            ema=not no_ema,
            vae=vae_dir,
        )
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    if not distributed.is_main():
        return
    click.echo(
        json.dumps(
            {"pool": str(store.root), "clips": len(store), **store.info_json.get("generator", {})},
            indent=2,
        )
    )


@generate.command("quality")
@click.argument("pool", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--real",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="The real ClipStore (train + test splits) the generator learned.",
)
@click.option("--recipe", default="toy-quick", show_default=True, help="Evaluator recipe preset.")
@click.option("--batch-size", type=int, help="Override the recipe's batch size (stated in output).")
@click.option("--epochs", type=int, help="Override the recipe's epochs (stated in the output).")
@click.option("--seed", type=int, default=0, show_default=True, help="Evaluator run seed.")
@click.option(
    "--cache",
    type=click.Path(file_okay=False),
    help="Folder to cache the full-real net/row in (reused across pools).",
)
@click.option(
    "--out", "out_json", type=click.Path(dir_okay=False), help="Write the figures as JSON."
)
@click.option(
    "--strip",
    "strip_png",
    type=click.Path(dir_okay=False),
    help="Also write a frame strip PNG (one generated clip per class).",
)
@clean_errors()
def quality_cmd(pool, real, recipe, batch_size, epochs, seed, cache, out_json, strip_png):
    """full-syn vs full-real accuracy and the Fréchet classifier distance (FCD) of POOL."""
    from vidistill.atomic import write_json_atomic
    from vidistill.clipstore import ClipStore
    from vidistill.generate.quality import frame_strip, pool_quality

    overrides = {k: v for k, v in {"batch_size": batch_size, "epochs": epochs}.items() if v}
    res = pool_quality(
        ClipStore(pool), ClipStore(real), recipe=recipe, seed=seed, cache=cache, overrides=overrides
    )
    if strip_png:
        frame_strip(ClipStore(pool), strip_png, real=ClipStore(real))
        res["strip"] = strip_png
    if out_json:
        write_json_atomic(out_json, res)
    click.echo(json.dumps(res, indent=2))


@generate.command("ship")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--name", default="toy", show_default=True, help="Dataset the generator is for.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder to write [default: the package's resources/<name>_generator].",
)
@clean_errors()
def ship_cmd(run_dir, name, out):
    """Pack a finished `generate train` run (EMA weights, config, VAE, training log, hashes)
    as the package's shipped generator, which configs name as `weights: shipped:NAME`."""
    from vidistill.generate.shipped import resource_dir, ship_run

    dest = out or resource_dir(name)
    hashes = ship_run(run_dir, dest)
    click.echo(json.dumps({"out": str(dest), "files": hashes}, indent=2))
