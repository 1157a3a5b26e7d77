"""Fréchet distance against a hand computation (scipy's sqrtm), plus its invariants."""

from __future__ import annotations

import numpy as np
import pytest

from vidistill.generate.quality import frechet_distance


def _hand_fd(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = sqrtm(sa @ sb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * covmean))


def test_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(loc=0.5, size=(250, 6)) @ rng.normal(size=(6, 6))
    assert frechet_distance(a, b) == pytest.approx(_hand_fd(a, b), rel=1e-6)


def test_invariants():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.0, 0.5])
    assert frechet_distance(a, a + shift) == pytest.approx(float((shift**2).sum()), rel=1e-8)
    # 1-D Gaussians: (μ1-μ2)² + (σ1-σ2)²
    x = rng.normal(size=(500, 1))
    y = 3 * x + 1
    sx = np.std(x, ddof=1)
    expected = (y.mean() - x.mean()) ** 2 + (3 * sx - sx) ** 2
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-8)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_frame_strip_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    from vidistill.clipstore import ClipSpec
    from vidistill.datasets.toy import ToyDataset
    from vidistill.generate.quality import frame_strip
    from vidistill.prepare import prepare

    store = prepare(
        ToyDataset(num_classes=2, train_per_class=2, test_per_class=1, seed=0),
        tmp_path / "s",
        spec=ClipSpec(frames=3, size=16),
        workers=1,
    )
    png = frame_strip(store, tmp_path / "strip.png", real=store)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
