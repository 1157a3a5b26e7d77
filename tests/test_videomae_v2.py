"""VideoMAE-v2 official checkpoints → transformers VideoMAEModel + fc_norm.

A tiny random model in the official ``VisionTransformer`` key layout (dim 48, depth 2,
3 heads via ``num_heads``, patch 16, tubelet 2, 16 frames, 32²) is saved in each accepted
form; the converted model must reproduce a direct re-implementation of the official
forward (``models/modeling_finetune.py``) — which is what proves the key mapping."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors.torch import save_file

from stores import random_store
from vidistill.cli import main
from vidistill.embed import EmbeddingFile, create_embedder, embed_store
from vidistill.embed.videomae_v2 import FC_NORM_FILE, infer_config, load_videomae_v2

pytest.importorskip("transformers")

DIM, DEPTH, HEADS, MLP, PATCH, TUBELET, FRAMES, SIZE = 48, 2, 3, 96, 16, 2, 16, 32
OPTS = {"num_heads": HEADS, "image_size": SIZE}


def official_state_dict(seed=0, layer_scale=False, classes=5) -> dict[str, torch.Tensor]:
    """Random weights under the official key names (norms and biases random too, so a
    swapped or dropped tensor changes the output)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.05, mean=0.0):
        return mean + std * torch.randn(*shape, generator=g)

    sd = {
        "patch_embed.proj.weight": rnd(DIM, 3, TUBELET, PATCH, PATCH, std=0.02),
        "patch_embed.proj.bias": rnd(DIM),
        "fc_norm.weight": rnd(DIM, std=0.1, mean=1.0),
        "fc_norm.bias": rnd(DIM),
        "head.weight": rnd(classes, DIM),
        "head.bias": rnd(classes),
    }
    for n in range(DEPTH):
        b = f"blocks.{n}."
        sd |= {
            b + "norm1.weight": rnd(DIM, std=0.1, mean=1.0),
            b + "norm1.bias": rnd(DIM),
            b + "attn.qkv.weight": rnd(3 * DIM, DIM, std=0.2),
            b + "attn.q_bias": rnd(DIM),
            b + "attn.v_bias": rnd(DIM),
            b + "attn.proj.weight": rnd(DIM, DIM, std=0.1),
            b + "attn.proj.bias": rnd(DIM),
            b + "norm2.weight": rnd(DIM, std=0.1, mean=1.0),
            b + "norm2.bias": rnd(DIM),
            b + "mlp.fc1.weight": rnd(MLP, DIM, std=0.1),
            b + "mlp.fc1.bias": rnd(MLP),
            b + "mlp.fc2.weight": rnd(DIM, MLP, std=0.1),
            b + "mlp.fc2.bias": rnd(DIM),
        }
        if layer_scale:
            sd |= {b + "gamma_1": rnd(DIM, std=0.3, mean=0.5), b + "gamma_2": rnd(DIM, mean=0.5)}
    return sd


