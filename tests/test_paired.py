"""Paired runs and IOR (DESIGN §4): the interval, pairing by seed and pool, per-run
re-selection that reproduces exactly, the random partner reused, test clips refused, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from vidistill.cli import main
from vidistill.clipstore import ClipSpec
from vidistill.datasets.toy import ToyDataset
from vidistill.embed import embed_store
from vidistill.evaluate import (
    Recipe,
    evaluate,
    load_results,
    random_subset,
    selection_set,
    update_results,
)
from vidistill.evaluate.paired import attach_ior, paired_ior, random_partner, t_interval
from vidistill.prepare import prepare
from vidistill.select import select_store

# Tiny but not at chance (min_steps 20): paired differences must vary with the seed.
RECIPE = Recipe.preset("toy-quick", width=0.125, epochs=2, min_steps=20, batch_size=8)
CLI_RECIPE = ["--preset", "toy-quick", "--width", "0.125", "--epochs", "2", "--min-steps", "20"]
CLI_RECIPE += ["--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    ds = ToyDataset(num_classes=3, train_per_class=8, test_per_class=4)
    root = tmp_path_factory.mktemp("paired") / "store"
    s = prepare(ds, root, ClipSpec(size=48), workers=1, progress=False)
    embed_store(s, "classifier", progress=False, epochs=1, batch_size=8, recipe="vdsd")
    return s


# -- the interval and the pairing (no training) -----------------------------------------
def test_t_interval_by_hand_and_scipy() -> None:
    from scipy import stats

    d = [1.0, 2.0, 3.0, 6.0]
    mean, std, low, high = t_interval(d)
    sd = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + 0 + (6 - 3) ** 2) / 3)  # ddof 1
    half = 3.182446305284263 * sd / 2  # t(0.975, df 3) · s / √4
    assert (mean, std) == pytest.approx((3.0, sd))
    assert (low, high) == pytest.approx((3 - half, 3 + half))
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high))
    one = t_interval([2.5])
    assert one[0] == 2.5 and all(math.isnan(v) for v in one[1:])


def _rec(seed: int, top1: float) -> dict:
    return {"seed": seed, "top1": top1}


def _row(method: str, per_run: list[dict], pool: str = "/pool/a", vpc: int = 1, epochs=2):
    return {
        "dataset": "toy",
        "method": method,
        "pool": pool,
        "vpc": vpc,
        "recipe": {"epochs": epochs},
        "source": f"{method}@{pool}",
        "seeds": [p["seed"] for p in per_run],
        "per_run": per_run,
    }


def test_paired_ior_pairs_by_seed_not_by_position() -> None:
    rnd = _row("random", [_rec(3, 50.0), _rec(0, 40.0), _rec(1, 30.0), _rec(2, 20.0)])
    m = _row("m", [_rec(2, 25.0), _rec(0, 50.0), _rec(1, 36.0)])  # out of order, seed 3 unpaired
    ior = paired_ior(m, rnd)
    assert ior["ior_seeds"] == [0, 1, 2] and ior["ior_diffs"] == [10.0, 6.0, 5.0]
    assert ior["ior_runs"] == 3 and ior["ior_mean"] == pytest.approx(7.0)
    assert ior["ior_ci95"] == pytest.approx(list(t_interval([10.0, 6.0, 5.0])[2:]))
    assert ior["ior_verdict"] == "better"  # [0.4, 13.6] excludes 0
    with pytest.raises(ValueError, match="no shared seeds"):
        paired_ior(_row("m", [_rec(7, 1.0)]), rnd)


def test_attach_ior_pairs_only_same_pool_vpc_recipe() -> None:
    per = [_rec(0, 40.0), _rec(1, 42.0)]
    rows = [
        _row("random", [_rec(0, 30.0), _rec(1, 30.0)], pool="/pool/a"),
        _row("random", [_rec(0, 10.0), _rec(1, 10.0)], pool="/pool/b"),  # a generated pool
        _row("m", per, pool="/pool/a"),
        _row("m", per, pool="/pool/b"),
        _row("m", per, pool="/pool/a", vpc=2),  # no random at VPC 2
        {**_row("m", per, pool="/pool/a", epochs=9), "ior_mean": 1.0},  # other recipe, stale
    ]
    attach_ior(rows)
    assert rows[2]["ior_diffs"] == [10.0, 12.0] and rows[3]["ior_diffs"] == [30.0, 32.0]
    assert all("ior_mean" not in r for r in (rows[0], rows[1], rows[4], rows[5]))


# -- per-run re-selection, paired by seed --------------------------------------------------
def _paired_rows(store, seed: int, runs: int = 2) -> tuple[dict, dict]:
    """k-center re-selected with each run's seed, and random from the same pool."""

    def kcenter(s: int):
        doc = select_store(store, "k-center", 2, seed=s, embedder="classifier", progress=False)
        return selection_set(store, doc)

    kw = {"runs": runs, "seed": seed, "vpc": 2, "progress": False}
    m = evaluate(kcenter, store, RECIPE, method="k-center", **kw)
    r = evaluate(lambda s: random_subset(store, 2, s), store, RECIPE, method="random", **kw)
    return m, r


