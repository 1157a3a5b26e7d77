"""A damaged artifact — cut short or with one byte flipped (seeded) — read back by the
command that uses it: one ``Error:`` line naming the file and the fix ("delete it and
re-run ..."), never a traceback from the parser or torch; a damaged cache or marker is
rebuilt instead. The file the failing command would have rewritten (results.json) stays
as it was.

Not covered, by design (docs/reliability.md): a flipped byte in ``clips.u8`` (raw pixels,
no checksum: any byte is a valid pixel) or in the data of an embeddings file (no checksum:
it is written streaming; NaN / Inf there are caught by the selectors).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import EMBED, EVAL, run_config
from harness import (
    cli,
    flip_byte,
    ok,
    one_error_line,
    safetensors_header_end,
    same_tensors,
    snapshot,
    truncate,
)

from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare

pytestmark = pytest.mark.fault("corrupt")

SYN = ["--method", "dm", "--vpc", 1, "--iterations", 4, "--net-width", 0.125]
SYN += ["--real-batch", 2, "--checkpoint-every", 2, "--quiet"]


@pytest.fixture(scope="module")
def made(toy_store: ClipStore, tmp_path_factory) -> Path:
    """One of every artifact the stages write, made once (tests damage copies)."""
    root = tmp_path_factory.mktemp("corrupt")
    store = root / "store"
    shutil.copytree(toy_store.root, store)
    ok(cli("embed", store, "--embedder", "classifier", *EMBED))
    sel = ["--method", "herding", "--vpc", 1, "--embedder", "classifier"]
    ok(cli("select", store, *sel, "--out", root / "sel.json"))
    ok(cli("synthesize", store, *SYN, "--out", root / "syn"))
    ok(cli("evaluate", store, "--method", "random", "--vpc", 1, *EVAL, "--runs", 1, "--quiet",
           "--out", root / "results.json"))  # fmt: skip
    return root


def damage(path: Path, how: str, seed: int) -> None:
    if how == "truncated":
        truncate(path, 0.5)
    elif how == "flipped-header":  # the safetensors JSON header
        flip_byte(path, seed, 8, safetensors_header_end(path))
    elif how == "flipped-data":  # past a safetensors header (the tensors), else anywhere
        lo = safetensors_header_end(path) if path.suffix == ".safetensors" else 0
        flip_byte(path, seed, lo)
    else:
        raise ValueError(how)


def _info(root: Path) -> list:
    return ["info", root / "store"]


def _select(root: Path) -> list:
    return ["select", root / "store", "--method", "herding", "--vpc", 1, "--embedder",
            "classifier", "--out", root / "new.json"]  # fmt: skip


def _synthesize(root: Path) -> list:
    return ["synthesize", root / "store", *SYN, "--out", root / "syn"]


def _evaluate(source: list) -> callable:
    def args(root: Path) -> list:
        return ["evaluate", root / "store", *[root / s[1:] if str(s)[0] == "@" else s for s in source],
                *EVAL, "--runs", 1, "--quiet", "--out", root / "results.json"]  # fmt: skip

    return args


# (damaged file, damage, the command that reads it)
CASES = [
    ("store/store.json", "truncated", _info),
    ("store/store.json", "flipped-data", _info),
    ("store/manifest.json", "truncated", _info),
    ("store/manifest.json", "flipped-data", _info),
    ("store/clips.u8", "truncated", _info),
    ("store/embeddings/classifier.safetensors", "truncated", _select),
    ("store/embeddings/classifier.safetensors", "flipped-header", _select),
    ("syn/checkpoint.safetensors", "truncated", _synthesize),
    ("syn/checkpoint.safetensors", "flipped-data", _synthesize),
    ("syn/synthetic.safetensors", "truncated", _evaluate(["--synthetic", "@syn"])),
    ("syn/synthetic.safetensors", "flipped-data", _evaluate(["--synthetic", "@syn"])),
    ("syn/synthetic.safetensors", "flipped-header", _evaluate(["--synthetic", "@syn"])),
    ("sel.json", "truncated", _evaluate(["--selection", "@sel.json"])),
    ("results.json", "truncated", _evaluate(["--method", "random", "--vpc", 2])),
]


@pytest.mark.parametrize(("name", "how", "command"), CASES, ids=[f"{n}-{h}" for n, h, _ in CASES])
def test_damaged_artifact_is_named(made: Path, tmp_path: Path, name: str, how: str, command):
    root = tmp_path / "w"
    shutil.copytree(made, root)
    damage(root / name, how, seed=len(name) + len(how))
    before = snapshot(root)
    line = one_error_line(cli(*command(root)), Path(name).name, "damaged", "and re-run")
    assert str(root / name) in line, line
    assert snapshot(root) == before, "the failing command changed files"


def test_damaged_classifier_cache_is_retrained(made: Path, tmp_path: Path) -> None:
    """The cached embedder net is a cache: damaged, it is trained again (same bytes)."""
    root = tmp_path / "w"
    shutil.copytree(made, root)
    net = root / "store" / "embeddings" / "classifier-net.safetensors"
    damage(net, "flipped-data", 3)
    ok(cli("embed", root / "store", "--embedder", "classifier", *EMBED))
    same_tensors(made / "store" / "embeddings" / net.name, net)


RUN = run_config("corrupt")


@pytest.mark.parametrize("how", ["truncated", "flipped-data"])
def test_damaged_stage_marker_reruns_the_stage(tmp_path: Path, how: str) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(RUN)
    out = tmp_path / "run"
    ok(cli("run", cfg, "--out", out))
    damage(out / "stages" / "evaluate__random__vpc1.json", how, 4)
    rerun = ok(cli("run", cfg, "--out", out)).output
    assert "[skip] prepare" in rerun and "[run ] evaluate/random/vpc1" in rerun, rerun


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    pytest.importorskip("diffusers")
    pytest.importorskip("accelerate")
    root = tmp_path_factory.mktemp("gen")
    ds = ToyDataset(num_classes=2, train_per_class=4, test_per_class=1, seed=0)
    prepare(ds, root / "store", spec=ClipSpec(frames=4, size=16), workers=1, progress=False)
    ok(cli("generate", "train", root / "store", "--out", root / "gen", *GEN))
    return root


GEN = ["--preset", "tiny", "--steps", 4, "--checkpoint-every", 2, "--cpu"]
GEN_CASES = [
    ("gen/checkpoints/checkpoint-0000004.safetensors", "flipped-data", "train"),
    ("gen/checkpoints/checkpoint-0000004.safetensors", "truncated", "train"),
    ("gen/ema.safetensors", "truncated", "sample"),
    ("gen/ema.safetensors", "flipped-data", "sample"),
]


@pytest.mark.parametrize(
    ("name", "how", "step"), GEN_CASES, ids=[f"{n}-{h}" for n, h, _ in GEN_CASES]
)
def test_damaged_generator_file_is_named(generator: Path, tmp_path: Path, name, how, step):
    root = tmp_path / "w"
    shutil.copytree(generator / "gen", root / "gen")  # the run records its store's path
    damage(root / name, how, seed=len(name))
    if step == "train":
        (root / "gen" / "done.json").unlink()  # an unfinished run: it resumes from a checkpoint
        args = ["generate", "train", generator / "store", "--out", root / "gen", *GEN]
    else:
        args = ["generate", "sample", root / "gen", "--per-class", 1, "--steps", 2,
                "--out", root / "pool"]  # fmt: skip
    line = one_error_line(cli(*args), Path(name).name, "damaged", "and re-run")
    assert str(root / name) in line
