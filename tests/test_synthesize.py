"""Synthesizers: losses against hand computations, τ, the fusor layouts (motion survives the
aligned fusor, not the strided one), the bounded L_div, the ablation switches by their
effect on the gradients, DM's clip-consistent augmentation, VDSD as its code, optimisation,
class-bounded memory and the evaluator round trip (resume: tests/test_resume.py). Tiny
stores, < 1 min."""

from __future__ import annotations

import json

import pytest
import torch

from vidistill import registry
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare
from vidistill.synthesize import build, clip_aug, diversity_loss, matching_loss, synthesize
from vidistill.synthesize.common import (
    RealSampler,
    fresh_net,
    hinge_diversity_loss,
    real_spread,
    segment_pair_distances,
)
from vidistill.synthesize.idtd import aligned_fuse
from vidistill.synthesize.temporal_aug import (
    sample_intervals,
    stochastic_temporal_augment,
    temporal_resample,
)
from vidistill.synthetic import SyntheticSet

SPEC = ClipSpec(frames=8, size=48)
FAST = {"net_width": 0.125, "real_batch": 4}


def _store(root, classes: int) -> ClipStore:
    ds = ToyDataset(num_classes=classes, train_per_class=4, test_per_class=2, seed=0)
    return prepare(ds, root, spec=SPEC, workers=1, progress=False)


@pytest.fixture(scope="module")
def store3(tmp_path_factory) -> ClipStore:
    return _store(tmp_path_factory.mktemp("toy3"), 3)


# -- losses against hand computations ---------------------------------------------------
def test_matching_loss_equals_hand_computation():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])  # mean (3, 2)
    syn = torch.tensor([[0.0, 1.0], [2.0, 1.0]])  # mean (1, 1)
    assert matching_loss(real, syn).item() == pytest.approx((3 - 1) ** 2 + (2 - 1) ** 2)


def test_diversity_loss_equals_hand_computation():
    f = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]])  # one video, K=4 segments
    d2 = {(0, 1): 1.0, (0, 2): 4.0, (0, 3): 9.0, (1, 2): 5.0, (1, 3): 4.0, (2, 3): 13.0}
    assert diversity_loss(f, "all").item() == pytest.approx(sum(d2.values()))
    # printed Eq. 1: k = 1..K-2 (1-based) → pairs with first index 0, 1 (0-based); drops (2, 3)
    assert diversity_loss(f, "printed").item() == pytest.approx(
        sum(v for (k, _), v in d2.items() if k <= 1)
    )
    two = torch.cat([f, 2 * f])  # summed over videos; scales quadratically
    assert diversity_loss(two).item() == pytest.approx(5 * sum(d2.values()))


# -- stochastic temporal augmentation ----------------------------------------------------
def test_tau_keeps_shape_and_samples_inside_interval():
    t = 8
    v = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1).expand(5, 3, t, 4, 4).contiguous()
    gen = torch.Generator().manual_seed(0)
    s, e = sample_intervals(5, gen, min_len=0.3)
    assert bool(((s >= 0) & (s < e) & (e <= 1) & (e - s >= 0.3 - 1e-6)).all())
    out = temporal_resample(v, s, e)
    assert out.shape == v.shape
    lo, hi = (s * (t - 1)).view(5, 1), (e * (t - 1)).view(5, 1)
    frames = out[:, 0, :, 0, 0]  # value of a frame = its (fractional) source position
    assert bool((frames >= lo - 1e-5).all() and (frames <= hi + 1e-5).all())
    assert torch.allclose(frames[:, 0:1], lo, atol=1e-5) and torch.allclose(
        frames[:, -1:], hi, atol=1e-5
    )
    # the whole interval is the identity
    assert torch.allclose(temporal_resample(v, torch.zeros(5), torch.ones(5)), v)
    aug = stochastic_temporal_augment(v, gen)
    assert aug.shape == v.shape and not torch.equal(aug, v)


def test_tau_is_a_registered_evaluator_augmentation():
    """The evaluator's "idtd-temporal" IS τ: the same intervals drawn from the same generator
    state (min_len 0.5), frames resampled from them, not some shape-keeping stand-in."""
    fn = registry.get("augment", "idtd-temporal")
    t = 8
    x = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1).expand(4, 3, t, 6, 6).contiguous()
    got = fn(x, torch.Generator().manual_seed(1))
    s, e = sample_intervals(4, torch.Generator().manual_seed(1), min_len=0.5)
    assert torch.allclose(got, temporal_resample(x, s, e), atol=1e-6)
    assert not torch.allclose(got, x)
    frames = got[:, 0, :, 0, 0]  # frame value = its source position
    assert bool(((frames[:, -1] - frames[:, 0]) >= 0.5 * (t - 1) - 1e-5).all())


