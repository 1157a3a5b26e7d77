"""One rank of the 2-process (gloo) jobs of tests/test_distributed.py, launched with
``python -m torch.distributed.run --nproc_per_node 2 tests/dist_worker.py SCENARIO OUT ...``.

Scenarios:
  ok STORE GRID_CONFIG   shard / gather; rank 1 raising inside its shard (every rank must
                         raise, naming rank 1: written to OUT/failed-RANK.txt); a stand-in
                         sampled pool; `vidistill embed` on STORE (classifier: rank 0 trains
                         and caches); `vidistill run` of GRID_CONFIG
  hang                   rank 1 never reaches the collective: rank 0 must time out, naming
                         rank 1, and torchrun end the job
  parallel STORE         data-parallel work, every rank on one task (rank 0 writes OUT/…):
                         DDP evaluator training (train_net, `vidistill evaluate`);
                         VST-UNet fitted in class groups (fit, `vidistill select`);
                         `vidistill generate sample` of the generator at OUT/../gen;
                         `vidistill synthesize` (DM, IDTD, VDSD) with classes shared out
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def stand_in_sampler(labels: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Clip i from seeds[i] alone (what a real sampler does with one generator per clip)."""
    return np.stack(
        [
            np.random.default_rng(int(s)).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8) + int(c)
            for c, s in zip(labels, seeds, strict=True)
        ]
    )


def sample_pool(out: Path, plan) -> None:
    """The stand-in pool: every rank samples its batches to out/.partial, rank 0 writes it."""
    from vidistill import distributed
    from vidistill.clipstore import ClipRecord, ClipSpec, write_store
    from vidistill.poolplan import sample_batches

    partial = out / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    sample_batches(
        plan, stand_in_sampler, lambda b, clips: np.save(partial / f"batch-{b:05d}.npy", clips)
    )

    def write() -> None:
        names = [f"class{c}" for c in range(plan.num_classes)]
        meta = plan.meta()
        records = [
            ClipRecord(
                f"generated:{m['batch']}:{m['slot']}", m["label"], names[m["label"]], "train", m
            )
            for m in meta
        ]
        clips = (np.load(partial / f"batch-{b:05d}.npy") for b in range(plan.num_batches))
        write_store(out, ClipSpec(frames=2, size=8), names, clips, records, dataset="generated")

    distributed.on_main(write, "write the pool")


# -- the data-parallel scenario: what tests/test_distributed.py recomputes in one process -------
DP_RECIPES = {
    # dropout on (global-batch masks); 9 clips in batches of 4: the last batch has 1 row,
    # so rank 1 trains on no rows there
    "plain": {"width": 0.125, "epochs": 3, "batch_size": 4},
    # batch-wide transforms: an augmentation and per-batch standardisation, with clipping
    "batchwide": {
        "width": 0.125,
        "epochs": 2,
        "batch_size": 4,
        "augment": "idtd-temporal",
        "standardize": "batch",
        "grad_clip": 1.0,
    },
}
EVALUATE_ARGS = [
    "--method",
    "full-real",
    "--runs",
    "2",
    "--preset",
    "toy-quick",
    "--width",
    "0.125",
    "--epochs",
    "2",
    "--min-steps",
    "0",
    "--batch-size",
    "4",
    "--quiet",
]


def train_dp(store: str, name: str):
    """``train_net`` on STORE's training split with recipe ``name``, seed 3: (net, stats)."""
    from vidistill.clipstore import ClipStore
    from vidistill.evaluate import Recipe, TrainingSet, train_net

    data = TrainingSet.from_store(ClipStore(store))
    return train_net(data, Recipe(**DP_RECIPES[name]), seed=3, device="cpu")


VST_ARGS = ["--method", "vst-unet", "--vpc", "2", "--embedder", "fake", "--seed", "5"]
VST_ARGS += [f"-o{kv}" for kv in ("class_batch=2", "epochs=3", "width=8")]


def vst_inputs():
    """5 classes × 6 clips of random latents (2, 2, 4, 4)."""
    import torch

    rng = np.random.default_rng(0)
    return [torch.from_numpy(rng.normal(size=(6, 2, 2, 4, 4)).astype(np.float32)) for _ in range(5)]


def fit_vst():
    """VST-UNet on :func:`vst_inputs`, groups of 4 classes (the last one a single class):
    on 2 ranks, rank 0 fits classes 0, 2, 4 and rank 1 classes 1, 3."""
    from vidistill.select.base import ClassData
    from vidistill.select.vst_unet import fit_vst_unet

    classes = [
        ClassData.from_array(x.flatten(1).numpy(), f"c{c}", c) for c, x in enumerate(vst_inputs())
    ]
    return fit_vst_unet(
        classes, 2, seed=1, epochs=4, width=8, latent_shape=(2, 2, 4, 4), class_batch=4
    )


