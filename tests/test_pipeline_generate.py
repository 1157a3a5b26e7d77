"""`vidistill run` with a `generate:` section (paper 003's generate-then-select): the shipped
`toy-gen` preset end to end on CPU — a tiny generator trained on the real store, a pool
sampled from it, the pool embedded by a net trained on the REAL clips, selections that index
the POOL, and the rows full-real, full-syn, random-from-pool, random-real and each selector.
Then the same run skips every stage, and a `weights:` run samples without training."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from vidistill.cli import main
from vidistill.clipstore import ClipStore
from vidistill.pipeline import generate_settings, load_config, run_pipeline

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")


SWAPPED = ("references:", "embedder:", "select:")  # the preset lines the block replaces


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["rows"]


def test_toy_gen_runs_generate_then_select_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", "toy-gen", "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = load_config("toy-gen")
    real, pool = ClipStore(out / "data"), ClipStore(out / "generate" / "pool")
    per_class = cfg["generate"]["pool_per_class"]

    # the pool: generated, labelled with the real classes, no test split, seeded per clip
    assert pool.dataset == "generated" and pool.class_names == real.class_names
    assert len(pool) == per_class * real.num_classes and set(pool.splits) == {"train"}
    assert pool.spec == real.spec
    assert [(r["meta"]["class_index"], r["meta"]["index"]) for r in pool.records][:2] == [
        (0, 0),
        (0, 1),
    ]
    assert (out / "generate" / "model" / "ema.safetensors").is_file()
    emb = out / "generate" / "pool" / "embeddings" / "classifier.safetensors"
    assert emb.is_file()  # the pool's embeddings, by a net trained on the REAL store
    assert (out / "data" / "embeddings" / "classifier-net.safetensors").is_file()

    # every row, tested on the real test split
    rows = _rows(out)
    got = {(r.get("row_name") or r["method"], r["vpc"]) for r in rows}
    refs = {("full-real", None), ("full-syn", None)}
    per_vpc = {"random-from-pool", "random-real", *cfg["select"]}
    assert got == refs | {(m, v) for m in per_vpc for v in cfg["vpcs"]}
    assert all(r["test_clips"] == len(real.indices("test")) for r in rows)
    pool_path, real_path = str(pool.root.resolve()), str(real.root.resolve())
    by = {(r.get("row_name") or r["method"], r["vpc"]): r for r in rows}
    assert by[("full-syn", None)]["train_clips"] == len(pool)
    assert by[("full-real", None)]["train_clips"] == len(real.indices("train"))
    for v in cfg["vpcs"]:
        assert by[("random-from-pool", v)]["pool"] == pool_path
        assert by[("random-real", v)]["pool"] == real_path
        for m in cfg["select"]:
            row = by[(m, v)]
            assert row["pool"] == pool_path  # IOR against random from the SAME pool
            assert row["ior_reference"] == by[("random-from-pool", v)]["source"]
            assert row["ior_runs"] == cfg["evaluate"]["runs"]

    # selections index the POOL store, not the real one
    for m in cfg["select"]:
        for v in cfg["vpcs"]:
            for s in range(cfg["evaluate"]["runs"]):
                sel = json.loads((out / "select" / f"{m}_vpc{v}_seed{s}.json").read_text())
                assert Path(sel["store"]).resolve() == pool.root.resolve()
                for name, idx in sel["indices"].items():
                    assert len(idx) == v
                    assert all(pool.records[i]["class_name"] == name for i in idx)
                    assert all(pool.records[i]["source"].startswith("generated:") for i in idx)

    # the report's table shows the pool rows, and the real-vs-generated strip
    md = (out / "report" / "report.md").read_text()
    for name in ("full-real", "full-syn", "random-from-pool", "random-real", *cfg["select"]):
        assert f"| {name} |" in md
    assert "generate-then-select" in md
    assert (out / "report" / "strip_pool.png").is_file()

    # nothing changed: every stage is skipped
    res = CliRunner().invoke(main, ["run", "toy-gen", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "[run ]" not in res.output
    assert "[skip] generate/train" in res.output and "[skip] generate/sample" in res.output

    # a trained generator given as `weights`: nothing is trained, the pool is sampled from it
    cfg2 = {
        **cfg,
        "references": ["full-syn"],
        "select": [],
        "vpcs": [1],
        "report": False,
        "evaluate": {**cfg["evaluate"], "runs": 1},
        "generate": {"weights": str(out / "generate" / "model"), "pool_per_class": 2, "steps": 2},
    }
    lines: list[str] = []
    out2 = tmp_path / "weights"
    run_pipeline(cfg2, out2, log=lines.append)
    ran = [ln[7:] for ln in lines if ln.startswith("[run ] ")]
    assert ran == ["prepare", "generate/sample", "evaluate/full-syn"]
    assert len(ClipStore(out2 / "generate" / "pool")) == 2 * real.num_classes


def test_generate_section_is_checked_in_one_line(tmp_path: Path) -> None:
    def run(text: str) -> str:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text)
        res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(tmp_path / "r")])
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
        return res.output

    assert "unknown generate keys ['per_class']" in run("generate: {per_class: 3}\n")
    assert "not both" in run("generate: {weights: /x, train: {steps: 3}}\n")
    assert "unknown generator config keys ['stepz']" in run("generate: {train: {stepz: 3}}\n")
    assert "needs a `generate:` section" in run("references: [full-real, full-syn]\n")
    assert not (tmp_path / "r" / "data").exists()


def test_shipped_presets_load_and_which_generate(tmp_path: Path) -> None:
    for name in ("toy-synth", "miniucf", "hmdb51", "k400", "ssv2"):
        assert load_config(name)["generate"] == {}, name  # the paper's path is opt-in there
    quick = load_config("toy-quick")  # the paper's path from the shipped toy generator
    assert generate_settings(quick["generate"])["weights"] == "shipped:toy"
    assert quick["references"] == ["full-real", "full-syn", "random", "random-real"]
    assert set(quick["select"]) == {"tac-dt", "vst-unet", "mae-score", "csta", "dm-mmd"}
    demo = load_config("toy-demo")  # both seed methods: select from the pool, and synthesize
    assert generate_settings(demo["generate"])["weights"] == "shipped:toy"
    assert demo["synthesize"]["idtd"]["evaluate_augment"] == "idtd-temporal"
    assert {"tac-dt", "vst-unet"} <= set(demo["select"]) and "dm" in demo["synthesize"]
    # ... and its commented block, uncommented as it says, is a valid config
    for name in ("miniucf", "hmdb51", "k400", "ssv2"):
        text = (resources.files("vidistill") / "configs" / f"{name}.yaml").read_text()
        active, block = text.split("\n# generate:\n")
        keep = [ln for ln in active.splitlines() if not ln.startswith(SWAPPED)]
        lines = ["generate:"] + [
            ln[2:] for ln in block.splitlines() if ln.startswith("# ") and not ln.startswith("# (")
        ]
        (tmp_path / f"{name}.yaml").write_text("\n".join(keep + lines) + "\n")
        cfg = load_config(tmp_path / f"{name}.yaml")
        g = generate_settings(cfg["generate"])
        assert g is not None and g["init"] and g["vae"] and g["spec"]["size"] == 256, name
        assert g["pool_per_class"] == 100 and (g["sampler"], g["steps"], g["cfg"]) == (
            "ddpm",
            250,
            7.0,
        )
        assert cfg["references"] == ["full-real", "full-syn", "random", "random-real"]
        assert cfg["embedder"] == "videomae" and "tac-dt" in cfg["select"]
    g = generate_settings(load_config("toy-gen")["generate"])
    assert g is not None and g["train"]["preset"] == "tiny" and g["weights"] is None


def _ran(config: dict, out: Path) -> dict[str, str]:
    lines: list[str] = []
    run_pipeline(config, out, log=lines.append)
    done = {}
    for ln in lines:
        if ln.startswith("[run ] "):
            done[ln[7:]] = "run"
        elif ln.startswith("[skip] "):
            done[ln[7:].split(" (")[0]] = "skip"
    return done


def test_generate_stages_rerun_exactly_what_a_change_touches(tmp_path: Path) -> None:
    cfg = load_config("toy-gen")
    cfg.update(vpcs=[1], select=["tac-dt"], report=False)
    cfg["evaluate"] = {**cfg["evaluate"], "runs": 1}
    out = tmp_path / "run"
    first = _ran(cfg, out)
    assert set(first.values()) == {"run"}
    model = out / "generate" / "model"
    (model / "sentinel").touch()

    pool_side = {
        "generate/sample",
        "evaluate/full-syn",
        "evaluate/random/vpc1",
        "embed/pool/classifier",
        "select/tac-dt/vpc1/seed0",
        "evaluate/tac-dt/vpc1",
    }
    # a sampling setting: the pool and everything drawn from it; not the generator, not the
    # real-clip rows
    cfg["generate"] = {**cfg["generate"], "steps": 6}
    ran = _ran(cfg, out)
    assert {s for s, how in ran.items() if how == "run"} == pool_side
    assert ran["generate/train"] == ran["evaluate/full-real"] == "skip"
    assert ran["evaluate/random-real/vpc1"] == "skip"

    # more generator steps: training resumes from its last checkpoint (the folder is kept)
    cfg["generate"] = {**cfg["generate"], "train": {**cfg["generate"]["train"], "steps": 24}}
    ran = _ran(cfg, out)
    assert {s for s, how in ran.items() if how == "run"} == {"generate/train", *pool_side}
    assert (model / "sentinel").is_file()
    assert json.loads((model / "done.json").read_text())["step"] == 24

    # any other generator change starts afresh
    cfg["generate"] = {**cfg["generate"], "train": {**cfg["generate"]["train"], "lr": 2e-3}}
    ran = _ran(cfg, out)
    assert ran["generate/train"] == "run" and not (model / "sentinel").exists()
    assert _ran(cfg, out) == {s: "skip" for s in ran}


def test_generator_trains_at_its_own_spec_and_the_pool_is_resampled(tmp_path: Path) -> None:
    """``generate.spec`` (the official Latte's 16 × 256² beside a 112² evaluation): the data
    is prepared again at that spec for the generator, and the pool comes back at the run's."""
    cfg = load_config("toy-gen")
    cfg.update(vpcs=[1], select=[], references=["full-syn"], report=False)
    cfg["evaluate"] = {**cfg["evaluate"], "runs": 1}
    cfg["generate"] = {**cfg["generate"], "pool_per_class": 2, "spec": {"frames": 16, "size": 32}}
    out = tmp_path / "run"
    ran = _ran(cfg, out)
    assert list(ran) == [
        "prepare",
        "generate/prepare",
        "generate/train",
        "generate/sample",
        "evaluate/full-syn",
    ]
    data = json.loads((out / "generate" / "model" / "config.json").read_text())["data"]
    assert (data["frames"], data["size"]) == (16, 32)
    real, pool = ClipStore(out / "data"), ClipStore(out / "generate" / "pool")
    assert pool.spec.shape == real.spec.shape == (8, 48, 48, 3)
    assert ClipStore(out / "generate" / "data").spec.shape == (16, 32, 32, 3)


def test_report_tells_the_two_random_rows_apart() -> None:
    from vidistill.report import pivot_tables

    def row(method, vpc, top1, name=None, pool="/p"):
        r = {"dataset": "toy", "net": "convnet3d", "method": method, "vpc": vpc, "runs": 1}
        r.update(top1_mean=top1, top1_std=0.0, pool=pool)
        return r | ({"row_name": name} if name else {})

    rows = [
        row("random", 1, 20.0, "random-from-pool"),
        row("random", 1, 10.0, "random-real", pool="/real"),
        row("full-syn", None, 50.0),
        row("tac-dt", 1, 25.0),
    ]
    (table,) = pivot_tables(rows)
    body = {r[0]: r[1] for r in table["rows"]}
    assert body == {
        "full-syn": "50.0 ± 0.0",
        "random-from-pool": "20.0 ± 0.0",
        "random-real": "10.0 ± 0.0",
        "tac-dt": "25.0 ± 0.0",
    }
    assert [r[0] for r in table["rows"]][:3] == ["full-syn", "random-from-pool", "random-real"]