# -- the bounded L_div (hinge to the real spread) ----------------------------------------
def test_real_spread_is_the_mean_pairwise_squared_distance():
    f = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    d2 = [1.0, 4.0, 9.0, 5.0, 4.0, 13.0]  # the 6 pairs i < j
    assert real_spread(f).item() == pytest.approx(sum(d2) / 6)
    assert real_spread(f[:1]).item() == 0.0  # one clip: no spread
    g = f.clone().requires_grad_(True)
    assert not real_spread(g).requires_grad  # a target, detached


def test_hinge_diversity_is_bounded_and_zero_once_as_spread_as_real_clips():
    """Real clips of a class: K equidistant points (pairwise ‖·‖² = 2a², so δ = 2a²). Segments
    as spread as they are → 0 (and no gradient: nothing pushes them further); collapsed →
    the bound M·P·δ; in between → in between; spread further → still 0. The text's
    sign (−Σ‖·‖²) instead keeps falling as the segments are scaled up."""
    k, a = 4, 3.0
    real = a * torch.eye(k)  # (B=K, D=K)
    delta = real_spread(real)
    assert delta.item() == pytest.approx(2 * a * a)
    pairs = k * (k - 1) // 2
    centre = real.mean(0)

    def seg(scale: float) -> torch.Tensor:  # (M=2, K, D): the real points, spread by `scale`
        return (centre + scale * (real - centre)).expand(2, k, k).clone().requires_grad_(True)

    same = seg(1.0)
    loss = hinge_diversity_loss(same, delta)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-5) and same.grad.abs().max() == 0
    assert hinge_diversity_loss(seg(0.0), delta).item() == pytest.approx(2 * pairs * delta.item())
    half = hinge_diversity_loss(seg(0.5), delta).item()
    assert 0 < half < 2 * pairs * delta.item()
    for scale in (2.0, 10.0, 1e3):
        assert hinge_diversity_loss(seg(scale), delta).item() == 0.0
    text = [-diversity_loss(seg(scale)).item() for scale in (1.0, 10.0, 1e3)]
    assert text[0] > text[1] > text[2] < -1e6  # unbounded below
    # the printed K−2 bound drops the last pair(s) in the hinge too
    assert segment_pair_distances(seg(1.0), "printed").shape == (2, pairs - 1)


def test_idtd_hinge_is_bounded_by_the_real_spread_in_the_synthesizer(store3):
    """In IDTD's own loss: the hinge never exceeds M·P·δ_c, whatever the segments' scale,
    while the text's form (−α1·Σ‖·‖²) runs away; 0 once the segments are spread out."""
    synth = build(store3, "idtd", 1, {**FAST, "k": 3, "init": "real", "iterations": 1}, seed=0)
    net = fresh_net(3, 8, 48, 0.25, seed=3)
    with torch.no_grad():
        real_feats = synth.phi(net, store3.tensor(store3.indices("train", 0)))
        delta = real_spread(real_feats).item()
        segs = synth.segments(0)
        m, k = segs.shape[:2]
        bound = m * k * (k - 1) / 2 * delta
        for scale in (0.0, 1.0, 10.0):
            f = synth.phi(net, (scale * segs).flatten(0, 1)).view(m, k, -1)
            assert 0.0 <= hinge_diversity_loss(f, delta).item() <= bound + 1e-4
        far = segs + 50.0 * torch.randn(segs.shape, generator=torch.Generator().manual_seed(0))
        f = synth.phi(net, far.flatten(0, 1)).view(m, k, -1)
        assert hinge_diversity_loss(f, delta).item() == 0.0
        assert diversity_loss(f).item() > 100 * bound
        _, parts = synth.class_loss(0, net, real_feats, torch.Generator().manual_seed(0))
    assert parts["div_target"] == pytest.approx(delta, rel=1e-5)
    assert 0.0 <= parts["l_div"] <= bound + 1e-4
    for form in ("printed", "text", "normalised"):  # the other forms stay named options
        assert build(store3, "idtd", 1, {**FAST, "div": form}, seed=0).config.div == form
    with pytest.raises(ValueError, match="div must be one of"):
        build(store3, "idtd", 1, {**FAST, "div": "cosine"}, seed=0)


def test_idtd_normalised_diversity_is_bounded(store3):
    """``div=normalised`` (the earlier bounded alternative): every pair of unit-norm features
    is at most 4 apart, while the raw Eq. 1 grows ~quadratically with the segments' scale."""
    synth = build(store3, "idtd", 1, {**FAST, "init": "real", "iterations": 1}, seed=0)
    net = fresh_net(3, 8, 48, 0.25, seed=3)
    segs = synth.segments(0).detach()
    m, k = segs.shape[:2]

    def div(x: torch.Tensor, normalised: bool) -> float:
        f = net.embed(x.flatten(0, 1)).view(m, k, -1)
        f = torch.nn.functional.normalize(f, dim=-1) if normalised else f
        return float(diversity_loss(f))

    with torch.no_grad():
        assert div(segs, True) <= 4 * m * k * (k - 1) / 2
        assert div(10 * segs, False) > 50 * div(segs, False)
        assert div(10 * segs, True) <= 4 * m * k * (k - 1) / 2


