"""The errors a new user meets first: a missing optional dependency names the extra to
install (simulated: the module is set to None in sys.modules, so importing it fails as if it
were not installed), `list` takes plural kinds, and `select` without --embedder uses the
store's only embeddings file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result

from vidistill import registry
from vidistill.cli import main
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.embed import embeddings_path
from vidistill.embed.store import StreamingSafetensorsWriter
from vidistill.errors import (
    OPTIONAL_DEPENDENCIES,
    REQUIRED_DEPENDENCIES,
    missing_dependency_message,
)
from vidistill.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res: Result, *needles: str) -> str:
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}\n{res.output}"
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ClipStore:
    ds = ToyDataset(num_classes=2, train_per_class=3, test_per_class=1, seed=0)
    return prepare(
        ds,
        tmp_path_factory.mktemp("first") / "toy",
        spec=ClipSpec(size=48),
        workers=1,
        progress=False,
    )


# -- a missing optional dependency ----------------------------------------------------------
@pytest.fixture()
def importing(monkeypatch):
    """A throwaway command `needs MODULE` that imports MODULE, as commands do lazily."""

    @click.command("needs")
    @click.argument("module")
    def needs(module):
        __import__(module)

    monkeypatch.setitem(main.commands, "needs", needs)


@pytest.mark.parametrize("module", sorted(OPTIONAL_DEPENDENCIES))
def test_any_command_missing_an_optional_module_names_its_extra(importing, monkeypatch, module):
    dist, extra = OPTIONAL_DEPENDENCIES[module]
    monkeypatch.setitem(sys.modules, module, None)  # `import module` → ModuleNotFoundError
    line = one_line_error(invoke("needs", module), dist, f"pip install 'vidistill[{extra}]'")
    assert "Traceback" not in line


def test_a_missing_required_module_says_what_to_install(importing, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    one_line_error(invoke("needs", "sklearn"), "pip install scikit-learn")
    monkeypatch.setitem(sys.modules, "torch.nn", None)  # submodules count as the package
    one_line_error(invoke("needs", "torch.nn"), "torch", "CUDA")


def test_a_module_that_is_none_of_ours_keeps_its_traceback(importing):
    res = invoke("needs", "no_such_module_anywhere")
    assert isinstance(res.exception, ModuleNotFoundError)  # a bug: the traceback helps


def test_real_commands_name_the_models_extra(store, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    one_line_error(
        invoke("generate", "train", store.root, "--out", tmp_path / "g", "--preset", "tiny"),
        "pip install 'vidistill[models]'",
    )
    weights = tmp_path / "videomae"
    weights.mkdir()
    (weights / "config.json").write_text(json.dumps({"model_type": "videomae"}))
    monkeypatch.setitem(sys.modules, "transformers", None)
    one_line_error(
        invoke("embed", store.root, "--embedder", "videomae", "--weights", weights),
        "transformers",
        "pip install 'vidistill[models]'",
    )


def test_the_table_matches_pyproject():
    """Every package of every extra (but dev) and every dependency has its message."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def name(req: str) -> str:
        return req.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()

    by_extra = set(OPTIONAL_DEPENDENCIES.values())  # (distribution, extra)
    for extra, reqs in project["optional-dependencies"].items():
        if extra != "dev":
            assert {(name(r), extra) for r in reqs} <= by_extra, extra
    assert {name(r) for r in project["dependencies"]} <= set(REQUIRED_DEPENDENCIES.values())
    assert missing_dependency_message(ModuleNotFoundError(name="vidistill.nope")) is None


# -- list: plural kinds ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", registry.kinds())
def test_list_takes_plural_kinds(kind):
    singular = invoke("list", kind)
    assert singular.exit_code == 0 and singular.output.startswith(f"{kind}: ")
    assert invoke("list", f"{kind}s").output == singular.output
    assert invoke("list", kind.upper() + "S").output == singular.output


def test_list_unknown_kind_lists_the_kinds():
    res = invoke("list", "selectorz")
    assert res.exit_code == 2 and "selectorz" in res.output and "selector" in res.output


# -- select without --embedder ----------------------------------------------------------------
def _fake_embeddings(store: ClipStore, name: str) -> None:
    train = store.indices("train")
    w = StreamingSafetensorsWriter(
        embeddings_path(store.root, name),
        {
            "embeddings": (np.float32, (len(train), 4)),
            "indices": (np.int64, (len(train),)),
            "labels": (np.int64, (len(train),)),
        },
        {"embedder": name, "split": "train"},
    )
    w.write_rows("embeddings", 0, np.random.default_rng(0).normal(size=(len(train), 4)))
    w.write_rows("indices", 0, train)
    w.write_rows("labels", 0, store.labels[train])
    w.commit()


def test_select_uses_the_only_embeddings_file(store, tmp_path):
    from safetensors.numpy import save_file

    out = tmp_path / "sel.json"
    base = ["select", store.root, "--method", "herding", "--vpc", 1, "--out", out]
    one_line_error(invoke(*base), "--embedder", "vidistill embed")  # none yet: how to make one

    _fake_embeddings(store, "first")
    # a cached network beside it is not an embeddings file
    save_file(
        {"w": np.zeros(3, np.float32)},
        str(store.root / "embeddings" / "classifier-net.safetensors"),
    )
    res = invoke(*base)
    assert res.exit_code == 0, res.output
    assert "first.safetensors (--embedder first)" in res.output
    assert json.loads(out.read_text())["embedder"] == "first"

    _fake_embeddings(store, "second")
    out.unlink()
    res = invoke(*base)
    assert res.exit_code == 2 and not out.exists()
    assert "first.safetensors" in res.output and "second.safetensors" in res.output
    assert "--embedder" in res.output
    assert invoke(*base, "--embedder", "second").exit_code == 0
    assert json.loads(out.read_text())["embedder"] == "second"
    # a method that needs no embeddings is not asked to choose
    res = invoke("select", store.root, "--method", "random", "--vpc", 1, "--out", out)
    assert res.exit_code == 0 and "using" not in res.output
