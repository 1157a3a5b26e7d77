"""Foundation: folder adapter round trip, corrupt files, resumable prepare, toy determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vidistill.cli import main
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.folder import FolderDataset
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import _part_path, prepare
from vidistill.video import clip_indices, write_video

SPEC = ClipSpec(frames=4, size=32, stride=2)


def _smooth_video(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """Frames whose colour changes over time and space slowly: codecs keep these nearly exact."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 200, 3)
    t = np.arange(n)[:, None, None, None]
    y = np.linspace(0, 1, h)[None, :, None, None]
    x = np.linspace(0, 1, w)[None, None, :, None]
    return np.clip(base + 6 * t + 30 * y + 20 * x, 0, 255).astype(np.uint8)


@pytest.fixture()
def folder_root(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    k = 0
    for split in ("train", "test"):
        for cls, ext in (("jump", ".mp4"), ("run", ".avi")):
            for j in range(2):
                write_video(root / split / cls / f"{cls}{j}{ext}", _smooth_video(12, 40, 48, k))
                k += 1
    return root


def test_clip_indices_policies() -> None:
    assert clip_indices(20, ClipSpec(frames=4, size=32, stride=2)).tolist() == [6, 8, 10, 12]
    assert clip_indices(5, ClipSpec(frames=4, size=32, stride=2)).tolist() == [0, 2, 4, 1]
    assert clip_indices(5, ClipSpec(frames=4, size=32, stride=2, short_policy="pad")).tolist() == [
        0,
        2,
        4,
        4,
    ]


def test_folder_roundtrip_mp4_and_avi(folder_root: Path, tmp_path: Path) -> None:
    store = prepare(
        FolderDataset(folder_root), tmp_path / "store", spec=SPEC, workers=2, progress=False
    )
    assert store.videos.shape == (8, 4, 32, 32, 3)
    assert store.class_names == ["jump", "run"]
    by_source = {r["source"]: i for i, r in enumerate(store.records)}
    assert by_source.keys() == {str(p.relative_to(folder_root)) for p in folder_root.rglob("*.*")}
    for src, i in by_source.items():
        assert store.records[i]["class_name"] == Path(src).parent.name
        assert store.labels[i] == store.class_names.index(Path(src).parent.name)
        assert store.splits[i] == Path(src).parts[0]
    # Pixels: decode the centred clip of one video by hand (resize 40x48 -> short side 32, crop).
    src = "train/jump/jump1.mp4"
    original = _smooth_video(12, 40, 48, 1)[clip_indices(12, SPEC)]
    got = store.videos[by_source[src]].astype(float)
    # Compare the mean colour per frame (resizing/cropping keeps it close for smooth frames).
    assert np.abs(got.mean(axis=(1, 2)) - original.astype(float).mean(axis=(1, 2))).max() < 8
    assert store.tensor([0]).shape == (1, 3, 4, 32, 32)


def test_corrupt_files_are_skipped_and_recorded(folder_root: Path, tmp_path: Path) -> None:
    good = folder_root / "train" / "jump" / "jump0.mp4"
    data = good.read_bytes()
    (folder_root / "train" / "jump" / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (folder_root / "train" / "run" / "empty.avi").write_bytes(b"")
    (folder_root / "test" / "run" / "notavideo.mkv").write_text("hello, I am text")
    store = prepare(
        FolderDataset(folder_root), tmp_path / "store", spec=SPEC, workers=2, progress=False
    )
    assert len(store) == 8  # every good file kept
    reasons = {Path(s["source"]).name: s["reason"] for s in store.skipped}
    assert set(reasons) == {"truncated.mp4", "empty.avi", "notavideo.mkv"}
    assert "0 bytes" in reasons["empty.avi"]
    assert all(s["status"] == "skipped" for s in store.skipped)


def test_a_folder_of_only_broken_files_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    for cls in ("jump", "run"):
        (root / "train" / cls).mkdir(parents=True)
        (root / "train" / cls / "a.mp4").write_bytes(b"")
        (root / "train" / cls / "b.mp4").write_text("not a video")
    with pytest.raises(ValueError, match=r"all 4 files were skipped .*2 × .*0 bytes"):
        prepare(FolderDataset(root), tmp_path / "store", spec=SPEC, workers=1, progress=False)
    assert not (tmp_path / "store" / "store.json").exists()


_POOL_KILL_SCRIPT = """
import sys
from vidistill.clipstore import ClipSpec
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare
prepare(ToyDataset(num_classes=10, train_per_class=200, test_per_class=10), sys.argv[1],
        spec=ClipSpec(frames=8, size=64), workers=2, progress=False)
"""


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        kids |= {int(c) for c in (task / "children").read_text().split()}
    return kids


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_killed_prepare_leaves_no_worker_behind(tmp_path: Path) -> None:
    """SIGKILL of ``prepare`` with a process pool: its workers die with it (no orphans)."""
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _POOL_KILL_SCRIPT, str(out)])
    deadline, workers = time.time() + 60, set()
    while time.time() < deadline and not (len(workers) >= 2 and (out / ".parts").is_dir()):
        workers = _children(proc.pid) if proc.poll() is None else workers
        time.sleep(0.05)
    assert len(workers) >= 2, "the pool never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    alive = workers
    while alive and time.time() < deadline:
        alive = {w for w in alive if Path(f"/proc/{w}").exists() and _state(w) != "Z"}
        time.sleep(0.05)
    assert not alive, f"workers {sorted(alive)} outlived their killed parent"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def test_csv_variant_rejects_escaping_paths(folder_root: Path) -> None:
    (folder_root / "ok.csv").write_text("path,label,split\ntrain/jump/jump0.mp4,jump,train\n")
    assert len(FolderDataset(folder_root, csv_file="ok.csv").items()) == 1
    (folder_root / "bad.csv").write_text("path,label,split\n../../etc/passwd,jump,train\n")
    with pytest.raises(ValueError, match="escapes the dataset root"):
        FolderDataset(folder_root, csv_file="bad.csv")


