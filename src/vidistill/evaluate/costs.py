"""Cost probes: peak RAM / VRAM and model FLOPs (DESIGN §4: costs beside every result)."""

from __future__ import annotations

import resource
import sys

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (``ru_maxrss``: torch's allocations
    are native, so tracemalloc would miss them). It is a process-lifetime peak: it never
    goes down between runs of one process."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0  # macOS: bytes


def reset_peak_vram(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_vram_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def flops_per_clip(
    model: nn.Module, frames: int, size: int, device: torch.device | str = "cpu"
) -> int:
    """Forward FLOPs for one ``(1,3,T,H,W)`` clip (``torch.utils.flop_counter``, 2 per MAC).
    A training step costs about 3× this (forward + backward)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, frames, size, size, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())