def test_same_seeds_same_paired_differences(store, tmp_path) -> None:
    a = update_results(tmp_path / "a.json", _paired_rows(store, 0))[0]
    b = update_results(tmp_path / "b.json", _paired_rows(store, 0))[0]
    c = update_results(tmp_path / "c.json", _paired_rows(store, 3))[0]
    assert a["method"] == "k-center" and a["per_run_source"] is True
    assert a["pool"] == str(store.root.resolve())
    assert a["ior_seeds"] == b["ior_seeds"] == [0, 1] and c["ior_seeds"] == [3, 4]
    assert a["ior_diffs"] == b["ior_diffs"]  # bit-identical on CPU
    assert (a["ior_mean"], a["ior_ci95"]) == (b["ior_mean"], b["ior_ci95"])
    assert a["ior_diffs"] != c["ior_diffs"]


def test_random_partner_reuses_covered_seeds(store, tmp_path) -> None:
    path = tmp_path / "results.json"
    rows = update_results(path, [_paired_rows(store, 0, runs=1)[1]])
    assert random_partner(rows, store, store, RECIPE, 2, [0]) is None
    grown = random_partner(rows, store, store, RECIPE, 2, [0, 1], progress=False)
    assert grown["seeds"] == [0, 1] and grown["per_run"][0] == rows[0]["per_run"][0]
    fresh = evaluate(
        lambda s: random_subset(store, 2, s), store, RECIPE, runs=2, vpc=2, progress=False
    )
    assert [p["top1"] for p in grown["per_run"]] == [p["top1"] for p in fresh["per_run"]]


# -- test clips never train ----------------------------------------------------------------
def test_test_split_index_in_a_selection_is_refused(store, tmp_path) -> None:
    test_clip = int(store.indices("test", 0)[0])
    train = [int(i) for i in store.indices("train", 0)[:1]]
    sel = {"method": "leaky", "vpc": 2, "indices": {store.class_names[0]: [*train, test_clip]}}
    with pytest.raises(ValueError, match="test-split clips"):
        selection_set(store, sel)
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(sel))
    res = CliRunner().invoke(
        main,
        ["evaluate", str(store.root), "--selection", str(path), "--runs", "1", *CLI_RECIPE,
         "--out", str(tmp_path / "r.json")],
    )  # fmt: skip
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert "test-split clips" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(
        main,
        ["select", str(store.root), "--method", "random", "--vpc", "1", "--split", "all",
         "--out", str(tmp_path / "all.json")],
    )  # fmt: skip
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert res.output.startswith("Error: refusing to select") and res.output.count("\n") == 1
    assert not (tmp_path / "all.json").exists()


# -- the command line and the report -------------------------------------------------------
def test_cli_select_prints_ior_and_report_shows_it(store, tmp_path) -> None:
    out = tmp_path / "results.json"
    args = ["evaluate", str(store.root), "--select", "k-center", "--embedder", "classifier"]
    args += ["--vpc", "2", "--runs", "2", *CLI_RECIPE, "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "IOR (95 % CI)" in res.output and "| toy | random | 2 |" in res.output
    assert "IOR k-center vs random (VPC 2, 2 paired runs): " in res.output
    rows = {r["method"]: r for r in load_results(out)}
    assert rows["k-center"]["per_run_source"] is True and rows["k-center"]["ior_runs"] == 2
    assert rows["random"]["pool"] == rows["k-center"]["pool"] == str(store.root.resolve())
    for s in (0, 1):
        sel = json.loads(
            (tmp_path / "results_selections" / f"k-center_vpc2_seed{s}.json").read_text()
        )
        assert sel["seed"] == s and all(len(v) == 2 for v in sel["indices"].values())

    # a fixed selection: noted, not per run, and the covering random row is reused
    sel_file = tmp_path / "results_selections" / "k-center_vpc2_seed0.json"
    args = ["evaluate", str(store.root), "--selection", str(sel_file), "--runs", "2"]
    res = CliRunner().invoke(main, [*args, *CLI_RECIPE, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "note: --selection is fixed" in res.output
    after = load_results(out)
    assert [r["method"] for r in after] == ["k-center", "random", "k-center"]
    assert after[1]["per_run"] == rows["random"]["per_run"]  # reused (timings too), not re-run
    assert after[2]["per_run_source"] is False and after[2]["ior_runs"] == 2

    res = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep" / "report.md").read_text()
    main_table = md.split("## All results")[0]
    assert main_table.count("(IOR ") == 1  # the two k-center rows share a cell: the later one
    assert "| random | " in main_table and "IOR = improvement over random" in md
    assert np.isfinite(after[2]["ior_mean"])
