"""Bad input: every odd video is decoded or skipped with its reason recorded (never a
crash), and every bad listing, name, option or VPC is one ``Error:`` line naming the item
and what to do instead.

The video zoo is written with PyAV in a temp folder: 1 frame, variable frame rate, a
display rotation, 1×1 and 4000×10 frames, grayscale, 10-bit, audio only, zero bytes, cut
short, text renamed .mp4, a symlink loop and a folder named like a video.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import EMBED, EVAL
from harness import cli, ok, one_error_line

from vidistill.clipstore import ClipRecord, ClipSpec, ClipStore, write_store

pytestmark = pytest.mark.fault("bad-input")

SIZE = 32


def _encode(path: Path, codec: str, pix_fmt: str, frames: list, fmt: str = "rgb24", **kw):
    """Write ``frames`` (uint8 arrays) with PyAV; ``pts`` (ms) for variable frame rate,
    ``rotation`` for a display matrix."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=kw.get("rate", 25))
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        if "rotation" in kw:
            s.set_display_rotation(kw["rotation"])
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format=fmt)
            if "pts" in kw:
                f.pts, f.time_base = kw["pts"][i], Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _noise(n: int, h: int, w: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return list(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def _banded() -> list:
    """48 high × 64 wide, the top 12 rows red: shown rotated, the band is elsewhere."""
    a = np.zeros((48, 64, 3), np.uint8)
    a[:12, :, 0] = 255
    return [a] * 8


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(5):
            fr = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            fr.sample_rate, fr.pts = 16000, i * 1024
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


# name → (writer, expected: "ok" or a substring of the skip reason)
ZOO = {
    "one_frame.mp4": (lambda p: _encode(p, "libx264", "yuv420p", _noise(1, 32, 32)), "ok"),
    "vfr.mkv": (
        lambda p: _encode(
            p,
            "libx264",
            "yuv420p",
            _noise(10, 32, 32),
            rate=1000,
            pts=[0, 10, 50, 60, 200, 210, 400, 405, 800, 1500],
        ),  # fmt: skip
        "ok",
    ),
    "rotated.mp4": (lambda p: _encode(p, "libx264", "yuv420p", _banded(), rotation=90), "ok"),
    "tiny_1x1.mkv": (lambda p: _encode(p, "ffv1", "bgr0", _noise(8, 1, 1)), "too small"),
    "wide_4000x10.mp4": (lambda p: _encode(p, "libx264", "yuv420p", _noise(8, 10, 4000)), "ok"),
    "gray.mkv": (
        lambda p: _encode(p, "ffv1", "gray", [f[..., 0] for f in _noise(8, 32, 32)], fmt="gray"),
        "ok",
    ),
    "ten_bit.mkv": (lambda p: _encode(p, "ffv1", "yuv420p10le", _noise(8, 32, 32)), "ok"),
    "audio_only.mp4": (_audio_only, "no video stream"),
    "zero_bytes.mp4": (lambda p: p.write_bytes(b""), "0 bytes"),
    "cut_short.mp4": (None, "decode failed"),  # the first 3 kB of wide_4000x10.mp4
    "text.mp4": (lambda p: p.write_text("I am not a video\n" * 10), "decode failed"),
    "loop.mp4": (
        lambda p: (p.symlink_to("loop2.mp4"), p.with_name("loop2.mp4").symlink_to(p.name)),
        "symlink loop",
    ),
    "folder.mp4": (lambda p: p.mkdir(), "is a folder"),
}
SKIP_ALSO = {"loop2.mp4": "symlink loop"}  # the loop's other half


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> tuple[Path, ClipStore]:
    """A folder dataset: the zoo in train/odd, two plain videos per class beside it."""
    root = tmp_path_factory.mktemp("zoo") / "videos"
    odd = root / "train" / "odd"
    odd.mkdir(parents=True)
    for name, (write, _) in ZOO.items():
        if write is not None:
            write(odd / name)
    (odd / "cut_short.mp4").write_bytes((odd / "wide_4000x10.mp4").read_bytes()[:3000])
    for split in ("train", "test"):
        for cls in ("odd", "plain"):
            for j in range(2):
                path = root / split / cls / f"plain{j}.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                _encode(path, "libx264", "yuv420p", _noise(8, 40, 48, seed=j))
    out = root.parent / "store"
    ok(cli("prepare", "folder", "--root", root, "--out", out, "--size", SIZE, "--workers", 1))
    return root, ClipStore(out)


@pytest.mark.parametrize("name", sorted({**ZOO, **SKIP_ALSO}))
def test_video_zoo(zoo, name: str) -> None:
    _, store = zoo
    want = {**{k: v[1] for k, v in ZOO.items()}, **SKIP_ALSO}[name]
    kept = {
        Path(r["source"]).name: i
        for i, r in enumerate(store.records)
        if "/odd/" in "/" + r["source"]
    }
    skipped = {Path(s["source"]).name: s["reason"] for s in store.skipped}
    if want == "ok":
        assert name in kept, skipped.get(name)
        clip = store.videos[kept[name]]
        assert clip.shape == (8, SIZE, SIZE, 3)
        if name == "one_frame.mp4":
            assert (clip == clip[0]).all()  # looped: every frame is the one frame
        if name == "gray.mkv":
            assert (clip[..., 0] == clip[..., 1]).all() and (clip[..., 1] == clip[..., 2]).all()
        if name == "rotated.mp4":  # shown turned 90° counter-clockwise: the band is on the left
            red = clip[0, :, :, 0].astype(int)
            assert red[:, :6].mean() > 200 and red[:, 12:].mean() < 40, red.mean(0)
    else:
        assert name in skipped, f"{name} was kept"
        assert want in skipped[name], skipped[name]


# -- listings, names, options, VPC: one Error line each -----------------------------------
def _tree(root: Path, layout: dict[str, int]) -> Path:
    """``{"train/a": 2, ...}``: that many (text) files named .mp4 in each folder."""
    for folder, n in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for j in range(n):
            (root / folder / f"v{j}.mp4").write_text("x")
    return root


def _ucf(root: Path, class_ind: str, train: str) -> Path:
    (root / "UCF-101" / "Jump").mkdir(parents=True)
    (root / "UCF-101" / "Run").mkdir(parents=True)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text(class_ind)
    (lists / "trainlist01.txt").write_text(train)
    (lists / "testlist01.txt").write_text("Jump/v_Jump_g01_c01.avi\n")
    return root


UCF_OK = "1 Jump\n2 Run\n"


def _prep(kind: str, root: Path, *extra) -> list:
    return ["prepare", kind, "--root", root, "--out", root.parent / "out", *extra]


LISTING_CASES = {
    "folder-empty-class": (
        lambda r: _prep("folder", _tree(r, {"train/a": 1, "train/b": 0, "test/a": 1})),
        ["train/b holds no video", "remove the folder"],
    ),
    "folder-class-without-train": (
        lambda r: _prep("folder", _tree(r, {"train/a": 1, "test/a": 1, "test/b": 1})),
        ["['b'] have no training video"],
    ),
    "folder-no-split-folders": (
        lambda r: _prep("folder", _tree(r, {"a": 1})),
        ["no train/ or test/ folder"],
    ),
    "csv-missing-column": (
        lambda r: (
            (_tree(r, {"train/a": 1}), (r / "v.csv").write_text("path,label\nx,a\n"))
            and _prep("folder", r, "--csv", "v.csv")
        ),
        ["v.csv", "missing column(s) ['split']"],
    ),
    "csv-short-row": (
        lambda r: (
            (_tree(r, {"train/a": 1}), (r / "v.csv").write_text("path,label,split\nx.mp4,a\n"))
            and _prep("folder", r, "--csv", "v.csv")
        ),
        ["v.csv:2", "empty split"],
    ),
    "csv-unknown-split": (
        lambda r: (
            (
                _tree(r, {"train/a": 1}),
                (r / "v.csv").write_text("path,label,split\nx.mp4,a,tarin\n"),
            )
            and _prep("folder", r, "--csv", "v.csv")
        ),
        ["v.csv:2", "'tarin' is not one of train, test, val"],
    ),
    "csv-not-utf8": (
        lambda r: (
            (
                _tree(r, {"train/a": 1}),
                (r / "v.csv").write_bytes(b"path,label,split\n\xff\xfe,a,train\n"),
            )
            and _prep("folder", r, "--csv", "v.csv")
        ),
        ["v.csv", "not UTF-8"],
    ),
    "csv-missing-file": (
        lambda r: _prep("folder", _tree(r, {"train/a": 1}), "--csv", "nope.csv"),
        ["nope.csv not found"],
    ),
    "classes-txt-unknown-class": (
        lambda r: (
            (_tree(r, {"train/a": 1, "train/b": 1}), (r / "classes.txt").write_text("a\n"))
            and _prep("folder", r)
        ),
        ["classes.txt lacks ['b']"],
    ),
    "ucf-missing-split-file": (
        lambda r: (
            (_ucf(r, UCF_OK, ""), (r / "ucfTrainTestlist" / "testlist01.txt").unlink())
            and _prep("ucf101", r)
        ),
        ["testlist01.txt not found"],
    ),
    "ucf-malformed-classind": (
        lambda r: _prep("ucf101", _ucf(r, "1 Jump\nRun\n", "")),
        ["classInd.txt:2", "expected '<index> <Class>'"],
    ),
    "ucf-unknown-class-in-list": (
        lambda r: _prep("ucf101", _ucf(r, UCF_OK, "Fly/v_Fly_g01_c01.avi 1\n")),
        ["trainlist01.txt:1", "'Fly/v_Fly_g01_c01.avi'"],
    ),
    "ucf-class-index-out-of-range": (
        lambda r: _prep("ucf101", _ucf(r, UCF_OK, "Jump/v_Jump_g01_c01.avi 9\n")),
        ["trainlist01.txt:1", "class index '9' is not one of 1..2"],
    ),
    "ucf-unknown-only-classes": (
        lambda r: _prep(
            "ucf101", _ucf(r, UCF_OK, "Jump/v_Jump_g01_c01.avi 1\n"), "--only-classes", "Fly"
        ),
        ["unknown class(es) ['Fly']"],
    ),
    "hmdb-malformed-split-line": (
        lambda r: (
            (_tree(r, {"jump": 1}), (r / "jump_test_split1.txt").write_text("v0.avi 7\n"))
            and _prep("hmdb51", r)
        ),
        ["jump_test_split1.txt:1", "expected '<clip>.avi <0|1|2>'"],
    ),
}


@pytest.mark.parametrize("case", sorted(LISTING_CASES))
def test_bad_listing(tmp_path: Path, case: str) -> None:
    make, needles = LISTING_CASES[case]
    args = make(tmp_path / "root")
    one_error_line(cli(*args), *needles)
    assert not (tmp_path / "out" / "store.json").exists()


@pytest.fixture(scope="module")
def embedded(toy_store: ClipStore, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("bad") / "store"
    shutil.copytree(toy_store.root, store)
    ok(cli("embed", store, "--embedder", "classifier", *EMBED))
    return store


def _config(tmp: Path, text: str) -> list:
    (tmp / "cfg.yaml").write_text(text)
    return ["run", tmp / "cfg.yaml", "--out", tmp / "run"]


SEL = ["--embedder", "classifier", "--out"]
NAME_CASES = {
    "select-unknown-method": (
        lambda s, t: ["select", s, "--method", "nope", "--vpc", 1, *SEL, t / "x.json"],
        ["nope"],
    ),
    "select-unknown-option": (
        lambda s, t: [
            "select",
            s,
            "--method",
            "tac-dt",
            "--vpc",
            1,
            "-o",
            "nope=1",
            *SEL,
            t / "x.json",
        ],
        ["nope"],
    ),
    "select-vpc-0": (
        lambda s, t: ["select", s, "--method", "herding", "--vpc", 0, *SEL, t / "x.json"],
        ["vpc"],
    ),
    "select-vpc-negative": (
        lambda s, t: ["select", s, "--method", "herding", "--vpc", -2, *SEL, t / "x.json"],
        ["vpc"],
    ),
    "select-vpc-above-pool": (
        lambda s, t: ["select", s, "--method", "herding", "--vpc", 99, *SEL, t / "x.json"],
        ["fewer than vpc=99", "at most 4"],
    ),
    "embed-unknown-embedder": (lambda s, t: ["embed", s, "--embedder", "nope"], ["nope"]),
    "embed-unknown-option": (
        lambda s, t: ["embed", s, "--embedder", "classifier", "-o", "width=0.5"],
        ["no option(s) ['width']", "epochs"],
    ),
    "evaluate-vpc-0": (
        lambda s, t: [
            "evaluate",
            s,
            "--method",
            "random",
            "--vpc",
            0,
            *EVAL,
            "--out",
            t / "r.json",
        ],
        ["at least 1"],
    ),
    "evaluate-vpc-above-pool": (
        lambda s, t: [
            "evaluate",
            s,
            "--method",
            "random",
            "--vpc",
            9,
            *EVAL,
            "--out",
            t / "r.json",
        ],
        ["fewer than vpc=9"],
    ),
    "evaluate-unknown-net": (
        lambda s, t: [
            "evaluate",
            s,
            "--method",
            "random",
            "--vpc",
            1,
            *EVAL,
            "--net",
            "nope",
            "--out",
            t / "r.json",
        ],
        ["nope"],
    ),
    "synthesize-vpc-0": (
        lambda s, t: ["synthesize", s, "--method", "dm", "--vpc", 0, "--out", t / "syn"],
        ["vpc"],
    ),
    "synthesize-unknown-option": (
        lambda s, t: [
            "synthesize",
            s,
            "--method",
            "dm",
            "--vpc",
            1,
            "-o",
            "nope=1",
            "--out",
            t / "syn",
        ],
        ["nope"],
    ),
    "prepare-unknown-toy-option": (
        lambda s, t: ["prepare", "toy", "--out", t / "p", "-o", "nope=1"],
        ["no option nope"],
    ),
    "run-unknown-key": (
        lambda s, t: _config(t, "name: x\nvpc: [1]\n"),
        ["unknown config keys", "vpc"],
    ),
    "run-vpcs-0": (lambda s, t: _config(t, "vpcs: [0]\n"), ["vpcs", ">= 1"]),
    "run-vpcs-not-a-list": (lambda s, t: _config(t, "vpcs: 5\n"), ["vpcs", "list"]),
    "run-select-not-a-list": (lambda s, t: _config(t, "select: tac-dt\n"), ["select", "list"]),
    "run-unknown-selector": (lambda s, t: _config(t, "select: [nope]\n"), ["nope", "tac-dt"]),
    "run-unknown-synthesizer": (
        lambda s, t: _config(t, "synthesize: {nope: {}}\n"),
        ["nope", "dm"],
    ),
    "run-unknown-dataset": (lambda s, t: _config(t, "dataset: nope\n"), ["nope", "toy"]),
    "run-malformed-yaml": (lambda s, t: _config(t, "vpcs: [1\n"), ["cfg.yaml", "YAML"]),
    "run-not-a-mapping": (lambda s, t: _config(t, "- 1\n- 2\n"), ["cfg.yaml", "mapping"]),
}


@pytest.mark.parametrize("case", sorted(NAME_CASES))
def test_bad_name_option_or_vpc(embedded: Path, tmp_path: Path, case: str) -> None:
    make, needles = NAME_CASES[case]
    one_error_line(cli(*make(embedded, tmp_path)), *needles)
    assert not (tmp_path / "run" / "stages").exists()


def test_empty_class_in_a_store_is_named(tmp_path: Path, ledger) -> None:
    """A store whose class 'c2' has test clips but no training clip (made by hand: the
    dataset adapters refuse such a listing): every stage that needs it names it."""
    spec = ClipSpec(frames=8, size=48)
    rng = np.random.default_rng(0)
    layout = [
        ("train", 0),
        ("train", 0),
        ("train", 1),
        ("train", 1),
        ("test", 0),
        ("test", 1),
        ("test", 2),
    ]
    recs = [ClipRecord(f"{s}{i}", c, f"c{c}", s) for i, (s, c) in enumerate(layout)]
    clips = (rng.integers(0, 256, spec.shape, dtype=np.uint8) for _ in recs)
    store = write_store(tmp_path / "s", spec, ["c0", "c1", "c2"], clips, recs).root
    tries = [
        ["select", store, "--method", "random", "--vpc", 1, "--out", tmp_path / "x.json"],
        ["evaluate", store, "--method", "random", "--vpc", 1, *EVAL, "--out", tmp_path / "r.json"],
        ["synthesize", store, "--method", "dm", "--vpc", 1, "--out", tmp_path / "syn"],
    ]
    for args in tries:
        one_error_line(cli(*args), "'c2'")
    ledger.tried(len(tries))
