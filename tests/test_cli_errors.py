"""Every command answers a bad input with a one-line error that names the problem — never a
traceback, never exit 0. Inputs are chosen so each command fails before any real work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vidistill.cli import main
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ClipStore:
    ds = ToyDataset(num_classes=2, train_per_class=2, test_per_class=1, seed=0)
    return prepare(
        ds,
        tmp_path_factory.mktemp("cli") / "toy",
        spec=ClipSpec(size=48),
        workers=1,
        progress=False,
    )


def fails_cleanly(res: Result, *needles: str) -> None:
    """Non-zero exit through click (a usage or `Error:` line), the problem named in it."""
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}\n{res.output}"
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in res.output, (needle, res.output)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _not_a_store(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


# -- prepare / info / list -----------------------------------------------------------------
def test_prepare_errors(tmp_path):
    fails_cleanly(invoke("prepare", "folder", "--out", tmp_path / "x"), "--root")
    fails_cleanly(invoke("prepare", "no-such-set", "--out", tmp_path / "x"), "no-such-set")
    fails_cleanly(invoke("prepare", "toy", "--out", tmp_path / "x", "--frames", "0"), "frames")


def test_info_and_list_errors(tmp_path):
    fails_cleanly(invoke("info", _not_a_store(tmp_path)), "not a ClipStore")
    fails_cleanly(invoke("list", "no-such-kind"), "no-such-kind")


# -- embed / select ------------------------------------------------------------------------
def test_embed_and_select_errors(store, tmp_path):
    fails_cleanly(invoke("embed", store.root, "--embedder", "no-such-embedder"), "no-such-embedder")
    sel = tmp_path / "sel.json"
    fails_cleanly(
        invoke("select", store.root, "--method", "no-such-method", "--vpc", 1, "--out", sel),
        "no-such-method",
    )
    fails_cleanly(
        invoke("select", store.root, "--method", "herding", "--vpc", 1, "--out", sel),
        "--embedder",
    )
    assert not sel.exists()


# -- evaluate ------------------------------------------------------------------------------
def test_evaluate_errors(store, tmp_path):
    out = tmp_path / "results.json"
    common = ["--preset", "toy-quick", "--runs", 1, "--quiet", "--out", out]
    fails_cleanly(invoke("evaluate", store.root, *common), "exactly one of")
    fails_cleanly(invoke("evaluate", store.root, "--method", "random", *common), "--vpc")
    zero = invoke("evaluate", store.root, "--method", "random", "--vpc", 0, *common)
    fails_cleanly(zero, "at least 1")  # not reported as a missing --vpc
    assert "needs --vpc" not in zero.output
    fails_cleanly(
        invoke("evaluate", store.root, "--method", "full-real", "--vpc", 1, *common), "--vpc"
    )
    fails_cleanly(
        invoke("evaluate", store.root, "--method", "full-real", "--test-views", 0, *common),
        "test_views",
    )
    bad = tmp_path / "bad_sel.json"
    bad.write_text(json.dumps({"method": "m", "indices": {"no-such-class": [0]}}))
    fails_cleanly(invoke("evaluate", store.root, "--selection", bad, *common), "no-such-class")
    bad.write_text("[1, 2]")
    fails_cleanly(invoke("evaluate", store.root, "--selection", bad, *common), "indices")
    assert not out.exists()


# -- report --------------------------------------------------------------------------------
def test_report_errors(store, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"rows": []}))
    sel = tmp_path / "sel.json"
    sel.write_text(json.dumps({"method": "m", "vpc": 1, "indices": {}}))
    fails_cleanly(invoke("report", results, "--out", tmp_path / "r", "--selection", sel), "--store")
    results.write_text("not json")
    fails_cleanly(invoke("report", results, "--out", tmp_path / "r"), "results")


# -- synthesize ----------------------------------------------------------------------------
def test_synthesize_errors(store, tmp_path):
    out = tmp_path / "syn"
    base = ["synthesize", store.root, "--method", "dm", "--out", out, "--quiet"]
    fails_cleanly(invoke(*base, "--vpc", 1, "-o", "no_such_option=1"), "no_such_option")
    fails_cleanly(invoke(*base, "--vpc", 1, "-o", "iterations"), "KEY=VALUE")
    fails_cleanly(invoke(*base, "--vpc", 0), "vpc")
    fails_cleanly(invoke(*base, "--vpc", 1, "-o", "init=nope"), "init")
    fails_cleanly(
        invoke("synthesize", _not_a_store(tmp_path), "--method", "dm", "--vpc", 1, "--out", out),
        "not a ClipStore",
    )
    fails_cleanly(invoke(*base[:3], "no-such-method", *base[4:], "--vpc", 1), "no-such-method")
    assert not (out / "synthetic.safetensors").exists()


# -- generate ------------------------------------------------------------------------------
def test_generate_errors(store, tmp_path):
    pytest.importorskip("diffusers")
    pytest.importorskip("accelerate")
    run = tmp_path / "gen"
    fails_cleanly(
        invoke("generate", "train", store.root, "--out", run, "--preset", "no-such-preset"),
        "no-such-preset",
    )
    fails_cleanly(
        invoke("generate", "train", _not_a_store(tmp_path), "--out", run, "--preset", "tiny"),
        "not a ClipStore",
    )
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    fails_cleanly(
        invoke("generate", "sample", unfinished, "--per-class", 1, "--out", tmp_path / "pool"),
        "ema.safetensors",
    )
    fails_cleanly(
        invoke(
            "generate", "quality", store.root, "--real", store.root, "--recipe", "no-such-recipe"
        ),
        "no-such-recipe",
    )


# -- run / demo ----------------------------------------------------------------------------
def test_run_errors(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: x\nvpc: [1]\n")
    fails_cleanly(invoke("run", cfg, "--out", tmp_path / "r"), "unknown config keys", "vpc")
    fails_cleanly(invoke("run", tmp_path / "missing.yaml", "--out", tmp_path / "r"), "toy-quick")
    cfg.write_text("name: x\nreferences: [nope]\nvpcs: [1]\n")
    # fails at the reference, after prepare: a small store
    cfg.write_text(
        "name: x\nreferences: [nope]\nvpcs: [1]\n"
        "dataset_options: {num_classes: 2, train_per_class: 1, test_per_class: 1}\n"
        "spec: {size: 48}\nworkers: 1\n"
    )
    fails_cleanly(invoke("run", cfg, "--out", tmp_path / "r2"), "nope")


def test_demo_errors(tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("")
    fails_cleanly(invoke("demo", "--out", taken), "a-file")
