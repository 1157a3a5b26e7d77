"""Evaluator networks, registered by name: ``create_net("convnet3d", num_classes=10, frames=8, size=64)``.

Every net maps normalised float ``(B,3,T,H,W)`` to logits ``(B,classes)`` and exposes
``features(x) -> (B,D)`` (penultimate layer, pooled over time) for embedders, herding and
k-center, and ``embed(x) -> (B, embed_dim)`` (the body output flattened before the final
pooling, VDSD's ``embed``; keeps the temporal layout, ``embed_shape``), which the
synthesizers match.
"""

from __future__ import annotations

import torch.nn as nn

from vidistill import registry
from vidistill.nets import c3d, convgru, convnet3d  # noqa: F401  (registration)


def create_net(name: str, num_classes: int, frames: int, size: int, **kwargs) -> nn.Module:
    """Build a registered net for clips of ``frames × size²``; errors name the minimum clip size."""
    return registry.get("net", name)(num_classes=num_classes, frames=frames, size=size, **kwargs)


__all__ = ["create_net"]
