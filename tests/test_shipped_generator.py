"""The generator shipped in the package: `generate ship` packs a finished run (relative VAE,
hashes), the packed folder samples the pool the run samples, damage is named, and a config
names it as `weights: shipped:NAME`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidistill.clipstore import ClipSpec
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from vidistill.generate import preset, sample_pool, train  # noqa: E402
from vidistill.generate.shipped import (  # noqa: E402
    HASHES,
    resource_dir,
    ship_run,
    shipped_generator,
    verify,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ship")
    ds = ToyDataset(num_classes=2, train_per_class=4, test_per_class=1, seed=0)
    store = prepare(ds, root / "toy", spec=ClipSpec(frames=4, size=16), workers=1)
    out = root / "run"
    train(store.root, out, preset("tiny").override(steps=4, vae_steps=4), progress=False, cpu=True)
    return out


def test_shipped_folder_samples_the_runs_pool(run_dir, tmp_path):
    hashes = ship_run(run_dir, tmp_path / "shipped")
    shipped = tmp_path / "shipped"
    assert set(hashes) >= {"config.json", "ema.safetensors", "done.json", "vae/config.json"}
    assert json.loads((shipped / "config.json").read_text())["data"]["vae_dir"] == "vae"
    assert not (shipped / "latents.safetensors").exists()  # training-only files stay behind
    verify(shipped)
    kw = {"steps": 2, "batch": 4, "seeding": "clip"}
    a = sample_pool(run_dir, tmp_path / "a", 2, **kw)
    b = sample_pool(shipped, tmp_path / "b", 2, **kw)  # moved machine: no absolute path used
    assert np.array_equal(np.asarray(a.videos), np.asarray(b.videos))
    assert a.labels.tolist() == b.labels.tolist() == [0, 0, 1, 1]


def test_a_damaged_shipped_file_is_named(run_dir, tmp_path):
    shipped = tmp_path / "shipped"
    ship_run(run_dir, shipped)
    with open(shipped / "ema.safetensors", "r+b") as fh:
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(ValueError, match=r"ema\.safetensors.*reinstall"):
        verify(shipped)


def test_ship_refuses_an_unfinished_run(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="not a finished"):
        ship_run(tmp_path / "run", tmp_path / "out")


def test_a_missing_shipped_generator_says_how_to_get_one():
    with pytest.raises(FileNotFoundError, match="no 'nope' generator is shipped"):
        shipped_generator("nope")


def test_the_shipped_toy_generator_fits_the_toy():
    """Its hashes hold and its data facts are the default toy's (classes, frames, size)."""
    root = resource_dir("toy")
    if not (root / HASHES).is_file():
        pytest.skip("no toy generator shipped yet (issue 16: trained in the background)")
    cfg = json.loads((shipped_generator("toy") / "config.json").read_text())["data"]
    toy = ToyDataset()
    assert cfg["class_names"] == toy.class_names
    assert (cfg["frames"], cfg["size"]) == (8, 64)
