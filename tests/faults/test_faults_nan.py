"""NaN / Inf in a training loop: stop at the first non-finite loss, before its update and
before any checkpoint of it, keep the last good checkpoint, and say so in one line. The
evaluator, by design (DESIGN §4), flags the run as diverged instead and reports it.

Each case poisons the real computation (the learnable tensors, or the loss function the
loop calls), so the NaN flows through the code under test as it would in a real blow-up.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import EMBED, EVAL
from harness import cli, ok, one_error_line

from vidistill import registry
from vidistill.clipstore import ClipStore
from vidistill.integrity import load_safetensors

pytestmark = pytest.mark.fault("nan")


@pytest.fixture()
def store(toy_store: ClipStore, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(toy_store.root, dst)
    return dst


def _all_finite(path: Path) -> bool:
    tensors, _ = load_safetensors(path, "test")
    return all(torch.isfinite(t.float()).all() for t in tensors.values() if t.is_floating_point())


def test_synthesis_keeps_its_last_good_checkpoint(store: Path, tmp_path: Path, monkeypatch):
    """DM blows up at iteration 7 (its videos become NaN): stopped there, the checkpoint of
    iteration 5 is kept, finite, and no synthetic set is written."""
    dm = registry.get("synthesizer", "dm")
    step = dm.step

    def poisoned(self, it, net, sampler, gen, optimizers):
        if it == 6:
            with torch.no_grad():
                for p in self.parameters():
                    p.fill_(float("nan"))
        return step(self, it, net, sampler, gen, optimizers)

    monkeypatch.setattr(dm, "step", poisoned)
    out = tmp_path / "syn"
    args = ["synthesize", store, "--method", "dm", "--vpc", 1, "--iterations", 10]
    args += ["--net-width", 0.125, "--real-batch", 2, "--checkpoint-every", 5, "--quiet"]
    line = one_error_line(cli(*args, "--out", out), "non-finite loss", "iteration 7")
    assert "last good checkpoint" in line and "(iteration 5)" in line, line
    _, meta = load_safetensors(out / "checkpoint.safetensors", "test")
    assert meta["iteration"] == "5" and _all_finite(out / "checkpoint.safetensors")
    assert not (out / "synthetic.safetensors").exists()
    monkeypatch.undo()
    ok(cli(*args, "--out", out))  # the blow-up gone, it resumes from iteration 5
    assert _all_finite(out / "synthetic.safetensors")


def test_evaluator_flags_the_run_as_diverged(store: Path, tmp_path: Path, monkeypatch):
    import vidistill.evaluate.train as train

    calls = {"n": 0}
    ce = torch.nn.functional.cross_entropy

    def nan_after_a_while(*args, **kwargs):
        calls["n"] += 1
        loss = ce(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 3 else loss

    monkeypatch.setattr(train.F, "cross_entropy", nan_after_a_while)
    out = tmp_path / "r.json"
    args = ["evaluate", store, "--method", "random", "--vpc", 1, *EVAL[:-4]]
    args += ["--epochs", 8, "--min-steps", 0, "--runs", 1, "--quiet", "--out", out]
    res = ok(cli(*args))
    assert "DIVERGED: non-finite training loss at epoch" in res.output, res.output
    run = json.loads(out.read_text())["rows"][0]["per_run"][0]
    assert run["diverged"] and run["epochs_run"] < 8  # stopped at the blow-up


def test_classifier_embedder_writes_nothing(store: Path, monkeypatch):
    import vidistill.evaluate.train as train

    ce = torch.nn.functional.cross_entropy
    monkeypatch.setattr(train.F, "cross_entropy", lambda *a, **k: ce(*a, **k) * float("inf"))
    line = one_error_line(cli("embed", store, "--embedder", "classifier", *EMBED), "classifier")
    assert "non-finite" in line and "before caching the net or writing embeddings" in line
    assert not (store / "embeddings").exists() or not list((store / "embeddings").iterdir())


@pytest.mark.parametrize("method", ["vst-unet", "csta"])
def test_selector_training_stops(store: Path, tmp_path: Path, monkeypatch, method: str):
    ok(cli("embed", store, "--embedder", "classifier", *EMBED))
    import vidistill.select.csta as csta
    import vidistill.select.vst_unet as vst

    nan = lambda *a, **k: torch.tensor(float("nan"), requires_grad=True)  # noqa: E731
    if method == "vst-unet":
        monkeypatch.setattr(vst.F, "cross_entropy", nan)
    else:
        monkeypatch.setattr(csta, "_density_target", lambda x: torch.full((len(x),), float("nan")))
    out = tmp_path / "sel.json"
    args = ["select", store, "--method", method, "--vpc", 1, "--embedder", "classifier"]
    line = one_error_line(cli(*args, "--out", out), "non-finite loss", "nothing was written")
    assert method in line
    assert not out.exists()


def test_nan_embeddings_stop_selection(store: Path, tmp_path: Path):
    """A NaN in the embeddings file (a diverged embedder of another tool, or damage)."""
    from safetensors.torch import save_file

    ok(cli("embed", store, "--embedder", "classifier", *EMBED))
    path = store / "embeddings" / "classifier.safetensors"
    tensors, meta = load_safetensors(path, "test")
    tensors["embeddings"][1, 0] = float("nan")
    save_file(tensors, str(path), metadata=meta)
    args = ["select", store, "--method", "herding", "--vpc", 1, "--embedder", "classifier"]
    one_error_line(cli(*args, "--out", tmp_path / "s.json"), "NaN/Inf", str(path))


def test_generator_keeps_its_last_good_checkpoint(gen_store: Path, tmp_path: Path, monkeypatch):
    gtrain = importlib.import_module("vidistill.generate.train")  # `train` is also a function

    real = gtrain.diffusion_loss
    calls = {"n": 0}

    def blows_up_at_step_6(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(gtrain, "diffusion_loss", blows_up_at_step_6)
    out = tmp_path / "gen"
    args = ["generate", "train", gen_store, "--out", out, "--preset", "tiny", "--steps", 8]
    args += ["--checkpoint-every", 4, "--cpu"]
    line = one_error_line(cli(*args), "generate train, step 6", "non-finite loss")
    assert "checkpoint-0000004.safetensors, is kept" in line, line
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*.safetensors"))
    assert ckpts == ["checkpoint-0000004.safetensors"]
    assert _all_finite(out / "checkpoints" / ckpts[0])
    assert not (out / "ema.safetensors").exists()
    monkeypatch.undo()
    ok(cli(*args))  # resumes from step 4
    assert _all_finite(out / "ema.safetensors")


def test_generator_vae_training_stops(gen_store: Path, tmp_path: Path, monkeypatch):
    vae = importlib.import_module("vidistill.generate.vae")

    mse = torch.nn.functional.mse_loss
    monkeypatch.setattr(vae.F, "mse_loss", lambda *a, **k: mse(*a, **k) * float("nan"))
    args = ["generate", "train", gen_store, "--out", tmp_path / "gen", "--preset", "tiny", "--cpu"]
    one_error_line(cli(*args), "VAE training, step 1", "nothing was written")
    assert not list((tmp_path / "gen").rglob("*.safetensors"))
