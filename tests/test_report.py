"""Report: paper-shaped pivot, Markdown + HTML written, frame strips from a selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from vidistill.cli import main
from vidistill.report import frame_strip, pivot_tables, write_report


def _row(method: str, vpc: int | None, top1: float, std: float = 1.0) -> dict:
    return {
        "dataset": "toy",
        "net": "convnet3d",
        "method": method,
        "vpc": vpc,
        "runs": 3,
        "top1_mean": top1,
        "top1_std": std,
        "top5_mean": 90.0,
        "auc_mean": 80.0,
        "f1_mean": 30.0,
        "seconds": 12.0,
        "peak_rss_mb": 500.0,
        "train_bytes": 2**20,
        "diverged_runs": 0,
    }


ROWS = [
    _row("tac-dt", 1, 31.0),
    _row("random", 1, 25.0),
    _row("full-real", None, 70.0),
    _row("random", 5, 40.0),
    _row("tac-dt", 5, 44.5, 2.25),
]


def test_pivot_is_methods_by_vpc_with_references_first() -> None:
    (table,) = pivot_tables(ROWS)
    assert table["header"] == ["method", "VPC 1", "VPC 5", "runs"]
    assert [r[0] for r in table["rows"]] == ["full-real", "random", "tac-dt"]
    assert table["rows"][2][1:3] == ["31.0 ± 1.0", "44.5 ± 2.2"]
    assert (
        table["rows"][0][1] == table["rows"][0][2] == "70.0 ± 1.0"
    )  # whole-set reference spans VPCs


def test_write_report_and_cli(tmp_path: Path) -> None:
    md, page = write_report(ROWS, tmp_path / "r", title="toy")
    text = md.read_text()
    assert "| tac-dt | 31.0 ± 1.0 | 44.5 ± 2.2 | 3 |" in text
    assert "<table>" in page.read_text() and (tmp_path / "r" / "accuracy.png").is_file()

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"rows": ROWS}))
    res = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "report.html").is_file()


def test_frame_strip_shape(tmp_path: Path) -> None:
    from PIL import Image

    clips = np.random.default_rng(0).integers(0, 255, (3, 4, 16, 16, 3), dtype=np.uint8)
    path = frame_strip(clips, tmp_path / "s.png")
    img = np.asarray(Image.open(path))
    assert img.shape == (3 * 18 + 2, 4 * 18 + 2, 3)
    assert np.array_equal(img[2:18, 2:18], clips[0, 0])


# -- the report of a run directory (tests/report_run.py: everything a run leaves, no training)
def test_paper_table_cells_carry_the_paired_ior_with_its_verdict(tmp_path: Path) -> None:
    from report_run import fake_run
    from vidistill.report import read_rows

    rows = read_rows(fake_run(tmp_path / "run") / "results.json")
    (table,) = pivot_tables(rows)
    assert table["header"] == ["method", "VPC 1", "VPC 2", "runs"]
    body = {r[0]: r[1:] for r in table["rows"]}
    assert list(body) == ["full-real", "random", "dm", "tac-dt"]
    # tac-dt − random, paired by seed: (+8, +10, +7) → mean +8.33, t-interval [+4.5, +12.1]
    assert body["tac-dt"][0] == "48.3 ± 2.9 (IOR +8.3 [+4.5, +12.1] better)"
    assert body["dm"][1].endswith("(IOR +0.3 [-2.5, +3.2] no difference)")
    assert body["random"][0] == "40.0 ± 4.1"  # the reference itself has no IOR
    html_cell = dict((r[0], r[1]) for r in table["html_rows"])["tac-dt"]
    assert '<span class="ior better">IOR +8.3 [+4.5, +12.1] better</span>' in html_cell


def test_costs_compression_against_the_full_training_set() -> None:
    from vidistill.report.tables import COST_HEADER, cost_rows

    full = {**_row("full-real", None, 70.0), "train_bytes": 100 * 2**20, "train_kind": "real"}
    small = {**_row("tac-dt", 5, 44.5), "train_clips": 50, "train_frames": 400,
             "train_kind": "real", "flops_per_clip": 2e8}  # fmt: skip
    learned = {**_row("dm", 5, 40.0), "train_bytes": 4 * 2**20, "train_kind": "synthetic"}
    stages = [{"stage": "select/tac-dt/vpc5", "runs": 10, "seconds": 0.5, "peak_rss_mb": 700}]
    by = {r[0]: dict(zip(COST_HEADER, r, strict=True))
          for r in cost_rows([full, small, learned], stage_costs=stages)}  # fmt: skip
    assert by["full-real"]["compression"] == "×1.0" and by["full-real"]["VPC"] == "all"
    assert by["tac-dt"]["compression"] == "×100" and by["tac-dt"]["stored MB"] == "1.00"
    assert by["tac-dt"]["method s/run"] == "0.5" and by["tac-dt"]["method peak RSS MB"] == "700"
    assert by["tac-dt"]["GFLOPs/clip"] == "0.20" and by["tac-dt"]["frames"] == "400"
    assert by["dm"]["compression"] == "×25" and by["dm"]["stored as"] == "float32 tensors"
    # without a full-real row the store's bytes are the reference; without either, no ratio
    assert cost_rows([small], full_bytes={"toy": 5 * 2**20})[0][6] == "×5.0"
    assert cost_rows([small])[0][6] == "–"


def test_report_of_a_run_directory(tmp_path: Path) -> None:
    from report_run import CLASSES, fake_run
    from vidistill.report import report_run

    run = fake_run(tmp_path / "run")
    md, page = report_run(run)
    assert page == run / "report" / "report.html"
    text, html = md.read_text(), page.read_text()
    for section in ("## Results", "## Costs", "### Stages", "## Chosen and learned clips",
                    "## Pool projection", "## All results"):  # fmt: skip
        assert section in text, section
    assert "Full real training set: toy 0.42 MB" in text  # 18 train clips × 8×32×32×3
    assert "| select/tac-dt/vpc2 | 3 | 8.0 | 24 | 508 |" in text  # seeds folded into one line
    # the gallery shows VPC 2, run seed 0: random's own draw, tac-dt's choice, DM's videos
    assert "VPC 2, run seed 0" in text
    assert (  # the learned sets' distance from their start, from done.json
        "dm VPC 1: 2.5 levels (50 % of values changed) in 100 iterations; dm VPC 2: 5 levels"
    ) in text
    assert "*rows, top to bottom: random, tac-dt, dm (learned)*" in text
    for c, name in enumerate(CLASSES):
        assert (run / "report" / "clips" / f"{c:02d}_{name}.gif").is_file()
        assert (run / "report" / "clips" / f"{c:02d}_{name}.jpg").is_file()
    assert (run / "report" / "projection.png").is_file() and "'classifier'" in text
    assert html.count("<details") == len(CLASSES) and 'id="broken-images" hidden' in html


def test_pool_projection_marks_each_selectors_clips(tmp_path: Path) -> None:
    from report_run import fake_run
    from vidistill.clipstore import ClipStore
    from vidistill.report.collect import pool_projections, random_clip_set, selection_clip_set

    run = fake_run(tmp_path / "run")
    store = ClipStore(run / "data")
    sel = json.loads((run / "select" / "tac-dt_vpc2_seed1.json").read_text())
    sets = [random_clip_set(store, 2, 1), selection_clip_set(sel, store)]
    projections, caption = pool_projections(store, sets, "classifier")
    assert [p.class_name for p in projections] == store.class_names
    p = projections[1]
    assert list(p.indices) == store.indices("train", 1).tolist() and p.embedding.shape == (6, 4)
    assert list(p.chosen) == ["random", "tac-dt"]
    assert list(p.chosen["tac-dt"]) == sel["indices"][p.class_name]
    assert list(p.modes) == [0, 1, 0, 1, 0, 1]  # the manifest's sub-modes colour the pool
    assert "VPC 2" in caption


def test_pca_2d_finds_the_spread_directions() -> None:
    from vidistill.report import pca_2d

    rng = np.random.default_rng(0)
    x = np.zeros((200, 5))
    x[:, 3] = rng.normal(0, 10, 200)  # most variance on axis 3, then axis 1
    x[:, 1] = rng.normal(0, 2, 200)
    xy, ratio = pca_2d(x + 7)
    assert xy.shape == (200, 2) and abs(ratio.sum() - 1) < 1e-9 and ratio[0] > 0.9
    assert abs(np.corrcoef(xy[:, 0], x[:, 3])[0, 1]) > 0.99  # PC 1 is axis 3
    assert abs(np.corrcoef(xy[:, 1], x[:, 1])[0, 1]) > 0.99  # PC 2 is axis 1


def test_missing_matplotlib_is_named_not_dropped(tmp_path: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    md, page = write_report(ROWS, tmp_path / "r")
    for text in (md.read_text(), page.read_text()):
        assert "matplotlib is not installed" in text and "accuracy-vs-VPC plot" in text
        assert "pip install &#x27;vidistill[report]&#x27;" in text or (
            "pip install 'vidistill[report]'" in text
        )
    assert not (tmp_path / "r" / "accuracy.png").exists()


def test_missing_pillow_is_named_in_place_of_the_clips(tmp_path: Path, monkeypatch) -> None:
    import sys

    from vidistill.report import ClipSet

    clips = {"a": np.zeros((1, 4, 16, 16, 3), np.uint8)}
    monkeypatch.setitem(sys.modules, "PIL", None)
    md, _ = write_report(ROWS, tmp_path / "r", clip_sets=[ClipSet("tac-dt", 1, "chosen", clips)])
    text = md.read_text()
    assert "pillow is not installed, so this report has no clip strips or GIFs" in text
    assert "pillow is not installed, so this report has no accuracy-vs-VPC plot" in text
    assert "pip install 'vidistill[report]'" in text and not (tmp_path / "r" / "clips").exists()


def test_a_method_on_two_pools_gets_a_line_per_pool() -> None:
    real = {**_row("random", 1, 25.0), "pool": "/runs/demo/data"}
    generated = {**_row("random", 1, 30.0), "pool": "/runs/demo/pool"}
    picked = {**_row("tac-dt", 1, 33.0), "pool": "/runs/demo/pool"}
    (table,) = pivot_tables([real, generated, picked])
    assert [r[0] for r in table["rows"]] == ["random [data]", "random [pool]", "tac-dt"]
    assert [r[1] for r in table["rows"]] == ["25.0 ± 1.0", "30.0 ± 1.0", "33.0 ± 1.0"]


def test_cli_report_of_a_run_directory_and_of_results_with_selections(tmp_path: Path) -> None:
    from report_run import fake_run

    run = fake_run(tmp_path / "run")
    res = CliRunner().invoke(main, ["report", str(run)])
    assert res.exit_code == 0, res.output
    assert (run / "report" / "report.html").is_file()

    args = ["report", str(run / "results.json"), "--out", str(tmp_path / "r")]
    args += [
        "--store",
        str(run / "data"),
        "--selection",
        str(run / "select/tac-dt_vpc2_seed0.json"),
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r" / "report.md").read_text()
    assert "*rows, top to bottom: random, tac-dt*" in text and "## Pool projection" in text
    res = CliRunner().invoke(main, ["report", str(run / "results.json")])
    assert res.exit_code != 0 and "--out is required" in res.output


def test_loss_curves_plot_draws_a_panel_per_row_and_skips_rows_without_the_term(
    tmp_path: Path,
) -> None:
    from vidistill.report.figures import loss_curves_plot

    seed = {"it": [9, 19, 29], "loss": [0.3, 0.2, None]}  # None: a block without the term
    curves = {"dm": [seed, {"it": [9, 19, 29], "loss": [0.4, 0.1, 0.1]}], "t3-a": [{}]}
    path = loss_curves_plot(curves, tmp_path / "curves.png", title="toy")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert loss_curves_plot({"t3-a": [{}]}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
