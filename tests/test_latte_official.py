"""The official class-conditional Latte: key layout, strict loading of an official-layout
checkpoint, sampling a pool from it, `convert latte`, `--init` with class mapping, refusal of
pickled objects, and the official diffusion details (respacing, CFG on ε, learned variance).

Tiny models on 4 × 16² toy clips; seconds on one core."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from vidistill.cli import main  # noqa: E402
from vidistill.generate import load_generator, preset, sample_pool  # noqa: E402
from vidistill.generate.config import GenerateConfig  # noqa: E402
from vidistill.generate.latte import Latte, sincos_1d  # noqa: E402
from vidistill.generate.pretrained import (  # noqa: E402
    init_config,
    init_from_pretrained,
    load_latte,
    ucf101_latte_classes,
)
from vidistill.generate.sample import guide, make_sampler  # noqa: E402
from vidistill.generate.train import learned_variance_vlb, make_scheduler  # noqa: E402
from vidistill.generate.vae import build_vae  # noqa: E402

# The parameter names of the official models/latte.py (class-conditional, extras=2), written
# out by hand: nn.Parameter(requires_grad=False) tables, the modules' own names, timm's
# Mlp (fc1/fc2) and PatchEmbed (proj); LayerNorms have no affine, so no norm keys.
OFFICIAL_TOP_KEYS = [
    "x_embedder.proj.weight",
    "x_embedder.proj.bias",
    "t_embedder.mlp.0.weight",
    "t_embedder.mlp.0.bias",
    "t_embedder.mlp.2.weight",
    "t_embedder.mlp.2.bias",
    "y_embedder.embedding_table.weight",
    "pos_embed",
    "temp_embed",
    "final_layer.linear.weight",
    "final_layer.linear.bias",
    "final_layer.adaLN_modulation.1.weight",
    "final_layer.adaLN_modulation.1.bias",
]
OFFICIAL_BLOCK_KEYS = [
    "blocks.{i}.attn.qkv.weight",
    "blocks.{i}.attn.qkv.bias",
    "blocks.{i}.attn.proj.weight",
    "blocks.{i}.attn.proj.bias",
    "blocks.{i}.mlp.fc1.weight",
    "blocks.{i}.mlp.fc1.bias",
    "blocks.{i}.mlp.fc2.weight",
    "blocks.{i}.mlp.fc2.bias",
    "blocks.{i}.adaLN_modulation.1.weight",
    "blocks.{i}.adaLN_modulation.1.bias",
]

# the tiny Latte: 4 latent channels, 4 frames, 8² latents (the tiny VAE: 16² → 8²)
TINY = dict(
    input_size=8,
    patch_size=2,
    in_channels=4,
    hidden_size=32,
    depth=2,
    num_heads=2,
    num_frames=4,
    learn_sigma=True,
)
SOURCE_CLASSES = ["SLIDE-LEFT", "zig-zag", "slide-right"]  # 2 of the store's, another case


def official_state_dict(num_classes: int = 3, seed: int = 0, **kw) -> dict[str, torch.Tensor]:
    """An official-layout state dict with every learned tensor random (the zero inits would
    hide a mix-up of weights)."""
    torch.manual_seed(seed)
    model = Latte(**{**TINY, **kw}, num_classes=num_classes)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.05)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("latte")
    store = prepare(
        ToyDataset(num_classes=4, train_per_class=2, test_per_class=1, seed=0),
        root / "toy",
        spec=ClipSpec(frames=4, size=16),
        workers=1,
    )
    torch.manual_seed(0)
    build_vae(preset("tiny"), 16).save_pretrained(root / "vae", safe_serialization=True)
    ema, raw = official_state_dict(seed=1), official_state_dict(seed=2)
    torch.save({"model": raw, "ema": ema}, root / "tiny_official.pt")  # as train.py saves
    (root / "names.txt").write_text("\n".join(SOURCE_CLASSES) + "\n")
    return {"root": root, "store": store.root, "vae": root / "vae", "pt": root / "tiny_official.pt"}


def test_key_layout_is_the_official_one():
    depth = 4
    model = Latte(**{**TINY, "depth": depth}, num_classes=3)
    expected = set(OFFICIAL_TOP_KEYS) | {
        k.format(i=i) for i in range(depth) for k in OFFICIAL_BLOCK_KEYS
    }
    assert set(model.state_dict()) == expected
    assert not list(model.buffers()), "the official tables are parameters, not buffers"
    params = dict(model.named_parameters())
    assert not params["pos_embed"].requires_grad and not params["temp_embed"].requires_grad
    d, c, p = 32, 4, 2
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["x_embedder.proj.weight"] == (d, c, p, p)
    assert shapes["y_embedder.embedding_table.weight"] == (3 + 1, d)  # + the null label
    assert shapes["pos_embed"] == (1, (8 // p) ** 2, d) and shapes["temp_embed"] == (1, 4, d)
    assert shapes["blocks.0.attn.qkv.weight"] == (3 * d, d)
    assert shapes["blocks.0.mlp.fc1.weight"] == (4 * d, d)
    assert shapes["blocks.0.adaLN_modulation.1.weight"] == (6 * d, d)
    assert shapes["final_layer.adaLN_modulation.1.weight"] == (2 * d, d)
    assert shapes["final_layer.linear.weight"] == (p * p * 2 * c, d)  # learn_sigma: 2·C out
    # fixed sin-cos temp_embed (MAE's formula: sin half, cos half)
    assert torch.allclose(
        model.temp_embed[0, 1, :2], torch.tensor([np.sin(1.0), np.sin(1e-4 ** (2 / 32))]).float()
    )
    assert torch.equal(model.temp_embed[0], sincos_1d(d, 4))
    out = model(torch.randn(2, c, 4, 8, 8), torch.tensor([1, 900]), torch.tensor([0, 3]))
    assert out.shape == (2, 2 * c, 4, 8, 8)


def test_official_checkpoint_loads_strictly_and_samples_a_pool(work, tmp_path):
    pre = load_latte(work["pt"], num_heads=2, class_names=SOURCE_CLASSES)
    assert pre.source["weights"] == "ema"  # the official find_model's preference
    model = pre.build()  # strict=True
    ema = torch.load(work["pt"], weights_only=True)["ema"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema[k]), k
    arch = pre.source["architecture"]
    assert (arch["hidden"], arch["depth"], arch["heads"], arch["patch"]) == (32, 2, 2, 2)
    assert arch["learn_sigma"] and arch["num_classes"] == 3 and arch["frames"] == 4

    res = CliRunner().invoke(
        main,
        ["convert", "latte", str(work["pt"]), str(tmp_path / "conv"), "--num-heads", "2"]
        + ["--class-names", str(work["root"] / "names.txt"), "--vae", str(work["vae"])],
    )
    assert res.exit_code == 0, res.output
    pool = sample_pool(
        tmp_path / "conv", tmp_path / "pool", per_class=2, steps=3, guidance=7.0,
        sampler="ddpm", batch=4, seed=3, progress=False,
    )  # fmt: skip
    assert pool.videos.shape == (6, 4, 16, 16, 3) and pool.videos.dtype == np.uint8
    assert pool.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert pool.class_names == SOURCE_CLASSES
    assert [r["meta"]["seed"] for r in pool.records] == [3] * 4 + [4] * 2
    assert pool.info_json["generator"]["sampler"] == "ddpm"


def test_convert_latte_round_trips(work, tmp_path):
    res = CliRunner().invoke(
        main,
        ["convert", "latte", str(work["pt"]), str(tmp_path / "c"), "--num-heads", "2"]
        + ["--class-names", str(work["root"] / "names.txt")],
    )
    assert res.exit_code == 0, res.output
    assert "ema weights" in res.output and "3 classes + null" in res.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["config.json", "ema.safetensors"]
    ema = torch.load(work["pt"], weights_only=True)["ema"]
    written = load_file(str(tmp_path / "c" / "ema.safetensors"))
    assert written.keys() == ema.keys()
    assert all(torch.equal(written[k], ema[k]) for k in ema)
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["data"]["class_names"] == SOURCE_CLASSES
    assert cfg["data"]["latent_shape"] == [4, 4, 8, 8] and cfg["data"]["size"] == 64  # 8 × 8
    assert cfg["generator"]["learn_sigma"] and cfg["generator"]["prediction_type"] == "epsilon"
    # the folder loads back (generate sample's loader, and as an --init source) unchanged
    model, _ = load_generator(tmp_path / "c")
    again = load_latte(tmp_path / "c")
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema[k]) and torch.equal(again.state_dict[k], ema[k]), k
    assert again.class_names == SOURCE_CLASSES and again.cfg.heads == 2
    # a second convert onto a non-empty folder is refused, nothing overwritten
    res = CliRunner().invoke(main, ["convert", "latte", str(work["pt"]), str(tmp_path / "c")])
    assert res.exit_code != 0 and "already exists" in res.output


_UNPICKLED: list[str] = []


def _mark() -> str:
    _UNPICKLED.append("ran")
    return "x"


class _Payload:
    def __reduce__(self):
        return (_mark, ())


def test_pickled_objects_are_refused_in_one_line(work, tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"ema": official_state_dict(), "extra": _Payload()}, bad)
    res = CliRunner().invoke(main, ["convert", "latte", str(bad), str(tmp_path / "out")])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "evil.pt" in lines[0]
    assert "refusing to load" in lines[0]
    assert not _UNPICKLED, "the object was unpickled"
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="refusing"):
        load_latte(bad, num_heads=2)


def test_init_maps_classes_and_keeps_every_other_weight(work, tmp_path):
    """A checkpoint of 3 classes → a store of 4 (two of them under other case, other rows):
    every weight but the label table is the checkpoint's; matched rows move to the store's
    order, the rest are fresh, the null row is the checkpoint's null row. --lr 0: the one
    training step leaves the weights as initialised."""
    res = CliRunner().invoke(
        main,
        ["convert", "latte", str(work["pt"]), str(tmp_path / "c"), "--num-heads", "2"]
        + ["--class-names", str(work["root"] / "names.txt"), "--vae", str(work["vae"])],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        main,
        ["generate", "train", str(work["store"]), "--out", str(tmp_path / "run")]
        + ["--preset", "tiny", "--steps", "1", "--lr", "0", "--cpu", "--init", str(tmp_path / "c")],
    )
    assert res.exit_code == 0, res.output
    assert (
        "2/4 store classes" in res.output and "re-initialised: slide-up, slide-down" in res.output
    )
    src = torch.load(work["pt"], weights_only=True)["ema"]
    got = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert got.keys() == src.keys()
    for k in src:
        if k != "y_embedder.embedding_table.weight":
            assert torch.equal(got[k], src[k]), k
    table, old = got["y_embedder.embedding_table.weight"], src["y_embedder.embedding_table.weight"]
    store_names = ClipStore(work["store"]).class_names  # slide-right, slide-left, up, down
    assert table.shape == (4 + 1, 32)
    assert torch.equal(table[store_names.index("slide-right")], old[2])
    assert torch.equal(table[store_names.index("slide-left")], old[0])
    assert torch.equal(table[4], old[3])  # null → null
    for name in ("slide-up", "slide-down"):
        row = table[store_names.index(name)]
        assert not any(torch.equal(row, r) for r in old) and 0.005 < float(row.std()) < 0.05
    run_cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    init = run_cfg["data"]["init"]
    assert init["mapped"] == {"slide-right": 2, "slide-left": 0}
    assert run_cfg["generator"]["learn_sigma"] and run_cfg["generator"]["hidden"] == 32
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert np.isfinite(done["final_loss_ema"])  # ε MSE + the learned-variance term


def test_init_without_names_and_with_other_frames(work):
    """No class names and the same count → rows by index; other frame count / latent size →
    the fixed sin-cos tables are recomputed, everything else copied."""
    pre = load_latte(work["pt"], num_heads=2)
    assert pre.class_names is None
    cfg, changed = init_config(preset("tiny"), pre)
    assert "learn_sigma" in changed and cfg.learn_sigma
    model = Latte(**{**TINY, "num_frames": 8, "input_size": 4}, num_classes=3)
    report = init_from_pretrained(model, pre, ["a", "b", "c"])
    assert report["recomputed"] == ["pos_embed", "temp_embed"]
    assert "by index" in report["message"]
    sd = model.state_dict()
    assert torch.equal(
        sd["y_embedder.embedding_table.weight"], pre.state_dict["y_embedder.embedding_table.weight"]
    )
    assert torch.equal(sd["temp_embed"][0], sincos_1d(32, 8))
    assert torch.equal(sd["blocks.1.attn.qkv.weight"], pre.state_dict["blocks.1.attn.qkv.weight"])


def test_ucf101_names_are_the_sorted_folder_names():
    names = ucf101_latte_classes()
    assert len(names) == 101 and names == sorted(names)
    # where sorted() differs from classInd.txt
    assert names.index("HammerThrow") < names.index("Hammering")
    assert names.index("JumpRope") < names.index("JumpingJack")
    minis = Path(__file__).parents[1] / "src/vidistill/resources/miniucf_classes.txt"
    assert set(minis.read_text().split()) <= set(names)


def test_ddpm_respacing_is_the_official_one():
    """The official space_timesteps(1000, "250"), transcribed: frac_stride = 999 / 249."""
    cfg = preset("latte-s")
    taken, cur = [], 0.0
    for _ in range(250):
        taken.append(round(cur))
        cur += (1000 - 1) / (250 - 1)
    sch = make_sampler(cfg, "ddpm", 250)
    assert sorted(sch.timesteps.tolist()) == taken
    assert sch.config.variance_type == "learned_range"
    assert make_scheduler(preset("toy")).config.variance_type == "fixed_large"
    dpm = make_sampler(cfg, "dpm", 10)
    assert dpm.config.variance_type is None  # DPM-Solver would keep 3 channels of 8


def test_cfg_guides_the_eps_channels_only():
    cond = torch.randn(2, 8, 4, 2, 2)
    uncond = torch.randn(2, 8, 4, 2, 2)
    out = guide(torch.cat([cond, uncond]), 7.0, 4)
    assert torch.allclose(out[:, :4], uncond[:, :4] + 7.0 * (cond[:, :4] - uncond[:, :4]))
    assert torch.equal(out[:, 4:], cond[:, 4:])  # the variance of the conditional branch


def test_learned_variance_term():
    """The KL of the true posterior to itself is 0 (x̂₀ = x₀, v = −1 → the posterior
    variance); a larger variance costs bits; t = 0 is the decoder NLL (finite, positive)."""
    sch = make_scheduler(preset("latte-s"))
    x0 = torch.randn(3, 4, 2, 4, 4)
    t = torch.tensor([1, 400, 999])
    xt = sch.add_noise(x0, torch.randn_like(x0), t)
    exact = learned_variance_vlb(sch, x0, xt, t, x0, -torch.ones_like(x0))
    assert torch.allclose(exact, torch.zeros(3), atol=1e-5)
    wide = learned_variance_vlb(sch, x0, xt, t, x0, torch.ones_like(x0))
    # β_t vs β̃_t differ most at small t (at t = 1: β̃ ≈ β/2); later they nearly agree
    assert wide[0] > 0.01 and (wide >= -1e-6).all()
    t0 = learned_variance_vlb(
        sch, x0, x0, torch.zeros(3, dtype=torch.long), x0, torch.zeros_like(x0)
    )
    assert torch.isfinite(t0).all() and (t0 > 0).all()


def test_old_wrapper_configs_are_refused_with_a_reason():
    d = preset("toy").to_dict()
    d.pop("depth")
    d["layers"], d["label_tokens"] = 3, 1
    with pytest.raises(ValueError, match="previous Latte"):
        GenerateConfig.from_dict(d)
