"""A full disk during each stage: one ``Error:`` line naming the file that did not fit,
every earlier artifact intact, nothing half-written at a final path, no temp file left —
and, once there is space again, the same re-run gives the uninterrupted result.

The disk is simulated (``harness.DiskFull``): the stage may write a seeded fraction of
the bytes its uninterrupted run writes, then every write raises ``ENOSPC``. One case uses
the kernel itself: a file-size limit (``RLIMIT_FSIZE``), whose ``EFBIG`` takes the same path.
"""

from __future__ import annotations

import json
import math
import random
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EMBED, EVAL, run_config
from harness import (
    cli,
    disk_full,
    env,
    lost,
    metrics,
    ok,
    one_error_line,
    readable_artifacts,
    same_store,
    same_tensors,
    snapshot,
    temp_files,
)

from vidistill.clipstore import ClipStore

pytestmark = pytest.mark.fault("enospc")

FRACTIONS = (0, 1)  # seeds of the fraction of the stage's bytes that fit


def full_disk_then_space(
    args: list, out: Path, ref: Path, seed: int, keep: list[Path] = ()
) -> list[str]:
    """Run ``vidistill ARGS`` on a disk that fills up after a seeded share of what the
    uninterrupted run (``--out ref``) writes, check the failure, then re-run with space.
    ``keep``: folders whose files must come through untouched. Returns the files lost."""
    with disk_full(ref, math.inf) as disk:
        ok(cli(*args, "--out", ref))
    budget = int(disk.written * random.Random(seed).uniform(0.05, 0.95))
    before = {k: snapshot(k) for k in keep}
    with disk_full(out, budget) as disk:
        res = cli(*args, "--out", out)
    assert disk.failed, f"the stage wrote under {budget} bytes: no fault injected"
    line = one_error_line(res, "No space left on device", "earlier artifacts are intact")
    assert str(Path(disk.failed).parent.name) in line, (disk.failed, line)
    gone = [f"{k}/{f}" for k in keep for f in lost(before[k], k)]
    if out.exists():
        assert not temp_files(out), temp_files(out)
        readable_artifacts(out)
    ok(cli(*args, "--out", out))  # space again: the same command finishes
    return gone


