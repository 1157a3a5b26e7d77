"""tests/faults: shared tiny inputs and the ledger behind docs/reliability.md's table.

Each test is marked ``@pytest.mark.fault(CATEGORY)``; it reports how many faults or bad
inputs it tried (``ledger.tried(n)``, default 1) and how many earlier artifacts it found
lost (``ledger.lost(n)``). A passing test counts its tries as survived / handled, a
failing one as none. With ``VIDISTILL_FAULT_REPORT=PATH`` the session writes the ledger
there (``benchmarks/reliability_table.py`` turns it into the table).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare

CATEGORIES = {
    "sigkill": "SIGKILL at a seeded point, then re-run",
    "enospc": "disk full (ENOSPC) while writing",
    "corrupt": "truncated / byte-flipped artifact",
    "bad-input": "bad input (videos, split files, CSVs, names, VPC)",
    "nan": "NaN / Inf loss in a training loop",
    "property": "property-based parsing (hypothesis examples)",
}

# A store every stage can run on in about a second: 2 classes × 4 train + 2 test clips,
# 8 frames of 48 px (ConvNet3D's smallest is 43 px).
TOY = {"num_classes": 2, "train_per_class": 4, "test_per_class": 2, "seed": 0}
SPEC = ClipSpec(frames=8, size=48)
# The evaluator and embedder recipe of those stages: 1/8-width ConvNet3D, 2 epochs.
EVAL = ["--preset", "toy-quick", "--width", "0.125", "--epochs", "2", "--min-steps", "0"]
EMBED = ["-o", "epochs=2", "-o", "min_steps=0"]

_records: list[dict] = []
_started = time.time()


class Ledger:
    def __init__(self, node: pytest.Item):
        self.node = node

    def tried(self, n: int) -> None:
        self.node.user_properties.append(("tried", n))

    def lost(self, n: int) -> None:
        self.node.user_properties.append(("lost", n))


@pytest.fixture()
def ledger(request: pytest.FixtureRequest) -> Ledger:
    return Ledger(request.node)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("fault")
    if marker is None or report.when != "call" and not (report.when == "setup" and report.failed):
        return
    props = dict(item.user_properties)
    tried = int(props.get("tried", 1))
    _records.append(
        {
            "test": item.nodeid,
            "category": marker.args[0],
            "tried": tried,
            "survived": tried if report.passed else 0,
            "lost": int(props.get("lost", 0)),
            "outcome": report.outcome,
            "seconds": round(report.duration, 2),
        }
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("VIDISTILL_FAULT_REPORT")
    if path and _records:
        report = {"categories": CATEGORIES, "seconds": time.time() - _started, "tests": _records}
        Path(path).write_text(json.dumps(report, indent=1))


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory: pytest.TempPathFactory) -> ClipStore:
    """The tiny store, prepared once (tests copy it before they change anything)."""
    out = tmp_path_factory.mktemp("faults") / "toy"
    return prepare(ToyDataset(**TOY), out, spec=SPEC, workers=1, progress=False)


@pytest.fixture(scope="module")
def gen_store(tmp_path_factory) -> Path:
    """A store the tiny generator trains on in seconds: 2 classes, 4 frames of 16 px."""
    pytest.importorskip("diffusers")
    pytest.importorskip("accelerate")
    out = tmp_path_factory.mktemp("gen") / "store"
    ds = ToyDataset(num_classes=2, train_per_class=4, test_per_class=1, seed=0)
    prepare(ds, out, spec=ClipSpec(frames=4, size=16), workers=1, progress=False)
    return out


def run_config(name: str, *lines: str) -> str:
    """A `vidistill run` config on the tiny store with one 2-epoch evaluator run at VPC 1,
    no report; ``lines`` add sections (e.g. a ``synthesize:`` one)."""
    return "\n".join(
        [
            f"name: {name}",
            "dataset: toy",
            "dataset_options: {num_classes: 2, train_per_class: 4, test_per_class: 2}",
            "spec: {size: 48}",
            "workers: 1",
            "evaluate: {preset: toy-quick, runs: 1, seed: 0, width: 0.125, epochs: 2, min_steps: 0}",
            "vpcs: [1]",
            "references: [random]",
            *lines,
            "report: false",
            "",
        ]
    )
