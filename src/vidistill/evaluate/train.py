"""Train one fresh evaluator network and predict with it — the core loop, on one screen.

Determinism: for a given ``seed`` on CPU, ``train_net`` is bit-for-bit repeatable —
``torch.manual_seed(seed)`` fixes the initial weights and dropout masks, a separate
``torch.Generator`` seeded with ``seed`` fixes the data order (and augmentation). On CUDA
cuDNN kernels may differ in the last bits.

The final epoch's network is returned: never a checkpoint chosen by test accuracy
(DESIGN §4, DD-Ranking's critique).

Called by every rank of a launched job together, ``train_net`` trains data-parallel
(:mod:`vidistill.evaluate.ddp`): the same global batches, the same steps as one process up
to the float order of the gradient sum; every rank ends with the same net. Called inside
:func:`vidistill.distributed.alone` (a run handed to one rank) it trains alone.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from vidistill import distributed, registry
from vidistill.evaluate.ddp import data_parallel
from vidistill.evaluate.recipe import Recipe, standardize_batch
from vidistill.evaluate.trainset import TrainingSet
from vidistill.nets import create_net


@dataclass
class TrainStats:
    """What the optimiser saw, so a collapsed run is never mistaken for a bad set (DESIGN §4).

    ``train_loss``: mean CE over the final epoch (train mode, as optimised).
    ``train_acc``: accuracy on the training set after training (eval mode, no augmentation).
    ``diverged``: non-finite loss, or train accuracy no better than always predicting the
    most frequent class (a collapsed net) — ``diverged_reason`` says which.
    """

    train_loss: float
    train_acc: float
    diverged: bool
    diverged_reason: str | None
    epochs_run: int
    seconds: float
    clips_per_s: float
    loss_curve: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "--device cuda requested but torch.cuda.is_available() is False; use --device cpu"
        )
    return device


def _autocast(recipe: Recipe, device: torch.device):
    if recipe.amp_bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_net(recipe: Recipe, num_classes: int, frames: int, size: int) -> nn.Module:
    return create_net(
        recipe.net,
        num_classes=num_classes,
        frames=frames,
        size=size,
        width=recipe.width,
        **recipe.net_kwargs,
    )


def train_net(
    train_set: TrainingSet,
    recipe: Recipe,
    seed: int,
    device: str | torch.device | None = None,
    progress: bool = False,
    desc: str = "train",
    ddp: bool | None = None,
) -> tuple[nn.Module, TrainStats]:
    """Train a fresh ``recipe.net`` on ``train_set`` for ``recipe.epochs``: (model, stats).

    ``ddp``: train data-parallel with the ranks working together (default: when there are
    several, :func:`vidistill.distributed.current`)."""
    device = resolve_device(device)
    ddp = distributed.current().distributed if ddp is None else ddp
    data = train_set.to(device)
    recipe = recipe.for_set_size(data.clips_per_epoch)
    torch.manual_seed(seed)
    model = build_net(recipe, data.num_classes, data.frames, data.size).to(device)
    opt = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    gen = torch.Generator().manual_seed(seed)  # data order + augmentation, CPU so it is portable
    augment = registry.get("augment", recipe.augment) if recipe.augment else None
    n, bs = data.clips_per_epoch, recipe.batch_size
    curve: list[float] = []
    diverged_reason = None
    t0 = time.perf_counter()
    bar = tqdm(range(recipe.epochs), desc=desc, leave=False, disable=not progress, unit="ep")
    model.train()
    epochs_run = 0
    with data_parallel(model, device, ddp) as dp:
        net = model if dp is None else dp.model
        for epoch in bar:
            for g in opt.param_groups:
                g["lr"] = recipe.lr_at(epoch)
            perm = data.epoch_order(gen).to(device)  # all clips, or one per group (VDSD pairs)
            loss_sum = torch.zeros((), device=device)
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                rows = None if dp is None else dp.batch(idx.numel())
                x, y = _inputs(data, idx, rows, augment, gen, recipe.standardize)
                with _autocast(recipe, device):
                    if dp is None:
                        loss = F.cross_entropy(net(x), y)
                        part = loss.detach().float() * idx.numel()
                    else:
                        loss, part = dp.loss(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                opt.step()
                loss_sum += part
            epochs_run = epoch + 1
            # one sync per epoch
            epoch_loss = (float(loss_sum) if dp is None else dp.epoch_sum(loss_sum)) / n
            curve.append(epoch_loss)
            bar.set_postfix(loss=f"{epoch_loss:.4f}", lr=f"{recipe.lr_at(epoch):g}")
            if not math.isfinite(epoch_loss):
                diverged_reason = f"non-finite training loss at epoch {epoch + 1}"
                break  # the weights are NaN/inf from here on; more epochs cannot recover them
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    train_acc = float("nan")
    if diverged_reason is None:
        probs = predict(model, data, recipe.with_(test_views=1), device=device)
        correct = int((probs.argmax(1) == data.labels.cpu()).sum())
        train_acc = correct / data.num_clips  # every clip, also of a grouped set
        majority = max(data.class_counts())
        if data.num_classes > 1 and correct <= majority:
            diverged_reason = (
                f"train accuracy {train_acc:.3f} is at chance (majority-class rate "
                f"{majority / data.num_clips:.3f}): the net collapsed or never learned"
            )
    stats = TrainStats(
        train_loss=curve[-1],
        train_acc=train_acc,
        diverged=diverged_reason is not None,
        diverged_reason=diverged_reason,
        epochs_run=epochs_run,
        seconds=seconds,
        clips_per_s=n * epochs_run / max(seconds, 1e-9),
        loss_curve=curve,
    )
    return model, stats


def _inputs(
    data: TrainingSet,
    idx: torch.Tensor,
    rows: slice | None,
    augment,
    gen: torch.Generator,
    standardize: str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised inputs and labels of this rank's ``rows`` of the global batch ``idx``
    (``None``: all of it). Batch-wide transforms see the whole batch, as in one process."""
    whole = rows is None or augment is not None or standardize is not None
    x = data.batch(idx if whole else idx[rows])
    if augment is not None:
        x = augment(x, gen)
    x = standardize_batch(x, standardize)
    if rows is None:
        return x, data.labels[idx]
    return (x[rows] if whole else x), data.labels[idx[rows]]


