"""Sweep the net registry (timm-style): every net gets the same checks; ConvNet3D is exact."""

from __future__ import annotations

import pytest
import torch

from vidistill import registry
from vidistill.nets import create_net

NETS = registry.names("net")


def test_registry_has_the_three_families():
    assert {"convnet3d", "c3d", "convgru"} <= set(NETS)


@pytest.mark.parametrize("name", NETS)
def test_forward_features_and_too_small(name):
    torch.manual_seed(0)
    net = create_net(name, num_classes=5, frames=8, size=64, width=0.125).eval()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        logits, feats = net(x), net.features(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert feats.shape == (2, net.feature_dim)
    with pytest.raises(ValueError, match=r"at least \d+ frames? × \d+ px"):
        create_net(name, num_classes=5, frames=8, size=16)


@pytest.mark.parametrize("name", NETS)
def test_embed_keeps_the_temporal_layout_and_differs_from_features(name):
    """``embed`` (the synthesizers' matching embedding, VDSD's) is the body output flattened
    before the final pooling: declared shape, not the pooled ``features``."""
    torch.manual_seed(0)
    net = create_net(name, num_classes=5, frames=8, size=64, width=0.125).eval()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        emb, feats = net.embed(x), net.features(x)
    assert emb.shape == (2, net.embed_dim)
    assert net.embed_dim == int(torch.tensor(net.embed_shape).prod())
    assert emb.shape != feats.shape or not torch.allclose(emb, feats)


def test_convnet3d_embed_is_the_body_output_with_its_time_axis():
    """At 8×64² the body ends at (C, 2, 1, 1): embed keeps both time positions, features
    are the final AvgPool of that map averaged over them (so embed sees what features lose)."""
    torch.manual_seed(0)
    net = create_net("convnet3d", num_classes=5, frames=8, size=64, width=0.25).eval()
    x = torch.randn(3, 3, 8, 64, 64)
    with torch.no_grad():
        body = net.body(x)
        emb = net.embed(x)
    assert net.embed_shape == tuple(body.shape[1:]) == (32, 2, 1, 1)
    assert torch.equal(emb.view(3, *net.embed_shape), body)
    assert torch.allclose(net.features(x), net.pool(body).mean(dim=(2, 3, 4)))
    # two maps with the same time-average but different temporal order: features agree,
    # embed does not
    swapped = body.flip(2)
    assert torch.allclose(net.pool(swapped).mean(dim=(2, 3, 4)), net.features(x), atol=1e-6)
    assert not torch.allclose(swapped.flatten(1), emb)
    big = create_net("convnet3d", num_classes=5, frames=16, size=112, width=0.125)
    assert big.embed_shape[1:] == (4, 2, 2)  # 16×112²: 4 time positions


def _shapes(net, x):
    out = []
    for layer in net.body:
        x = layer(x)
        if isinstance(layer, torch.nn.MaxPool3d):
            out.append(tuple(x.shape[1:]))
    return out, tuple(net.pool(x).shape[1:])


@pytest.mark.parametrize(
    "frames,size,blocks,pooled",
    [
        # VDSD design (DESIGN §4): conv stride (1,2,2) then MaxPool (1,2,2) / 2 / 2.
        (16, 112, [(64, 16, 28, 28), (128, 8, 7, 7), (128, 4, 2, 2)], (128, 3, 1, 1)),
        (8, 64, [(64, 8, 16, 16), (128, 4, 4, 4), (128, 2, 1, 1)], (128, 1, 1, 1)),
    ],
)
def test_convnet3d_is_exact(frames, size, blocks, pooled):
    net = create_net("convnet3d", num_classes=10, frames=frames, size=size)
    assert sum(p.numel() for p in net.parameters()) == 3_642_506
    kernels = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [(m.kernel_size, m.stride, m.padding) for m in kernels[:3]] == [
        ((3, 7, 7), (1, 2, 2), (1, 3, 3))
    ] * 3
    assert not any(isinstance(m, (torch.nn.BatchNorm3d, torch.nn.GroupNorm)) for m in net.modules())
    with torch.no_grad():
        got_blocks, got_pooled = _shapes(net, torch.zeros(1, 3, frames, size, size))
        assert net(torch.zeros(2, 3, frames, size, size)).shape == (2, 10)
    assert got_blocks == blocks
    assert got_pooled == pooled
    assert net.pool.kernel_size == ((2, 1, 1) if size <= 64 else (2, 2, 2))


def test_convnet3d_max_over_time():
    """The logit of a class is the max over the pooled time steps (VDSD), not their mean."""
    net = create_net("convnet3d", num_classes=3, frames=16, size=112, width=0.125).eval()
    x = torch.randn(1, 3, 16, 112, 112)
    with torch.no_grad():
        per_t = net.classifier(net._maps(x)).flatten(3).mean(3)  # (1, classes, t)
        assert per_t.shape[-1] == 3
        assert torch.allclose(net(x), per_t.amax(2))


def test_c3d_original_geometry():
    """16×112² at full width: pool5 ends at 512×1×4×4 = 8192 features into fc6 (Tran et al.)."""
    net = create_net("c3d", num_classes=101, frames=16, size=112)
    assert net.head[1].in_features == 8192 and net.head[1].out_features == 4096
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv3d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
