"""Synthesizers (registry kind ``synthesizer``): learn a small set of float videos.

``dm`` (video distribution matching), ``idtd`` (Feature Pool + Selectors + Temporal
Fusor, with its Table 3/4 ablations) and ``vdsd`` (static + dynamic memory with a
hallucinator). One file per method; ``runner.synthesize`` runs any of them with a
progress bar and resumable checkpoints. Importing this package also registers IDTD's
stochastic temporal augmentation as the evaluator augmentation ``"idtd-temporal"``.
"""

from vidistill.synthesize import dm, idtd, temporal_aug, vdsd  # noqa: F401  (registration)
from vidistill.synthesize.common import Synthesizer, diversity_loss, matching_loss
from vidistill.synthesize.runner import build, synthesize

__all__ = ["Synthesizer", "build", "diversity_loss", "matching_loss", "synthesize"]
