"""Data-parallel evaluator training: W ranks take the one-process SGD steps together.

``train_net`` called by every rank of a launched job (``torchrun ... vidistill evaluate``,
or a `vidistill run` stage with ``evaluate.ddp``) wraps the net in
``DistributedDataParallel``; each global batch of ``recipe.batch_size`` clips — the batch
one process takes — is cut into W contiguous blocks of rows, one per rank. What keeps
the steps those of one process, up to the float order of the gradient sum:

* every rank draws the same epoch order (and augmentation) from the same seeded
  generator, so the global batches are the one-process batches;
* a rank's loss is its rows' summed cross-entropy × W / B: DDP averages gradients over
  the W ranks, so the step follows the gradient of the global batch's mean loss;
* dropout masks are drawn for the whole global batch on every rank, from the default
  generator (seeded alike everywhere), and cut to the rank's rows: the masks one process
  draws (on CPU bit for bit; on CUDA the same fused kernel on the same shape);
* batch-wide transforms (an augmentation, ``standardize="batch"``) see the whole global
  batch on every rank before the rows are cut.

The nets here have no BatchNorm (ConvNet3D has no normalisation, C3D none either); a net
with batch statistics would see only its rank's rows, which this module does not hide.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidistill import distributed


class _Rows:
    """The global batch size and this rank's rows of it, set before each forward."""

    total: int = 0
    rows: slice = slice(0, 0)


class GlobalBatchDropout(nn.Module):
    """``nn.Dropout`` whose mask is drawn for the global batch and cut to this rank's rows."""

    def __init__(self, p: float, rows: _Rows):
        super().__init__()
        self.p, self.span = p, rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (self.span.total, *x.shape[1:])
        mask = F.dropout(torch.ones(shape, dtype=x.dtype, device=x.device), self.p, True)
        return x * mask[self.span.rows]


class DataParallel:
    """The DDP wrapper of one training run: ``model`` to call, ``batch(n)`` this rank's
    rows of a global batch of ``n``, ``loss`` and ``epoch_sum`` for the global numbers."""

    def __init__(self, net: nn.Module, device: torch.device):
        from torch.nn.parallel import DistributedDataParallel

        ctx = distributed.current()
        self.rank, self.world = ctx.rank, ctx.world
        self.net, self.span = net, _Rows()
        self._dropouts = [
            (parent, name, child)
            for parent in net.modules()
            for name, child in parent.named_children()
            if isinstance(child, nn.Dropout)
        ]
        for parent, name, child in self._dropouts:
            setattr(parent, name, GlobalBatchDropout(child.p, self.span))
        ids = None
        if device.type == "cuda":
            ids = [device.index if device.index is not None else torch.cuda.current_device()]
        self.model = DistributedDataParallel(net, device_ids=ids)

    def batch(self, n: int) -> slice:
        """This rank's contiguous rows of a global batch of ``n`` (possibly none)."""
        mine = distributed.shard(n, self.rank, self.world)
        rows = slice(int(mine[0]), int(mine[-1]) + 1) if len(mine) else slice(0, 0)
        self.span.total, self.span.rows = n, rows
        return rows

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to backpropagate, this rank's summed cross-entropy, detached)."""
        ce = F.cross_entropy(logits, y, reduction="sum")
        return ce * (self.world / self.span.total), ce.detach().float()

    def epoch_sum(self, local: torch.Tensor) -> float:
        """The epoch's summed loss over every rank's rows."""
        return float(distributed.all_reduce_sum(local.clone(), "evaluator epoch loss"))

    def close(self) -> None:
        """Put the net's own dropout modules back (the net leaves DDP as it came)."""
        for parent, name, child in self._dropouts:
            setattr(parent, name, child)


@contextlib.contextmanager
def data_parallel(net: nn.Module, device: torch.device, on: bool) -> Iterator[DataParallel | None]:
    """A :class:`DataParallel` for ``net`` while training (``None`` when ``on`` is false)."""
    if not on:
        yield None
        return
    dp = DataParallel(net, device)
    try:
        yield dp
    finally:
        dp.close()
