"""Our metric code agrees with scikit-learn on hand-made and random predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score, roc_auc_score, top_k_accuracy_score

from vidistill.evaluate import classification_metrics
from vidistill.evaluate.metrics import binary_auc, softmax


def test_hand_made_predictions():
    # 3 classes, 6 samples; two mistakes (sample 2: 0→1, sample 5: 2→0).
    y = np.array([0, 0, 0, 1, 1, 2])
    logits = np.array(
        [
            [3.0, 1.0, 0.0],
            [2.0, 0.5, 0.1],
            [0.2, 1.5, 0.3],
            [0.0, 2.0, 1.0],
            [0.1, 3.0, 0.2],
            [1.2, 0.1, 1.0],
        ]
    )
    m = classification_metrics(y, logits)
    assert m["top1"] == pytest.approx(4 / 6)
    assert m["per_class_acc"] == pytest.approx([2 / 3, 1.0, 0.0])
    # F1: class0 tp2 fp1 fn1 → 2/3; class1 tp2 fp1 fn0 → 0.8; class2 tp0 → 0
    assert m["f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert m["top5"] == 1.0  # k = min(5, 3 classes)
    probs = softmax(logits)
    assert m["auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["f1"] == pytest.approx(f1_score(y, logits.argmax(1), average="macro"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_predictions_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    c, n = 10, 200
    y = np.concatenate([np.arange(c), rng.integers(0, c, n - c)])  # every class present
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y] * rng.random((n, 1))
    logits[:5, :] = logits[:5, :1]  # some exactly tied rows
    m = classification_metrics(y, logits)
    pred = logits.argmax(1)
    labels = list(range(c))
    assert m["top1"] == pytest.approx(np.mean(pred == y))
    # top-k among exactly tied scores is a convention (sklearn and we break ties differently):
    # compare it on the untied rows.
    untied = classification_metrics(y[5:], logits[5:])
    assert untied["top5"] == pytest.approx(
        top_k_accuracy_score(y[5:], logits[5:], k=5, labels=labels)
    )
    assert m["f1"] == pytest.approx(
        f1_score(y, pred, average="macro", labels=labels, zero_division=0)
    )
    assert m["auc"] == pytest.approx(
        roc_auc_score(y, softmax(logits), multi_class="ovr", average="macro")
    )
    assert m["per_class_acc"] == pytest.approx(recall_score(y, pred, average=None, labels=labels))


def test_binary_auc_with_ties():
    pos, neg = np.array([0.9, 0.5, 0.5]), np.array([0.5, 0.1])
    y = np.r_[np.ones(3), np.zeros(2)]
    assert binary_auc(pos, neg) == pytest.approx(roc_auc_score(y, np.r_[pos, neg]))


def test_absent_class_and_nan_logits():
    y = np.array([0, 0, 1, 1])  # class 2 absent: left out of the AUC mean, 0 in F1
    logits = np.array([[2.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0], [0, 0, 1.0]])
    m = classification_metrics(y, logits, num_classes=3)
    assert m["f1"] == pytest.approx(
        f1_score(y, logits.argmax(1), average="macro", labels=[0, 1, 2], zero_division=0)
    )
    assert np.isnan(m["per_class_acc"][2])
    bad = classification_metrics(y, np.full((4, 3), np.nan))  # a diverged net: scored, not crashed
    assert 0.0 <= bad["top1"] <= 1.0


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="scores must be"):
        classification_metrics([0, 1], np.zeros((3, 2)))
