"""IDTD's stochastic temporal augmentation τ(v, μ), μ = [s, e], 0 ≤ s < e ≤ 1 (§3.3).

"randomly samples a temporal fraction of v and reshape it to the targeted temporal
size": we take the interval [s·(T−1), e·(T−1)] of frame positions and resample it to T
frames by **linear interpolation** at T evenly spaced positions. Every output frame is
therefore a convex combination of the (at most two) input frames around a position
inside the interval, and the shape is unchanged.

Choices where the paper is vague (recorded here and in the run metadata):
* resampling: linear interpolation in time (nearest would duplicate frames);
* interval law: ``s ~ U(0, 1 − min_len)``, then ``e ~ U(s + min_len, 1)``, with
  ``min_len = 0.5`` by default, so a view keeps at least half the clip's motion
  (a tiny interval would stretch one or two frames into a nearly static clip);
* one interval per video (independent across the batch).

It is also registered as the evaluator augmentation ``"idtd-temporal"`` — the one
augmentation IDTD's evaluation uses (§4.3). It is an explicit, reported option, off
unless a recipe names it.
"""

from __future__ import annotations

import torch

from vidistill.registry import register

DEFAULT_MIN_LEN = 0.5


def sample_intervals(
    n: int, gen: torch.Generator | None = None, min_len: float = DEFAULT_MIN_LEN
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random intervals ``(s, e)`` with ``0 ≤ s < e ≤ 1`` and ``e − s ≥ min_len``."""
    if not 0.0 < min_len <= 1.0:
        raise ValueError(f"min_len must be in (0, 1], got {min_len}")
    u = torch.rand(2, n, generator=gen)
    s = u[0] * (1.0 - min_len)
    e = s + min_len + u[1] * (1.0 - s - min_len)
    return s, e


def temporal_resample(videos: torch.Tensor, s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """τ with given intervals: ``(B,C,T,H,W)`` → same shape, frames resampled from [s, e]."""
    if videos.ndim != 5:
        raise ValueError(f"expected videos (B,C,T,H,W), got {tuple(videos.shape)}")
    b, _, t = videos.shape[:3]
    s = s.to(videos.device, videos.dtype).reshape(b, 1)
    e = e.to(videos.device, videos.dtype).reshape(b, 1)
    if bool((s < 0).any() or (e > 1).any() or (e <= s).any()):
        raise ValueError("intervals must satisfy 0 <= s < e <= 1")
    grid = torch.linspace(0, 1, t, device=videos.device, dtype=videos.dtype).view(1, t)
    pos = (s + (e - s) * grid) * (t - 1)  # (B, T) fractional frame positions inside [s, e]
    lo = pos.floor().long().clamp(0, t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    w = (pos - lo.to(pos.dtype)).view(b, 1, t, 1, 1)

    def take(idx: torch.Tensor) -> torch.Tensor:
        index = idx.view(b, 1, t, 1, 1).expand(-1, videos.shape[1], -1, *videos.shape[3:])
        return torch.gather(videos, 2, index)

    return take(lo) * (1 - w) + take(hi) * w


def stochastic_temporal_augment(
    videos: torch.Tensor, gen: torch.Generator | None = None, min_len: float = DEFAULT_MIN_LEN
) -> torch.Tensor:
    """τ(v, μ) with a fresh random μ per video."""
    s, e = sample_intervals(videos.shape[0], gen, min_len)
    return temporal_resample(videos, s, e)


@register("augment", "idtd-temporal")
def idtd_temporal(videos: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Evaluator hook (kind ``augment``): IDTD's τ on a training batch, ``min_len`` 0.5."""
    return stochastic_temporal_augment(videos, gen)
