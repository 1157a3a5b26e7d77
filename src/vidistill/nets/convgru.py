"""ConvNet-GRU: a frame CNN + GRU, the cross-architecture family (no 3D convolution).

Why this family: every other evaluator here mixes time by 3D convolution; this one sees
frames independently and models time with a recurrent net, so a distilled set that only
works for 3D-conv inductive biases shows it here.

Frame encoder: the image dataset-distillation benchmark's ConvNet-3 (Zhao et al., DC/DM):
three blocks Conv2d 3×3 (128·width channels) → instance norm (GroupNorm with one group
per channel, affine) → ReLU → AvgPool 2. Its map is average-pooled to 4×4 (keeping where
things are, which motion classes need) and flattened; a one-layer GRU (hidden 256·width)
runs over the frames; the last hidden state is the feature; a linear layer gives logits.
``embed(x)`` is the encoder's per-frame maps flattened in frame order ``(B, T·C·4·4)``:
the body output before the recurrent pooling over time, keeping the temporal layout.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vidistill.registry import register

MIN_SIZE = 32  # three 2× pools, then a 4×4 map


@register("net", "convgru")
class ConvGRU(nn.Module):
    def __init__(
        self,
        num_classes: int,
        frames: int = 8,
        size: int = 64,
        width: float = 1.0,
        hidden: int = 256,
        grid: int = 4,
    ):
        super().__init__()
        if frames < 1 or size < MIN_SIZE:
            raise ValueError(
                f"ConvGRU needs clips of at least 1 frame × {MIN_SIZE} px; got {frames} "
                f"frames × {size} px"
            )
        c = max(1, round(128 * width))
        blocks: list[nn.Module] = []
        c_in = 3
        for _ in range(3):
            blocks += [
                nn.Conv2d(c_in, c, 3, padding=1),
                nn.GroupNorm(c, c, affine=True),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(2),
            ]
            c_in = c
        self.encoder = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(grid), nn.Flatten())
        h = max(1, round(hidden * width))
        self.gru = nn.GRU(c * grid * grid, h, batch_first=True)
        self.fc = nn.Linear(h, num_classes)
        self.feature_dim = h
        self.embed_shape = (frames, c * grid * grid)
        self.embed_dim = frames * c * grid * grid

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, hgt, wid = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, 3, hgt, wid)
        return self.encoder(frames).view(b, t, -1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last GRU hidden state ``(B, 256·width)``."""
        _, last = self.gru(self._frames(x))
        return last[-1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame encoder maps in frame order, flattened: ``(B, T·C·4·4)``."""
        return self._frames(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
