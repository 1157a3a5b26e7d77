"""VST-UNet: its two losses by hand, the 4D block's clip mixing, and a selection it must make."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidistill.select import select_arrays
from vidistill.select.base import ClassData
from vidistill.select.vst_unet import (
    Block4D,
    VSTUNet,
    diversity_loss,
    fit_vst_unet,
    representativeness_loss,
)

SHAPE = (2, 2, 4, 4)  # C, T, h, w
D = int(np.prod(SHAPE))


def test_diversity_loss_is_mean_pairwise_cosine():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    c = 1 / np.sqrt(2)
    # pairs (0,1)=0, (0,2)=c, (1,2)=c, each counted twice, over k(k-1)=6
    assert float(diversity_loss(f)) == pytest.approx((0 + c + c) * 2 / 6)
    assert float(diversity_loss(f[:1])) == 0.0


def test_representativeness_loss_by_hand():
    f_all = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    f_sel = f_all[:1]
    # MSE to the one selected clip: 0, (4+0)/2=2, (0+16)/2=8 → mean 10/3
    assert float(representativeness_loss(f_all, f_sel)) == pytest.approx(1 - np.exp(-10 / 3))


def test_block_mixes_information_across_clips():
    torch.manual_seed(0)
    block = Block4D(2, 4)
    x = torch.randn(5, 2, 2, 4, 4)
    y = block(x)
    x2 = x.clone()
    x2[0] += 3.0  # change clip 0 only
    y2 = block(x2)
    assert y.shape == (5, 4, 2, 4, 4)
    assert not torch.allclose(y[1], y2[1]), "clip 1 must see its neighbour on the clip axis"
    assert torch.allclose(y[3], y2[3]), "kernel 3 along clips: clip 3 is two away from clip 0"


def _pool(per: int = 20, outliers: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Two classes with opposite latent patterns; in each class the first ``outliers`` clips
    carry the OTHER class's pattern (they look mislabelled)."""
    rng = np.random.default_rng(seed)
    pattern = rng.normal(size=D).astype(np.float32)
    pool = {}
    for c, sign in enumerate((1.0, -1.0)):
        x = sign * pattern + 0.3 * rng.normal(size=(per, D)).astype(np.float32)
        x[:outliers] = -sign * pattern + 0.3 * rng.normal(size=(outliers, D))
        pool[f"c{c}"] = x.astype(np.float32)
    return pool


def test_ce_only_selects_typical_clips_not_the_mislabelled_looking_ones():
    """With L_div and L_rep off (Table 6's "CE" row), p is a class posterior: the clips that
    look like the other class get the lowest own-class probability. (With L_rep on, one
    pick in the 25 % minority mode is what representativeness asks for, so no assert.)"""
    pool = _pool()
    sel = select_arrays(
        "vst-unet", pool, 5, seed=0, latent_shape=list(SHAPE), epochs=40, lambda_div=0, lambda_rep=0
    )
    for name, pos in sel.items():
        assert len(set(pos)) == 5
        assert min(pos) >= 5, f"{name}: picked an outlier clip {sorted(pos)}"


def test_training_lowers_the_loss_and_is_seeded():
    pool = _pool()
    classes = [ClassData.from_array(x, name=n, label=i) for i, (n, x) in enumerate(pool.items())]
    a = fit_vst_unet(classes, 5, seed=1, epochs=15, latent_shape=SHAPE)
    b = fit_vst_unet(classes, 5, seed=1, epochs=15, latent_shape=SHAPE)
    assert a["loss"][-1] < 0.75 * a["loss"][0], a["loss"]
    assert a["loss"] == b["loss"]


def test_latent_shape_comes_from_the_embeddings_file_or_errors():
    data = ClassData.from_array(np.zeros((4, D), np.float32))
    data.details = {"latent_shape": list(SHAPE)}
    fitted = fit_vst_unet([data], 2, epochs=1)
    assert fitted["shape"] == SHAPE
    assert isinstance(fitted["model"], VSTUNet)
    with pytest.raises(ValueError, match="does not match embedding dim"):
        fit_vst_unet([data], 2, epochs=1, latent_shape=[3, 2, 4, 4])
    json.dumps(fitted["loss"])  # history is plain floats (goes into reports)
