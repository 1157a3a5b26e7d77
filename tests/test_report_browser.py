"""The HTML report, opened in a real browser: headless Chromium loads report.html from a run
directory's report, every image loads, and a screenshot is saved.

Chromium: the first of ``chromium``, ``chromium-browser``, ``google-chrome`` on PATH; when
none is, the session fixture installs Debian's ``chromium`` with apt-get (as root, where
apt-get exists) — so ``make test`` on a fresh Debian/Ubuntu machine runs this test — and
skips with the reason only where it cannot be installed.

The page's inline script marks each ``<img>`` ``data-loaded="yes"|"no"`` (complete and
``naturalWidth > 0``) and sets ``<body data-images="loaded/total">`` on load;
``--dump-dom`` after ``--virtual-time-budget`` returns the DOM once it has run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from report_run import CLASSES, fake_run
from vidistill.report import report_run

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless-capable Chromium; installed with apt-get when missing and possible."""
    found = _find()
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip(
            "no chromium on PATH, and it cannot be installed here (needs root and apt-get): "
            "install it (Debian/Ubuntu: apt-get install chromium) to run the browser test"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = ""
    for cmd in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"],
                ["apt-get", "install", "-y", "chromium"]):  # fmt: skip
        try:
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        except subprocess.TimeoutExpired:
            pytest.skip(f"`{' '.join(cmd)}` timed out after 240 s")
        log = (res.stdout + res.stderr)[-400:]
        if cmd[1] == "install" and res.returncode == 0 and _find():
            return _find()
    pytest.skip(f"no chromium and `apt-get install -y chromium` failed: ...{log}")


def _browse(chromium: str, page: Path, profile: Path, *args: str) -> str:
    cmd = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--no-first-run", *args, page.as_uri()]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def _image_states(dom: str) -> tuple[str | None, list[tuple[str, str | None]]]:
    body = re.search(r'<body[^>]*\bdata-images="(\d+/\d+)"', dom)
    imgs = [(re.search(r'src="([^"]*)"', t)[1], (re.search(r'data-loaded="(\w+)"', t) or [None, None])[1])
            for t in re.findall(r"<img\b[^>]*>", dom)]  # fmt: skip
    return (body[1] if body else None), imgs


def test_report_opens_in_chromium_with_every_image(chromium, tmp_path) -> None:
    run = fake_run(tmp_path / "run")
    _, page = report_run(run)
    html = page.read_text()
    sources = re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', html)
    # plot, pool projection, per class a GIF and a strip
    assert "accuracy.png" in sources and "projection.png" in sources
    assert len(sources) == 2 + 2 * len(CLASSES), sources
    assert all((page.parent / s).is_file() for s in sources)

    dom = _browse(chromium, page, tmp_path / "profile", "--virtual-time-budget=10000",
                  "--dump-dom")  # fmt: skip
    loaded, imgs = _image_states(dom)
    assert loaded == f"{len(sources)}/{len(sources)}", (loaded, imgs)
    assert [s for s, _ in imgs] == sources and all(state == "yes" for _, state in imgs), imgs
    assert 'id="broken-images" hidden' in dom  # the warning banner stays hidden

    shot = tmp_path / "report.png"
    _browse(chromium, page, tmp_path / "profile", f"--screenshot={shot}",
            "--window-size=1280,2000")  # fmt: skip
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        colours = im.convert("RGB").resize((64, 100)).getcolors(64 * 100)
    assert colours is not None and len(colours) > 20  # a rendered page, not a blank one
    print(f"screenshot: {shot}")

    # the check can fail: a deleted image is reported as not loaded, and the banner shows
    (page.parent / "projection.png").unlink()
    dom = _browse(chromium, page, tmp_path / "profile", "--virtual-time-budget=10000",
                  "--dump-dom")  # fmt: skip
    loaded, imgs = _image_states(dom)
    assert loaded == f"{len(sources) - 1}/{len(sources)}"
    assert dict(imgs)["projection.png"] == "no"
    assert f"1 of {len(sources)} images did not load" in dom
