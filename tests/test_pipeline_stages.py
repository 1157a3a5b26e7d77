"""`vidistill run` stage skipping, both ways: a changed config value or input re-runs exactly
the stages downstream of it and skips the rest, and a killed stage runs again.

A pipeline that skipped whenever a marker exists, or re-ran everything, or ignored a
config field, fails here. One tiny config (2 classes × 3 clips, 48 px, DM for 2 iterations,
1-epoch evaluator), re-run in place after each change.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from vidistill import registry
from vidistill.pipeline import DEFAULTS, run_pipeline

STAGES = [
    "prepare",
    "evaluate/random/vpc1",
    "synthesize/dm/vpc1/seed0",
    "evaluate/dm/vpc1",
    "report",
]
CONFIG: dict[str, Any] = {
    **copy.deepcopy(DEFAULTS),
    "name": "stages",
    "dataset_options": {"num_classes": 2, "train_per_class": 3, "test_per_class": 1},
    "spec": {"size": 48},
    "workers": 1,
    "evaluate": {
        "preset": "toy-quick",
        "runs": 1,
        "seed": 0,
        "width": 0.125,
        "epochs": 1,
        "min_steps": 0,
    },
    "vpcs": [1],
    "references": ["random"],
    "synthesize": {"dm": {"iterations": 2, "net_width": 0.125, "real_batch": 2}},
}


def _run(out: Path, config: dict[str, Any]) -> dict[str, str]:
    """Run the pipeline; return ``{stage: "run" | "skip"}`` from its log, in order."""
    lines: list[str] = []
    run_pipeline(config, out, log=lines.append)
    return _parse(lines)


def _parse(lines: list[str]) -> dict[str, str]:
    done = {}
    for line in lines:
        if line.startswith("[run ] "):
            done[line[7:]] = "run"
        elif line.startswith("[skip] "):
            done[line[7:].split(" (")[0]] = "skip"
    return done


def _only(ran: list[str]) -> dict[str, str]:
    return {s: "run" if s in ran else "skip" for s in STAGES}


def _videos(out: Path):
    return load_file(str(out / "synth" / "dm_vpc1_seed0" / "synthetic.safetensors"))["videos"]


def _changed(**changes: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIG)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    return cfg


@pytest.fixture()
def first_run(tmp_path) -> Path:
    out = tmp_path / "run"
    assert _run(out, CONFIG) == _only(STAGES)
    return out


def test_changes_rerun_exactly_the_downstream_stages(first_run: Path) -> None:
    out = first_run
    assert _run(out, CONFIG) == _only([])  # nothing changed: nothing runs

    # a synthesis option: that synthesis, its evaluation and the report (results changed)
    cfg = _changed(synthesize={"dm": {**CONFIG["synthesize"]["dm"], "iterations": 3}})
    assert _run(out, cfg) == _only(["synthesize/dm/vpc1/seed0", "evaluate/dm/vpc1", "report"])
    done = json.loads((out / "synth" / "dm_vpc1_seed0" / "done.json").read_text())
    assert done["iterations"] == 3

    # an evaluator setting: every evaluation and the report, no data or synthesis
    cfg = _changed(synthesize=cfg["synthesize"], evaluate={**CONFIG["evaluate"], "epochs": 2})
    assert _run(out, cfg) == _only(["evaluate/random/vpc1", "evaluate/dm/vpc1", "report"])
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["method"], r["epochs"]) for r in rows} >= {("random", 2), ("dm", 2)}

    # the input data: everything, and the synthesis really learns from the new store
    # (a finished checkpoint of the old store must not be handed back as the new result)
    before = _videos(out)
    cfg["dataset_options"] = {**CONFIG["dataset_options"], "seed": 5}
    assert _run(out, cfg) == _only(STAGES)
    assert not (before == _videos(out)).all()
    assert _run(out, cfg) == _only([])


def test_killed_stage_runs_again_and_only_it(first_run: Path, monkeypatch) -> None:
    out = first_run
    # killed inside the synthesis after a config change: no marker, so it runs again
    dm = registry.get("synthesizer", "dm")
    orig_step = dm.step

    def dying_step(self, it, *args, **kwargs):
        if it == 1:
            raise KeyboardInterrupt  # what a kill looks like from inside the loop
        return orig_step(self, it, *args, **kwargs)

    cfg = _changed(synthesize={"dm": {**CONFIG["synthesize"]["dm"], "iterations": 4}})
    lines: list[str] = []
    monkeypatch.setattr(dm, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, out, log=lines.append)
    monkeypatch.undo()
    assert _parse(lines) == {
        "prepare": "skip",
        "evaluate/random/vpc1": "skip",
        "synthesize/dm/vpc1/seed0": "run",
    }
    assert _run(out, cfg) == _only(["synthesize/dm/vpc1/seed0", "evaluate/dm/vpc1", "report"])

    # a stage killed before its marker was written (marker missing): that stage runs again
    (out / "stages" / "evaluate__random__vpc1.json").unlink()
    ran = _run(out, cfg)
    assert ran["evaluate/random/vpc1"] == "run"
    assert {s: ran[s] for s in ("prepare", "synthesize/dm/vpc1/seed0", "evaluate/dm/vpc1")} == {
        "prepare": "skip",
        "synthesize/dm/vpc1/seed0": "skip",
        "evaluate/dm/vpc1": "skip",
    }


def test_two_runs_on_one_directory_never_interleave(tmp_path: Path) -> None:
    """The second `vidistill run` on a directory in use refuses at once, naming the first;
    once the first has finished the directory is free again."""
    from click.testing import CliRunner

    from vidistill.cli import main
    from vidistill.errors import RunInUse
    from vidistill.pipeline import run_lock, run_pipeline

    out = tmp_path / "run"
    with run_lock(out):
        with pytest.raises(RunInUse, match=r"in use by vidistill run \(pid \d+\)"):
            run_pipeline({}, out)  # refused before reading the config: nothing written
        result = CliRunner().invoke(main, ["run", "toy-demo", "--out", str(out)])
        assert result.exit_code != 0 and "Error:" in result.output and "in use" in result.output
        assert "Traceback" not in result.output
        assert not (out / "stages").exists()
    with run_lock(out):  # released
        pass
