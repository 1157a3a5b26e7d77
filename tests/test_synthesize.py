"""Synthesizers: losses against hand computations, τ, optimisation, class-bounded memory,
resumable checkpoints, ablation layouts, and the evaluator round trip. Tiny stores, < 30 s."""

from __future__ import annotations

import pytest
import torch

from vidistill import registry
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.datasets.toy import ToyDataset
from vidistill.prepare import prepare
from vidistill.synthesize import build, diversity_loss, matching_loss, synthesize
from vidistill.synthesize.common import RealSampler, fresh_net
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


# -- optimisation ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,opts",
    [
        ("dm", {}),
        ("idtd", {"init": "real"}),
        ("idtd", {"init": "real", "div_features": "normalised"}),
        ("vdsd-static", {}),
        ("vdsd-dynamic", {"dynamic_optimizer": "adam", "lr_dynamic": 1e-3, "lr_hal": 1e-3}),
    ],
)
def test_one_step_lowers_matching_loss_on_fixed_batch(store3, method, opts):
    """Default lrs (VDSD's dynamic stage via its Adam option: its SGD at 0.01 barely moves)."""
    synth = build(store3, method.split("-")[0], 1, {**FAST, **opts, "iterations": 2}, seed=0)
    optims = synth.make_optimizers()
    net = fresh_net(3, 8, 48, 0.25, seed=3)
    real = store3.tensor(store3.indices("train", 0))
    with torch.no_grad():
        real_feats = net.features(real)
    if method == "vdsd-dynamic":  # as after stage 2's first step: last conv off its zero init
        with torch.no_grad():
            torch.nn.init.normal_(synth.hallucinator.conv2.weight, std=0.01)

    def loss() -> torch.Tensor:
        if method == "idtd":
            # the total IDTD objective, with τ's interval fixed by a fixed generator
            return synth.class_loss(0, net, real_feats, torch.Generator().manual_seed(0))[0]
        if method == "dm":
            return matching_loss(real_feats, net.features(synth.syn[0]))
        return matching_loss(
            real_feats, net.features(synth.class_videos(0, static_only=method == "vdsd-static"))
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


def test_idtd_normalised_diversity_is_bounded_and_scale_free(store3):
    """The opt-in bounded L_div: every pair of unit-norm features is at most 4 apart, and
    scaling a class's segments inflates the raw Eq. 1 (~quadratically) but not the bound."""
    synth = build(store3, "idtd", 1, {**FAST, "init": "real", "iterations": 1}, seed=0)
    net = fresh_net(3, 8, 48, 0.25, seed=3)
    segs = synth.segments(0).detach()
    m, k = segs.shape[:2]

    def div(x: torch.Tensor, normalised: bool) -> float:
        f = net.features(x.flatten(0, 1)).view(m, k, -1)
        f = torch.nn.functional.normalize(f, dim=-1) if normalised else f
        return float(diversity_loss(f))

    with torch.no_grad():
        assert div(segs, True) <= 4 * m * k * (k - 1) / 2
        assert div(10 * segs, False) > 50 * div(segs, False)
        assert div(10 * segs, True) <= 4 * m * k * (k - 1) / 2  # biases: not exactly scale-free
    with pytest.raises(ValueError, match="div_features"):
        build(store3, "idtd", 1, {**FAST, "div_features": "cosine"}, seed=0)


# -- memory is bounded by one class ----------------------------------------------------
class _Recorder(torch.nn.Module):
    """Wraps φ: records the largest batch (in elements) fed to ``features``."""

    def __init__(self, net):
        super().__init__()
        self.net, self.max_numel = net, 0

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
    preview = ClipStore(out / "preview")
    assert len(preview) == 6 and preview.videos.dtype.name == "uint8"
    from vidistill.evaluate import Recipe, TrainingSet, train_net

    ts = TrainingSet.from_synthetic(loaded)  # the learned float videos as they are, labelled
    assert torch.equal(ts.batch(torch.arange(6)), loaded.videos)
    assert ts.labels.tolist() == loaded.labels.tolist() and ts.kind == "synthetic"
    # the evaluator really learns from them: measured at seeds 0-2 (lr 0.1, 30 epochs),
    # train accuracy 5/6 and final loss 0.48-0.75, from ln 3 = 1.10 at chance
    _, stats = train_net(ts, Recipe(width=0.125, epochs=30, batch_size=6, lr=0.1), seed=0)
    assert not stats.diverged and stats.train_acc >= 4 / 6, stats
    assert stats.train_loss < 0.9 < stats.loss_curve[0], stats.loss_curve


# -- ablations and VDSD accounting -----------------------------------------------------
def test_idtd_ablation_layouts(store3):
    a = build(store3, "idtd", 1, {**FAST, "ablation": "t3-a"}, seed=0)
    assert a.make_optimizers() == {}
    segs = a.segments(0)  # (1, K, 3, T, H, W) fixed real clips
    v = a.class_videos(0)
    k = segs.shape[1]
    for t in range(
        8
    ):  # frame t = middle frame of the t-th stride of the time-concatenated segments
        pos = t * k + k // 2
        assert torch.equal(v[0, :, t], segs[0, pos // 8, :, pos % 8])
    b = build(store3, "idtd", 1, {**FAST, "ablation": "t3-b"}, seed=0)
    assert not hasattr(b, "pool") or len(b.pool) == 0
    assert b.seg[0].requires_grad and len(b.fus_w) == 3
    # fusor initialised to the average: output frame t = mean of its K-frame window
    segs_b = b.segments(0).detach()
    seq = segs_b.permute(0, 2, 1, 3, 4, 5).reshape(1, 3, k * 8, 48, 48)
    assert torch.allclose(
        b.class_videos(0).detach()[:, :, 2], seq[:, :, 2 * k : 3 * k].mean(2), atol=1e-5
    )
    c = build(store3, "idtd", 1, {**FAST, "ablation": "t3-c"}, seed=0)
    assert not c.config.loss_fusor_match and len(c.fus_w) == 0 and len(c.pool) == 3
    t4 = {
        name: build(store3, "idtd", 1, {**FAST, "ablation": name}, seed=0).config
        for name in ("t4-a", "t4-b", "t4-c")
    }
    assert (t4["t4-a"].loss_sel_match, t4["t4-a"].loss_div, t4["t4-a"].loss_fusor_match) == (
        False,
        False,
        True,
    )
    assert (t4["t4-b"].loss_sel_match, t4["t4-b"].loss_div, t4["t4-b"].loss_fusor_match) == (
        False,
        True,
        True,
    )
    assert (t4["t4-c"].loss_sel_match, t4["t4-c"].loss_div, t4["t4-c"].loss_fusor_match) == (
        True,
        False,
        True,
    )
    with pytest.raises(ValueError, match="unknown IDTD ablation"):
        build(store3, "idtd", 1, {"ablation": "t9"})
    with pytest.raises(ValueError, match="unknown option"):
        build(store3, "idtd", 1, {"alpha3": "1"})


def test_vdsd_counts_every_stored_byte(store3):
    v = build(store3, "vdsd", 1, FAST, seed=0)
    videos, labels = v.videos()
    assert videos.shape == (12, 3, 8, 48, 48) and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    stills = 3 * 2 * 3 * 48 * 48 * 4
    dyn = 3 * 2 * 1 * 8 * 48 * 48 * 4
    hal = sum(p.numel() for p in v.hallucinator.parameters()) * 4
    assert v.bytes_stored() == stills + dyn + hal