# -- the Temporal Fusor: motion survives the aligned layout, not the strided one ----------
def _moving_square(k: int, t: int = 8, size: int = 48, speed: int = 3) -> torch.Tensor:
    """(1, K, 3, T, H, W): in every segment a 6-px square moving ``speed`` px/frame along x
    (the same trajectory; a different brightness per segment), on a zero background."""
    segs = torch.zeros(1, k, 3, t, size, size)
    for j in range(k):
        for f in range(t):
            x = 4 + speed * f
            segs[:, j, :, f, 10:16, x : x + 6] = 1.0 + j
    return segs


def _centroid_x(v: torch.Tensor, bias: float = 0.0) -> torch.Tensor:
    """x-centroid of each frame's mass |v − bias|: (M, T)."""
    mass = (v - bias).abs().sum(1)  # (M, T, H, W)
    xs = torch.arange(v.shape[-1], dtype=v.dtype)
    return (mass * xs).sum((-2, -1)) / mass.sum((-2, -1))


def test_aligned_fusor_keeps_a_3px_per_frame_motion_for_any_mixing():
    """Must-show 1: whatever A (the per-output-time softmax over segments), the fused video's
    square moves 3 px/frame; with any positive kernel h too, in the frames the replicate
    padding does not touch. Through the synthesizer's own fuse() with its parameters set."""
    k = t = 8  # the paper's K = T
    segs = _moving_square(k, t)
    gen = torch.Generator().manual_seed(0)
    for trial in range(5):
        mix = 5.0 * torch.randn(1, t, k, generator=gen)  # sharp, time-varying choices
        a = mix.softmax(-1)
        v = aligned_fuse(segs, a)  # h = identity (its init), no bias
        assert torch.allclose(_centroid_x(v).diff(dim=1), torch.full((1, t - 1), 3.0), atol=1e-4)
        h = torch.rand(1, 3, generator=gen) + 0.1
        bias = float(torch.randn(1, generator=gen))
        v = aligned_fuse(segs, a, h, torch.tensor([bias]))
        inner = _centroid_x(v, bias)[:, 1 : t - 1]
        assert torch.allclose(inner.diff(dim=1), torch.full((1, t - 3), 3.0), atol=1e-3), trial


def _aligned_fuse_direct(segs, mix, kernel, bias):
    """The fusor's formula term by term: replicate-pad, J shifted products, then the mix."""
    t, pad = segs.shape[3], kernel.shape[1] // 2
    out = torch.zeros(segs.shape[0], 3, *segs.shape[3:])
    for tt in range(t):
        for j in range(kernel.shape[1]):
            s = min(max(tt + j - pad, 0), t - 1)
            w = mix[:, tt, :, None, None, None] * kernel[:, j, None, None, None, None]
            out[:, :, tt] += (w * segs[:, :, :, s]).sum(1)
    return out + bias.view(-1, 1, 1, 1, 1)


def test_aligned_fusor_is_its_formula_values_and_gradients():
    gen = torch.Generator().manual_seed(0)
    segs = torch.randn(2, 4, 3, 8, 5, 5, generator=gen, requires_grad=True)
    mix = torch.randn(2, 8, 4, generator=gen).softmax(-1).requires_grad_()
    for j in (1, 3, 5):
        kernel = torch.randn(2, j, generator=gen, requires_grad=True)
        bias = torch.randn(2, generator=gen, requires_grad=True)
        fast, direct = (
            aligned_fuse(segs, mix, kernel, bias),
            _aligned_fuse_direct(segs, mix, kernel, bias),
        )
        assert torch.allclose(fast, direct, atol=1e-5)
        probe = torch.randn(fast.shape, generator=gen)
        g_fast = torch.autograd.grad((fast * probe).sum(), (segs, mix, kernel, bias))
        g_direct = torch.autograd.grad((direct * probe).sum(), (segs, mix, kernel, bias))
        for a, b in zip(g_fast, g_direct, strict=True):
            assert torch.allclose(a, b, atol=1e-4)
    ident = torch.zeros(2, 3)
    ident[:, 1] = 1.0
    assert torch.allclose(aligned_fuse(segs, mix), aligned_fuse(segs, mix, ident), atol=1e-6)


def test_strided_fusor_does_not_keep_the_motion(store3):
    """The literal layout (``fusor=strided``, K = T): output frame t is the blur of the whole
    segment t, so a square moving in every segment stands still in the fused video."""
    strided = build(store3, "idtd", 1, {**FAST, "fusor": "strided"}, seed=0)
    aligned = build(store3, "idtd", 1, FAST, seed=0)
    segs = _moving_square(8)
    with torch.no_grad():
        for synth in (strided, aligned):  # learned fusor at init, and random A for aligned
            if synth is aligned:
                synth.fus_mix[0].normal_(generator=torch.Generator().manual_seed(1))
            moves = _centroid_x(synth.fuse(0, segs)).diff(dim=1)
            if synth is strided:
                assert moves.abs().max() < 1e-4  # every frame: the same blurred trail
            else:
                assert torch.allclose(moves, torch.full_like(moves, 3.0), atol=1e-4)
        st = build(store3, "idtd", 1, {**FAST, "fusor": "strided", "ablation": "t3-a"}, seed=0)
        moves = _centroid_x(st.fuse(0, segs)).diff(dim=1)
        assert not torch.allclose(moves, torch.full_like(moves, 3.0), atol=0.5)


