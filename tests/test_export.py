"""`vidistill export`: a selection, a synthesized set and a run's set round-trip through
`prepare folder` to the same training set — same class names and label indices, pixel-
identical clips (the codecs are lossless, tolerance 0) — and the safetensors file holds the
exact tensors. The output folder is atomic. Tiny toy store, a few seconds."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from vidistill import export as export_mod
from vidistill.cli import main
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.evaluate import load_selection, selection_set
from vidistill.export import load_export
from vidistill.prepare import prepare
from vidistill.synthesize import synthesize
from vidistill.synthetic import SyntheticSet
from vidistill.transforms import to_uint8

SPEC = ClipSpec(frames=8, size=48)


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(res: Result) -> Result:
    assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"
    return res


def fails(res: Result, *needles: str) -> None:
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}\n{res.output}"
    for needle in needles:
        assert needle in res.output, (needle, res.output)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ClipStore:
    ds = ToyDataset(num_classes=3, train_per_class=4, test_per_class=1, seed=0)
    root = tmp_path_factory.mktemp("export") / "run" / "data"  # where `vidistill run` keeps it
    return prepare(ds, root, spec=SPEC, workers=1, progress=False)


@pytest.fixture(scope="module")
def synth_dir(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "dm_vpc1_seed0"
    opts = {"iterations": 2, "net_width": 0.125, "real_batch": 4}
    synthesize(store, "dm", 1, out, options=opts, seed=0, progress=False)
    return out


def read_back(out: Path, tmp_path: Path) -> ClipStore:
    """`vidistill prepare folder` on an export, as its export.json says to."""
    cmd = json.loads((out / "export.json").read_text())["prepare"].split()
    assert cmd[:4] == ["vidistill", "prepare", "folder", "--root"]
    args = cmd[2:]
    args[args.index("STORE")] = str(tmp_path / "back")
    ok(invoke("prepare", *args, "--workers", 1))
    return ClipStore(tmp_path / "back")


@pytest.mark.parametrize("codec,ext", [("libx264rgb", ".mp4"), ("ffv1", ".mkv")])
def test_selection_round_trips_through_prepare_folder(store, tmp_path, codec, ext):
    # toy's class order is not alphabetical: label indices survive only via classes.txt
    assert store.class_names != sorted(store.class_names)
    sel = tmp_path / "sel.json"
    ok(invoke("select", store.root, "--method", "random", "--vpc", 2, "--out", sel, "--seed", 3))
    out = tmp_path / "exported"
    res = ok(invoke("export", sel, "--out", out, "--codec", codec))
    assert "exported 6 clips" in res.output and "prepare folder" in res.output
    want = selection_set(store, load_selection(sel))

    # the files: <class>/<clip>.<ext>, the field's CSV, the class order
    with open(out / "videos.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["folder_name", "label", "split"]
    assert [r["label"] for r in rows] == [store.class_names[y] for y in want.labels.tolist()]
    assert {r["split"] for r in rows} == {"train"}
    for r in rows:
        assert (out / r["label"] / f"{r['folder_name']}{ext}").is_file()
    assert (out / "classes.txt").read_text().split("\n")[:-1] == store.class_names
    sources = [store.records[i]["source"] for i in want.meta["indices"]]
    assert [r["folder_name"] for r in rows] == [s.rsplit("/", 1)[-1] for s in sources]
    assert not list(tmp_path.glob(".exported.*")), "temp folder left behind"

    # the exact tensors
    exact = load_export(out)
    assert torch.equal(torch.from_numpy(exact.clips), want.videos)
    assert exact.labels.tolist() == want.labels.tolist()
    assert exact.class_names == store.class_names
    assert exact.names == [r["folder_name"] for r in rows]

    # prepare folder gives the same training set, pixel for pixel
    back = read_back(out, tmp_path)
    assert back.class_names == store.class_names
    assert back.labels.tolist() == want.labels.tolist()
    assert set(back.splits.tolist()) == {"train"}
    assert np.array_equal(back.clips(np.arange(len(back))), want.videos.numpy())


def test_synthesized_set_round_trips(synth_dir, tmp_path):
    syn = SyntheticSet.load(synth_dir)
    out = tmp_path / "exported"
    res = ok(invoke("export", synth_dir, "--out", out))
    assert "synthetic" in res.output and "clamped" in res.output

    exact = load_export(out)
    assert torch.equal(exact.videos, syn.videos)  # the learned tensors, bit for bit
    rendering = to_uint8(syn.videos).numpy()
    assert np.array_equal(exact.clips, rendering)
    # the videos hold that uint8 rendering, the same as the synthesize preview store's
    preview = ClipStore(synth_dir / "preview")
    assert np.array_equal(rendering, preview.clips(np.arange(len(preview))))
    info = json.loads((out / "export.json").read_text())
    assert info["kind"] == "synthetic" and info["method"] == "dm" and info["lossless"]
    assert 0 <= info["rendering"]["clamped_fraction"] <= 1

    back = read_back(out, tmp_path)
    assert back.class_names == syn.class_names
    assert back.labels.tolist() == syn.labels.tolist()
    assert np.array_equal(back.clips(np.arange(len(back))), rendering)


def test_run_folder_picks_one_set_and_lists_the_rest(store, synth_dir, tmp_path):
    from vidistill.select import select_store

    run = tmp_path / "moved-run"  # a run folder moved after it was made
    shutil.copytree(store.root, run / "data")
    for seed in (0, 1):
        path = run / "select" / f"random_vpc1_seed{seed}.json"
        doc = select_store(store, "random", 1, seed=seed, progress=False)
        doc["store"] = "runs/where-it-was/data"  # recorded relative to a cwd that is gone
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(doc))
    shutil.copytree(synth_dir, run / "synth" / synth_dir.name)

    fails(
        invoke("export", run, "--out", tmp_path / "x"),
        "3 sets",
        "--method random --vpc 1 --seed 0-1  (selection)",
        "--method dm --vpc 1 --seed 0  (synthetic)",
    )
    fails(invoke("export", run, "--method", "random", "--out", tmp_path / "x"), "2 sets")
    fails(invoke("export", run, "--method", "tac-dt", "--out", tmp_path / "x"), "no set matching")
    assert not (tmp_path / "x").exists()

    out = tmp_path / "seed1"
    ok(invoke("export", run, "--method", "random", "--vpc", 1, "--seed", 1, "--out", out))
    info = json.loads((out / "export.json").read_text())
    picked = [info[k] for k in ("kind", "method", "vpc", "seed")]
    assert picked == ["selection", "random", 1, 1]
    assert Path(info["store"]) == run / "data"
    want = selection_set(store, load_selection(run / "select" / "random_vpc1_seed1.json"))
    assert np.array_equal(load_export(out).clips, want.videos.numpy())

    ok(invoke("export", run, "--method", "dm", "--out", tmp_path / "dm"))
    assert json.loads((tmp_path / "dm" / "export.json").read_text())["kind"] == "synthetic"


def test_bad_inputs_are_one_line_errors(store, synth_dir, tmp_path):
    out = tmp_path / "out"
    fails(invoke("export", tmp_path / "missing.json", "--out", out), "does not exist")
    fails(invoke("export", store.root, "--out", out), "is a ClipStore", "vidistill select")
    (tmp_path / "junk").mkdir()
    fails(invoke("export", tmp_path / "junk", "--out", out), "is not a selection JSON")
    fails(invoke("export", synth_dir, "--vpc", 1, "--out", out), "--vpc", "run")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"method": "m", "store": str(store.root), "indices": {"nope": [0]}}))
    fails(invoke("export", bad, "--out", out), "nope")
    gone = tmp_path / "gone.json"
    gone.write_text(json.dumps({"method": "m", "store": "no/such/store", "indices": {}}))
    fails(invoke("export", gone, "--out", out), "--store")
    assert not out.exists()


def test_output_is_atomic_and_never_clobbers(store, synth_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    ok(invoke("export", synth_dir, "--out", out))
    first = (out / "export.json").read_text()
    fails(invoke("export", synth_dir, "--out", out), "--overwrite")
    ok(invoke("export", synth_dir, "--out", out, "--overwrite", "--fps", 4))
    assert json.loads((out / "export.json").read_text())["fps"] == 4 != json.loads(first)["fps"]

    mine = tmp_path / "my-folder"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    fails(invoke("export", synth_dir, "--out", mine, "--overwrite"), "not an earlier export")
    assert (mine / "thesis.tex").read_text() == "keep me"

    # killed half-way: nothing at --out, no temp folder left, an earlier export intact
    import vidistill.video as video

    calls = []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = video.write_lossless_video
    monkeypatch.setattr(video, "write_lossless_video", dies)
    with pytest.raises(KeyboardInterrupt):
        export_mod.export(export_mod.load_distilled(synth_dir), tmp_path / "half")
    assert not (tmp_path / "half").exists()
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        export_mod.export(export_mod.load_distilled(synth_dir), out, overwrite=True)
    assert json.loads((out / "export.json").read_text())["fps"] == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_folder_reads_the_fields_csv_and_checks_classes_txt(tmp_path):
    from vidistill.datasets.folder import FolderDataset
    from vidistill.video import write_lossless_video

    frames = np.zeros((8, 48, 48, 3), np.uint8)
    for cls, name in [("b", "v1"), ("a", "v2")]:
        write_lossless_video(tmp_path / cls / f"{name}.mp4", frames, "libx264rgb")
    (tmp_path / "videos.csv").write_text(
        "folder_name,label,split\nv1,b,train\nv2,a,test\nv3,a,train\n"
    )
    ds = FolderDataset(tmp_path)
    assert ds.class_names == ["a", "b"]
    assert [(i.source, i.label, i.split) for i in ds.items()] == [
        ("b/v1.mp4", 1, "train"),
        ("a/v2.mp4", 0, "test"),
        ("a/v3", 0, "train"),  # no such video: prepare records it as a missing file
    ]
    (tmp_path / "classes.txt").write_text("b\na\n")
    assert FolderDataset(tmp_path).class_names == ["b", "a"]
    (tmp_path / "classes.txt").write_text("b\n")
    with pytest.raises(ValueError, match="lacks"):
        FolderDataset(tmp_path)
    (tmp_path / "videos.csv").write_text("folder_name,label,split\nv1,../../b,train\n")
    with pytest.raises(ValueError, match="escapes the dataset root"):
        FolderDataset(tmp_path)
