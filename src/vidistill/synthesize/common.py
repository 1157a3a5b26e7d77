"""Shared pieces of the synthesizers: the DM matching loss, the one-class real loader,
the fresh random embedding net, and the ``Synthesizer`` base class.

Every method here is *distribution matching* (Zhao & Bilen, WACV'23) at heart: each
outer iteration draws a freshly, randomly initialised ConvNet3D and, class by class,
matches the mean embedding of real clips with that of the synthetic ones. Updating class
by class (IDTD §3.5) means one step only ever touches one class's real clips and
synthetic tensors, so peak memory is bounded by one class, not the dataset.

The embedding φ is ``net.embed`` by default: the body output flattened *before* the
final pooling, as VDSD's ``embed`` (``networks.py`` of ``yuz1wan/video_distillation``),
which VDSD's DM baseline, VDSD itself and IDTD (built on VDSD's code and net) match. It
keeps the temporal layout of the map (2 time positions at 8 frames, 4 at 16), so a
class's mean embedding says *when* things happen; the pooled ``features`` (time and space
averaged) cannot tell a motion from its reverse or a still. ``embedding=features`` keeps
the previous, pooled φ as a named option for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from vidistill import distributed
from vidistill.clipstore import ClipStore
from vidistill.nets import create_net


def matching_loss(real_feats: torch.Tensor, syn_feats: torch.Tensor) -> torch.Tensor:
    """DM's L_M for one class: ``‖mean φ(real) − mean φ(syn)‖²`` over ``(B, D)`` features."""
    return (real_feats.mean(0) - syn_feats.mean(0)).pow(2).sum()


def segment_pair_distances(seg_feats: torch.Tensor, pairs: str = "all") -> torch.Tensor:
    """``(M, P)`` squared distances ``‖φ(d_k) − φ(d_q)‖²`` of the segment pairs ``k < q``.

    ``seg_feats`` is ``(M, K, D)``: the features φ(d_{m,k}) of the K Diverse Segments of
    each of M synthetic videos. ``pairs="all"`` takes every pair of distinct segments, as
    IDTD's text says ("the L2 distance between each pair of distinct Diverse Segments");
    the printed Eq. 1 has the outer sum stop at K−2, which silently drops the pair
    (K−1, K): ``pairs="printed"`` reproduces that bound literally.
    """
    if pairs not in ("all", "printed"):
        raise ValueError(f"pairs must be 'all' or 'printed', got {pairs!r}")
    k = seg_feats.shape[1]
    iu = torch.triu_indices(k, k, offset=1, device=seg_feats.device)
    if pairs == "printed":
        iu = iu[:, iu[0] <= k - 3]  # 0-based k runs to K−3, i.e. 1-based K−2
    # exact differences (cdist's matrix-product form loses the small distances)
    return (seg_feats[:, iu[0]] - seg_feats[:, iu[1]]).pow(2).sum(-1)


def diversity_loss(seg_feats: torch.Tensor, pairs: str = "all") -> torch.Tensor:
    """IDTD's L_div as Eq. 1 writes it: ``Σ_m Σ_{k<q} ‖φ(d_mk) − φ(d_mq)‖²`` (unbounded)."""
    return segment_pair_distances(seg_feats, pairs).sum()


def real_spread(real_feats: torch.Tensor) -> torch.Tensor:
    """δ_c: the mean pairwise squared distance ``‖φ(x_i) − φ(x_j)‖²`` (i < j) of a class's
    real batch ``(B, D)``, detached (a target, never a path for gradients); 0 for B < 2."""
    real_feats = real_feats.detach()
    b = real_feats.shape[0]
    if b < 2:
        return real_feats.new_zeros(())
    # Σ_{i<j} ‖f_i − f_j‖² = B·Σ‖f_i − mean‖², so δ = 2·Σ‖f_i − mean‖² / (B − 1)
    centred = real_feats - real_feats.mean(0)
    return 2.0 * centred.pow(2).sum() / (b - 1)


