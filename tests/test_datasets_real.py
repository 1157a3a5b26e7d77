"""Real-dataset adapters on tiny fixtures written in each dataset's exact on-disk layout.

Every fixture video is a flat grey frame whose level encodes the clip, so reading a
store back checks that each record holds *its own* file's pixels, not just the count.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vidistill import registry
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.filelist import read_resource_csv
from vidistill.datasets.hmdb51 import HMDB51
from vidistill.datasets.kinetics import Kinetics400
from vidistill.datasets.ssv2 import SSv2
from vidistill.datasets.ucf101 import UCF101, MiniUCF
from vidistill.prepare import prepare
from vidistill.video import write_video

SPEC = ClipSpec(frames=4, size=16, stride=2)


class Fixture:
    """Writes tiny videos with distinct grey levels and remembers which file has which."""

    def __init__(self, root: Path):
        self.root = root
        self.level: dict[str, int] = {}

    def video(self, rel: str) -> None:
        level = 30 + 12 * len(self.level)
        assert level < 250, "too many fixture videos for distinct grey levels"
        write_video(self.root / rel, np.full((12, 32, 40, 3), level, np.uint8))
        self.level[rel] = level

    def broken(self, rel: str) -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(b"\x00\x01 not a video at all" * 20)

    def text(self, rel: str, body: str) -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_text(body)


def check_pixels(store: ClipStore, fx: Fixture) -> None:
    for i, rec in enumerate(store.records):
        mean = float(store.videos[i].mean())
        assert abs(mean - fx.level[rec["source"]]) < 6, (rec["source"], mean)


def by_source(store: ClipStore) -> dict[str, tuple[str, str]]:
    return {r["source"]: (r["class_name"], r["split"]) for r in store.records}


def skipped(store: ClipStore) -> dict[str, str]:
    return {s["source"]: s["reason"] for s in store.skipped}


# ---------------------------------------------------------------------------------- UCF101
@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory) -> Fixture:
    fx = Fixture(tmp_path_factory.mktemp("ucf"))
    # classInd order deliberately not alphabetical: the adapter must follow the file.
    classes = ["Typing", "Basketball", "ApplyEyeMakeup"]
    fx.text(
        "ucfTrainTestlist/classInd.txt", "".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1))
    )
    clips = {c: [f"{c}/v_{c}_g{g:02d}_c01.avi" for g in (1, 2, 8)] for c in classes}
    for c in classes:
        for rel in clips[c]:
            if rel != "Basketball/v_Basketball_g08_c01.avi":  # listed but absent on disk
                fx.video(f"UCF-101/{rel}")
    fx.broken("UCF-101/Typing/v_Typing_g09_c01.avi")
    # split 1: groups 8, 9 train, 1, 2 test; split 2: group 1 train, 2, 8 test.
    train1 = [clips[c][2] for c in classes] + ["Typing/v_Typing_g09_c01.avi"]
    fx.text(
        "ucfTrainTestlist/trainlist01.txt",
        "".join(f"{r} {classes.index(r.split('/')[0]) + 1}\r\n" for r in train1),
    )
    fx.text(
        "ucfTrainTestlist/testlist01.txt",
        "".join(f"{clips[c][g]}\r\n" for c in classes for g in (0, 1)),
    )
    fx.text(
        "ucfTrainTestlist/trainlist02.txt",
        "".join(f"{clips[c][0]} {classes.index(c) + 1}\n" for c in classes),
    )
    fx.text(
        "ucfTrainTestlist/testlist02.txt",
        "".join(f"{clips[c][g]}\n" for c in classes for g in (1, 2)),
    )
    return fx


def test_ucf101_split1_prepare(ucf_root, tmp_path):
    ds = UCF101(ucf_root.root, split=1)
    assert ds.class_names == ["Typing", "Basketball", "ApplyEyeMakeup"]
    assert ds.default_spec() == ClipSpec(frames=16, size=112, stride=4)
    store = prepare(ds, tmp_path / "s", spec=SPEC, workers=1, progress=False)
    assert store.class_names == ["Typing", "Basketball", "ApplyEyeMakeup"]
    assert len(store) == 2 + 6  # 4 train listed (1 missing, 1 broken), 6 test listed
    recs = by_source(store)
    assert recs["UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"] == (
        "ApplyEyeMakeup",
        "train",
    )
    assert recs["UCF-101/Typing/v_Typing_g01_c01.avi"] == ("Typing", "test")
    assert int(np.sum(store.splits == "train")) == 2 and int(np.sum(store.splits == "test")) == 6
    for r, lab in zip(store.records, store.labels, strict=True):
        assert store.class_names[lab] == r["class_name"] == r["source"].split("/")[1]
    sk = skipped(store)
    assert set(sk) == {
        "UCF-101/Basketball/v_Basketball_g08_c01.avi",
        "UCF-101/Typing/v_Typing_g09_c01.avi",
    }
    assert sk["UCF-101/Basketball/v_Basketball_g08_c01.avi"].startswith("missing file")
    assert not sk["UCF-101/Typing/v_Typing_g09_c01.avi"].startswith("missing file")
    check_pixels(store, ucf_root)
    head = json.loads((tmp_path / "s" / "store.json").read_text())
    assert head["source"]["split"] == 1 and head["dataset"] == "ucf101"


def test_ucf101_other_split_and_errors(ucf_root, tmp_path):
    items = UCF101(ucf_root.root, split=2).items()
    assert (
        sum(i.split == "train" for i in items) == 3 and sum(i.split == "test" for i in items) == 6
    )
    assert {i.source for i in items if i.split == "train"} == {
        f"UCF-101/{c}/v_{c}_g01_c01.avi" for c in ("Typing", "Basketball", "ApplyEyeMakeup")
    }
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        UCF101(ucf_root.root, split=4)
    (tmp_path / "UCF-101").mkdir()
    with pytest.raises(FileNotFoundError, match="classInd.txt"):
        UCF101(tmp_path)
    sub = UCF101(ucf_root.root, classes="ApplyEyeMakeup,Typing")
    assert sub.class_names == ["Typing", "ApplyEyeMakeup"]  # dataset order kept, renumbered
    assert {i.label for i in sub.items()} == {0, 1}
    with pytest.raises(ValueError, match="unknown class"):
        UCF101(ucf_root.root, classes=["Juggling"])


# --------------------------------------------------------------------------------- MiniUCF
def test_miniucf_full_listing_and_partial_copy(tmp_path):
    table = read_resource_csv("miniucf_split1.csv")
    picks = ["ApplyEyeMakeup", "BalanceBeam"]
    fx = Fixture(tmp_path / "root")
    present = []
    for cls in picks:
        rows = [r for r in table if r["label"] == cls]
        for r in [x for x in rows if x["split"] == "train"][:2] + [
            x for x in rows if x["split"] == "test"
        ][:1]:
            fx.video(f"UCF-101/{cls}/{r['folder_name']}.avi")
            present.append((f"UCF-101/{cls}/{r['folder_name']}.avi", cls, r["split"]))

    full = MiniUCF(fx.root)
    items = full.items()
    assert len(full.class_names) == 50 and full.class_names[:2] == picks
    assert len(items) == 6523
    assert (
        sum(i.split == "train" for i in items) == 4662
        and sum(i.split == "test" for i in items) == 1861
    )

    ds = MiniUCF(
        fx.root, classes=picks
    )  # a subset keeps the test quick: every absent clip is a skip
    n_listed = sum(r["label"] in picks for r in table)
    store = prepare(ds, tmp_path / "s", spec=SPEC, workers=1, progress=False)
    assert store.class_names == picks
    assert by_source(store) == {src: (cls, split) for src, cls, split in present}
    assert len(store.skipped) == n_listed - len(present)
    assert all(s["reason"].startswith("missing file") for s in store.skipped)
    check_pixels(store, fx)

    with pytest.raises(FileNotFoundError, match="UCF-101"):
        MiniUCF(tmp_path / "s")  # a store folder is not a UCF101 copy


# ---------------------------------------------------------------------------------- HMDB51
@pytest.fixture(scope="module")
def hmdb_root(tmp_path_factory) -> Fixture:
    fx = Fixture(tmp_path_factory.mktemp("hmdb"))
    tags = {
        "wave": {"w_a_0.avi": 1, "w_b_0.avi": 1, "w_c_0.avi": 2, "w_d_0.avi": 0},
        "chew": {"c_a_0.avi": 1, "c_b_0.avi": 2, "c_c_0.avi": 2, "c_missing.avi": 2},
        "brush_hair": {"b_(1)_a.avi": 1, "b_b_0.avi": 0, "b_c_0.avi": 2},
    }
    for cls, clips in tags.items():
        fx.text(
            f"testTrainMulti_7030_splits/{cls}_test_split1.txt",
            "".join(f"{name} {tag} \n" for name, tag in clips.items()),
        )
        # split 2 swaps train and test
        fx.text(
            f"testTrainMulti_7030_splits/{cls}_test_split2.txt",
            "".join(f"{name} {({1: 2, 2: 1}).get(tag, 0)} \n" for name, tag in clips.items()),
        )
        for name in clips:
            if name != "c_missing.avi":
                fx.video(f"{cls}/{name}")
    return fx


def test_hmdb51_official(hmdb_root, tmp_path):
    ds = HMDB51(hmdb_root.root)
    assert ds.class_names == ["brush_hair", "chew", "wave"]
    store = prepare(ds, tmp_path / "s", spec=SPEC, workers=1, progress=False)
    recs = by_source(store)
    assert {s for s, (_, sp) in recs.items() if sp == "train"} == {
        "wave/w_a_0.avi",
        "wave/w_b_0.avi",
        "chew/c_a_0.avi",
        "brush_hair/b_(1)_a.avi",
    }
    assert {s for s, (_, sp) in recs.items() if sp == "test"} == {
        "wave/w_c_0.avi",
        "chew/c_b_0.avi",
        "chew/c_c_0.avi",
        "brush_hair/b_c_0.avi",
    }
    assert "wave/w_d_0.avi" not in recs and "brush_hair/b_b_0.avi" not in recs  # tag 0: unused
    assert list(skipped(store)) == ["chew/c_missing.avi"]
    check_pixels(store, hmdb_root)
    src = json.loads((tmp_path / "s" / "store.json").read_text())["source"]
    assert src["variant"] == "official" and "tag 1 train" in src["split_definition"]

    split2 = HMDB51(hmdb_root.root, split=2).items()
    assert (
        sum(i.split == "train" for i in split2) == 5 and sum(i.split == "test" for i in split2) == 4
    )


def test_hmdb51_vdsd_partial_copy_and_cli(tmp_path):
    table = read_resource_csv("hmdb51_split1_vdsd.csv")
    fx = Fixture(tmp_path / "root")
    picks = ["brush_hair", "cartwheel"]
    present = {}
    for cls in picks:
        rows = [r for r in table if r["label"] == cls]
        for r in [x for x in rows if x["split"] == "train"][:2] + [
            x for x in rows if x["split"] == "test"
        ][:1]:
            fx.video(f"{cls}/{r['folder_name']}.avi")
            present[f"{cls}/{r['folder_name']}.avi"] = (cls, r["split"])

    full = HMDB51(fx.root, variant="vdsd")
    items = full.items()
    assert len(full.class_names) == 51 and full.class_names == sorted(full.class_names)
    assert (
        sum(i.split == "train" for i in items) == 5236
        and sum(i.split == "test" for i in items) == 1530
    )
    with pytest.raises(ValueError, match="split 1 only"):
        HMDB51(fx.root, variant="vdsd", split=2)
    with pytest.raises(FileNotFoundError, match="test_split1"):
        HMDB51(fx.root)  # official needs split files; the message says so

    from vidistill.cli import main

    out = tmp_path / "s"
    res = CliRunner().invoke(
        main,
        [
            "prepare",
            "hmdb51",
            "--root",
            str(fx.root),
            "--out",
            str(out),
            "--variant",
            "vdsd",
            "--only-classes",
            ",".join(picks),
            "--frames",
            "4",
            "--size",
            "16",
            "--stride",
            "2",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    store = ClipStore(out)
    assert store.class_names == picks and by_source(store) == present
    assert len(store.skipped) == sum(r["label"] in picks for r in table) - len(present)
    assert all(s["reason"].startswith("missing file") for s in store.skipped)
    assert "more skipped" in res.output  # the summary does not print hundreds of lines
    assert json.loads((out / "store.json").read_text())["source"]["variant"] == "vdsd"
    check_pixels(store, fx)


# ------------------------------------------------------------------------------ Kinetics
@pytest.fixture(scope="module")
def k400_root(tmp_path_factory) -> Fixture:
    fx = Fixture(tmp_path_factory.mktemp("k400"))
    rows = [
        ("abseiling", "aaaaaaaaaaa", 5, 15, "train"),
        ("abseiling", "bbbbbbbbbbb", 0, 10, "train"),
        ("abseiling", "ccccccccccc", 31, 41, "val"),
        ("passing American football (in game)", "ddddddddddd", 7, 17, "train"),
        ("passing American football (in game)", "eeeeeeeeeee", 100, 110, "val"),
        ("zumba", "fffffffffff", 1, 11, "train"),
        ("zumba", "ggggggggggg", 2, 12, "train"),  # missing on disk
        ("zumba", "hhhhhhhhhhh", 3, 13, "val"),  # broken file
        ("zumba", "iiiiiiiiiii", 4, 14, "test"),  # not used with eval_split=val
    ]
    (fx.root / "annotations").mkdir()
    for name, keep in (("train.csv", "train"), ("validate.csv", "val"), ("test.csv", "test")):
        with open(fx.root / "annotations" / name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            w.writerows(r for r in rows if r[4] == keep)
    fx.text("annotations/README.csv", "not,an,annotation\n")  # ignored: wrong columns
    for label, yid, s, e, split in rows:
        fname = f"{yid}_{s:06d}_{e:06d}.mp4"
        if yid == "ddddddddddd":
            fx.video(f"train/{label.replace(' ', '_')}/{fname}")  # underscored label folder
        elif yid == "eeeeeeeeeee":
            fx.video(f"val/{fname}")  # flat (CVDF mirror) layout
        elif yid == "hhhhhhhhhhh":
            fx.broken(f"val/{label}/{fname}")
        elif yid != "ggggggggggg":
            fx.video(f"{split}/{label}/{fname}")
    return fx


def test_kinetics400(k400_root, tmp_path):
    ds = Kinetics400(k400_root.root)
    assert ds.class_names == ["abseiling", "passing American football (in game)", "zumba"]
    assert ds.default_spec() == ClipSpec(frames=8, size=64, stride=4)
    assert [Path(p).name for p in ds.describe()["ignored_csv"]] == ["README.csv"]
    store = prepare(ds, tmp_path / "s", spec=SPEC, workers=1, progress=False)
    assert int(np.sum(store.splits == "train")) == 4 and int(np.sum(store.splits == "test")) == 2
    assert store.labels.tolist() == [
        0,
        0,
        1,
        2,
        0,
        1,
    ]  # files in name order: test.csv (left out), train.csv, validate.csv
    sk = skipped(store)
    assert set(sk) == {
        "train/zumba/ggggggggggg_000002_000012.mp4",
        "val/zumba/hhhhhhhhhhh_000003_000013.mp4",
    }
    assert sk["train/zumba/ggggggggggg_000002_000012.mp4"].startswith("missing file")
    assert not sk["val/zumba/hhhhhhhhhhh_000003_000013.mp4"].startswith("missing file")
    assert "iiiiiiiiiii" not in json.dumps(store.records)
    # Records keep the canonical source; the fixture wrote two clips at alternative paths.
    levels = {rel.rsplit("/", 1)[1]: lv for rel, lv in k400_root.level.items()}
    for i, rec in enumerate(store.records):
        assert abs(float(store.videos[i].mean()) - levels[rec["source"].rsplit("/", 1)[1]]) < 6

    test_ds = Kinetics400(k400_root.root, eval_split="test")
    assert {i.source for i in test_ds.items() if i.split == "test"} == {
        "test/zumba/iiiiiiiiiii_000004_000014.mp4"
    }


def test_adapter_pickles_small(k400_root):
    ds = Kinetics400(k400_root.root)
    blob = pickle.dumps(ds)
    assert b"aaaaaaaaaaa" not in blob  # the item list is not shipped to workers with every job
    clone = pickle.loads(blob)
    assert clone.class_names == ds.class_names
    assert [i.source for i in clone.items()] == [i.source for i in ds.items()]
    assert clone.load(ds.items()[0], SPEC).shape == SPEC.shape


# ---------------------------------------------------------------------------------- SSv2
def test_ssv2(tmp_path):
    fx = Fixture(tmp_path / "root")
    labels = {
        "Pushing something from left to right": "2",
        "Holding something next to something": "0",
        "Putting something on a surface": "1",
    }
    fx.text("labels/labels.json", json.dumps(labels))
    train = [
        {
            "id": "11",
            "label": "holding a cup next to a pen",
            "template": "Holding [something] next to [something]",
            "placeholders": ["a cup", "a pen"],
        },
        {
            "id": "12",
            "label": "pushing box from left to right",
            "template": "Pushing [something] from left to right",
            "placeholders": ["box"],
        },
        {
            "id": "13",
            "label": "putting pen on a surface",
            "template": "Putting [something] on a surface",
            "placeholders": ["pen"],
        },
        {
            "id": "14",
            "label": "putting cup on a surface",
            "template": "Putting [something] on a surface",
            "placeholders": ["cup"],
        },  # missing on disk
    ]
    val = [
        {
            "id": "21",
            "label": "holding x next to y",
            "template": "Holding [something] next to [something]",
            "placeholders": ["x", "y"],
        }
    ]
    fx.text("labels/train.json", json.dumps(train))
    fx.text("labels/validation.json", json.dumps(val))
    for vid in ("11", "12", "13", "21"):
        fx.video(f"20bn-something-something-v2/{vid}.webm")

    ds = SSv2(fx.root)
    assert ds.class_names == [
        "Holding something next to something",
        "Putting something on a surface",
        "Pushing something from left to right",
    ]
    store = prepare(ds, tmp_path / "s", spec=SPEC, workers=1, progress=False)
    assert by_source(store) == {
        "20bn-something-something-v2/11.webm": ("Holding something next to something", "train"),
        "20bn-something-something-v2/12.webm": ("Pushing something from left to right", "train"),
        "20bn-something-something-v2/13.webm": ("Putting something on a surface", "train"),
        "20bn-something-something-v2/21.webm": ("Holding something next to something", "test"),
    }
    assert store.labels.tolist() == [0, 2, 1, 0]
    assert list(skipped(store)) == ["20bn-something-something-v2/14.webm"]
    check_pixels(store, fx)

    fx.text(
        "labels/validation.json", json.dumps([{"id": "9", "template": "Dancing with [something]"}])
    )
    with pytest.raises(ValueError, match="Dancing with something"):
        SSv2(fx.root)


def test_registered_and_cli_guards(ucf_root, tmp_path):
    assert {"ucf101", "miniucf", "hmdb51", "kinetics400", "ssv2"} <= set(registry.names("dataset"))
    from vidistill.cli import main

    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "prepare",
            "ucf101",
            "--root",
            str(ucf_root.root),
            "--out",
            str(tmp_path / "x"),
            "--variant",
            "vdsd",
        ],
    )
    assert res.exit_code != 0 and "--variant does not apply to dataset 'ucf101'" in res.output
    res = runner.invoke(
        main,
        [
            "prepare",
            "ucf101",
            "--root",
            str(ucf_root.root),
            "--out",
            str(tmp_path / "u"),
            "--split",
            "2",
            "--frames",
            "4",
            "--size",
            "16",
            "--stride",
            "2",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    store = ClipStore(tmp_path / "u")
    assert store.spec == SPEC and len(store) == 8  # split 2: 3 train + 6 test listed, 1 missing
    assert json.loads((tmp_path / "u" / "store.json").read_text())["source"]["split"] == 2
