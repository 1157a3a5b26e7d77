"""Synthesis resume: a killed run continues from its checkpoint and does ONLY the work after it.

Every run is seeded, so "resumed" and "silently started again" give the same bytes; these
tests therefore count the outer iterations each call runs (a spy on the method's ``step``)
and require exactly the iterations after the last checkpoint, then the same videos and
loss history as an uninterrupted run (which also needs the optimiser state restored: SGD
momentum for DM, Adam moments for IDTD, both of VDSD's optimisers across its stage switch,
and the per-step random draws — DM's augmentation, VDSD's (still, dynamic) pairs — redrawn
identically).
Tiny stores, a few seconds in all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidistill import registry
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare
from vidistill.synthesize import synthesize

SPEC = ClipSpec(frames=8, size=48)
FAST = {"net_width": 0.125, "real_batch": 3}
ITERATIONS = 6
OPTIONS = {
    "dm": {},
    "dm-aug": {"augment": "clip"},  # the augmentation's draws come from the step's generator
    "idtd": {"k": 2},  # aligned fusor, hinge L_div
    "idtd-strided": {"k": 2, "fusor": "strided", "div": "text"},
    # Adam for stage 2 so its moments matter; lr high enough that every step moves the set
    "vdsd": {"dynamic_optimizer": "adam", "lr_dynamic": 0.05, "lr_hal": 0.05},
    "vdsd-sgd": {},  # VDSD's own: SGD momentum 0.95 at its published VPC-1 rates
}


class Killed(Exception):
    """What a SIGKILL looks like to the loop: the call ends inside an iteration."""


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[int, ClipStore]:
    root = tmp_path_factory.mktemp("resume")
    return {
        seed: prepare(
            ToyDataset(num_classes=2, train_per_class=3, test_per_class=1, seed=seed),
            root / f"toy{seed}",
            spec=SPEC,
            workers=1,
            progress=False,
        )
        for seed in (0, 1)
    }


def _spy(monkeypatch: pytest.MonkeyPatch, method: str, calls: list[int], kill_at: set[int]):
    """Record each iteration the runner executes; raise ``Killed`` on entering ``kill_at``."""
    cls = registry.get("synthesizer", method)
    orig = cls.step

    def step(self, it, *args, **kwargs):
        if it in kill_at:
            kill_at.discard(it)
            raise Killed(it)
        calls.append(it)
        return orig(self, it, *args, **kwargs)

    monkeypatch.setattr(cls, "step", step)


def _run(store: ClipStore, variant: str, out: Path):
    return synthesize(
        store,
        variant.split("-")[0],
        1,
        out,
        options={**FAST, **OPTIONS[variant], "iterations": ITERATIONS},
        seed=3,
        checkpoint_every=2,
        progress=False,
        preview=False,
    )


@pytest.mark.parametrize("variant", list(OPTIONS))
def test_killed_synthesis_resumes_from_its_checkpoint_only(
    tmp_path, stores, monkeypatch, variant
) -> None:
    store = stores[0]
    method = variant.split("-")[0]
    calls: list[int] = []
    kills: set[int] = set()
    _spy(monkeypatch, method, calls, kills)
    full = _run(store, variant, tmp_path / "full")
    assert calls == list(range(ITERATIONS))

    # killed entering iteration 3 (checkpoint at 2 covers 0..1), then entering 5
    # (checkpoint at 4); VDSD switches optimiser at iteration 3, inside the second call.
    part = tmp_path / "part"
    kills.update({3, 5})
    per_call = []
    for _ in range(2):
        calls.clear()
        with pytest.raises(Killed):
            _run(store, variant, part)
        per_call.append(list(calls))
    calls.clear()
    resumed = _run(store, variant, part)
    per_call.append(list(calls))
    assert per_call == [[0, 1, 2], [2, 3, 4], [4, 5]], "a resume redid or skipped work"

    assert torch.equal(resumed.videos, full.videos)
    done_full = json.loads((tmp_path / "full" / "done.json").read_text())
    done_part = json.loads((part / "done.json").read_text())
    assert [h["it"] for h in done_part["history"]] == list(range(ITERATIONS))
    assert done_part["history"] == done_full["history"]
    if method == "vdsd":
        assert [h["stage"] for h in done_part["history"]] == [1.0] * 3 + [2.0] * 3


def test_checkpoint_of_another_store_is_not_resumed(tmp_path, stores, monkeypatch) -> None:
    """Same method/VPC/seed/config, same folder, different data: learn afresh, all iterations."""
    calls: list[int] = []
    _spy(monkeypatch, "dm", calls, set())
    first = _run(stores[0], "dm", tmp_path / "syn")
    calls.clear()
    second = _run(stores[1], "dm", tmp_path / "syn")
    assert calls == list(range(ITERATIONS))
    fresh = _run(stores[1], "dm", tmp_path / "fresh")
    assert torch.equal(second.videos, fresh.videos) and not torch.equal(second.videos, first.videos)


def test_finished_run_reruns_no_iteration(tmp_path, stores, monkeypatch) -> None:
    calls: list[int] = []
    _spy(monkeypatch, "dm", calls, set())
    a = _run(stores[0], "dm", tmp_path / "syn")
    calls.clear()
    b = _run(stores[0], "dm", tmp_path / "syn")
    assert calls == [] and torch.equal(a.videos, b.videos)
