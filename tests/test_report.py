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
