"""A sampled pool, planned so that it does not depend on how many ranks sample it.

A pool of ``per_class`` clips for each of ``num_classes`` classes is ordered class by class
(clip ``j`` of class ``c`` at position ``c·per_class + j``) and cut into batches of
``batch`` positions. Clip ``(c, j)`` starts from its own seed, :func:`clip_seed` of
``(seed, c, j)`` — not from a seed per batch or per rank — so the same clip gets the same
noise whatever the world size, the batch size or the resume point. Ranks take batches
strided (rank r: batches r, r + world, ...), each batch written by exactly one rank.

    plan = PoolPlan(num_classes=50, per_class=100, batch=32, seed=0)
    sample_batches(plan, sample, save, done=already_saved)   # every rank: its batches
    # then rank 0 alone streams the saved batches, in order, into the pool ClipStore

``sample(labels, seeds) -> clips`` must draw clip ``i`` from ``seeds[i]`` alone (one
``torch.Generator`` per clip): then each clip depends only on its (class, index, seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidistill import distributed


def clip_seed(seed: int, label: int, index: int) -> int:
    """The 63-bit seed of clip ``index`` of class ``label`` in a pool sampled with ``seed``
    (NumPy's ``SeedSequence`` of the three: well mixed, stable across versions and machines)."""
    if min(seed, label, index) < 0:
        raise ValueError(
            f"clip_seed needs non-negative seed, label, index; got {seed, label, index}"
        )
    state = np.random.SeedSequence([seed, label, index]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


@dataclass(frozen=True)
class PoolPlan:
    """Which clip sits where, with which seed, in which batch."""

    num_classes: int
    per_class: int
    batch: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_classes", "per_class", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"PoolPlan.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def size(self) -> int:
        return self.num_classes * self.per_class

    @property
    def labels(self) -> np.ndarray:
        """Class of each pool position (class by class)."""
        return np.repeat(np.arange(self.num_classes, dtype=np.int64), self.per_class)

    @property
    def class_index(self) -> np.ndarray:
        """Index of each position within its class."""
        return np.tile(np.arange(self.per_class, dtype=np.int64), self.num_classes)

    @property
    def seeds(self) -> np.ndarray:
        """Seed of each position: :func:`clip_seed` of (seed, class, index in class)."""
        return np.asarray(
            [
                clip_seed(self.seed, int(c), int(j))
                for c, j in zip(self.labels, self.class_index, strict=True)
            ],
            dtype=np.int64,
        )

    @property
    def num_batches(self) -> int:
        return -(-self.size // self.batch)

    def positions(self, b: int) -> slice:
        """Pool positions of batch ``b``."""
        if not 0 <= b < self.num_batches:
            raise IndexError(f"batch {b} of a {self.num_batches}-batch plan")
        return slice(b * self.batch, min((b + 1) * self.batch, self.size))

    def batches_of(self, rank: int, world: int) -> np.ndarray:
        """The batches ``rank`` of ``world`` samples (strided)."""
        return distributed.shard(self.num_batches, rank, world, mode="strided")

    def meta(self) -> list[dict[str, Any]]:
        """Per position, what the pool manifest records to regenerate the clip."""
        out = []
        for p, (c, j, s) in enumerate(zip(self.labels, self.class_index, self.seeds, strict=True)):
            b, slot = divmod(p, self.batch)
            out.append(
                {"seed": int(s), "class_index": int(j), "batch": b, "slot": slot, "label": int(c)}
            )
        return out


def sample_batches(
    plan: PoolPlan,
    sample: Callable[[np.ndarray, np.ndarray], Any],
    save: Callable[[int, Any], None],
    *,
    done: Callable[[int], bool] | None = None,
    seeds: np.ndarray | None = None,
    limit: int | None = None,
) -> list[int]:
    """Sample this rank's batches of ``plan``: ``save(b, sample(labels, seeds))`` for each
    batch ``b`` it owns that is not ``done(b)`` (resume), at most ``limit`` of them. Then
    every rank waits for the others (a failure on any rank ends all, naming it). Returns
    the batches sampled here. ``seeds``: one per position instead of ``plan.seeds`` (e.g.
    a sampler seeded per batch). Not launched: every batch, in order."""
    ctx = distributed.current()
    labels = plan.labels
    seeds = plan.seeds if seeds is None else np.asarray(seeds)
    if len(seeds) != plan.size:
        raise ValueError(f"{len(seeds)} seeds for a pool of {plan.size} clips")
    sampled: list[int] = []
    error: BaseException | None = None
    try:
        for b in plan.batches_of(ctx.rank, ctx.world).tolist():
            if done is not None and done(b):
                continue
            if limit is not None and len(sampled) >= limit:
                break
            sl = plan.positions(b)
            with distributed.alone():  # a batch is this rank's own work
                save(b, sample(labels[sl], seeds[sl]))
            sampled.append(b)
    except Exception as err:
        if not ctx.distributed:
            raise
        error = err
    distributed.check("sample pool batches", error)
    return sampled
