"""Selectors: the registry-wide contract, hand-computed answers, TAC-DT on blobs, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from vidistill import registry
from vidistill.select import ClassData, run_selector, select_arrays
from vidistill.select.csta import knapsack

METHODS = registry.names("selector")


def _pool(seed: int = 0, classes: int = 3, n: int = 24, dim: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"c{c}": rng.normal(size=(n, dim)).astype(np.float32) + 5 * c for c in range(classes)}


def _scores(pool: dict[str, np.ndarray], seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(size=len(v)) for k, v in pool.items()}


def test_expected_methods_registered():
    assert {"random", "tac-dt", "mae-score", "dm-mmd", "csta", "herding", "k-center"} <= set(
        METHODS
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("vpc", [1, 5])
def test_contract_distinct_in_class_deterministic(method, vpc):
    pool = _pool()
    scores = _scores(pool)
    a = select_arrays(method, pool, vpc, seed=3, scores=scores)
    b = select_arrays(method, pool, vpc, seed=3, scores=scores)
    assert a == b, "same seed must give the same selection"
    for name, pos in a.items():
        assert len(pos) == vpc and len(set(pos)) == vpc
        assert all(0 <= p < len(pool[name]) for p in pos)


@pytest.mark.parametrize("method", METHODS)
def test_vpc_larger_than_class_errors(method):
    pool = {"small": np.zeros((3, 4), np.float32)}
    with pytest.raises(ValueError, match="'small' has only 3 clips.*vpc=4"):
        select_arrays(method, pool, 4, scores={"small": np.ones(3)})


@pytest.mark.parametrize("method", METHODS)
def test_whole_class_is_selectable(method):
    pool = _pool(n=6, classes=1)
    pos = select_arrays(method, pool, 6, scores=_scores(pool))["c0"]
    assert sorted(pos) == list(range(6))


def test_random_depends_on_seed():
    pool = _pool(n=200, classes=1)
    assert select_arrays("random", pool, 5, seed=0) != select_arrays("random", pool, 5, seed=1)


def test_k_center_uses_pairwise_min_distance():
    """Hand-computed, 1-D: mean 7 → nearest 5 (idx 5; 9 ties, lower index wins); farthest
    from {5} is 20 (idx 4); min-distances to {5, 20}: 0→5 and 10→5 tie → idx 0; to
    {5, 20, 0}: 10→5 is largest → idx 3. Then a brute-force greedy with TRUE pairwise
    minima on random 3-D data (distance to the last centre only, as in VDSD, differs)."""
    x = np.array([[0.0], [1.0], [4.0], [10.0], [20.0], [5.0], [9.0]], np.float32)
    assert run_selector("k-center", ClassData.from_array(x), 4).tolist() == [5, 4, 0, 3]
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3)).astype(np.float32)
    first = int(np.argmin(np.linalg.norm(y - y.mean(0), axis=1)))
    chosen = [first]
    for _ in range(6):
        d = np.linalg.norm(y[:, None] - y[chosen][None], axis=2).min(1)
        d[chosen] = -1
        chosen.append(int(np.argmax(d)))
    assert run_selector("k-center", ClassData.from_array(y), 7).tolist() == chosen


def test_k_center_tiny_explicit():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 9.0]], np.float32)
    # mean (2.75, 2.25): nearest (1,0)=idx1; farthest from it: (0,9) d=9.06 vs (10,0) d=9
    # → idx3; then min-dist: idx0 → min(1, 9)=1, idx2 → min(9, 13.45)=9 → idx2.
    assert run_selector("k-center", ClassData.from_array(x), 3).tolist() == [1, 3, 2]


def test_herding_tiny_explicit():
    x = np.array([[0.0], [2.0], [3.0], [7.0]], np.float32)
    # mean 3. k=1: |x-3| → idx2 (3). k=2: (3+x)/2 vs 3: x=2→2.5, x=0→1.5, x=7→5 → idx1 (2)
    # k=3: (5+x)/3: x=0→1.67, x=7→4 (|1| vs |1.33|) → idx3 (7).
    assert run_selector("herding", ClassData.from_array(x), 3).tolist() == [2, 1, 3]


def test_mae_score_takes_top_scores():
    x = np.zeros((5, 2), np.float32)
    data = ClassData.from_array(x, scores=np.array([0.1, 0.9, 0.5, 0.95, 0.2]))
    assert run_selector("mae-score", data, 2).tolist() == [3, 1]


def test_knapsack_unit_weights_is_top_k_and_weighted_dp():
    v = np.array([0.2, 0.9, 0.4, 0.8])
    assert knapsack(v, np.ones(4, int), 2).tolist() == [1, 3]
    # weights 3,2,2 capacity 4: {1,2} (value 1.2) beats {0} (1.0)
    assert knapsack(np.array([1.0, 0.6, 0.6]), np.array([3, 2, 2]), 4).tolist() == [1, 2]


def _blobs(k: int, per: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(k, dim))
    blob = np.repeat(np.arange(k), per)
    x = centres[blob] + rng.normal(scale=0.5, size=(k * per, dim))
    perm = rng.permutation(len(x))
    return x[perm].astype(np.float32), blob[perm]


@pytest.mark.parametrize("k,per,dim", [(5, 30, 64), (10, 12, 1408), (1, 40, 8)])
def test_tac_dt_one_clip_per_blob(k, per, dim):
    x, blob = _blobs(k, per, dim, seed=k)
    pos = run_selector("tac-dt", ClassData.from_array(x), k)
    assert sorted(blob[pos].tolist()) == list(range(k))


def test_tac_dt_streaming_matches_blob_coverage():
    """Above the memory budget: IncrementalPCA + Birch.partial_fit still cover every blob."""
    x, blob = _blobs(6, 400, 32, seed=7)
    data = ClassData.from_array(x)
    data._array = None  # force the streamed path through a fake reader

    class Reader:
        def iter_rows(self, positions, chunk_rows):
            for s in range(0, len(positions), chunk_rows):
                yield s, x[positions[s : s + chunk_rows]]

    data._reader, data._positions, data.dim = Reader(), np.arange(len(x)), x.shape[1]
    data.budget_bytes = 256 * 4 * 4 * 32  # → 256-row blocks, 2,400 rows: streamed
    assert not data.fits_in_memory
    pos = run_selector("tac-dt", data, 6)
    assert sorted(blob[pos].tolist()) == list(range(6))
    for method in ("herding", "k-center", "dm-mmd"):
        streamed = run_selector(method, data, 4).tolist()
        in_memory = run_selector(method, ClassData.from_array(x), 4).tolist()
        if method != "dm-mmd":  # MiniBatchKMeans streamed vs KMeans in memory differ
            assert streamed == in_memory, method
        assert len(set(streamed)) == 4


def test_tac_dt_options_validate_and_apply():
    x, blob = _blobs(4, 25, 16, seed=3)
    for opts in ({"whiten": True}, {"pca_dim": 4}, {"threshold": 0.5, "branching_factor": 10}):
        pos = run_selector("tac-dt", ClassData.from_array(x), 4, **opts)
        assert sorted(blob[pos].tolist()) == [0, 1, 2, 3], opts
    with pytest.raises(TypeError):
        run_selector("tac-dt", ClassData.from_array(x), 4, no_such_option=1)
