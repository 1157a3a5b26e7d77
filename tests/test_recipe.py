"""Recipe paths every other test switches off: ``min_steps`` (what toy-quick relies on for
small sets), the "collapsed / never learned" divergence flag, and multi-view testing."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from vidistill.evaluate import Recipe, TrainingSet, predict, train_net

CLASSES = ["a", "b"]


def _videos(kind: str, n_per_class: int = 2, size: int = 48) -> TrainingSet:
    """Float clips (normalised space), two classes. ``same``: every clip identical;
    ``apart``: class 0 dark, class 1 bright (trivially separable)."""
    labels = torch.arange(2).repeat_interleave(n_per_class)
    x = torch.zeros(len(labels), 3, 8, size, size)
    if kind == "apart":
        x += (2.0 * labels - 1.0).view(-1, 1, 1, 1, 1)
    return TrainingSet.from_tensors(x, labels, CLASSES)


# -- min_steps --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n,batch,epochs,min_steps,expected",
    [
        (10, 32, 30, 300, 300),  # 1 step/epoch → 300 epochs (toy-quick at VPC 1, 10 classes)
        (100, 32, 30, 300, 75),  # ⌈100/32⌉ = 4 steps/epoch → ⌈300/4⌉ = 75 epochs
        (90, 32, 30, 300, 100),  # 3 steps/epoch: exactly 100
        (97, 32, 30, 301, 76),  # ⌈301/4⌉ = 76, never fewer steps than asked
        (2000, 32, 30, 300, 30),  # 63 steps/epoch: the preset's 30 epochs already do it
        (10, 32, 30, 0, 30),  # 0 = off
    ],
)
def test_for_set_size_raises_epochs_to_min_steps(n, batch, epochs, min_steps, expected):
    r = Recipe(epochs=epochs, batch_size=batch, min_steps=min_steps).for_set_size(n)
    assert r.epochs == expected
    assert r.epochs * -(-n // batch) >= min_steps  # at least min_steps SGD steps
    assert r.drop_epoch == int(expected * r.lr_drop_at)  # the lr drop moves with the epochs


def test_toy_quick_preset_keeps_min_steps():
    assert Recipe.preset("toy-quick").min_steps == 300
    assert Recipe.preset("toy-quick").for_set_size(10).epochs == 300


def test_train_net_takes_min_steps(monkeypatch):
    """train_net really runs the raised epochs: counted optimiser steps, not just the field."""
    data = _videos("apart")  # 4 clips, batch 4: one step per epoch
    steps = []
    orig = torch.optim.SGD.step

    def counting_step(self, *a, **k):
        steps.append(1)
        return orig(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", counting_step)
    _, stats = train_net(data, Recipe(width=0.125, epochs=1, batch_size=4, min_steps=5), seed=0)
    assert len(steps) == 5 and stats.epochs_run == 5 and len(stats.loss_curve) == 5
    steps.clear()
    _, stats = train_net(data, Recipe(width=0.125, epochs=2, batch_size=4, min_steps=0), seed=0)
    assert len(steps) == 2 and stats.epochs_run == 2


# -- the "collapsed / never learned" flag ------------------------------------------------------
def test_collapsed_net_is_flagged():
    """Identical clips with two labels: any net predicts one class for all, so its train
    accuracy equals the majority rate — flagged, though the loss is finite."""
    _, stats = train_net(_videos("same"), Recipe(width=0.125, epochs=2, batch_size=4), seed=0)
    assert stats.diverged and "collapsed or never learned" in stats.diverged_reason
    assert stats.train_acc == 0.5 and all(map(torch.isfinite, torch.tensor(stats.loss_curve)))


def test_learning_net_is_not_flagged():
    """A separable set learned to 100 % is not flagged (a flag that always fires fails here)."""
    recipe = Recipe(width=0.125, epochs=20, batch_size=4, lr=0.05)
    _, stats = train_net(_videos("apart"), recipe, seed=0)
    assert stats.train_acc == 1.0 and not stats.diverged and stats.diverged_reason is None


# -- multi-view testing ------------------------------------------------------------------------
class _Recorder(nn.Module):
    """A fixed linear classifier on the raw pixels that records every batch it sees."""

    def __init__(self, frames: int, size: int):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * frames * size * size, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return self.fc(x.flatten(1))


def test_predict_averages_the_recipes_test_views():
    """N views = N random circular time shifts, each flipped with probability ½, drawn from
    the seed; the softmax is averaged. Recomputed here from the same generator."""
    t, s = 8, 6
    x = torch.randn(3, 3, t, s, s)
    data = TrainingSet.from_tensors(x, torch.tensor([0, 1, 0]), CLASSES)
    model = _Recorder(t, s)
    single = predict(model, data, Recipe(batch_size=8, test_views=1), device="cpu", seed=4)
    assert len(model.seen) == 1 and torch.equal(model.seen[0], x)

    model.seen.clear()
    multi = predict(model, data, Recipe(batch_size=8, test_views=5), device="cpu", seed=4)
    assert len(model.seen) == 5
    gen = torch.Generator().manual_seed(4)
    expected = torch.zeros(3, 2)
    for seen in model.seen:
        shift = int(torch.randint(0, t, (1,), generator=gen))
        view = torch.roll(x, shifts=shift, dims=2)
        if bool(torch.rand(1, generator=gen) < 0.5):
            view = torch.flip(view, dims=(4,))
        assert torch.equal(seen, view)
        expected += model.fc(view.flatten(1)).softmax(1)
    assert torch.allclose(multi, expected / 5, atol=1e-6)
    assert not torch.allclose(multi, single, atol=1e-3)
    assert torch.allclose(multi.sum(1), torch.ones(3))


# -- VDSD's per-batch standardisation (opt-in) and one-member-per-group epochs -----------------
def test_standardize_batch_in_training_and_testing(monkeypatch):
    """``standardize="batch"``: every batch the net sees, in training and in predict, is
    (x − x.mean()) / x.std() of that batch (VDSD's ``epoch()``); off by default."""
    import vidistill.evaluate.train as train_mod

    t, s = 8, 6
    x = 3.0 + 2.0 * torch.randn(4, 3, t, s, s, generator=torch.Generator().manual_seed(0))
    data = TrainingSet.from_tensors(x, torch.tensor([0, 1, 0, 1]), CLASSES)
    models: list[_Recorder] = []

    def fake_build(recipe, num_classes, frames, size):
        models.append(_Recorder(frames, size))
        return models[-1]

    monkeypatch.setattr(train_mod, "build_net", fake_build)
    for how in (None, "batch"):
        models.clear()
        recipe = Recipe(epochs=2, batch_size=4, standardize=how)
        model, _ = train_net(data, recipe, seed=0)
        n_train = len(model.seen)
        predict(model, data, recipe, device="cpu")
        assert len(model.seen) > n_train >= 2
        for seen in model.seen:
            if how == "batch":
                assert abs(float(seen.mean())) < 1e-5 and abs(float(seen.std()) - 1) < 1e-5
            else:
                assert float(seen.mean()) > 2.5  # the raw batch
    with pytest.raises(ValueError, match="standardize must be None"):
        Recipe(standardize="clip")


def test_grouped_set_trains_one_member_per_group_each_epoch(monkeypatch):
    """A VDSD set (4 combinations per slot = one group): every epoch's batch holds exactly
    one clip of each group, drawn anew each epoch; train accuracy is over all clips."""
    import vidistill.evaluate.train as train_mod

    t, s = 8, 6
    n = 8
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 3, t, s, s).clone()
    labels = torch.tensor([0] * 4 + [1] * 4)
    groups = [0, 0, 1, 1, 2, 2, 3, 3]
    data = TrainingSet(x, labels, CLASSES, "synthetic", groups=groups)
    assert data.clips_per_epoch == 4
    models: list[_Recorder] = []
    monkeypatch.setattr(
        train_mod, "build_net", lambda r, c, f, sz: models.append(_Recorder(f, sz)) or models[-1]
    )
    model, stats = train_net(data, Recipe(epochs=12, batch_size=8), seed=0)
    train_batches = model.seen[:12]
    picks = set()
    for seen in train_batches:
        ids = seen[:, 0, 0, 0, 0].long().tolist()
        assert sorted(i // 2 for i in ids) == [0, 1, 2, 3]  # one per group
        picks.add(tuple(sorted(ids)))
    assert len(picks) > 1  # a different member per epoch
    assert model.seen[12].shape[0] == n  # train accuracy: every clip
    assert 0 <= stats.train_acc <= 1 and stats.clips_per_s > 0
    with pytest.raises(ValueError, match="groups"):
        TrainingSet(x, labels, CLASSES, "synthetic", groups=[0, 1])


def test_recipe_identity_is_stable_when_new_options_are_off():
    """Rows written before ``standardize`` existed keep pairing with today's rows: the key is
    left out of the stored recipe while off, and present when on."""
    assert "standardize" not in Recipe.preset("toy-quick").to_dict()
    assert Recipe.preset("toy-quick").with_(standardize="batch").to_dict()["standardize"] == "batch"