def test_idtd_strided_layouts(store3):
    """``fusor=strided`` keeps the literal layout: T3-A takes the middle frame of each stride
    of the time-concatenated segments; the learned fusor starts as the average of its
    K-frame window (so output frame t = mean of segment t when K = T)."""
    opts = {**FAST, "fusor": "strided"}
    a = build(store3, "idtd", 1, {**opts, "ablation": "t3-a"}, seed=0)
    assert a.make_optimizers() == {}
    segs = a.segments(0)  # (1, K, 3, T, H, W) fixed real clips
    v = a.class_videos(0)
    k = segs.shape[1]
    for t in range(8):  # frame t = middle frame of the t-th stride of the concatenation
        pos = t * k + k // 2
        assert torch.equal(v[0, :, t], segs[0, pos // 8, :, pos % 8])
    b = build(store3, "idtd", 1, {**opts, "ablation": "t3-b"}, seed=0)
    assert len(b.pool) == 0 and b.seg[0].requires_grad and len(b.fus_kernel) == 3
    assert len(b.fus_mix) == 0  # no mixing weights in the strided layout
    segs_b = b.segments(0).detach()
    fused = b.class_videos(0).detach()
    for t in range(8):  # K = T = 8: output frame t = mean of segment t
        assert torch.allclose(fused[:, :, t], segs_b[:, t].mean(2), atol=1e-5)
    c = build(store3, "idtd", 1, {**opts, "ablation": "t3-c"}, seed=0)
    assert not c.config.loss_fusor_match and len(c.fus_kernel) == 0 and len(c.pool) == 3


def test_idtd_aligned_layouts(store3):
    """Default ``fusor=aligned``: the fixed stitch (T3-A/C) takes frame t of segment ⌊t·K/T⌋;
    the learned fusor starts as the segments' mean (uniform A, identity h, bias 0)."""
    a = build(store3, "idtd", 1, {**FAST, "ablation": "t3-a", "k": 4}, seed=0)
    segs, v = a.segments(0), a.class_videos(0)
    for t in range(8):
        assert torch.equal(v[0, :, t], segs[0, (t * 4) // 8, :, t])
    b = build(store3, "idtd", 1, {**FAST, "ablation": "t3-b"}, seed=0)
    assert b.fus_mix[0].shape == (1, 8, 8) and b.fus_kernel[0].tolist() == [[0.0, 1.0, 0.0]]
    assert torch.allclose(b.class_videos(0).detach(), b.segments(0).detach().mean(1), atol=1e-5)
    with pytest.raises(ValueError, match="fusor must be one of"):
        build(store3, "idtd", 1, {"fusor": "stride"})
    with pytest.raises(ValueError, match="fusor_len must be odd"):
        build(store3, "idtd", 1, {"fusor_len": 2})


# -- the Table 3/4 switches, by which loss terms reach which parameters -------------------
def _grads(store, net, real_feats, opts):
    synth = build(store, "idtd", 1, {**FAST, "k": 2, "div": "text", **opts}, seed=0)
    loss, parts = synth.class_loss(0, net, real_feats, torch.Generator().manual_seed(0))
    loss.backward()
    grads = {n: p.grad for n, p in synth.named_parameters()}
    return synth, grads, parts


def test_idtd_ablation_switches_by_their_effect_on_the_gradients(store3):
    """Each switch adds or removes exactly its loss term: L_M(V′) is the only term reaching
    the fusor; L_M(D) and L_div reach only the pool and selectors; the full gradient is the
    sum of the three; Table 3-C trains the pool/selectors by L_M(D) + α1·L_div only, 3-B has
    no pool, 3-A nothing. (``div=text`` so that L_div always has a gradient: the hinge is 0
    once the segments are spread.)"""
    net = fresh_net(3, 8, 48, 0.125, seed=3)
    with torch.no_grad():
        real_feats = net.embed(store3.tensor(store3.indices("train", 0)))
    _, full, p_full = _grads(store3, net, real_feats, {})
    _, t4a, p_a = _grads(store3, net, real_feats, {"ablation": "t4-a"})
    _, t4b, p_b = _grads(store3, net, real_feats, {"ablation": "t4-b"})
    _, t4c, p_c = _grads(store3, net, real_feats, {"ablation": "t4-c"})
    assert set(p_a) == {"l_m_vid", "loss"}
    assert set(p_b) == {"l_div", "l_m_vid", "loss"}
    assert set(p_c) == {"l_m_seg", "l_m_vid", "loss"}
    assert set(p_full) == {"l_m_seg", "l_div", "l_m_vid", "loss"}
    fusor = [n for n in full if n.startswith("fus_") and n.endswith(".0")]
    gen_params = ["pool.0", "sel_w.0", "sel_b.0"]
    assert sorted(fusor) == ["fus_bias.0", "fus_kernel.0", "fus_mix.0"]
    for name, g in full.items():  # one class's loss reaches only that class's tensors
        if not name.endswith(".0"):
            assert g is None and t4a[name] is None, name
    for n in fusor:  # the fusor sees L_M(V′) and nothing else
        assert t4a[n].abs().max() > 0, n
        for other in (t4b, t4c, full):
            assert torch.allclose(other[n], t4a[n], rtol=1e-5, atol=1e-12), n
    for n in gen_params:
        g_div, g_seg = t4b[n] - t4a[n], t4c[n] - t4a[n]
        scale = full[n].abs().max()
        assert t4a[n].abs().max() > 0  # L_M(V′) reaches the generator through the fusor
        assert g_div.abs().max() > 1e-4 * scale and g_seg.abs().max() > 1e-4 * scale, n
        assert torch.allclose(full[n], t4a[n] + g_div + g_seg, rtol=1e-4, atol=1e-6 * scale), n
    c, t3c, p_3c = _grads(store3, net, real_feats, {"ablation": "t3-c"})
    assert set(p_3c) == {"l_m_seg", "l_div", "loss"}
    assert len(c.fus_mix) == len(c.fus_kernel) == len(c.fus_bias) == 0
    for n in gen_params:  # L_M(D) + α1·L_div = the full gradient minus the fusor term's
        scale = full[n].abs().max()
        assert torch.allclose(t3c[n], full[n] - t4a[n], rtol=1e-4, atol=1e-6 * scale), n
    b, t3b, p_3b = _grads(store3, net, real_feats, {"ablation": "t3-b"})
    assert set(p_3b) == {"l_m_seg", "l_div", "l_m_vid", "loss"} and len(b.pool) == 0
    assert t3b["seg.0"].abs().max() > 0 and all(t3b[n].abs().max() > 0 for n in fusor)
    a = build(store3, "idtd", 1, {**FAST, "ablation": "t3-a"}, seed=0)
    assert a.make_optimizers() == {} and not any(p.requires_grad for p in a.parameters())
    with pytest.raises(ValueError, match="unknown IDTD ablation"):
        build(store3, "idtd", 1, {"ablation": "t9"})
    with pytest.raises(ValueError, match="unknown option"):
        build(store3, "idtd", 1, {"alpha3": "1"})


# -- DM: lr, embedding, clip-consistent augmentation ----------------------------------------
def _moving_clip(b: int = 2, t: int = 8, size: int = 48) -> torch.Tensor:
    x = torch.zeros(b, 3, t, size, size)
    for f in range(t):
        x[:, :, f, 20:28, 4 + 3 * f : 12 + 3 * f] = 1.0
    return x + 0.1 * torch.randn(b, 3, 1, size, size, generator=torch.Generator().manual_seed(0))


def test_clip_augmentation_is_the_same_on_every_frame_and_for_real_and_synthetic():
    """Every op (colour, crop, cutout, scale; no flip or rotation): a still clip stays still;
    the geometric ops act on each frame exactly as on that frame alone; the same parameters
    on a concatenated batch equal them on its parts (the real and the synthetic batch get
    one transform: Siamese); a crop moves the moving square but keeps its 3 px/frame."""
    assert set(clip_aug.OPS) == {"color", "crop", "cutout", "scale"}
    gen = torch.Generator().manual_seed(0)
    still = torch.randn(2, 3, 1, 48, 48, generator=gen).expand(-1, -1, 8, -1, -1).contiguous()
    moving = _moving_clip()
    seen = set()
    for _ in range(40):
        p = clip_aug.sample_params(48, gen)
        seen.add(p["op"])
        out = clip_aug.apply(still, p)
        assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-6), p
        both = clip_aug.apply(torch.cat([still, moving]), p)
        assert torch.allclose(
            both, torch.cat([clip_aug.apply(still, p), clip_aug.apply(moving, p)]), atol=1e-5
        )
        if p["op"] != "color":  # colour's contrast centre is the clip's mean (all frames)
            frames = [clip_aug.apply(moving[:, :, f : f + 1], p) for f in range(8)]
            assert torch.allclose(clip_aug.apply(moving, p), torch.cat(frames, 2), atol=1e-5)
    assert seen == set(clip_aug.OPS)
    shifted = clip_aug.apply(_square_only(), {"op": "crop", "dx": 1, "dy": 2})
    cx = _centroid_x(shifted)
    assert torch.allclose(cx.diff(dim=1), torch.full_like(cx[:, 1:], 3.0), atol=1e-4)
    a = clip_aug.sample_params(48, torch.Generator().manual_seed(5))
    assert a == clip_aug.sample_params(48, torch.Generator().manual_seed(5))  # seeded


def _square_only(t: int = 8, size: int = 48) -> torch.Tensor:
    x = torch.zeros(2, 3, t, size, size)
    for f in range(t):
        x[:, :, f, 20:28, 4 + 3 * f : 12 + 3 * f] = 1.0
    return x


def test_dm_augmentation_is_siamese_differentiable_and_off_by_default(store3, monkeypatch):
    assert build(store3, "dm", 1, FAST).config.lr == 30.0  # VDSD's DM run on MiniUCF
    assert build(store3, "dm", 1, FAST).config.augment == "none"
    synth = build(store3, "dm", 1, {**FAST, "augment": "clip"}, seed=0)
    calls = []
    orig = clip_aug.apply

    def spy(x, p):
        calls.append((x.requires_grad, p))
        return orig(x, p)

    monkeypatch.setattr(clip_aug, "apply", spy)
    net = fresh_net(3, 8, 48, 0.125, seed=3)
    real = store3.tensor(store3.indices("train", 0))
    for seed in range(6):
        calls.clear()
        loss = synth.class_loss(0, net, real, torch.Generator().manual_seed(seed))
        (real_call, syn_call) = calls
        assert real_call[1] is syn_call[1]  # one transform for the real and the synthetic batch
        assert not real_call[0] and syn_call[0]
    synth.zero_grad(set_to_none=True)
    loss.backward()
    assert synth.syn[0].grad is not None and synth.syn[0].grad.abs().max() > 0
    calls.clear()
    off = build(store3, "dm", 1, FAST, seed=0)
    off.class_loss(0, net, real, torch.Generator().manual_seed(0))
    assert calls == []
    with pytest.raises(ValueError, match="augment must be one of"):
        build(store3, "dm", 1, {"augment": "flip"})


def test_synthesizers_match_the_embed_by_default(store3):
    """φ = ``net.embed`` (VDSD's, time kept) unless ``embedding=features`` asks otherwise."""
    net = fresh_net(3, 8, 48, 0.125, seed=3)
    x = store3.tensor(store3.indices("train", 0))
    for method in ("dm", "idtd", "vdsd"):
        synth = build(store3, method, 1, FAST)
        assert synth.config.embedding == "embed"
        assert torch.equal(synth.phi(net, x), net.embed(x))
        pooled = build(store3, method, 1, {**FAST, "embedding": "features"})
        assert torch.equal(pooled.phi(net, x), net.features(x))
    with pytest.raises(ValueError, match="embedding must be one of"):
        build(store3, "dm", 1, {"embedding": "logits"})


# -- VDSD as its code ------------------------------------------------------------------------
def test_vdsd_hallucinator_is_one_default_initialised_conv(store3):
    v = build(store3, "vdsd", 1, FAST, seed=0)
    convs = [m for m in v.hallucinator.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == 1 and len(list(v.hallucinator.parameters())) == 2
    conv = convs[0]
    assert (conv.in_channels, conv.out_channels) == (4, 3)
    assert conv.kernel_size == (3, 3, 3) and conv.padding == (1, 1, 1)
    bound = 1 / (4 * 27) ** 0.5  # PyTorch's default (kaiming-uniform a=√5) range
    assert 0 < conv.weight.abs().max() <= bound and conv.weight.std() > bound / 4
    still, dyn = v.still[0][:1], v.dyn[0][:1]
    base = still[:, :, None].expand(-1, -1, 8, -1, -1)
    with torch.no_grad():  # no residual: the conv's output is the clip
        assert torch.allclose(v.hallucinator(still, dyn), conv(torch.cat([base, dyn], 1)))
    same = build(store3, "vdsd", 1, FAST, seed=0)
    assert torch.equal(same.hallucinator.encoder.weight, conv.weight)  # seeded


def test_vdsd_published_learning_rates_per_vpc(store3):
    one, five = build(store3, "vdsd", 1, FAST), build(store3, "vdsd", 5, FAST)
    assert (one.config.lr_dynamic, one.config.lr_hal) == (1e-4, 1e-5)
    assert (five.config.lr_dynamic, five.config.lr_hal) == (1e3, 1e-6)
    assert one.meta()["lr_source"]["lr_dynamic"] == "VDSD README, VPC 1"
    opt = five.make_optimizers()["dynamic"]
    assert isinstance(opt, torch.optim.SGD) and [g["lr"] for g in opt.param_groups] == [1e3, 1e-6]
    assert all(g["momentum"] == 0.95 for g in opt.param_groups)
    # stills: our DM's optimiser (VDSD's lr_static 100 / momentum 0.95 diverged on toy)
    static = five.make_optimizers()["static"].param_groups[0]
    assert (static["lr"], static["momentum"]) == (30.0, 0.5)
    mine = build(store3, "vdsd", 1, {**FAST, "lr_dynamic": "0.5"})
    assert mine.config.lr_dynamic == 0.5 and mine.config.lr_hal == 1e-5
    assert mine.meta()["lr_source"] == {"lr_dynamic": "set", "lr_hal": "VDSD README, VPC 1"}


def test_vdsd_pairs_one_random_still_and_map_per_slot_per_step(store3, monkeypatch):
    """Stage 2: each class's training clips are vpc (one per slot), each from a random still
    and a random map OF ITS SLOT, redrawn every step; one optimiser step per iteration."""
    vpc = 3
    v = build(store3, "vdsd", vpc, {**FAST, "iterations": 2, "static_fraction": 0.0}, seed=0)
    opts = v.make_optimizers()
    seen: list[tuple[list[int], list[int]]] = []
    orig = v.class_videos

    def spy(c, static_only=False, pairs=None):
        assert not static_only and pairs is not None
        seen.append((pairs[0].tolist(), pairs[1].tolist()))
        return orig(c, static_only, pairs)

    monkeypatch.setattr(v, "class_videos", spy)
    steps = []
    orig_step = opts["dynamic"].step
    monkeypatch.setattr(opts["dynamic"], "step", lambda *a, **k: steps.append(1) or orig_step())
    net = fresh_net(3, 8, 48, 0.125, seed=0)
    sampler = RealSampler(store3, batch=2)
    for it in range(6):
        v.step(it, net, sampler, torch.Generator().manual_seed(it), opts)
    assert len(seen) == 6 * 3 and len(steps) == 6
    for si, di in seen:
        assert len(si) == len(di) == vpc
        assert all(2 * slot <= s <= 2 * slot + 1 for slot, s in enumerate(si))
        assert all(2 * slot <= d <= 2 * slot + 1 for slot, d in enumerate(di))
    assert len({tuple(s) + tuple(d) for s, d in seen}) > 3  # redrawn, not one fixed pairing


def test_vdsd_evaluation_pairs_and_stored_bytes(store3):
    v = build(store3, "vdsd", 1, FAST, seed=0)
    videos, labels = v.videos()
    assert videos.shape == (12, 3, 8, 48, 48) and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    stills = 3 * 2 * 3 * 48 * 48 * 4
    dyn = 3 * 2 * 1 * 8 * 48 * 48 * 4
    hal = (4 * 3 * 27 + 3) * 4
    assert v.bytes_stored() == stills + dyn + hal
    # default: one random combination per slot per evaluator epoch (VDSD's dataset)
    assert v.meta()["epoch_groups"] == [0] * 4 + [1] * 4 + [2] * 4
    assert "epoch_groups" not in build(store3, "vdsd", 1, {**FAST, "eval_pairs": "all"}).meta()
    from vidistill.evaluate import TrainingSet
    from vidistill.synthetic import SyntheticSet

    ts = TrainingSet.from_synthetic(SyntheticSet(videos, labels, ["a", "b", "c"], v.meta()))
    assert ts.clips_per_epoch == 3
    gen = torch.Generator().manual_seed(0)
    picks = [ts.epoch_order(gen).tolist() for _ in range(20)]
    for order in picks:
        assert sorted(i // 4 for i in order) == [0, 1, 2]  # one per slot
    assert len({tuple(sorted(o)) for o in picks}) > 1  # a different combination per epoch


# -- optimisation ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,opts",
    [
        ("dm", {}),
        ("dm", {"augment": "clip"}),
        ("idtd", {"init": "real"}),
        ("idtd", {"init": "real", "fusor": "strided", "div": "normalised"}),
        ("vdsd-static", {}),
        ("vdsd-dynamic", {"dynamic_optimizer": "adam", "lr_dynamic": 1e-3, "lr_hal": 1e-3}),
    ],
)
def test_one_step_lowers_matching_loss_on_fixed_batch(store3, method, opts):
    """Default lrs (VDSD's dynamic stage via its Adam option: its published SGD rates at
    VPC 1, 1e-4 / 1e-5, barely move the set in one step)."""
    synth = build(store3, method.split("-")[0], 1, {**FAST, **opts, "iterations": 2}, seed=0)
    optims = synth.make_optimizers()
    net = fresh_net(3, 8, 48, 0.25, seed=3)
    real = store3.tensor(store3.indices("train", 0))
    with torch.no_grad():
        real_feats = synth.phi(net, real)

    def loss() -> torch.Tensor:
        fixed = torch.Generator().manual_seed(0)  # τ's interval / the augmentation, fixed
        if method == "idtd":
            return synth.class_loss(0, net, real_feats, fixed)[0]
        if method == "dm":
            return synth.class_loss(0, net, real, fixed)
        return matching_loss(
            real_feats, synth.phi(net, synth.class_videos(0, static_only=method == "vdsd-static"))
        )

    opt = {"vdsd-static": optims.get("static"), "vdsd-dynamic": optims.get("dynamic")}.get(
        method, next(iter(optims.values()))
    )
    before = loss()
    opt.zero_grad(set_to_none=True)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


# -- memory is bounded by one class ----------------------------------------------------
class _Recorder(torch.nn.Module):
    """Wraps φ: records the largest batch (in elements) fed to ``embed``/``features``."""

    def __init__(self, net):
        super().__init__()
        self.net, self.max_numel = net, 0

    def embed(self, x):
        self.max_numel = max(self.max_numel, x.numel())
        return self.net.embed(x)

    def features(self, x):
        self.max_numel = max(self.max_numel, x.numel())
        return self.net.features(x)


def _one_iteration(store, vpc=1):
    synth = build(store, "idtd", vpc, {**FAST, "iterations": 1}, seed=0)
    optims = synth.make_optimizers()
    opt = optims["idtd"]
    owner = {}
    for name, p in synth.named_parameters():
        owner[id(p)] = int(name.split(".")[1])  # pool.<c>, sel_w.<c>, ... → class c
    stepped_classes = []
    orig_step = opt.step

    def spy_step(*a, **k):
        with_grad = {
            owner[id(p)] for g in opt.param_groups for p in g["params"] if p.grad is not None
        }
        stepped_classes.append(with_grad)
        return orig_step(*a, **k)

    opt.step = spy_step
    sampler = RealSampler(store, batch=4)
    net = _Recorder(fresh_net(store.num_classes, 8, 48, 0.125, seed=0))
    synth.step(0, net, sampler, torch.Generator().manual_seed(0), optims)
    return net.max_numel, sampler.pulled, stepped_classes


def test_idtd_memory_grows_with_one_class_not_the_dataset(tmp_path, store3):
    small = _store(tmp_path / "toy2", 2)
    big = _store(tmp_path / "toy6", 6)
    peak2, pulled2, stepped2 = _one_iteration(small)
    peak6, pulled6, stepped6 = _one_iteration(big)
    assert peak2 == peak6 > 0  # largest tensor through φ is one class's segments, whatever N is
    assert pulled2 == [0, 1] and pulled6 == list(range(6))  # the loader pulls one class per step
    assert stepped6 == [{c} for c in range(6)]  # each update touches exactly one class's tensors
    assert stepped2 == [{0}, {1}]


# -- runner: outputs and the evaluator round trip (resume: tests/test_resume.py) --------
def test_outputs_load_and_train_in_the_evaluator(tmp_path, store3):
    out = tmp_path / "idtd"
    syn = synthesize(
        store3, "idtd", 2, out, options={**FAST, "iterations": 1}, seed=0, progress=False
    )
    loaded = SyntheticSet.load(out)
    assert loaded.videos.shape == (6, 3, 8, 48, 48) and loaded.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.allclose(loaded.videos, syn.videos)
    assert loaded.meta["method"] == "idtd" and loaded.meta["config"]["alpha1"] == 0.05
    assert loaded.meta["config"]["fusor"] == "aligned" and loaded.meta["config"]["div"] == "hinge"
    preview = ClipStore(out / "preview")
    assert len(preview) == 6 and preview.videos.dtype.name == "uint8"
    from vidistill.evaluate import Recipe, TrainingSet, train_net

    ts = TrainingSet.from_synthetic(loaded)  # the learned float videos as they are, labelled
    assert torch.equal(ts.batch(torch.arange(6)), loaded.videos)
    assert ts.labels.tolist() == loaded.labels.tolist() and ts.kind == "synthetic"
    # the evaluator really learns from them: measured at seeds 0-2 (lr 0.1, 60 epochs),
    # train accuracy 6/6 and final loss 0.34-0.67, from ln 3 = 1.10 at chance (30 epochs:
    # 3/6-5/6, too close to chance to tell learning from luck)
    _, stats = train_net(ts, Recipe(width=0.125, epochs=60, batch_size=6, lr=0.1), seed=0)
    assert not stats.diverged and stats.train_acc >= 4 / 6, stats
    assert stats.train_loss < 0.95 < 1.05 < stats.loss_curve[0], stats.loss_curve


def test_done_json_says_how_far_the_videos_moved_from_their_initialisation(tmp_path, store3):
    opts = {**FAST, "iterations": 3, "init": "real"}
    still = synthesize(store3, "dm", 1, tmp_path / "lr0", {**opts, "lr": 0.0}, progress=False)
    moved = synthesize(store3, "dm", 1, tmp_path / "lr30", opts, progress=False)
    assert still.meta["moved_from_init"] == {"mean_abs_levels": 0.0, "changed_fraction": 0.0}
    # the same real clips as a start (same seed), moved by lr 30's updates
    assert moved.meta["moved_from_init"]["mean_abs_levels"] > 0
    assert 0 < moved.meta["moved_from_init"]["changed_fraction"] <= 1
    done = json.loads((tmp_path / "lr30" / "done.json").read_text())
    assert done["moved_from_init"] == moved.meta["moved_from_init"]