def hinge_diversity_loss(
    seg_feats: torch.Tensor, delta: torch.Tensor | float, pairs: str = "all"
) -> torch.Tensor:
    """Bounded L_div: ``Σ_m Σ_{k<q} relu(δ − ‖φ(d_mk) − φ(d_mq)‖²)``.

    It pushes a video's segments apart until every pair is as far apart as two real clips
    of the class are on average (δ = :func:`real_spread`), and not further: 0 once they
    are, at most ``M·P·δ`` (all segments equal), so it can neither pull the segments
    together (the printed sign) nor grow without bound (the text's sign under an
    un-normalised φ)."""
    return torch.relu(delta - segment_pair_distances(seg_feats, pairs)).sum()


class RealSampler:
    """Random real clips of ONE class per call, read from the memory-mapped store.

    Only the requested class's clips are ever decoded to float, which is what bounds
    the memory of a class-by-class update. ``pulled`` records the label of every call
    (tests use it to prove one class per step).
    """

    def __init__(self, store: ClipStore, batch: int, split: str = "train"):
        if batch < 1:
            raise ValueError(f"real batch must be >= 1, got {batch}")
        self.store, self.batch = store, batch
        self.by_class = [store.indices(split, c) for c in range(store.num_classes)]
        for c, idx in enumerate(self.by_class):
            if len(idx) == 0:
                raise ValueError(
                    f"class {c} ({store.class_names[c]!r}) has no {split!r} clips to match"
                )
        self.pulled: list[int] = []

    def indices(self, label: int, gen: torch.Generator, n: int | None = None) -> np.ndarray:
        idx = self.by_class[label]
        n = min(n or self.batch, len(idx))
        pick = torch.randperm(len(idx), generator=gen)[:n].numpy()
        return np.sort(idx[pick])

    def batch_of(self, label: int, gen: torch.Generator, n: int | None = None) -> torch.Tensor:
        self.pulled.append(label)
        return self.store.tensor(self.indices(label, gen, n))


def fresh_net(num_classes: int, frames: int, size: int, width: float, seed: int) -> nn.Module:
    """A randomly initialised ConvNet3D (seeded, frozen, eval mode) used only as φ."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = create_net(
            "convnet3d", num_classes=num_classes, frames=frames, size=size, width=width
        )
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


EMBEDDINGS = ("embed", "features")


def class_generators(gen: torch.Generator, n: int) -> list[torch.Generator]:
    """One generator per class, seeded by ``n`` draws from ``gen``: what class c draws does
    not depend on the other classes, so classes can be updated on different ranks."""
    return [
        torch.Generator().manual_seed(int(s)) for s in torch.randint(0, 2**62, (n,), generator=gen)
    ]


def iteration_seed(seed: int, it: int) -> int:
    """Seed of outer iteration ``it``: a resumed run redraws exactly the same nets and batches."""
    return (seed * 1_000_003 + it * 7919 + 17) % (2**62)


@dataclass
class SynthConfig:
    """Options shared by every synthesizer (method configs subclass this).

    ``net_width`` is ConvNet3D's channel multiplier for the *matching* net φ: 1.0 is the
    exact VDSD/IDTD net; a narrower one is a stated, cheaper choice for 2-CPU runs.
    ``embedding``: which output of φ is matched — ``embed`` (VDSD's, time kept; default)
    or ``features`` (pooled over time and space; the previous choice, for comparison).
    """

    iterations: int = 200
    lr: float = 0.01
    real_batch: int = 32
    net_width: float = 1.0
    embedding: str = "embed"

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SynthConfig:
        """Build from ``{name: value}`` (values may be CLI strings); unknown names are errors."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ValueError(
                    f"unknown option {key!r} for {cls.__name__}; valid: {', '.join(sorted(known))}"
                )
            default = known[name].default
            typ = float if default is None else type(default)  # None = "the method decides"
            kwargs[name] = _coerce(value, typ, key) if isinstance(value, str) else value
        return cls(**kwargs)


