"""`vidistill embed` and `vidistill select`: embed a pool's clips, then pick VPC per class."""

from __future__ import annotations

import click

from vidistill import registry
from vidistill.commands.app import clean_errors, key_value_option, main, parse_key_values


def _split(value: str) -> str | None:
    return None if value == "all" else value


def _train_store_option(embedder: str, train_store: str | None) -> dict[str, str]:
    """``--train-store`` as the embedder option, refused by embedders that train nothing."""
    if train_store is None:
        return {}
    import inspect

    cls = registry.get("embedder", embedder)
    if "train_store" not in inspect.signature(cls.__init__).parameters:
        raise click.UsageError(
            f"--train-store: embedder {embedder!r} does not train on a store "
            "(only 'classifier' does)"
        )
    return {"train_store": train_store}


def _embedding_files(store: str) -> list[str]:
    """Embedder names of ``STORE/embeddings/*.safetensors`` that hold an ``embeddings``
    tensor (a cached network there, e.g. classifier-net.safetensors, is not one)."""
    from pathlib import Path

    from vidistill.integrity import open_safetensors

    names = []
    for path in sorted(Path(store, "embeddings").glob("*.safetensors")):
        if path.name.startswith("."):
            continue  # a temp file of an embed in progress
        remake = f"`vidistill embed {store} --embedder {path.stem}`"
        with open_safetensors(path, remake, framework="numpy") as fh:
            if "embeddings" in fh.keys():  # noqa: SIM118
                names.append(path.stem)
    return names


def _default_embedder(store: str, method: str, embedder: str | None) -> str | None:
    """``--embedder`` left out: the store's only embeddings file, if the method needs one."""
    if embedder is not None or not getattr(
        registry.get("selector", method), "needs", ("embeddings",)
    ):
        return embedder
    names = _embedding_files(store)
    if len(names) == 1:
        click.echo(f"using {store}/embeddings/{names[0]}.safetensors (--embedder {names[0]})")
        return names[0]
    if len(names) > 1:
        raise click.UsageError(
            f"{store}/embeddings holds {len(names)} embeddings files "
            f"({', '.join(n + '.safetensors' for n in names)}); choose one with --embedder "
            f"{' | '.join(names)}"
        )
    return None  # none: select_store says to run `vidistill embed` first


@main.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--embedder", required=True, help=f"One of: {', '.join(registry.names('embedder'))}.")
@click.option(
    "--weights",
    type=click.Path(exists=True),
    help="Local weights (videomae: a save_pretrained directory or an official VideoMAE-v2 checkpoint; classifier: net safetensors).",
)
@click.option(
    "--split", default="train", show_default=True, help="Clips to embed ('all' = every clip)."
)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="classifier: training seed.")
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--train-store",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="classifier: the store of REAL clips whose training split trains the net (default: "
    "STORE itself). Use it to embed a generated pool; the net is cached in that store.",
)
@key_value_option("Embedder option, e.g. -o recipe=toy-quick -o epochs=20 (classifier).")
def embed(store, embedder, weights, split, batch_size, seed, device, train_store, options):
    """One vector per clip of STORE → STORE/embeddings/<embedder>.safetensors.

    On N GPUs: `torchrun --nproc_per_node N -m vidistill.cli embed STORE ... --device cuda`
    (each rank embeds a share, rank 0 writes the same file; docs/scaling.md)."""
    from vidistill.embed import embed_store

    with clean_errors():
        extra = _train_store_option(embedder, train_store)
        embed_store(
            store,
            embedder,
            weights=weights,
            split=_split(split),
            batch_size=batch_size,
            seed=seed,
            device=device,
            **parse_key_values(options),
            **extra,
        )


@main.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--method", required=True, help=f"One of: {', '.join(registry.names('selector'))}.")
@click.option("--vpc", type=int, required=True, help="Videos per class to select.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Selection JSON to write."
)
@click.option(
    "--embedder",
    default=None,
    help="Embeddings to select on (from `vidistill embed`) [default: the store's only "
    "embeddings file, if it has exactly one].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--split", default="train", show_default=True, help="Pool split ('all' = every clip)."
)
@click.option(
    "--memory-budget-mb",
    type=int,
    default=1024,
    show_default=True,
    help="Above this, embeddings are streamed in blocks (IncrementalPCA, Birch.partial_fit).",
)
@key_value_option("Method option, e.g. -o threshold=0.5 -o pca_dim=16 (tac-dt).")
def select(store, method, vpc, out, embedder, seed, split, memory_budget_mb, options):
    """Pick VPC clips per class of STORE's pool with a registered METHOD → JSON for `evaluate`.

    Under torchrun the classes are shared out across the ranks (vst-unet: ``-o
    class_batch=G`` fits groups of G classes data-parallel); rank 0 writes --out."""
    from vidistill import distributed
    from vidistill.select import select_store

    distributed.init()

    with clean_errors():
        embedder = _default_embedder(store, method, embedder)
        doc = select_store(
            store,
            method,
            vpc,
            seed=seed,
            embedder=embedder,
            split=_split(split),
            memory_budget_mb=memory_budget_mb,
            out=out,
            **parse_key_values(options),
        )
    if not distributed.is_main():
        return
    n = sum(len(v) for v in doc["indices"].values())
    click.echo(
        f"{method}: {n} clips ({vpc} per class × {len(doc['indices'])}) "
        f"in {doc['seconds']:.2f}s → {out}"
    )
