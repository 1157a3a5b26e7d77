"""A network trained by the evaluator on toy real clips scores far above chance on the
real test split — the ruler can measure something. Kept small for 2 CPU cores: two
motion classes that one frame cannot tell apart (slide-right vs slide-left), 48 px
clips, ConvNet3D at width 1/8, 12 epochs (2,400 clip passes). Marked slow: ~11 s on one
free core (95 % top-1, AUC 99 at seed 0 on the current toy defaults)."""

from __future__ import annotations

import pytest

from vidistill.clipstore import ClipSpec
from vidistill.datasets.toy import ToyDataset
from vidistill.evaluate import Recipe, evaluate, full_real
from vidistill.prepare import prepare

TRAIN_PER_CLASS, TEST_PER_CLASS = 100, 20
RECIPE = Recipe(net="convnet3d", width=0.125, epochs=12, batch_size=16, lr=0.01)


@pytest.mark.slow
def test_trained_net_is_far_above_chance(tmp_path):
    ds = ToyDataset(num_classes=2, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS)
    store = prepare(ds, tmp_path / "toy2", ClipSpec(size=48), workers=1, progress=False)
    row = evaluate(full_real(store), store, RECIPE, runs=1, seed=0, progress=False)
    run = row["per_run"][0]
    assert not run["diverged"], run["diverged_reason"]
    # chance is 50 %; 40 test clips, so 75 % is > 3 binomial standard deviations above it
    assert row["top1_mean"] >= 75.0, row
    assert row["auc_mean"] >= 80.0, row
