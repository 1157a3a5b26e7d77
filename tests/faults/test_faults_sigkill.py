"""SIGKILL each CLI stage at a seeded random point, re-run it, and compare with a run that
was never interrupted: bit-identical artifacts (every stage here is deterministic on CPU),
nothing half-written readable at a final path, no process of the killed run left alive,
the stage's inputs untouched.

The kill lands after the stage has started its work (a trigger: the store memory-mapped,
or its first output folder) plus a delay drawn from ``[0, 0.8 × the stage's in-process
time]`` with the test's seed, so it falls inside the work, at a different point per seed.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import EMBED, EVAL, SPEC, TOY
from harness import (
    cli,
    disk_full,
    kill_at,
    kill_on_write,
    lost,
    metrics,
    ok,
    readable_artifacts,
    same_store,
    same_tensors,
    snapshot,
    temp_files,
)

from vidistill.clipstore import ClipStore

pytestmark = [
    pytest.mark.fault("sigkill"),
    pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc"),
]


def mapped(path: Path) -> Callable[[int], bool]:
    """Trigger: the process has memory-mapped ``path`` (a ClipStore opens its clips so)."""
    target = str(path.resolve())

    def fired(pid: int) -> bool:
        try:
            return target in Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            return False

    return fired


def exists(path: Path) -> Callable[[int], bool]:
    return lambda pid: path.exists()


def timed(*args) -> float:
    t0 = time.perf_counter()
    ok(cli(*args))
    return time.perf_counter() - t0


def reference(args: list, root: Path) -> int:
    """Run ``vidistill ARGS`` uninterrupted; the number of files it writes under ``root``."""
    with disk_full(root, math.inf) as disk:
        ok(cli(*args))
    assert disk.files, f"{args} wrote nothing under {root}"
    return len(disk.files)


def killed_then_resumed(
    ledger, args: list, writes: int, seed: int, out: Path, inputs: Path | None = None
) -> None:
    """SIGKILL ``vidistill ARGS`` half-way through its seeded N-th file write under ``out``
    (N of ``writes``), check what it left, then re-run it in place to the end."""
    before = snapshot(inputs) if inputs is not None else {}
    n = random.Random(seed).randint(1, writes)
    kill = kill_on_write(args, n, out)
    assert kill.landed, f"write {n}/{writes} never happened ({kill.after_s:.1f} s)"
    assert not kill.leftovers, f"processes {kill.leftovers} outlived the killed stage"
    readable_artifacts(out)  # whatever is at a final path is complete
    ok(cli(*args))
    assert not temp_files(out), f"temp files left behind: {temp_files(out)}"
    gone = lost(before, inputs) if inputs is not None else []
    ledger.lost(len(gone))
    assert not gone, f"inputs changed by the killed stage: {gone}"


@pytest.fixture()
def store(toy_store: ClipStore, tmp_path: Path) -> Path:
    """A private copy of the tiny store (stages write embeddings into it)."""
    dst = tmp_path / "store"
    shutil.copytree(toy_store.root, dst)
    return dst


@pytest.fixture()
def embedded(store: Path) -> Path:
    ok(cli("embed", store, "--embedder", "classifier", *EMBED))
    return store


def test_prepare_with_workers(tmp_path: Path, ledger) -> None:
    """Two decode workers, killed after a seeded delay: none outlives the kill, and the
    resumed store equals one made in a single pass."""
    args = ["toy", "--classes", 4, "--train-per-class", 60, "--test-per-class", 5]
    args += ["--size", 48, "--workers", 2]
    t0 = time.perf_counter()
    ok(cli("prepare", *args, "--out", tmp_path / "ref"))
    seconds = time.perf_counter() - t0
    out = tmp_path / "out"
    cmd = ["prepare", *args, "--out", out]
    kill = kill_at(cmd, 1, (0.0, 0.8 * seconds), lambda pid: (out / ".parts").exists())
    assert kill.landed and not kill.leftovers, kill
    ok(cli(*cmd))
    assert not temp_files(out)
    same_store(tmp_path / "ref", out)


def test_prepare(tmp_path: Path, ledger) -> None:
    args = ["prepare", "toy", "--classes", 2, "--train-per-class", 6, "--test-per-class", 2]
    args += ["--size", 48, "--workers", 1]
    writes = reference([*args, "--out", tmp_path / "ref"], tmp_path / "ref")
    killed_then_resumed(ledger, [*args, "--out", tmp_path / "out"], writes, 1, tmp_path / "out")
    same_store(tmp_path / "ref", tmp_path / "out")


def test_embed(store: Path, tmp_path: Path, ledger) -> None:
    ref = tmp_path / "ref"
    shutil.copytree(store, ref)
    args = ["--embedder", "classifier", *EMBED]
    writes = reference(["embed", ref, *args], ref / "embeddings")
    before = snapshot(store)
    killed_then_resumed(ledger, ["embed", store, *args], writes, 2, store / "embeddings")
    assert lost(before, store) == []
    for name in ("classifier.safetensors", "classifier-net.safetensors"):
        same_tensors(ref / "embeddings" / name, store / "embeddings" / name)


def test_select(embedded: Path, tmp_path: Path, ledger) -> None:
    """VST-UNet, the selector with a training loop."""
    args = ["select", embedded, "--method", "vst-unet", "--vpc", 1, "--embedder", "classifier"]
    args += ["-o", "epochs=20"]
    writes = reference([*args, "--out", tmp_path / "ref" / "sel.json"], tmp_path / "ref")
    out = tmp_path / "sel"
    killed_then_resumed(ledger, [*args, "--out", out / "sel.json"], writes, 3, out, embedded)
    want = json.loads((tmp_path / "ref" / "sel.json").read_text())["indices"]
    assert json.loads((out / "sel.json").read_text())["indices"] == want


def test_synthesize(store: Path, tmp_path: Path, ledger) -> None:
    """DM with a checkpoint every 5 iterations: the resumed set equals the one-pass set."""
    args = ["synthesize", store, "--method", "dm", "--vpc", 1, "--iterations", 20]
    args += ["--net-width", 0.125, "--real-batch", 2, "--checkpoint-every", 5, "--quiet"]
    ref, out = tmp_path / "ref", tmp_path / "syn"
    writes = reference([*args, "--out", ref], ref)
    killed_then_resumed(ledger, [*args, "--out", out], writes, 4, out, store)
    same_tensors(ref / "synthetic.safetensors", out / "synthetic.safetensors")
    same_store(ref / "preview", out / "preview")


def test_evaluate(store: Path, tmp_path: Path, ledger) -> None:
    args = ["evaluate", store, "--method", "random", "--vpc", 1, *EVAL, "--runs", 2, "--quiet"]
    ref, out = tmp_path / "ref", tmp_path / "ev"
    writes = reference([*args, "--out", ref / "results.json"], ref)
    killed_then_resumed(ledger, [*args, "--out", out / "results.json"], writes, 5, out, store)
    assert metrics(out / "results.json") == metrics(ref / "results.json")


RUN_CONFIG = f"""
name: faults
dataset: toy
dataset_options: {TOY}
spec: {{frames: {SPEC.frames}, size: {SPEC.size}}}
workers: 2
evaluate: {{preset: toy-quick, runs: 2, seed: 0, width: 0.125, epochs: 4, min_steps: 0}}
vpcs: [1]
references: [random]
embedder: classifier
embedder_options: {{epochs: 4, min_steps: 0}}
select: [herding]
synthesize: {{dm: {{iterations: 10, net_width: 0.125, real_batch: 2}}}}
report: false
"""


def test_run(tmp_path: Path, ledger) -> None:
    """`vidistill run`, killed twice — after a seeded delay, then half-way through a seeded
    write while it resumes — then finished: the same results, selections and synthetic
    sets as one uninterrupted pass."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(RUN_CONFIG)
    ref, out = tmp_path / "ref", tmp_path / "run"
    t0 = time.perf_counter()
    writes = reference(["run", cfg, "--out", ref], ref)
    seconds = time.perf_counter() - t0
    args = ["run", cfg, "--out", out]
    kill = kill_at(args, 6, (0.0, 0.8 * seconds), lambda pid: (out / "config.yaml").exists())
    assert kill.landed and not kill.leftovers, kill
    readable_artifacts(out)
    killed_then_resumed(ledger, args, writes // 2, 7, out)
    assert metrics(out / "results.json") == metrics(ref / "results.json")
    for sel in sorted((ref / "select").glob("*.json")):
        want = json.loads(sel.read_text())["indices"]
        assert json.loads((out / "select" / sel.name).read_text())["indices"] == want
    for syn in sorted((ref / "synth").glob("*/synthetic.safetensors")):
        same_tensors(syn, out / syn.relative_to(ref))
    same_store(ref / "data", out / "data")
    ledger.tried(2)


GEN_TRAIN = ["--preset", "tiny", "--steps", 12, "--checkpoint-every", 4, "--cpu"]


@pytest.fixture(scope="module")
def gen_ref(gen_store: Path, tmp_path_factory) -> tuple[Path, int]:
    """An uninterrupted `generate train` run and the number of files it wrote."""
    ref = tmp_path_factory.mktemp("gen") / "ref"
    return ref, reference(["generate", "train", gen_store, *GEN_TRAIN, "--out", ref], ref)


def test_generate_train(gen_store: Path, gen_ref, tmp_path: Path, ledger) -> None:
    """The tiny generator, resumed from its last checkpoint: the same weights bit for bit."""
    (ref, writes), out = gen_ref, tmp_path / "gen"
    args = ["generate", "train", gen_store, *GEN_TRAIN, "--out", out]
    killed_then_resumed(ledger, args, writes, 8, out, gen_store)
    for name in ("ema.safetensors", "model.safetensors"):
        same_tensors(ref / name, out / name)


def test_generate_sample(gen_ref, tmp_path: Path, ledger) -> None:
    run = gen_ref[0]
    args = ["generate", "sample", run, "--per-class", 4, "--steps", 5, "--batch", 2]
    ref, out = tmp_path / "ref", tmp_path / "pool"
    writes = reference([*args, "--out", ref], ref)
    killed_then_resumed(ledger, [*args, "--out", out], writes, 9, out, run)
    same_store(ref, out)
