"""Behaviour that a stub ("the first VPC clips of the class") or an alias of another method
would fail: MAE-Score's tie-break, TAC-DT's own-cluster representative, DM-MMD, CSTA."""

from __future__ import annotations

import numpy as np
import pytest

from vidistill.embed.store import EmbeddingFile, StreamingSafetensorsWriter
from vidistill.select import ClassData, run_selector
from vidistill.select.base import own_class_log_odds
from vidistill.select.tac_dt import representatives


def _first(vpc: int) -> list[int]:
    return list(range(vpc))


def test_mae_score_ties_are_broken_by_the_seed_not_store_order():
    """Saturated probabilities (all exactly 1.0): the pick is a seeded draw, not positions
    0..VPC-1, and a different seed draws differently."""
    data = ClassData.from_array(np.zeros((100, 2), np.float32), scores=np.ones(100))
    picks = [sorted(run_selector("mae-score", data, 5, seed=s).tolist()) for s in range(3)]
    assert all(p != _first(5) for p in picks)
    assert len({tuple(p) for p in picks}) == 3
    assert (
        run_selector("mae-score", data, 5, seed=1).tolist()
        == run_selector("mae-score", data, 5, seed=1).tolist()
    )


def test_mae_score_ranks_saturated_clips_by_their_logits(tmp_path):
    """float32 softmax of these logits is 1.0 for every clip; the log-odds from the stored
    logits still rank them (the most confident clips are the last in store order)."""
    n, classes = 20, 3
    logits = np.zeros((n, classes), np.float32)
    logits[:, 0] = 30.0 + np.arange(n)  # clip i: margin 30 + i
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert (probs[:, 0] == 1.0).all()
    path = tmp_path / "classifier.safetensors"
    layout = {
        "embeddings": (np.float32, (n, 2)),
        "indices": (np.int64, (n,)),
        "labels": (np.int64, (n,)),
        "probs": (np.float32, (n, classes)),
        "logits": (np.float32, (n, classes)),
    }
    w = StreamingSafetensorsWriter(path, layout, {"embedder": "classifier"})
    for key, value in (
        ("embeddings", np.zeros((n, 2), np.float32)),
        ("indices", np.arange(n)),
        ("labels", np.zeros(n, np.int64)),
        ("probs", probs.astype(np.float32)),
        ("logits", logits),
    ):
        w.write_rows(key, 0, value)
    w.commit()
    scores = own_class_log_odds(EmbeddingFile(path), np.arange(n), 0)
    assert (np.diff(scores) > 0).all()
    data = ClassData.from_array(np.zeros((n, 2), np.float32), scores=scores)
    assert sorted(run_selector("mae-score", data, 3).tolist()) == [17, 18, 19]


def test_tac_dt_representative_is_a_member_of_its_own_cluster():
    """A ring cluster whose mean sits on a small blob of ANOTHER cluster: ranking every clip
    of the class against the ring's mean (the old code) picks a blob clip for the ring."""
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.stack([5 * np.cos(angles), 5 * np.sin(angles)], 1)
    blob = np.random.default_rng(0).normal(scale=0.1, size=(8, 2))
    z = np.concatenate([blob, ring]).astype(np.float32)
    labels = np.r_[np.ones(8, int), np.zeros(40, int)]  # the ring is the larger cluster
    chosen = representatives(z, labels, 2, np.random.default_rng(0))
    assert labels[chosen].tolist() == [0, 1], "one representative per cluster, own members"


def _blobs_with_outliers(seed: int = 0):
    """Three tight blobs of 30 (shuffled) and two outliers placed FIRST in store order."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    blob = np.repeat(np.arange(3), 30)
    x = centres[blob] + rng.normal(scale=0.5, size=(90, 2))
    perm = rng.permutation(90)
    x, blob = x[perm], blob[perm]
    outliers = np.array([[-4.0, -4.0], [14.0, -4.0]])
    return np.concatenate([outliers, x]).astype(np.float32), np.r_[[-1, -1], blob], centres


def test_tac_dt_is_not_k_center():
    """TAC-DT takes each cluster's most central clip; k-center's farthest-first takes the
    outliers. Neither may be the first-VPC stub."""
    x, blob, centres = _blobs_with_outliers()
    tac = run_selector("tac-dt", ClassData.from_array(x), 3)
    kc = run_selector("k-center", ClassData.from_array(x), 3)
    assert sorted(blob[tac].tolist()) == [0, 1, 2]
    assert all(np.linalg.norm(x[i] - centres[blob[i]]) < 1.0 for i in tac)
    assert set(kc.tolist()) & {0, 1}, "k-center reaches for the outliers"
    assert sorted(tac.tolist()) != sorted(kc.tolist())
    assert sorted(tac.tolist()) != _first(3)


def test_dm_mmd_takes_one_central_clip_per_cluster():
    x, blob, centres = _blobs_with_outliers(1)
    pos = run_selector("dm-mmd", ClassData.from_array(x), 3)
    assert sorted(blob[pos].tolist()) == [0, 1, 2]
    assert all(np.linalg.norm(x[i] - centres[blob[i]]) < 1.5 for i in pos)


def _mmd(x: np.ndarray, sel: list[int]) -> float:
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    sigma = np.median(d[np.triu_indices(len(x), 1)])
    k = np.exp(-(d**2) / (2 * sigma**2))
    return float(k[np.ix_(sel, sel)].mean() - 2 * k[sel].mean())


def test_dm_mmd_beats_the_first_clips_on_its_own_objective():
    x, _, _ = _blobs_with_outliers(2)
    pos = run_selector("dm-mmd", ClassData.from_array(x), 3).tolist()
    assert _mmd(x, pos) < _mmd(x, _first(3)) - 0.05


def test_csta_prefers_typical_clips_over_outliers():
    """CSTA's scorer learns the density target: the five outliers (placed first) score low."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(8.0, 1.0, size=(5, 16)), rng.normal(0, 1.0, size=(45, 16))])
    pos = run_selector("csta", ClassData.from_array(x.astype(np.float32)), 5, steps=60)
    assert min(pos) >= 5, sorted(pos.tolist())


@pytest.mark.parametrize("method", ["tac-dt", "dm-mmd", "herding", "k-center"])
def test_selection_follows_the_clips_not_their_positions(method):
    """Shuffling the class permutes the answer: a method reads embeddings, not store order.
    (CSTA is left out: its scorer trains on random stack orders, so it is seeded, not
    order-free.)"""
    x, _, _ = _blobs_with_outliers(3)
    perm = np.random.default_rng(1).permutation(len(x))
    a = run_selector(method, ClassData.from_array(x), 3, seed=0)
    b = run_selector(method, ClassData.from_array(x[perm]), 3, seed=0)
    chosen = sorted(map(tuple, x[a].round(4).tolist()))
    assert chosen == sorted(map(tuple, x[perm][b].round(4).tolist()))


def test_non_finite_embeddings_stop_selection_with_a_message():
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf"):
        run_selector("tac-dt", ClassData.from_array(x), 2)