SAMPLE_ARGS = ["--per-class", "3", "--batch", "2", "--steps", "2", "--sampler", "ddpm"]
SAMPLE_ARGS += ["--seed", "4"]
SEEDINGS = ("batch", "clip")


SYNTH_ARGS = ["--vpc", "1", "--iterations", "4", "--net-width", "0.125", "--real-batch", "2"]
SYNTH_ARGS += ["--seed", "2", "--checkpoint-every", "2", "--quiet"]
SYNTH_OPTIONS = {"dm": [], "idtd": ["-o", "k=2"], "vdsd": []}  # vdsd: 2 still + 2 dynamic steps


def parallel(out: Path, store: str) -> None:
    import torch

    from vidistill import distributed
    from vidistill.cli import main as cli

    rank0 = distributed.current().is_main
    out.mkdir(exist_ok=True)
    for name in DP_RECIPES:
        net, stats = train_dp(store, name)
        if rank0:
            torch.save({"state": net.state_dict(), "stats": stats.to_dict()}, out / f"{name}.pt")
    results = out / "evaluate.json"
    cli.main(["evaluate", store, *EVALUATE_ARGS, "--out", str(results)], standalone_mode=False)

    fitted = fit_vst()
    if rank0:
        keep = {k: fitted[k] for k in ("loss", "reward")}
        torch.save({"state": fitted["model"].state_dict(), **keep}, out / "vst.pt")
    cli.main(["select", store, *VST_ARGS, "--out", str(out / "vst.json")], standalone_mode=False)

    gen = out.parent / "gen"
    if gen.is_dir():  # 5 batches: rank 0 samples 0, 2, 4 and rank 1 samples 1, 3
        for seeding in SEEDINGS:
            pool = out / f"pool-{seeding}"
            args = [*SAMPLE_ARGS, "--seeding", seeding, "--out", str(pool)]
            cli.main(["generate", "sample", str(gen), *args], standalone_mode=False)

    for method, extra in SYNTH_OPTIONS.items():  # rank 0 learns classes 0, 2; rank 1 class 1
        args = ["--method", method, *SYNTH_ARGS, *extra, "--out", str(out / f"syn-{method}")]
        cli.main(["synthesize", store, *args], standalone_mode=False)


def main() -> None:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    from vidistill import distributed

    ctx = distributed.init()
    assert ctx.world == 2, ctx
    if scenario == "ok":
        store, grid = sys.argv[3], sys.argv[4]
        # shard + gather_in_order, both modes, uneven n
        for mode in ("contiguous", "strided"):
            mine = distributed.shard(7, mode=mode).tolist()
            got = distributed.gather_in_order([10 * i for i in mine], 7, mode=mode)
            if ctx.is_main:
                assert got == [10 * i for i in range(7)], (mode, got)
        assert distributed.map_in_order(lambda i: i * i, 5, what="squares") in (
            None,
            [0, 1, 4, 9, 16],
        )

        # a Python error on rank 1: rank 1 raises it, rank 0 a RankFailed naming rank 1
        def work(i: int) -> int:
            if i == 1:
                raise ValueError("boom on purpose")
            return i

        try:
            distributed.map_in_order(work, 2, what="the failing step")
        except Exception as err:
            (out / f"failed-{ctx.rank}.txt").write_text(f"{type(err).__name__}: {err}")

        from vidistill.poolplan import PoolPlan

        sample_pool(out / "pool", PoolPlan(num_classes=3, per_class=5, batch=4, seed=7))

        from vidistill.cli import main as cli

        cli.main(
            [
                "embed",
                store,
                "--embedder",
                "classifier",
                "--batch-size",
                "3",
                "-o",
                "recipe=vdsd",
                "-o",
                "epochs=1",
                "-o",
                "train_batch_size=4",
            ],
            standalone_mode=False,
        )
        from vidistill.pipeline import load_config, run_pipeline

        run_pipeline(load_config(grid), out / "grid", log=print)
        if ctx.is_main:
            (out / "ok.json").write_text(json.dumps({"world": ctx.world}))
    elif scenario == "parallel":
        parallel(out, sys.argv[3])
        if ctx.is_main:
            (out / "parallel.json").write_text(json.dumps({"world": ctx.world}))
    elif scenario == "hang":
        if ctx.rank == 1:
            time.sleep(120)
        distributed.check("the step rank 1 never reaches")
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    distributed.shutdown()


if __name__ == "__main__":
    main()
