"""Clip tensors for networks: uint8 ``(N,T,H,W,3)`` on disk → float ``(N,3,T,H,W)`` normalised.

Normalisation (ImageNet mean/std, the field's convention) is applied at read time and
never stored, so a store stays uint8 and models can change normalisation freely.
"""

from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=device, dtype=dtype).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device, dtype=dtype).view(1, 3, 1, 1, 1)
    return mean, std


def to_model_input(
    clips: torch.Tensor | np.ndarray, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """uint8 ``(N,T,H,W,3)`` → normalised float ``(N,3,T,H,W)`` on the same device."""
    if isinstance(clips, np.ndarray):
        clips = torch.from_numpy(np.ascontiguousarray(clips))
    if clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 clips (N,T,H,W,3), got {tuple(clips.shape)} {clips.dtype}"
        )
    x = clips.permute(0, 4, 1, 2, 3).to(dtype).div_(255.0)
    mean, std = _stats(x.device, dtype)
    return (x - mean) / std


def to_uint8(videos: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_model_input` (clamped): float ``(N,3,T,H,W)`` → uint8 ``(N,T,H,W,3)``."""
    mean, std = _stats(videos.device, videos.dtype)
    x = (videos * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).contiguous()
