"""`vidistill run`: all stages end to end on a tiny toy config, then a re-run skips every stage."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from vidistill.cli import main

TINY = {
    "name": "tiny",
    "dataset": "toy",
    "dataset_options": {"num_classes": 3, "train_per_class": 8, "test_per_class": 4},
    "evaluate": {
        "preset": "toy-quick",
        "runs": 1,
        "seed": 0,
        "width": 0.125,
        "epochs": 2,
        "min_steps": 0,
    },
    "vpcs": [1, 2],
    "references": ["full-real", "random"],
    "embedder": "classifier",
    "embedder_options": {"epochs": 1, "min_steps": 0},  # toy-quick's 300 steps: 110 s
    "select": ["tac-dt"],
    "synthesize": {"dm": {"iterations": 2}},
}


def test_run_all_stages_then_resume(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    got = {(r["method"], r["vpc"]) for r in rows}
    assert got == {
        ("full-real", None),
        ("random", 1),
        ("random", 2),
        ("tac-dt", 1),
        ("tac-dt", 2),
        ("dm", 1),
        ("dm", 2),
    }
    sel = json.loads((out / "select" / "tac-dt_vpc2_seed0.json").read_text())  # one per run seed
    assert all(len(v) == 2 for v in sel["indices"].values())
    assert (out / "report" / "report.html").is_file()
    assert "| tac-dt |" in (out / "report" / "report.md").read_text()
    markers = sorted(p.name for p in (out / "stages").iterdir())
    assert "prepare.json" in markers and "report.json" in markers

    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "[run ]" not in res.output and res.output.count("[skip]") == len(markers)


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: x\nvpc: [1]\n")
    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(tmp_path / "r")])
    # a one-line error through click (SystemExit), not an uncaught ValueError's traceback
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert "Error: unknown config keys ['vpc']" in res.output
    assert not (tmp_path / "r").exists()


def test_full_real_reuses_the_classifier_embedders_net(tmp_path: Path) -> None:
    """The embedder's net IS full-real run 0 (same recipe, seed and clips): the run tests it
    instead of training it again, and its figures are those of a net trained afresh."""
    from vidistill.clipstore import ClipStore
    from vidistill.evaluate import Recipe, evaluate, full_real

    recipe = {"epochs": 1, "min_steps": 0}
    cfg = {**TINY, "evaluate": {"preset": "toy-quick", "runs": 2, "seed": 0, **recipe}}
    cfg.update(embedder_options=recipe, vpcs=[1], synthesize={}, report=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", str(tmp_path / "c.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    full = next(r for r in rows if r["method"] == "full-real")
    assert [r["net_reused"] for r in full["per_run"]] == [True, False]
    store = ClipStore(out / "data")
    fresh = evaluate(full_real(store), store, Recipe.preset("toy-quick", **recipe), runs=1)
    assert full["per_run"][0]["top1"] == fresh["per_run"][0]["top1"]
    assert full["per_run"][0]["train_loss"] == fresh["per_run"][0]["train_loss"]
    # another recipe is not the embedder's net: trained
    cfg["evaluate"]["epochs"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(main, ["run", str(tmp_path / "c.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    full = next(r for r in rows if r["method"] == "full-real" and r["epochs"] == 2)
    assert [r["net_reused"] for r in full["per_run"]] == [False, False]


def test_evaluate_augment_adds_a_paired_row_under_that_recipe(tmp_path: Path) -> None:
    """IDTD's τ (its §4.3) as a run option: the synthesizer's sets evaluated with the
    augmentation, beside random under the same recipe, so the row keeps its IOR."""
    cfg = {**TINY, "select": [], "vpcs": [1], "report": False}
    cfg["evaluate"] = {**TINY["evaluate"], "runs": 2}
    cfg["synthesize"] = {"dm": {"iterations": 2, "evaluate_augment": "idtd-temporal"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", str(tmp_path / "c.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    by_name = {(r.get("row_name") or r["method"], r["vpc"]): r for r in rows}
    tau, tau_random = by_name[("dm +idtd-temporal", 1)], by_name[("random +idtd-temporal", 1)]
    assert tau["recipe"]["augment"] == tau_random["recipe"]["augment"] == "idtd-temporal"
    assert by_name[("dm", 1)]["recipe"]["augment"] is None
    assert tau["ior_seeds"] == [0, 1] and tau["ior_mean"] is not None  # paired with its random
    # the option is the run's, not the synthesizer's: one synthesis per seed serves both rows
    assert sorted(p.name for p in (out / "synth").iterdir()) == ["dm_vpc1_seed0", "dm_vpc1_seed1"]
    for bad_entry, named in (({"evaluate_augment": "nope"}, "nope"), ({"vpcs": [5]}, "vpcs")):
        bad = {**cfg, "synthesize": {"dm": bad_entry}}
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        args = ["run", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "b")]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1 and named in res.output, res.output


def test_a_synthesizer_runs_at_its_own_vpcs(tmp_path: Path) -> None:
    """`synthesize.<m>.vpcs`: a costly method kept to some of the run's VPCs."""
    cfg = {**TINY, "select": [], "references": ["random"], "report": False}
    cfg["synthesize"] = {"dm": {"iterations": 1, "vpcs": [1]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", str(tmp_path / "c.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    got = sorted((r["method"], r["vpc"]) for r in rows)
    assert got == [("dm", 1), ("random", 1), ("random", 2)]