@torch.no_grad()
def predict(
    model: nn.Module,
    data: TrainingSet,
    recipe: Recipe,
    device: str | torch.device | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Eval-mode class probabilities ``(N, classes)`` on CPU (softmax; mean over N views).

    Multi-view (``recipe.test_views`` > 1, VDSD-style): each view shifts the clip by a random
    number of frames and flips it horizontally with probability ½. A store keeps exactly T
    frames per clip, so the shift is circular (the store's ``loop`` policy) instead of a
    new window of the source video as in VDSD — stated, and the reason 1 view is our default.
    ``recipe.standardize`` applies to every test batch (per view), as VDSD's test ``epoch``.
    """
    device = resolve_device(device)
    data = data.to(device)
    model.eval()
    bs = batch_size or max(recipe.batch_size, 1)
    views = recipe.test_views
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, data.num_clips, bs):
        idx = torch.arange(start, min(start + bs, data.num_clips), device=device)
        x = data.batch(idx)
        if views == 1:
            x = standardize_batch(x, recipe.standardize)
            with _autocast(recipe, device):
                out.append(model(x).float().softmax(1).cpu())
            continue
        acc = torch.zeros(x.shape[0], data.num_classes)
        for _ in range(views):
            shift = int(torch.randint(0, x.shape[2], (1,), generator=gen))
            v = torch.roll(x, shifts=shift, dims=2)
            if bool(torch.rand(1, generator=gen) < 0.5):
                v = torch.flip(v, dims=(4,))
            v = standardize_batch(v, recipe.standardize)
            with _autocast(recipe, device):
                acc += model(v).float().softmax(1).cpu()
        out.append(acc / views)
    model.train()
    return torch.cat(out)
