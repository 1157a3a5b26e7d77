"""``mae-score``: the VPC clips the classifier is most confident belong to their own class.

The diffusion paper ranks videos by a pretrained VideoMAE classifier's score; no such
model exists for toy or for our class lists, so the score is the ``classifier``
embedder's softmax probability of the clip's own class (``probs`` in its embeddings
file). Ignores diversity by design. Ties go to the lowest index.
"""

from __future__ import annotations

import numpy as np

from vidistill.select.base import ClassData, selector


@selector("mae-score", needs=("scores",))
def select_mae_score(data: ClassData, vpc: int, seed: int = 0) -> np.ndarray:
    if data.scores is None:
        raise ValueError(
            f"class {data.name!r}: mae-score needs own-class probabilities "
            "(embed with --embedder classifier)"
        )
    return np.argsort(-np.asarray(data.scores, np.float64), kind="stable")[:vpc]
