"""Sharded stages on 2 CPU processes (gloo), launched as users launch them: torchrun.

One 2-rank job (tests/dist_worker.py ``ok``) does the sharded work once — a stand-in
sampled pool, `vidistill embed` (classifier: rank 0 trains and caches the net, the others
load it), a tiny `vidistill run` grid — and each test compares one of its outputs with the
same thing done here in one process; there rank 1 also raises inside its shard, and every
rank must raise, naming rank 1 (the grid's full-real runs are data-parallel). A second job
(``parallel``) puts both ranks on ONE task at a time: DDP evaluator training and
`vidistill evaluate`. Another job has a rank 1 that never reaches a collective: it must end
at the collective timeout with a message naming rank 1.

Tolerances: the embeddings and the grid's metrics are compared at float32 round-off
(rtol 1e-5); on one machine with one thread per process they are in fact bit-identical, but
a different thread count may reorder float sums. Pools, indices and labels are exact.
DDP training differs from one process only in the float order of the gradient sum: weights
at rtol 1e-5 / atol 1e-7 (measured: max |Δ| 7e-9 after 9 steps), metrics exactly.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from stores import random_embeddings, random_store
from vidistill import distributed
from vidistill.pipeline import DEFAULTS

WORKER = Path(__file__).with_name("dist_worker.py")
SRC = Path(__file__).resolve().parent.parent / "src"

GRID: dict[str, Any] = {
    **copy.deepcopy(DEFAULTS),
    "name": "grid",
    "dataset_options": {"num_classes": 2, "train_per_class": 3, "test_per_class": 2},
    "spec": {"size": 48},
    "workers": 1,
    "evaluate": {
        "preset": "toy-quick",
        "runs": 3,
        "seed": 0,
        "width": 0.125,
        "epochs": 1,
        "min_steps": 0,
        "ddp": "full",  # full-real: each run data-parallel on both ranks
    },
    "vpcs": [1],
    "references": ["full-real", "random"],
    "embedder": "classifier",
    "embedder_options": {"epochs": 1, "min_steps": 0, "train_batch_size": 4},
    "select": ["herding"],
    "synthesize": {"dm": {"iterations": 2, "net_width": 0.125, "real_batch": 2}},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: float = 120, env: dict[str, str] | None = None):
    """``python -m torch.distributed.run --nproc_per_node 2 tests/dist_worker.py ARGS``."""
    full_env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(SRC), str(WORKER.parent)]),
        **(env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        *args,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    return proc, time.perf_counter() - t0


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """The 2-rank ``ok`` job's output folder (pool/, the embedded store, grid/)."""
    out = tmp_path_factory.mktemp("two_ranks")
    random_store(out / "store", frames=8, size=48, classes=3, per=(5, 1))
    (out / "grid.yaml").write_text(yaml.safe_dump(GRID))
    proc, _ = torchrun("ok", str(out), str(out / "store"), str(out / "grid.yaml"), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    (out / "log.txt").write_text(proc.stdout)
    assert json.loads((out / "ok.json").read_text()) == {"world": 2}
    return out


@pytest.fixture()
def one_thread():
    """The one-process reference computed with the workers' thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- the helpers, in one process --------------------------------------------------------------
@pytest.mark.parametrize("mode", ["contiguous", "strided"])
def test_shards_cover_every_index_once(mode):
    for n in (0, 1, 5, 7, 16):
        for world in (1, 2, 3, 8):
            parts = [distributed.shard(n, r, world, mode).tolist() for r in range(world)]
            assert sorted(sum(parts, [])) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert distributed.shard(7, 1, 3, "contiguous").tolist() == [3, 4]
    assert distributed.shard(7, 1, 3, "strided").tolist() == [1, 4]
    with pytest.raises(ValueError, match="unknown shard mode"):
        distributed.shard(3, 0, 1, "random")


def test_not_launched_is_one_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = distributed.init()
    assert (ctx.rank, ctx.world, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert not torch.distributed.is_initialized()
    assert distributed.map_in_order(lambda i: i + 1, 3) == [1, 2, 3]
    assert distributed.gather_in_order(["a", "b"], 2) == ["a", "b"]
    assert distributed.on_main(lambda: 5) == 5
    with pytest.raises(KeyError):
        distributed.check("x", KeyError("own error, unchanged"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2 and WORLD_SIZE=2"):
        distributed.from_env()


def test_pool_plan_seeds_each_clip():
    from vidistill.poolplan import PoolPlan, clip_seed

    plan = PoolPlan(num_classes=3, per_class=5, batch=4, seed=7)
    assert plan.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert plan.num_batches == 4 and plan.positions(3) == slice(12, 15)
    assert plan.seeds[6] == clip_seed(7, 1, 1) and len(set(plan.seeds.tolist())) == 15
    # the seed of a clip depends on (seed, class, index) only, not on batch size
    assert (PoolPlan(3, 5, batch=2, seed=7).seeds == plan.seeds).all()
    assert clip_seed(7, 1, 1) != clip_seed(8, 1, 1)


# -- 2 ranks vs 1 -------------------------------------------------------------------------------
def test_two_rank_pool_equals_one_rank_pool(two_ranks, tmp_path):
    from dist_worker import sample_pool
    from vidistill.clipstore import ClipStore
    from vidistill.poolplan import PoolPlan

    sample_pool(tmp_path / "one", PoolPlan(num_classes=3, per_class=5, batch=4, seed=7))
    # another batch size in one process: the same pool (each clip from its own seed)
    sample_pool(tmp_path / "other", PoolPlan(num_classes=3, per_class=5, batch=3, seed=7))
    two, one, other = (
        ClipStore(p) for p in (two_ranks / "pool", tmp_path / "one", tmp_path / "other")
    )
    assert len(two) == 15
    assert np.array_equal(two.clips(range(15)), one.clips(range(15)))
    assert np.array_equal(other.clips(range(15)), one.clips(range(15)))
    assert two.labels.tolist() == one.labels.tolist()
    assert two.records == one.records


def test_sharded_embedding_equals_one_process(two_ranks, tmp_path, one_thread):
    from vidistill.embed import EmbeddingFile, embed_store

    store = two_ranks / "store"
    sharded = EmbeddingFile(store / "embeddings" / "classifier.safetensors")
    details = json.loads(sharded.metadata["details"])
    assert details["cached"] is False  # rank 0 trained the net once, and wrote the file
    # one process, same net (the cache rank 0 wrote) and batch size
    one = EmbeddingFile(
        embed_store(
            store,
            "classifier",
            batch_size=3,
            progress=False,
            recipe="vdsd",
            epochs=1,
            train_batch_size=4,
            out=tmp_path / "one.safetensors",
        )
    )
    assert json.loads(one.metadata["details"])["cached"] is True
    assert sharded.n == one.n == 15
    assert np.array_equal(sharded.indices, one.indices)
    assert np.array_equal(sharded.labels, one.labels)
    np.testing.assert_allclose(sharded.rows(0, 15), one.rows(0, 15), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        sharded.logit_rows(0, 15), one.logit_rows(0, 15), rtol=1e-5, atol=1e-5
    )
    assert {k: v for k, v in sharded.metadata.items() if k != "details"} == {
        k: v for k, v in one.metadata.items() if k != "details"
    }


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    per_run = [
        {k: p[k] for k in ("seed", "top1", "top5", "auc", "f1", "train_acc", "train_clips")}
        | {"train_loss": pytest.approx(p["train_loss"], rel=1e-5)}
        for p in row["per_run"]
    ]
    keep = ("method", "vpc", "runs", "seeds", "recipe", "train_clips", "train_bytes")  # not paths
    return {k: row[k] for k in keep} | {"per_run": per_run, "top1_mean": row["top1_mean"]}


def test_two_rank_grid_gives_the_one_rank_rows(two_ranks, tmp_path, one_thread):
    from vidistill.pipeline import run_pipeline

    grid = two_ranks / "grid"
    lines: list[str] = []
    run_pipeline(copy.deepcopy(GRID), tmp_path / "one", log=lines.append)
    two = json.loads((grid / "results.json").read_text())["rows"]
    one = json.loads((tmp_path / "one" / "results.json").read_text())["rows"]
    assert [(r["method"], r["vpc"]) for r in two] == [
        ("full-real", None),
        ("random", 1),
        ("herding", 1),
        ("dm", 1),
    ]
    assert [_comparable(r) for r in two] == [_comparable(r) for r in one]
    assert [r.get("ior_diffs") for r in two] == [r.get("ior_diffs") for r in one]
    assert two[2]["ior_runs"] == 3
    assert "[run ] evaluate/full-real (data-parallel)" in (two_ranks / "log.txt").read_text()
    # the same stages are done: a rerun on one process skips all of them
    assert sorted(p.name for p in (grid / "stages").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "stages").iterdir()
    )
    lines.clear()
    run_pipeline(copy.deepcopy(GRID), grid, log=lines.append)
    assert not [line for line in lines if line.startswith("[run ]")], lines
    assert (grid / "report" / "report.md").is_file()


# -- data-parallel work: every rank on one task ----------------------------------------------
def _tiny_generator(out: Path) -> None:
    """A 20-step tiny Latte on 3 classes of 4 × 16² toy clips (skipped without diffusers)."""
    try:
        from vidistill.generate import preset, train
    except ImportError:
        return
    from vidistill.clipstore import ClipSpec
    from vidistill.datasets.toy import ToyDataset
    from vidistill.prepare import prepare

    ds = ToyDataset(num_classes=3, train_per_class=4, test_per_class=1, seed=0)
    toy = prepare(ds, out.parent / "toy", spec=ClipSpec(frames=4, size=16), workers=1)
    cfg = preset("tiny").override(steps=20, lr=3e-3, checkpoint_every=10)
    train(toy.root, out, cfg, progress=False, cpu=True)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory) -> Path:
    """The 2-rank ``parallel`` job's output folder (its inputs beside it)."""
    out = tmp_path_factory.mktemp("parallel")
    store = random_store(out / "store", frames=8, size=48, classes=3, per=(3, 2))
    random_embeddings(store)
    _tiny_generator(out / "gen")
    proc, seconds = torchrun("parallel", str(out / "dp"), str(out / "store"), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert json.loads((out / "dp" / "parallel.json").read_text()) == {"world": 2}
    print(f"2-rank parallel job: {seconds:.1f} s")
    return out


@pytest.mark.parametrize("name", ["plain", "batchwide"])
def test_ddp_evaluator_takes_the_one_process_steps(parallel, name, one_thread):
    from dist_worker import train_dp

    net, stats = train_dp(str(parallel / "store"), name)
    two = torch.load(parallel / "dp" / f"{name}.pt")
    one = net.state_dict()
    assert two["state"].keys() == one.keys()
    for key, value in one.items():
        # the same global batches, dropout masks and transforms; only the float order of
        # the gradient sum (DDP's all-reduce vs one backward) differs
        torch.testing.assert_close(two["state"][key], value, rtol=1e-5, atol=1e-7, msg=key)
    np.testing.assert_allclose(two["stats"]["loss_curve"], stats.loss_curve, rtol=1e-5)
    assert two["stats"]["train_acc"] == stats.train_acc


def test_evaluate_command_on_two_ranks_gives_the_one_process_row(parallel, tmp_path, one_thread):
    from click.testing import CliRunner

    from dist_worker import EVALUATE_ARGS
    from vidistill.cli import main

    store = str(parallel / "store")
    res = CliRunner().invoke(
        main, ["evaluate", store, *EVALUATE_ARGS, "--out", str(tmp_path / "r.json")]
    )
    assert res.exit_code == 0, res.output
    (two,) = json.loads((parallel / "dp" / "evaluate.json").read_text())["rows"]
    (one,) = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert two["seeds"] == one["seeds"] == [0, 1]
    for a, b in zip(two["per_run"], one["per_run"], strict=True):
        assert {k: a[k] for k in ("seed", "top1", "top5", "auc", "f1", "train_acc")} == {
            k: b[k] for k in ("seed", "top1", "top5", "auc", "f1", "train_acc")
        }
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_vst_unet_fitted_on_two_ranks_is_the_one_process_fit(parallel, one_thread):
    from dist_worker import fit_vst, vst_inputs
    from vidistill.select.vst_unet import VSTUNet

    one = fit_vst()
    two = torch.load(parallel / "dp" / "vst.pt")
    model = VSTUNet(2, 5, 8)
    model.load_state_dict(two["state"])
    model.eval()
    # Compared: what the fit computes, not every weight. Weights that cannot change the
    # outputs (a conv bias before per-channel GroupNorm; the selection bias, a shift of all
    # scores that the Plackett–Luce policy ignores) have a zero true gradient, so Adam turns
    # the float noise of the gradient sum (all-reduce vs one backward) into lr-sized steps
    # in them (measured: up to 7e-4); everything they feed is unchanged.
    with torch.no_grad():
        for c, x in enumerate(vst_inputs()):
            for a, b in zip(model(x)[:2], one["model"](x)[:2], strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            s2, s1 = model.selection_score(x, c), one["model"].selection_score(x, c)
            torch.testing.assert_close(s2 - s2.mean(), s1 - s1.mean(), rtol=1e-5, atol=1e-6)
    # per-class losses gathered and summed in class order: the one-process history
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)
    assert two["reward"] == pytest.approx(one["reward"], rel=1e-6)


def test_select_command_on_two_ranks_gives_the_one_process_selection(
    parallel, tmp_path, one_thread
):
    from click.testing import CliRunner

    from dist_worker import VST_ARGS
    from vidistill.cli import main

    out = tmp_path / "one.json"
    res = CliRunner().invoke(
        main, ["select", str(parallel / "store"), *VST_ARGS, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    two = json.loads((parallel / "dp" / "vst.json").read_text())
    one = json.loads(out.read_text())
    assert two["indices"] == one["indices"]
    assert {k: v for k, v in two.items() if k != "seconds"} == {
        k: v for k, v in one.items() if k != "seconds"
    }


@pytest.mark.parametrize("seeding", ["batch", "clip"])
def test_generate_sample_on_two_ranks_is_the_one_process_pool(
    parallel, seeding, tmp_path, one_thread
):
    pytest.importorskip("diffusers")
    from click.testing import CliRunner

    from dist_worker import SAMPLE_ARGS
    from vidistill.cli import main

    args = [*SAMPLE_ARGS, "--seeding", seeding, "--out", str(tmp_path / "pool")]
    res = CliRunner().invoke(main, ["generate", "sample", str(parallel / "gen"), *args])
    assert res.exit_code == 0, res.output
    two = parallel / "dp" / f"pool-{seeding}"
    assert not (two / ".partial").exists()
    for name in ("clips.u8", "manifest.json"):  # store.json differs in timings only
        assert (two / name).read_bytes() == (tmp_path / "pool" / name).read_bytes(), name
    info = json.loads((two / "store.json").read_text())["generator"]
    assert info["clips_this_call"] == 9  # both ranks' clips counted


@pytest.mark.parametrize("method", ["dm", "idtd", "vdsd"])
def test_synthesis_on_two_ranks_is_the_one_process_set(parallel, method, tmp_path, one_thread):
    from click.testing import CliRunner
    from safetensors.torch import load_file

    from dist_worker import SYNTH_ARGS, SYNTH_OPTIONS
    from vidistill.cli import main

    one = tmp_path / method
    args = ["--method", method, *SYNTH_ARGS, *SYNTH_OPTIONS[method], "--out", str(one)]
    res = CliRunner().invoke(main, ["synthesize", str(parallel / "store"), *args])
    assert res.exit_code == 0, res.output
    two = parallel / "dp" / f"syn-{method}"
    # each class draws from its own generator and updates alone (VDSD's shared hallucinator:
    # every class's gradient summed in class order): bit for bit
    a, b = load_file(two / "synthetic.safetensors"), load_file(one / "synthetic.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = [json.loads((d / "done.json").read_text())["history"] for d in (two, one)]
    assert history[0] == history[1] and len(history[0]) == 4
    assert (two / "preview" / "clips.u8").read_bytes() == (
        one / "preview" / "clips.u8"
    ).read_bytes()
    assert sorted(p.name for p in two.glob("checkpoint*")) == [
        "checkpoint.rank0-of-2.safetensors",
        "checkpoint.rank1-of-2.safetensors",
    ]


# -- failures end the job, naming the rank ------------------------------------------------------
def test_an_error_on_one_rank_reaches_every_rank_naming_it(two_ranks):
    # rank 1 raised in its shard: it re-raises its own error, rank 0 a RankFailed naming it
    assert (two_ranks / "failed-1.txt").read_text() == "ValueError: boom on purpose"
    failed0 = (two_ranks / "failed-0.txt").read_text()
    assert failed0.startswith("RankFailed: rank 1 of 2 (host "), failed0
    assert failed0.endswith("failed in the failing step: ValueError: boom on purpose")


def test_a_rank_that_never_arrives_times_out_naming_it(tmp_path):
    proc, seconds = torchrun("hang", str(tmp_path), env={"VIDISTILL_DIST_TIMEOUT": "2"})
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "RankFailed: rank 0 of 2" in log, log[-3000:]
    assert "the step rank 1 never reaches: no answer from the other ranks" in log
    assert "not there: rank 1 (last reached: " in log
    assert seconds < 60  # the 2 s timeout ended it, not rank 1's 120 s sleep
