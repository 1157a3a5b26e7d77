"""``tac-dt``: Temporal-Aware Cluster-based Distillation (diffusion-condensation paper, §3.2).

Per class: one embedding per clip → PCA → BIRCH with VPC clusters → the clip nearest
each cluster centre. The paper (and its inspiration TAC-SUM) leaves the PCA size and
BIRCH's parameters unstated; our choices:

* ``pca_dim`` = 32 (capped by n and D): enough to keep a class's main modes for
  ``n_c`` ≈ 100 generated clips, small enough that BIRCH's CF-tree distances are cheap.
  Above the memory budget the PCA is ``IncrementalPCA`` fitted block by block.
* ``branching_factor`` = 50 (scikit-learn's default, BIRCH paper's order of magnitude).
* ``threshold`` (max sub-cluster radius) is scale-dependent, so a fixed number would
  be wrong for every embedder but one. ``"auto"``: half the median nearest-neighbour
  distance of (up to 2,048 sampled) PCA points, then doubled while the CF-tree has
  more than ``max_subclusters`` (2,000) leaves — bounding the O(m²) agglomerative
  global step — or halved while it has fewer than VPC. A float sets it directly.
* Global step: scikit-learn's, ``Birch(n_clusters=VPC)`` = Ward agglomeration of the
  leaf sub-cluster centroids. Above the budget, the tree is built with ``partial_fit``
  block by block and the global step runs once at the end.
* ``whiten`` (default off, as in the paper): scale the PCA components to unit variance
  before BIRCH. Off, the clusters follow the embedding's highest-variance directions,
  which need not be the factors that matter (see docs/selection.md, toy diagnosis).
* ``standardize`` (default off, as in the paper): z-score every embedding dimension
  across the class's clips before PCA — TAC-SUM's ``Scaler`` (scikit-learn
  ``StandardScaler``) step, for embeddings whose dimensions have unequal scales.
* Representative: as TAC-SUM (the member of a segment nearest the segment mean), the
  clip of a cluster *among its own members* nearest the cluster's mean in PCA space.
  Clusters are visited largest first; with fewer clusters than VPC (duplicates) we
  cycle, each cluster giving its next-nearest own member.
* No temporal smoothing: TAC-SUM smooths cluster labels along a video's time axis
  (majority vote in a window) because neighbouring frames should share a segment. A
  pool of clips has no time order — the store order is arbitrary — so there is nothing
  to smooth along, and smoothing over store order would only inject that arbitrary
  order into the clusters.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn import config_context
from sklearn.cluster import Birch
from sklearn.decomposition import PCA, IncrementalPCA

from vidistill.select.base import ClassData, class_rng, selector

PCA_DIM = 32
BRANCHING = 50
MAX_SUBCLUSTERS = 2000


def _reduce(
    data: ClassData, dim: int, seed: int, whiten: bool = False, standardize: bool = False
) -> np.ndarray:
    """PCA-reduced class matrix ``(n, dim)`` (small: kept in memory even for huge pools)."""
    if standardize:  # TAC-SUM's StandardScaler; needs the class at once (two passes)
        x = data.load()
        sd = x.std(0)
        x = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
        data = ClassData.from_array(x, data.name, data.label)
    if data.fits_in_memory:
        x = data.load()
        solver = "full" if min(x.shape) <= 512 else "randomized"
        return (
            PCA(dim, svd_solver=solver, random_state=seed, whiten=whiten)
            .fit_transform(x)
            .astype(np.float32)
        )
    ipca = IncrementalPCA(dim, whiten=whiten)
    pending: list[np.ndarray] = []  # IncrementalPCA needs >= dim rows per partial_fit
    for _, block in data.chunks():
        pending.append(block)
        if sum(len(b) for b in pending) >= dim:
            ipca.partial_fit(np.concatenate(pending))
            pending = []
    if pending and sum(len(b) for b in pending) >= dim:
        ipca.partial_fit(np.concatenate(pending))
    out = np.empty((data.n, dim), np.float32)
    for s, block in data.chunks():
        out[s : s + len(block)] = ipca.transform(block)
    return out


def _auto_threshold(z: np.ndarray, seed: int) -> float:
    rng = np.random.default_rng(seed)
    sample = z if len(z) <= 2048 else z[rng.choice(len(z), 2048, replace=False)]
    t = torch.from_numpy(sample)
    d = torch.cdist(t, t)
    d.fill_diagonal_(float("inf"))
    nn = d.min(dim=1).values
    nn = nn[torch.isfinite(nn) & (nn > 0)]
    return 0.5 * float(nn.median()) if len(nn) else 1e-6


def _fit_tree(z: np.ndarray, threshold: float, branching: int, chunk: int, stream: bool) -> Birch:
    birch = Birch(
        threshold=threshold, branching_factor=branching, n_clusters=None, compute_labels=False
    )
    if stream:
        for s in range(0, len(z), chunk):
            birch.partial_fit(z[s : s + chunk])
    else:
        birch.fit(z)
    return birch


@selector("tac-dt")
def select_tac_dt(
    data: ClassData,
    vpc: int,
    seed: int = 0,
    pca_dim: int = PCA_DIM,
    threshold: float | str = "auto",
    branching_factor: int = BRANCHING,
    max_subclusters: int = MAX_SUBCLUSTERS,
    whiten: bool = False,
    standardize: bool = False,
) -> np.ndarray:
    dim = int(max(1, min(int(pca_dim), data.n, data.dim or 1)))
    z = _reduce(data, dim, seed, bool(whiten), bool(standardize))
    stream = not data.fits_in_memory
    chunk = data.chunk_rows
    t = _auto_threshold(z, seed) if threshold == "auto" else float(threshold)
    for _ in range(20):  # bounded search over the threshold (each step ×2 or ÷2)
        birch = _fit_tree(z, t, int(branching_factor), chunk, stream)
        m = len(birch.subcluster_centers_)
        if m > max_subclusters and threshold == "auto":
            t *= 2.0
        elif m < vpc and t > 1e-12:  # too coarse for VPC clusters (also for a given threshold)
            t *= 0.5
        else:
            break
    # Global step: Ward agglomeration of the leaf centroids into VPC clusters (the paper's
    # "BIRCH with VPC clusters"); fewer leaves than VPC (duplicates) → one cluster per leaf.
    birch.set_params(n_clusters=min(vpc, len(birch.subcluster_centers_)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        birch.partial_fit()  # X=None: only the global clustering step
    # predict = chunked distances to every leaf; cap sklearn's scratch at a quarter budget
    with config_context(working_memory=max(16, data.budget_bytes // (4 << 20))):
        labels = birch.predict(z)
    return representatives(z, labels, vpc, class_rng(seed, data.label))


def representatives(
    z: np.ndarray, labels: np.ndarray, vpc: int, rng: np.random.Generator
) -> np.ndarray:
    """VPC distinct clips: per cluster (largest first, cycling) its next own member nearest
    the cluster mean. ``rng`` only fills up if the clusters cannot (never when n >= VPC)."""
    zt = torch.from_numpy(z)
    clusters, sizes = np.unique(labels, return_counts=True)
    ranked = []  # per cluster: its OWN members by distance to its mean
    for c in clusters[np.argsort(-sizes, kind="stable")]:
        members = np.flatnonzero(labels == c)
        zc = zt[torch.from_numpy(members)]
        dist = torch.cdist(zc, zc.mean(0, keepdim=True))[:, 0].numpy()
        ranked.append(members[dist.argsort(kind="stable")].tolist())
    chosen: list[int] = []
    for rank in range(max(map(len, ranked), default=0)):
        chosen += [r[rank] for r in ranked if rank < len(r)][: vpc - len(chosen)]
        if len(chosen) == vpc:
            break
    if len(chosen) < vpc:  # labels cover fewer than VPC clips (defensive)
        rest = np.setdiff1d(np.arange(len(z)), chosen)
        chosen += rng.choice(rest, vpc - len(chosen), replace=False).tolist()
    return np.array(chosen)