def _coerce(text: str, typ: type, key: str) -> Any:
    if typ is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"option {key}={text!r}: expected true/false")
    try:
        return typ(text)
    except ValueError as err:
        raise ValueError(f"option {key}={text!r}: expected {typ.__name__}") from err


class Synthesizer(nn.Module):
    """Base class: learnable tensors as parameters, one ``step`` per outer iteration.

    Subclasses set ``config_cls``, build their parameters in ``__init__`` (initialising
    from real clips where the method says so), and implement ``step`` and ``videos``.
    Parameters are kept **per class** (ParameterLists) so that an optimizer step after a
    class's backward only moves that class (grads of the others stay ``None``).

    Class sharding (:meth:`share`, set by the runner under torchrun): a rank updates only
    ``classes`` (r, r + W, …); every random draw of class c comes from its own generator
    (:func:`class_generators`), so a class learns the same on any rank;
    :meth:`in_class_order` collects per-class numbers from every rank so losses (and
    gradients of shared parameters) are summed in class order, as one process does.
    """

    config_cls: type[SynthConfig] = SynthConfig

    def __init__(self, store: ClipStore, vpc: int, config: SynthConfig, seed: int = 0):
        super().__init__()
        if vpc < 1:
            raise ValueError(f"--vpc must be >= 1, got {vpc}")
        if config.embedding not in EMBEDDINGS:
            raise ValueError(
                f"embedding must be one of {EMBEDDINGS} (what φ outputs for matching), "
                f"got {config.embedding!r}"
            )
        self.store, self.vpc, self.config, self.seed = store, vpc, config, seed
        self.num_classes = store.num_classes
        self.frames, self.size = store.spec.frames, store.spec.size
        self.classes = list(range(self.num_classes))  # the classes this rank updates
        self.sharded = False

    # -- class sharding ---------------------------------------------------------------
    def share(self, rank: int, world: int) -> None:
        """Update only classes ``rank, rank + world, …`` (the others ranks' classes)."""
        self.classes = list(range(rank, self.num_classes, world))
        self.sharded = world > 1

    def in_class_order(self, mine: dict[int, Any], what: str) -> list[Any]:
        """Every class's value — this rank's ``mine`` (class → value) and the other
        ranks' — in class order (small, picklable values)."""
        if not self.sharded:
            return [mine[c] for c in range(self.num_classes)]
        return distributed.all_gather_in_order(
            [mine[c] for c in self.classes], self.num_classes, mode="strided", what=what
        )

    def class_state(self, c: int) -> dict[str, torch.Tensor]:
        """The learned tensors of class ``c`` (entry c of every per-class ParameterList)."""
        return {
            f"{name}.{c}": child[c].detach()
            for name, child in self.named_children()
            if isinstance(child, nn.ParameterList) and len(child) == self.num_classes
        }

    def phi(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The matching embedding of ``x`` under ``net`` (``config.embedding``)."""
        return getattr(net, self.config.embedding)(x)

    # -- to implement -------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def step(
        self,
        it: int,
        net: nn.Module,
        sampler: RealSampler,
        gen: torch.Generator,
        optimizers: dict[str, torch.optim.Optimizer],
    ) -> dict[str, float]:
        """One outer iteration (all classes, one class at a time). Returns mean losses."""
        raise NotImplementedError

    @torch.no_grad()
    def videos(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final synthetic set: float ``(N,3,T,H,W)`` in normalised space and labels."""
        raise NotImplementedError

    def bytes_stored(self) -> int:
        """What a user must keep to rebuild the evaluated videos (defaults to the videos)."""
        v, _ = self.videos()
        return v.numel() * v.element_size()

    def meta(self) -> dict[str, Any]:
        return {}

    def make_net(self, it: int) -> nn.Module:
        return fresh_net(
            self.num_classes,
            self.frames,
            self.size,
            self.config.net_width,
            iteration_seed(self.seed, it) + 1,
        )
