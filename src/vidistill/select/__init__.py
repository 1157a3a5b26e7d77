"""Selectors (registry kind ``selector``): choose VPC clips per class from a pool.

One file per method: ``random``, ``tac-dt`` (the diffusion paper's training-free
selector), ``mae-score``, ``csta``, ``dm-mmd`` (its baselines), ``herding`` and
``k-center`` (coreset baselines), ``vst-unet`` (the paper's learned selector, fitted on
all classes first). Each is ``fn(ClassData, vpc, seed, **options)`` →
positions; :func:`select_store` runs one over a ClipStore's embeddings file.
"""

from vidistill.select import (  # noqa: F401  (registration)
    csta,
    dm_mmd,
    herding,
    k_center,
    mae_score,
    random,
    tac_dt,
    vst_unet,
)
from vidistill.select.base import ClassData, run_selector, select_arrays, select_store, selector

__all__ = ["ClassData", "run_selector", "select_arrays", "select_store", "selector"]