@pytest.fixture()
def store(toy_store: ClipStore, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(toy_store.root, dst)
    return dst


@pytest.mark.parametrize("seed", FRACTIONS)
def test_prepare(tmp_path: Path, seed: int, ledger) -> None:
    args = ["prepare", "toy", "--classes", 2, "--train-per-class", 4, "--test-per-class", 2]
    args += ["--size", 48, "--workers", 1]
    ledger.lost(len(full_disk_then_space(args, tmp_path / "out", tmp_path / "ref", seed)))
    same_store(tmp_path / "ref", tmp_path / "out")


@pytest.mark.parametrize("seed", FRACTIONS)
def test_embed(store: Path, tmp_path: Path, seed: int, ledger) -> None:
    """The embeddings go into the store: the store itself must come through untouched."""
    ref = tmp_path / "ref"
    shutil.copytree(store, ref)
    emb = ["--embedder", "classifier", *EMBED]
    before = snapshot(store)
    with disk_full(ref, math.inf) as disk:
        ok(cli("embed", ref, *emb))
    budget = int(disk.written * random.Random(seed).uniform(0.05, 0.95))
    with disk_full(store, budget) as disk:
        res = cli("embed", store, *emb)
    assert disk.failed
    one_error_line(res, "No space left on device", "embeddings")
    gone = lost(before, store)
    ledger.lost(len(gone))
    assert not gone and not temp_files(store)
    readable_artifacts(store / "embeddings")
    ok(cli("embed", store, *emb))
    same_tensors(
        ref / "embeddings" / "classifier.safetensors",
        store / "embeddings" / "classifier.safetensors",
    )


def test_select(store: Path, tmp_path: Path, ledger) -> None:
    ok(cli("embed", store, "--embedder", "classifier", *EMBED))
    before = snapshot(store)
    args = ["select", store, "--method", "herding", "--vpc", 1, "--embedder", "classifier"]
    with disk_full(tmp_path, 0) as disk:
        res = cli(*args, "--out", tmp_path / "sel.json")
    assert disk.failed
    one_error_line(res, "No space left on device", "sel.json")
    assert not (tmp_path / "sel.json").exists() and not temp_files(tmp_path)
    gone = lost(before, store)
    ledger.lost(len(gone))
    assert not gone
    ok(cli(*args, "--out", tmp_path / "sel.json"))


@pytest.mark.parametrize("seed", FRACTIONS)
def test_synthesize(store: Path, tmp_path: Path, seed: int, ledger) -> None:
    args = ["synthesize", store, "--method", "dm", "--vpc", 1, "--iterations", 10]
    args += ["--net-width", 0.125, "--real-batch", 2, "--checkpoint-every", 5, "--quiet"]
    gone = full_disk_then_space(args, tmp_path / "out", tmp_path / "ref", seed, [store])
    ledger.lost(len(gone))
    assert not gone
    same_tensors(
        tmp_path / "ref" / "synthetic.safetensors", tmp_path / "out" / "synthetic.safetensors"
    )


def test_evaluate_keeps_earlier_rows(store: Path, tmp_path: Path, ledger) -> None:
    """results.json already holds a row; the new row does not fit: the old one is intact."""
    common = ["evaluate", store, *EVAL, "--runs", 1, "--quiet", "--out", tmp_path / "results.json"]
    ok(cli(*common, "--method", "random", "--vpc", 1))
    before = snapshot(tmp_path)
    with disk_full(tmp_path, 0) as disk:
        res = cli(*common, "--method", "random", "--vpc", 2)
    assert disk.failed
    one_error_line(res, "No space left on device", "results.json")
    gone = lost(before, tmp_path)
    ledger.lost(len(gone))
    assert not gone and not temp_files(tmp_path)
    assert [r["vpc"] for r in json.loads((tmp_path / "results.json").read_text())["rows"]] == [1]


RUN = run_config("enospc", "synthesize: {dm: {iterations: 4, net_width: 0.125, real_batch: 2}}")


@pytest.mark.parametrize("seed", FRACTIONS)
def test_run(tmp_path: Path, seed: int, ledger) -> None:
    """`vidistill run`: the stages finished before the disk filled are intact — the re-run
    skips every one of them — and the finished run equals an uninterrupted one."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(RUN)
    out, ref = tmp_path / "out", tmp_path / "ref"
    with disk_full(ref, math.inf) as disk:
        ok(cli("run", cfg, "--out", ref))
    # fill up after the first stage (prepare) finished, at a seeded point of the rest
    first = disk.offsets[next(i for i, f in enumerate(disk.files) if "stages" in f) + 1]
    budget = int(random.Random(seed).uniform(first, disk.written))
    with disk_full(out, budget) as disk:
        res = cli("run", cfg, "--out", out)
    assert disk.failed
    one_error_line(res, "No space left on device")
    assert not temp_files(out)
    readable_artifacts(out)
    done = sorted(p.stem.replace("__", "/") for p in (out / "stages").glob("*.json"))
    before = snapshot(out)
    rerun = ok(cli("run", cfg, "--out", out)).output
    skipped = [s for s in done if f"[skip] {s}" in rerun]
    ledger.tried(1)
    ledger.lost(len(done) - len(skipped))
    assert skipped == done, (done, rerun)
    assert done, "the disk filled before any stage finished: nothing to keep"
    kept = [k for k in before if k.startswith(("data/", "stages/")) and k in snapshot(out)]
    assert kept and all(snapshot(out)[k] == before[k] for k in kept if k.startswith("data/"))
    assert metrics(out / "results.json") == metrics(ref / "results.json")


def test_prepare_real_file_size_limit(tmp_path: Path, ledger) -> None:
    """The kernel's own refusal: RLIMIT_FSIZE below the clip file's size (EFBIG)."""
    out = tmp_path / "out"
    args = ["prepare", "toy", "--classes", 2, "--train-per-class", 8, "--test-per-class", 2]
    args += ["--size", 48, "--workers", 1, "--out", out]

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    res = subprocess.run(
        [sys.executable, "-m", "vidistill.cli", *map(str, args)],
        env=env(),
        capture_output=True,
        text=True,
        preexec_fn=limit,
    )
    assert res.returncode == 1, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "File too large writing" in errors[0] and "clips.u8" in errors[0], errors
    assert not (out / "store.json").exists() and not temp_files(out)
    ok(cli(*args))  # no limit: it resumes from the decoded parts
    assert len(ClipStore(out)) == 20
    ledger.lost(0)