def sinusoid_table(n: int, d: int) -> torch.Tensor:
    """``get_sinusoid_encoding_table`` of the official code."""
    angle = np.arange(n)[:, None] / np.power(10000, 2 * (np.arange(d)[None] // 2) / d)
    angle[:, 0::2], angle[:, 1::2] = np.sin(angle[:, 0::2]), np.cos(angle[:, 1::2])
    return torch.tensor(angle, dtype=torch.float32)[None]


def official_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: int = HEADS):
    """``VisionTransformer.forward_features`` for ``x`` (B, 3, T, H, W), written out."""
    w = sd["patch_embed.proj.weight"]
    t = F.conv3d(x, w, sd["patch_embed.proj.bias"], stride=tuple(w.shape[2:]))
    t = t.flatten(2).transpose(1, 2)  # (B, N, D)
    bsz, n_tok, dim = t.shape
    t = t + sinusoid_table(n_tok, dim)
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for n in range(depth):
        p = {k.split(".", 2)[2]: v for k, v in sd.items() if k.startswith(f"blocks.{n}.")}
        h = F.layer_norm(t, (dim,), p["norm1.weight"], p["norm1.bias"], eps=1e-6)
        bias = torch.cat([p["attn.q_bias"], torch.zeros_like(p["attn.v_bias"]), p["attn.v_bias"]])
        qkv = F.linear(h, p["attn.qkv.weight"], bias).reshape(bsz, n_tok, 3, heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        h = (attn @ v).transpose(1, 2).reshape(bsz, n_tok, dim)
        h = F.linear(h, p["attn.proj.weight"], p["attn.proj.bias"])
        t = t + p.get("gamma_1", 1.0) * h
        h = F.layer_norm(t, (dim,), p["norm2.weight"], p["norm2.bias"], eps=1e-6)
        h = F.gelu(F.linear(h, p["mlp.fc1.weight"], p["mlp.fc1.bias"]))
        t = t + p.get("gamma_2", 1.0) * F.linear(h, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return F.layer_norm(t.mean(1), (dim,), sd["fc_norm.weight"], sd["fc_norm.bias"], eps=1e-6)


def converted_features(model, fc_norm, x: torch.Tensor) -> torch.Tensor:
    """transformers takes (B, T, 3, H, W)."""
    with torch.no_grad():
        return fc_norm(model(pixel_values=x.permute(0, 2, 1, 3, 4)).last_hidden_state.mean(1))


def _video(seed=1, batch=2) -> torch.Tensor:
    return torch.randn(batch, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _save_all_forms(tmp_path, sd) -> dict[str, object]:
    """Every accepted on-disk form of the same official weights."""
    torch.save({"module": sd}, tmp_path / "module.pth")
    # a training checkpoint: weights under 'model' beside optimizer state and argparse args
    torch.save(
        {"model": sd, "epoch": 3, "args": argparse.Namespace(model="vit_tiny", lr=1e-3)},
        tmp_path / "train.pt",
    )
    save_file(sd, str(tmp_path / "plain.safetensors"))
    hf = tmp_path / "hf_remote_code"  # HF remote-code folder: 'model.' prefix + model_config
    hf.mkdir()
    save_file({f"model.{k}": v for k, v in sd.items()}, str(hf / "model.safetensors"))
    (hf / "config.json").write_text(
        json.dumps({"model_type": "VideoMAEv2", "model_config": {"num_heads": HEADS}})
    )
    return {
        "module.pth": (tmp_path / "module.pth", OPTS),
        "train.pt": (tmp_path / "train.pt", OPTS),
        "plain.safetensors": (tmp_path / "plain.safetensors", OPTS),
        "hf folder": (hf, {"image_size": SIZE}),  # heads from config.json
    }


@pytest.mark.parametrize("layer_scale", [False, True])
def test_every_form_loads_and_matches_the_official_forward(tmp_path, layer_scale):
    sd = official_state_dict(layer_scale=layer_scale)
    x = _video()
    want = official_forward(sd, x)
    for name, (path, opts) in _save_all_forms(tmp_path, sd).items():
        model, fc_norm, info = load_videomae_v2(path, **opts)
        cfg = model.config
        got = (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads)
        assert got == (DIM, DEPTH, HEADS), name
        assert (cfg.intermediate_size, cfg.patch_size, cfg.tubelet_size) == (MLP, PATCH, TUBELET)
        assert (cfg.num_frames, cfg.image_size, cfg.layer_norm_eps) == (FRAMES, SIZE, 1e-6)
        assert info["dropped_head"]
        torch.testing.assert_close(converted_features(model, fc_norm, x), want, atol=1e-4, rtol=0)


def test_shapes_give_the_architecture():
    """The giant's config from its shapes alone (meta tensors: nothing allocated)."""

    def shapes(dim, depth, mlp, patch):
        sd = {"patch_embed.proj.weight": (dim, 3, 2, patch, patch), "fc_norm.weight": (dim,)}
        for n in range(depth):
            sd |= {f"blocks.{n}.attn.qkv.weight": (3 * dim, dim), f"blocks.{n}.attn.q_bias": (dim,)}
            sd[f"blocks.{n}.mlp.fc1.weight"] = (mlp, dim)
        return {k: torch.empty(s, device="meta") for k, s in sd.items()}

    giant = infer_config(shapes(1408, 40, 6144, 14))
    assert (giant.hidden_size, giant.num_hidden_layers, giant.num_attention_heads) == (1408, 40, 16)
    assert (giant.intermediate_size, giant.patch_size, giant.tubelet_size) == (6144, 14, 2)
    assert (giant.num_frames, giant.image_size, giant.qv_bias) == (16, 224, True)
    for dim, heads in ((384, 6), (768, 12)):  # the distilled ViT-S / ViT-B
        cfg = infer_config(shapes(dim, 12, 4 * dim, 16))
        assert (cfg.num_attention_heads, cfg.intermediate_size, cfg.patch_size) == (
            heads,
            4 * dim,
            16,
        )
    assert infer_config(shapes(768, 1, 3072, 16), num_heads=8).num_attention_heads == 8
    with pytest.raises(ValueError, match="pass num_heads"):
        infer_config(shapes(DIM, 1, MLP, 16))


def test_unsupported_checkpoints_say_why(tmp_path):
    sd = official_state_dict()
    pre = {f"encoder.{k}": v for k, v in sd.items()} | {"decoder.head.weight": torch.zeros(3, 3)}
    save_file(pre, str(tmp_path / "pt.safetensors"))
    with pytest.raises(ValueError, match="pre-training checkpoint"):
        load_videomae_v2(tmp_path / "pt.safetensors", **OPTS)
    learned = sd | {"pos_embed": torch.randn(1, 32, DIM)}
    save_file(learned, str(tmp_path / "learned.safetensors"))
    with pytest.raises(ValueError, match="learned position embeddings"):
        load_videomae_v2(tmp_path / "learned.safetensors", **OPTS)
    # a pos_embed that IS the sinusoid table (a learnable-but-never-trained copy) is fine
    fixed = sd | {"pos_embed": sinusoid_table(32, DIM)}
    save_file(fixed, str(tmp_path / "fixed.safetensors"))
    load_videomae_v2(tmp_path / "fixed.safetensors", **OPTS)
    save_file(
        {k: v for k, v in sd.items() if k != "blocks.1.mlp.fc2.bias"},
        str(tmp_path / "c.safetensors"),
    )
    with pytest.raises(ValueError, match="missing blocks.1.mlp.fc2.bias"):
        load_videomae_v2(tmp_path / "c.safetensors", **OPTS)
    save_file(sd | {"blocks.0.attn.extra": torch.zeros(1)}, str(tmp_path / "u.safetensors"))
    with pytest.raises(ValueError, match="unexpected keys"):
        load_videomae_v2(tmp_path / "u.safetensors", **OPTS)


def test_convert_cli_writes_a_folder_the_embedder_loads(tmp_path):
    sd = official_state_dict(seed=3)
    torch.save({"module": sd}, tmp_path / "v2.pth")
    dst = tmp_path / "converted"
    args = ["convert", "videomae-v2", str(tmp_path / "v2.pth"), str(dst)]
    res = CliRunner().invoke(main, [*args, "--num-heads", "3", "--image-size", "32"])
    assert res.exit_code == 0, res.output
    names = {p.name for p in dst.iterdir()}
    assert {"config.json", "model.safetensors", FC_NORM_FILE, "preprocessor_config.json"} <= names
    pre = json.loads((dst / "preprocessor_config.json").read_text())
    assert pre["image_mean"] == [0.485, 0.456, 0.406] and pre["crop_size"]["height"] == 32
    assert json.loads((dst / "conversion.json").read_text())["num_attention_heads"] == HEADS
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".converted")]  # no temp left

    # the folder and the .pth give the same vectors, and both are the official features
    store = random_store(tmp_path / "store", classes=2, per=(3, 1))
    folder = embed_store(store, "videomae", weights=dst, progress=False)
    direct = embed_store(
        store,
        "videomae",
        weights=tmp_path / "v2.pth",
        progress=False,
        out=tmp_path / "direct.safetensors",
        **OPTS,
    )
    a, b = EmbeddingFile(folder), EmbeddingFile(direct)
    np.testing.assert_allclose(a.rows(0, a.n), b.rows(0, b.n), atol=1e-5)
    assert json.loads(a.metadata["details"])["pooling"] == "mean+fc_norm"
    emb = create_embedder("videomae", store, weights=dst)
    clips = store.clips(store.indices("train"))
    want = official_forward(sd, emb.preprocess(clips).permute(0, 2, 1, 3, 4))
    np.testing.assert_allclose(a.rows(0, a.n), want.numpy(), atol=1e-4)

    # converting again onto a non-empty folder is a clean error, and options that a
    # converted folder's config.json fixes are refused
    res = CliRunner().invoke(main, [*args, "--num-heads", "3"])
    assert res.exit_code == 1 and "already exists" in res.output and "Traceback" not in res.output
    with pytest.raises(ValueError, match="config.json already fixes"):
        create_embedder("videomae", store, weights=dst, num_heads=3)


class NotATensor:
    """Stands for anything a checkpoint may pickle besides tensors."""

    def __init__(self):
        self.payload = [1, 2, 3]


def test_pickled_objects_are_refused_with_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"module": official_state_dict(), "extra": NotATensor()}, bad)
    store = random_store(tmp_path / "store", classes=2, per=(3, 1))
    for args in (
        ["embed", store.root, "--embedder", "videomae", "--weights", bad, "-o", "num_heads=3"],
        ["convert", "videomae-v2", bad, tmp_path / "out"],
    ):
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 1, res.output
        assert isinstance(res.exception, SystemExit), repr(res.exception)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
        assert str(bad) in lines[0] and "never unpickles" in lines[0], lines[0]
    assert not (tmp_path / "out").exists()
