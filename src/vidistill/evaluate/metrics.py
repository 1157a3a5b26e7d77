"""Classification metrics, written out (NumPy) so each definition is visible and testable
against scikit-learn: top-1, top-k, macro one-vs-rest AUC, macro F1, per-class accuracy.

All values are fractions in [0, 1] here; result rows report them in percent.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def topk_accuracy(y: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is among the ``k`` highest scores (k ≥ classes → 1)."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == y[:, None]).any(axis=1).mean())


def binary_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC = P(score_pos > score_neg) + ½·P(tie) (Mann–Whitney U over mid-ranks)."""
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), float)
    sorted_scores = scores[order]
    # mid-ranks for ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mid = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(mid, counts)
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def macro_ovr_auc(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean over classes of the one-vs-rest AUC of that class's probability.

    Classes with no positive (or no negative) sample have no AUC and are left out of the
    mean (scikit-learn raises instead); NaN when no class qualifies.
    """
    aucs = []
    for c in range(probs.shape[1]):
        is_c = y == c
        if is_c.any() and (~is_c).any():
            aucs.append(binary_auc(probs[is_c, c], probs[~is_c, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


def macro_f1(y: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over all ``num_classes`` classes (0 where undefined)."""
    f1s = []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s))


def per_class_accuracy(y: np.ndarray, pred: np.ndarray, num_classes: int) -> list[float]:
    """Recall of each class (NaN for a class absent from ``y``)."""
    out = []
    for c in range(num_classes):
        m = y == c
        out.append(float((pred[m] == c).mean()) if m.any() else float("nan"))
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def classification_metrics(
    y_true: Any, scores: Any, num_classes: int | None = None, scores_are_probs: bool = False
) -> dict[str, Any]:
    """Metrics of predictions ``scores`` (logits, or probabilities with ``scores_are_probs``).

    Returns fractions: ``top1, top5, auc`` (macro one-vs-rest on softmax probabilities),
    ``f1`` (macro), ``per_class_acc`` (list), ``n``. top-5 uses k = min(5, classes).
    """
    y = _as_np(y_true).astype(np.int64).ravel()
    s = _as_np(scores).astype(np.float64)
    # A diverged net emits NaN/inf: score it as the (meaningless) predictions it makes
    # instead of crashing; the run is flagged `diverged` by the trainer anyway.
    s = np.nan_to_num(s, nan=0.0, posinf=1e6, neginf=-1e6)
    if s.ndim != 2 or s.shape[0] != y.shape[0]:
        raise ValueError(f"scores must be (N, classes) with N = {y.shape[0]}, got {s.shape}")
    c = num_classes or s.shape[1]
    if s.shape[1] != c:
        raise ValueError(f"scores have {s.shape[1]} columns but num_classes = {c}")
    probs = s if scores_are_probs else softmax(s)
    pred = s.argmax(axis=1)
    return {
        "top1": float((pred == y).mean()),
        "top5": topk_accuracy(y, s, 5),
        "auc": macro_ovr_auc(y, probs),
        "f1": macro_f1(y, pred, c),
        "per_class_acc": per_class_accuracy(y, pred, c),
        "n": int(y.shape[0]),
    }