_KILL_SCRIPT = """
import sys
from vidistill.clipstore import ClipSpec
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare
prepare(ToyDataset(num_classes=10, train_per_class=60, test_per_class=10), sys.argv[1],
        spec=ClipSpec(frames=8, size=64), workers=1, progress=False)
"""


def test_killed_prepare_resumes_to_identical_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(out)])
    parts = out / ".parts"
    deadline = time.time() + 60
    while time.time() < deadline:
        if parts.is_dir() and len(list(parts.glob("*.npy"))) >= 40:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "store.json").exists(), "prepare finished before it could be killed"
    ds = ToyDataset(num_classes=10, train_per_class=60, test_per_class=10)
    items = ds.items()
    missing = {items[i].source for i in range(len(items)) if not _part_path(parts, i).exists()}
    assert 0 < len(missing) <= len(items) - 40

    # Seeded decoding gives the same bytes whether resumed or restarted, so count the work:
    # the resumed call must decode exactly the clips that have no part yet.
    decoded: list[str] = []
    orig_load = ToyDataset.load

    def counting_load(self, item, spec):
        decoded.append(item.source)
        return orig_load(self, item, spec)

    monkeypatch.setattr(ToyDataset, "load", counting_load)
    resumed = prepare(ds, out, spec=ClipSpec(frames=8, size=64), workers=1, progress=False)
    assert len(decoded) == len(missing) and set(decoded) == missing
    monkeypatch.undo()
    fresh = prepare(  # other worker count, no interruption: the same store
        ds, tmp_path / "fresh", spec=ClipSpec(frames=8, size=64), workers=2, progress=False
    )
    assert (out / "clips.u8").read_bytes() == (tmp_path / "fresh" / "clips.u8").read_bytes()
    assert resumed.records == fresh.records
    assert not parts.exists()
    assert not list(out.glob(".*.tmp"))


def test_toy_is_deterministic_and_balanced(tmp_path: Path) -> None:
    ds = ToyDataset(num_classes=4, train_per_class=8, test_per_class=4, seed=3)
    a = prepare(ds, tmp_path / "a", workers=1, progress=False)
    b = prepare(ds, tmp_path / "b", workers=2, progress=False)
    assert np.array_equal(np.asarray(a.videos), np.asarray(b.videos))
    other = prepare(
        ToyDataset(num_classes=4, train_per_class=8, test_per_class=4, seed=4),
        tmp_path / "c",
        workers=1,
        progress=False,
    )
    assert not np.array_equal(np.asarray(a.videos), np.asarray(other.videos))
    assert np.bincount(a.labels[a.indices("train")]).tolist() == [8, 8, 8, 8]
    modes = [r["meta"]["mode"] for r in a.records if r["label"] == 0 and r["split"] == "train"]
    assert sorted(set(modes)) == [0, 1, 2, 3]
    # Frames differ over time: the class lives in the motion.
    assert np.abs(np.diff(a.videos[0].astype(int), axis=0)).mean() > 1


def test_incomplete_store_is_never_read(tmp_path: Path) -> None:
    store = prepare(
        ToyDataset(num_classes=2, train_per_class=2, test_per_class=1),
        tmp_path / "s",
        workers=1,
        progress=False,
    )
    (store.root / "store.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a ClipStore"):
        ClipStore(store.root)


def test_cli_prepare_info_list(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "toy"
    res = runner.invoke(
        main,
        [
            "prepare",
            "toy",
            "--out",
            str(out),
            "--classes",
            "3",
            "--train-per-class",
            "4",
            "--test-per-class",
            "2",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "8 frames × 64×64" in res.output
    res = runner.invoke(main, ["info", str(out), "--json"])
    summary = json.loads(res.output)
    assert summary["clips"] == 18 and summary["per_split"]["train"]["slide-right"] == 4
    res = runner.invoke(main, ["list", "dataset"])
    assert "toy" in res.output and "folder" in res.output
    res = runner.invoke(main, ["prepare", "folder", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "--root" in res.output
