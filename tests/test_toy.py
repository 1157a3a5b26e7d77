"""The two toys: determinism, UCF-style disjoint groups, and the regime each stands for."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from vidistill.cli import main
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import NUM_MODES, ToyDataset
from vidistill.datasets.toy_motion import ToyMotionDataset
from vidistill.prepare import prepare

SPEC = ClipSpec(frames=8, size=32)


def _clips(ds, split: str | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    items = [it for it in ds.items() if split is None or it.split == split]
    return (
        np.stack([ds.load(it, SPEC) for it in items]),
        np.array([it.label for it in items]),
        items,
    )


@pytest.mark.parametrize("cls", [ToyDataset, ToyMotionDataset])
def test_deterministic_from_seed(cls):
    a = _clips(cls(num_classes=3, train_per_class=3, test_per_class=2, seed=5))[0]
    b = _clips(cls(num_classes=3, train_per_class=3, test_per_class=2, seed=5))[0]
    c = _clips(cls(num_classes=3, train_per_class=3, test_per_class=2, seed=6))[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_toy_motion_is_the_previous_toy_pixel_for_pixel():
    """Stores and numbers made before the UCF-like toy (as `toy`) stay valid as `toy-motion`:
    these hashes are of clips rendered by the previous `toy` code (commit 5d51b61)."""
    ds = ToyMotionDataset()
    items = ds.items()
    got = [
        hashlib.sha256(ds.load(items[k], ClipSpec()).tobytes()).hexdigest()[:16] for k in (0, 777)
    ]
    assert got == ["b310a4d1e243ae3a", "7320e72392a7f51d"]


def test_groups_are_disjoint_between_splits_and_recorded(tmp_path):
    ds = ToyDataset(num_classes=2, train_per_class=20, test_per_class=8, groups=9, test_groups=3)
    store = prepare(ds, tmp_path / "s", spec=SPEC, workers=1, progress=False)
    for c in range(2):
        groups = {
            split: {store.records[i]["meta"]["group"] for i in store.indices(split, c)}
            for split in ("train", "test")
        }
        assert groups["test"] == {1, 2, 3}  # the first test_groups, as UCF101 split 1
        assert groups["train"] == set(range(4, 10))
    for r in store.records:
        assert r["meta"]["mode"] == (r["meta"]["group"] - 1) % NUM_MODES
        assert f"/g{r['meta']['group']:02d}_" in r["source"]
    reopened = ClipStore(tmp_path / "s")
    assert reopened.info_json["source"]["hue_spread"] == ds.hue_spread


def test_a_group_shares_its_scene():
    """Clips of one group share the background: their per-pixel median over frames agrees far
    more often than two groups' of the same class (the 'actor and scene' of UCF's gXX)."""
    ds = ToyDataset(num_classes=2, train_per_class=36, test_per_class=1, distractors=0, noise=0)
    clips, labels, items = _clips(ds, "train")
    clips, items = clips[labels == 0], [it for it in items if it.label == 0]
    background = np.median(clips.astype(float), axis=1)  # the object moves; the scene stays
    by_group: dict[int, list[np.ndarray]] = {}
    for bg, it in zip(background, items, strict=True):
        by_group.setdefault(it.meta["group"], []).append(bg)
    same = [np.abs(v[0] - v[1]).mean() for v in by_group.values() if len(v) > 1]
    firsts = [v[0] for v in by_group.values()]
    other = [np.abs(firsts[i] - firsts[i + 1]).mean() for i in range(len(firsts) - 1)]
    assert np.median(same) < 0.25 * np.median(other)


def _frame_colour_accuracy(ds) -> float:
    """Nearest class centroid on one frame's colour statistics, trained on train, tested on
    test (disjoint groups): how much a single frame's context says about the class."""
    x_tr, y_tr, _ = _clips(ds, "train")
    x_te, y_te, _ = _clips(ds, "test")

    def feats(x: np.ndarray) -> np.ndarray:
        f = x[:, 0].astype(float).reshape(len(x), -1, 3)
        return np.concatenate([f.mean(1), f.std(1), np.percentile(f, 90, axis=1)], 1)

    f_tr, f_te = feats(x_tr), feats(x_te)
    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-6
    f_tr, f_te = (f_tr - mu) / sd, (f_te - mu) / sd
    cents = np.stack([f_tr[y_tr == c].mean(0) for c in range(ds.num_classes)])
    pred = np.argmin(((f_te[:, None] - cents[None]) ** 2).sum(-1), 1)
    return float((pred == y_te).mean())


def test_one_frame_tells_the_class_in_toy_not_in_toy_motion():
    """The two regimes: UCF-like context is class-correlated, SSv2-like appearance is not.
    Chance is 1/6; measured on these settings: toy 0.62, toy-motion 0.14 (hue_spread 0: 0.95)."""
    kw = {"num_classes": 6, "train_per_class": 36, "test_per_class": 14}
    ucf = _frame_colour_accuracy(ToyDataset(**kw))
    ssv2 = _frame_colour_accuracy(ToyMotionDataset(**kw))
    assert ucf > 0.35, ucf
    assert ssv2 < 0.3, ssv2
    # and the context knob does what it says: wider hue spread, less said by one frame
    assert _frame_colour_accuracy(ToyDataset(**kw, hue_spread=0)) > ucf


def test_prepare_cli_takes_toy_knobs_and_names_unknown_ones(tmp_path):
    r = CliRunner().invoke(
        main,
        ["prepare", "toy", "--out", str(tmp_path / "t"), "--classes", "2",
         "--train-per-class", "2", "--test-per-class", "1", "--workers", "1",
         "-o", "hue_spread=90", "-o", "groups=5", "-o", "test_groups=1"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    src = ClipStore(tmp_path / "t").info_json["source"]
    assert (src["hue_spread"], src["groups"], src["test_groups"]) == (90, 5, 1)
    r = CliRunner().invoke(main, ["prepare", "toy-motion", "--out", str(tmp_path / "m"),
                                  "-o", "hue_spread=1"])  # fmt: skip
    assert r.exit_code == 2 and "toy-motion has no option hue_spread" in r.output
    assert "Traceback" not in r.output
