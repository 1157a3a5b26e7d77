"""ConvNet3D: the evaluator network of VDSD (Wang et al., CVPR'24), which IDTD also uses.

Exactly DESIGN §4: three blocks Conv3d k=(3,7,7) pad (1,3,3) stride (1,2,2) with
channels 3→64→128→128, ReLU, no normalisation; MaxPool (1,2,2) after block 0 and
MaxPool 2 after blocks 1 and 2; AvgPool (2,2,2) stride 1, or (2,1,1) when the input is
≤ 64 px (the final map is then 1×1); Dropout 0.5; a 1×1×1 conv to the classes; max over
time. ``width`` scales the channels — only the stated ``toy-quick`` preset uses < 1.

Stated generalisation (identical at the benchmark sizes 8×64² and 16×112²): the AvgPool's
spatial kernel is 2 when the final map is ≥ 2 px and 1 when it is 1 px. VDSD switches on
"≤ 64 px" instead, which fails for 65–106 px inputs (their final map is 1 px). Minimum
clip: 8 frames × 43 px (``MIN_FRAMES``, ``MIN_SIZE``).

Two embeddings, for two uses:

* ``features(x)`` ``(B, C)``: the final pooled map averaged over time and space — one
  vector per clip for embedders, herding and k-center, where a fixed small dimension
  and invariance to where/when things happen are what is wanted.
* ``embed(x)`` ``(B, C·t·h·w)``: the body output (after the three blocks, *before* the
  final AvgPool) flattened, exactly VDSD's ``ConvNet3D.embed`` (``networks.py`` of
  ``yuz1wan/video_distillation``), which DM, IDTD and VDSD match. It keeps the temporal
  layout (``t`` = T/4 positions: 2 at 8 frames, 4 at 16), so matching its class mean
  constrains *when* things happen in a clip, which is the signal of motion-defined
  classes; ``features`` averages that away. ``embed_shape`` is ``(C, t, h, w)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from vidistill.registry import register


def _out_sizes(frames: int, size: int) -> tuple[int, int]:
    """(time, space) extent after the three blocks, before the AvgPool."""
    t, s = frames, size
    s = math.ceil(s / 2) // 2  # block 0 conv + MaxPool (1,2,2)
    s = math.ceil(s / 2)  # block 1 conv
    t, s = t // 2, s // 2  # MaxPool 2
    s = math.ceil(s / 2)  # block 2 conv
    t, s = t // 2, s // 2  # MaxPool 2
    return t, s


MIN_FRAMES = next(t for t in range(1, 64) if _out_sizes(t, 512)[0] >= 2)
MIN_SIZE = next(px for px in range(1, 512) if _out_sizes(64, px)[1] >= 1)


@register("net", "convnet3d")
class ConvNet3D(nn.Module):
    def __init__(
        self,
        num_classes: int,
        frames: int = 8,
        size: int = 64,
        width: float = 1.0,
        dropout: float = 0.5,
    ):
        super().__init__()
        t, s = _out_sizes(frames, size)
        if t < 2 or s < 1:
            raise ValueError(
                f"ConvNet3D needs clips of at least {MIN_FRAMES} frames × {MIN_SIZE} px (three "
                f"stride-2 convs and pools); got {frames} frames × {size} px"
            )
        pool_hw = 2 if s >= 2 else 1  # = VDSD's (2,1,1) at ≤ 64 px and (2,2,2) at 112 px
        c1, c2 = max(1, round(64 * width)), max(1, round(128 * width))
        chans = (3, c1, c2, c2)
        blocks = []
        pools = (nn.MaxPool3d((1, 2, 2)), nn.MaxPool3d(2), nn.MaxPool3d(2))
        for i in range(3):
            blocks += [
                nn.Conv3d(chans[i], chans[i + 1], (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)),
                nn.ReLU(inplace=True),
                pools[i],
            ]
        self.body = nn.Sequential(*blocks)
        self.pool = nn.AvgPool3d((2, pool_hw, pool_hw), stride=1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv3d(c2, num_classes, 1)
        self.feature_dim = c2
        self.embed_shape = (c2, t, s, s)
        self.embed_dim = c2 * t * s * s

    def _maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, C)``: the pooled map averaged over time and space."""
        return self._maps(x).mean(dim=(2, 3, 4))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Matching embedding ``(B, C·t·h·w)``: the body output flattened before the final
        pooling (VDSD's ``embed``), time kept as ``t`` positions."""
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.dropout(self._maps(x)))  # (B, classes, t, h, w)
        return logits.flatten(3).mean(3).amax(2)  # spatial map is 1×1 (or averaged), max over time
