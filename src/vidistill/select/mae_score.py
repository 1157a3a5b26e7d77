"""``mae-score``: the VPC clips the classifier is most confident belong to their own class.

The diffusion paper ranks videos by a pretrained VideoMAE classifier's score; no such
model exists for toy or for our class lists, so the score is the ``classifier``
embedder's confidence in the clip's own class. Ignores diversity by design.

* **Score = own-class log-odds** ``z_c − logsumexp_{j≠c} z_j`` from the stored logits
  (``select.base.own_class_log_odds``), float64. The softmax probability itself saturates
  at exactly 1.0 in float32 for confident clips (and log p at 0 even in float64): ranking
  by it left the pick to store order (saved toy selections were positions 0–13 of 100).
  The log-odds are a monotone transform of the paper's probability score, so the ranking
  is the paper's wherever that one is defined, and unsaturated where it is not.
* **Ties** (equal scores: identical clips, or an older embeddings file with only
  saturated probabilities) are broken by the seeded per-class generator, never by
  store order — so the pick depends on the run seed only where the score cannot decide.
"""

from __future__ import annotations

import numpy as np

from vidistill.select.base import ClassData, class_rng, selector


@selector("mae-score", needs=("scores",))
def select_mae_score(data: ClassData, vpc: int, seed: int = 0) -> np.ndarray:
    if data.scores is None:
        raise ValueError(
            f"class {data.name!r}: mae-score needs own-class scores "
            "(embed with --embedder classifier)"
        )
    score = np.asarray(data.scores, np.float64)
    tie_break = class_rng(seed, data.label).permutation(len(score))
    return np.lexsort((tie_break, -score))[:vpc]  # last key first: score, then the draw
