"""Embedders: streaming safetensors file, VideoMAE's real loading path, the classifier cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from stores import random_store
from vidistill import registry
from vidistill.embed import EmbeddingFile, embed_store, embeddings_path
from vidistill.embed.store import StreamingSafetensorsWriter
from vidistill.embed.videomae import frame_indices
from vidistill.select import select_store


def test_embedders_registered():
    assert {"videomae", "classifier", "latent"} <= set(registry.names("embedder"))


def test_streaming_writer_roundtrip(tmp_path):
    path = tmp_path / "x.safetensors"
    w = StreamingSafetensorsWriter(
        path, {"a": (np.float32, (5, 3)), "b": (np.int64, (5,))}, {"k": "v"}
    )
    a = np.arange(15, dtype=np.float32).reshape(5, 3)
    w.write_rows("a", 3, a[3:])
    w.write_rows("a", 0, a[:3])
    w.write_rows("b", 0, np.arange(5))
    assert not path.exists(), "nothing visible before commit (atomic)"
    w.commit()
    with safe_open(str(path), framework="numpy") as fh:
        assert fh.metadata() == {"k": "v"}
        np.testing.assert_array_equal(fh.get_tensor("a"), a)
        np.testing.assert_array_equal(fh.get_tensor("b"), np.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]


def test_frame_indices():
    assert frame_indices(8, 16).tolist() == [i // 2 for i in range(16)]  # each frame twice
    assert frame_indices(16, 8).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]


def _tiny_videomae(tmp_path, image_size=32, frames=4):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.VideoMAEConfig(
        image_size=image_size,
        patch_size=16,
        num_frames=frames,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    transformers.VideoMAEModel(cfg).save_pretrained(tmp_path / "mae")
    return tmp_path / "mae"


def test_videomae_loads_saved_weights_and_embeds(tmp_path):
    """Real path: save_pretrained a tiny random VideoMAE, embed 8×64² clips (→ 4 frames × 32²)."""
    weights = _tiny_videomae(tmp_path)
    store = random_store(tmp_path / "store")
    path = embed_store(store, "videomae", weights=weights, batch_size=5, progress=False)
    assert path == embeddings_path(store.root, "videomae")
    emb = EmbeddingFile(path)
    train = store.indices("train")
    assert (emb.n, emb.dim) == (len(train), 32)
    np.testing.assert_array_equal(emb.indices, train)
    np.testing.assert_array_equal(emb.labels, store.labels[train])
    x = emb.rows(0, emb.n)
    assert np.isfinite(x).all() and np.std(x[:, 0]) > 0  # different clips → different vectors
    # batching must not change the vectors
    other = embed_store(
        store,
        "videomae",
        weights=weights,
        batch_size=12,
        progress=False,
        out=tmp_path / "b.safetensors",
    )
    np.testing.assert_allclose(EmbeddingFile(other).rows(0, emb.n), x, rtol=1e-4, atol=1e-5)
    assert json.loads(emb.metadata["details"])["num_frames"] == 4
    # and the selection end to end
    sel = select_store(
        store, "tac-dt", 2, embedder="videomae", out=tmp_path / "sel.json", progress=False
    )
    for c, name in enumerate(store.class_names):
        assert set(sel["indices"][name]) <= set(store.indices("train", c).tolist())
    assert json.loads((tmp_path / "sel.json").read_text())["indices"] == sel["indices"]


def test_videomae_without_weights_says_how(tmp_path):
    store = random_store(tmp_path / "store")
    with pytest.raises(ValueError, match="huggingface-cli download MCG-NJU/videomae-base"):
        embed_store(store, "videomae", progress=False)


def test_latent_embedder_flattens_vae_latents(tmp_path):
    """The real loading path: a tiny AutoencoderKL saved with save_pretrained, loaded by
    --weights; rows are the flattened (C, T, h, w) posterior means, shape recorded."""
    import torch

    from vidistill.generate import preset
    from vidistill.generate.vae import build_vae, encode_clips

    store = random_store(tmp_path / "store", size=32)
    torch.manual_seed(0)
    vae = build_vae(preset("tiny"), 32)
    vae.save_pretrained(tmp_path / "run" / "vae")  # a generate run folder holds vae/ ...
    (tmp_path / "run" / "config.json").write_text('{"generator": {}}')  # ... and its own config
    with pytest.raises(ValueError, match="needs a VAE"):
        embed_store(store, "latent", progress=False)
    emb = EmbeddingFile(embed_store(store, "latent", weights=tmp_path / "run", progress=False))
    shape = json.loads(emb.metadata["details"])["latent_shape"]
    c, t, h, w = shape
    assert (t, h * (2 ** (len(vae.config.block_out_channels) - 1))) == (8, 32)
    assert emb.dim == c * t * h * w
    idx = store.indices("train")
    want = encode_clips(vae.eval(), torch.from_numpy(store.clips(idx[:3])))
    np.testing.assert_allclose(emb.rows(0, 3), want.reshape(3, -1).numpy(), rtol=1e-4, atol=1e-5)


def test_classifier_embedder_trains_once_and_caches(tmp_path):
    store = random_store(tmp_path / "store")
    path = embed_store(store, "classifier", progress=False, epochs=1, batch_size=4, recipe="vdsd")
    emb = EmbeddingFile(path)
    assert emb.has_probs and emb.prob_rows(0, emb.n).shape == (emb.n, 3)
    np.testing.assert_allclose(emb.prob_rows(0, emb.n).sum(1), 1.0, rtol=1e-5)
    net = store.root / "embeddings" / "classifier-net.safetensors"
    assert net.is_file()
    stamp = net.stat().st_mtime_ns
    again = EmbeddingFile(
        embed_store(
            store,
            "classifier",
            progress=False,
            epochs=1,
            recipe="vdsd",
            out=tmp_path / "again.safetensors",
        )
    )
    assert net.stat().st_mtime_ns == stamp, "cached net must be reused, not retrained"
    assert json.loads(again.metadata["details"])["cached"] is True
    np.testing.assert_allclose(again.rows(0, again.n), emb.rows(0, emb.n), rtol=1e-5, atol=1e-6)
    sel = select_store(store, "mae-score", 2, embedder="classifier", progress=False)
    assert all(len(v) == 2 for v in sel["indices"].values())


def test_select_errors_name_the_fix(tmp_path):
    store = random_store(tmp_path / "store")
    with pytest.raises(FileNotFoundError, match="vidistill embed"):
        select_store(store, "tac-dt", 1, embedder="videomae", progress=False)
    with pytest.raises(ValueError, match="--embedder"):
        select_store(store, "k-center", 1, progress=False)
    with pytest.raises(ValueError, match="'class0' has only 4 clips"):
        select_store(store, "random", 5, progress=False)


def test_streamed_selection_from_file_matches_in_memory(tmp_path):
    """--memory-budget-mb 0: classes are streamed from the safetensors file in 16-row blocks."""
    weights = _tiny_videomae(tmp_path)
    store = random_store(tmp_path / "store", size=16, per=(40, 1))
    embed_store(store, "videomae", weights=weights, batch_size=16, progress=False)
    for method in ("k-center", "herding", "tac-dt"):
        mem = select_store(store, method, 3, embedder="videomae", progress=False)
        streamed = select_store(
            store, method, 3, embedder="videomae", progress=False, memory_budget_mb=0
        )
        for name in store.class_names:
            assert len(set(streamed["indices"][name])) == 3
            if method != "tac-dt":  # IncrementalPCA ≠ PCA, so TAC-DT may differ in ties
                assert streamed["indices"][name] == mem["indices"][name], method


@pytest.mark.parametrize("method", registry.names("selector"))
def test_every_selector_through_the_store_picks_in_class_clips(tmp_path, method):
    """select_store maps class positions back to store indices of that class, train split only."""
    store = random_store(tmp_path / "store", size=8, per=(6, 2))
    train = store.indices("train")
    rng = np.random.default_rng(0)
    w = StreamingSafetensorsWriter(
        embeddings_path(store.root, "fake"),
        {
            "embeddings": (np.float32, (len(train), 4)),
            "indices": (np.int64, (len(train),)),
            "labels": (np.int64, (len(train),)),
            "probs": (np.float32, (len(train), 3)),
        },
        {"embedder": "fake", "split": "train"},
    )
    w.write_rows("embeddings", 0, rng.normal(size=(len(train), 4)))
    w.write_rows("indices", 0, train)
    w.write_rows("labels", 0, store.labels[train])
    w.write_rows("probs", 0, rng.dirichlet(np.ones(3), size=len(train)))
    w.commit()
    sel = select_store(
        store, method, 3, seed=1, embedder="fake", progress=False, out=tmp_path / "sel.json"
    )
    assert sel["method"] == method and sel["vpc"] == 3 and sel["seed"] == 1
    for c, name in enumerate(store.class_names):
        got = sel["indices"][name]
        assert len(set(got)) == 3 and set(got) <= set(store.indices("train", c).tolist())
    assert json.loads((tmp_path / "sel.json").read_text())["indices"] == sel["indices"]


def test_cli_embed_select_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from vidistill.cli import main

    store = random_store(tmp_path / "store")
    runner = CliRunner()
    res = runner.invoke(main, ["embed", str(store.root), "--embedder", "videomae"])
    assert res.exit_code != 0 and "huggingface-cli download" in res.output
    out = tmp_path / "sel.json"
    res = runner.invoke(
        main,
        [
            "select",
            str(store.root),
            "--method",
            "random",
            "--vpc",
            "2",
            "--out",
            str(out),
            "--seed",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["seed"] == 4
    res = runner.invoke(
        main, ["select", str(store.root), "--method", "random", "--vpc", "9", "--out", str(out)]
    )
    assert res.exit_code != 0 and "'class0' has only 4 clips" in res.output
