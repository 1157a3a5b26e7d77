"""The ``classifier`` embedder's ``train_store``: a pool embedded by a net trained on REAL clips.

Stores are tiny toys (3 classes, 8×48²) and the net trains one epoch of the full-width
``vdsd`` recipe (no ``min_steps``), so each test takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file

from vidistill.cli import main
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.embed import EmbeddingFile, embed_store
from vidistill.embed.classifier import NET_FILE, store_identity
from vidistill.prepare import prepare

SPEC = ClipSpec(frames=8, size=48)
FAST = {"recipe": "vdsd", "epochs": 1, "train_batch_size": 8}


def _toy(root: Path, seed: int, num_classes: int = 3, test: int = 2, train: int = 6) -> ClipStore:
    ds = ToyDataset(num_classes=num_classes, train_per_class=train, test_per_class=test, seed=seed)
    return prepare(ds, root, spec=SPEC, workers=1, progress=False)


@pytest.fixture()
def stores(tmp_path: Path) -> tuple[ClipStore, ClipStore]:
    """A real store (train + test) and a train-only pool with other clips, same classes."""
    real = _toy(tmp_path / "real", seed=0)
    pool = _toy(tmp_path / "pool", seed=1, test=0, train=4)
    return real, pool


def _embed(pool: ClipStore, out: Path, **kw) -> EmbeddingFile:
    return EmbeddingFile(embed_store(pool, "classifier", progress=False, out=out, **FAST, **kw))


def _details(emb: EmbeddingFile) -> dict:
    return json.loads(emb.metadata["details"])


def _key(net: Path) -> dict:
    with safe_open(str(net), framework="pt") as fh:
        return json.loads(fh.metadata()["key"])


def test_pool_is_embedded_by_the_net_trained_on_the_real_store(stores, tmp_path):
    real, pool = stores
    emb = _embed(pool, tmp_path / "pool.safetensors", train_store=real.root)
    net = real.root / "embeddings" / NET_FILE
    assert net.is_file(), "the net is cached in the store that trained it"
    assert not (pool.root / "embeddings" / NET_FILE).exists()
    assert emb.metadata["train_store"] == str(real.root.resolve())
    assert _details(emb)["train_store"] == store_identity(real)
    assert _key(net)["train_store"] == store_identity(real)
    assert emb.n == len(pool) and emb.prob_rows(0, emb.n).shape == (len(pool), 3)

    # the cached weights are exactly a net trained on the REAL training split (seed 0)
    from vidistill.evaluate import Recipe, TrainingSet, train_net

    recipe = Recipe.preset("vdsd", epochs=1, batch_size=8)
    ref, _ = train_net(TrainingSet.from_store(real, split="train"), recipe, seed=0, progress=False)
    cached = load_file(str(net))
    for name, value in ref.state_dict().items():
        torch.testing.assert_close(cached[name], value.detach().cpu())

    # ... and the real store's own embedding reuses it (same training store, same key)
    own = _embed(real, tmp_path / "real.safetensors")
    assert _details(own)["cached"] is True
    assert own.metadata["train_store"] == str(real.root.resolve())


def test_cache_is_reused_and_invalidated_when_the_train_store_changes(stores, tmp_path):
    real, pool = stores
    first = _embed(pool, tmp_path / "a.safetensors", train_store=real.root)
    assert _details(first)["cached"] is False
    net = real.root / "embeddings" / NET_FILE
    stamp = net.stat().st_mtime_ns
    again = _embed(pool, tmp_path / "b.safetensors", train_store=real.root)
    assert _details(again)["cached"] is True
    assert net.stat().st_mtime_ns == stamp, "same training store: the net is not retrained"

    # another real store: its own net, in its own folder; the first one is left alone
    other = _toy(tmp_path / "other", seed=2)
    other_net = other.root / "embeddings" / NET_FILE
    other_net.parent.mkdir(parents=True)
    other_net.write_bytes(net.read_bytes())  # a stale copy of the first store's net
    third = _embed(pool, tmp_path / "c.safetensors", train_store=other.root)
    assert _details(third)["cached"] is False, "a net trained on another store was reused"
    assert _key(other_net)["train_store"] == store_identity(other)
    assert net.stat().st_mtime_ns == stamp
    assert store_identity(other) != store_identity(real)

    # explicit weights trained on one store are refused for another
    with pytest.raises(ValueError, match="was trained with"):
        _embed(pool, tmp_path / "d.safetensors", train_store=other.root, weights=net)


def test_class_names_must_match(tmp_path):
    real = _toy(tmp_path / "real", seed=0, num_classes=3)
    pool = _toy(tmp_path / "pool", seed=1, num_classes=4, test=0, train=2)
    with pytest.raises(ValueError) as err:
        _embed(pool, tmp_path / "x.safetensors", train_store=real.root)
    assert str(real.root) in str(err.value) and str(pool.root) in str(err.value)
    assert not (real.root / "embeddings").exists(), "nothing trained on a mismatch"


def test_cli_train_store(stores, tmp_path):
    real, pool = stores
    run = CliRunner().invoke
    args = ["embed", str(pool.root), "--embedder", "classifier", "--train-store", str(real.root)]
    opts = ["-o", "recipe=vdsd", "-o", "epochs=1", "-o", "train_batch_size=8"]
    res = run(main, args + opts)
    assert res.exit_code == 0, res.output
    emb = EmbeddingFile(pool.root / "embeddings" / "classifier.safetensors")
    assert emb.metadata["train_store"] == str(real.root.resolve())
    res = run(main, ["embed", str(pool.root), "--embedder", "videomae", "--train-store", "."])
    assert res.exit_code != 0 and "does not train on a store" in res.output
