"""C3D (Tran et al., ICCV 2015): the classifier of the diffusion-selection paper.

That paper (``papers/003``, §4) says only "The classifier is C3D in all experiments" —
its in-text citation [18] points at CSTA by mistake; C3D is its reference [22]. It gives
no C3D recipe, so C3D is trained with our shared recipe (DESIGN §4).

Architecture as in Tran et al.: 8 conv layers, all k=3×3×3 pad 1 stride 1, ReLU, no
normalisation, channels 64 | 128 | 256 256 | 512 512 | 512 512; pool1 (1,2,2), pool2–5
(2,2,2); fc6 4096, fc7 4096 (ReLU, dropout 0.5), fc8 → classes. For 16×112² clips this is
the original (pool5 ends at 512×1×4×4 = 8192 features; the original pads pool5 by
(0,1,1), we use ceil_mode, which gives the same 7 → 4).

Stated changes for small clips (e.g. the toy's 8×64²): a pool whose input has extent 1
along an axis does not pool that axis (so 8 frames end at 1 instead of failing at pool5),
and ``width`` scales every conv channel count and the fc size (4096·width).

``embed(x)``: the pool5 map flattened (fc6's input, ``(B, C·t·h·w)``), the matching
embedding of the synthesizers — the body output before the fully connected head, keeping
the temporal layout where pool5 leaves more than one time step (16 frames: 1; the
synthesizers match ConvNet3D by default, see ``convnet3d.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from vidistill.registry import register

CHANNELS = (64, 128, 256, 256, 512, 512, 512, 512)
POOL_AFTER = (0, 1, 3, 5, 7)  # conv index after which pool1..pool5 come
MIN_SIZE = 32
MIN_FRAMES = 2


@register("net", "c3d")
class C3D(nn.Module):
    def __init__(
        self,
        num_classes: int,
        frames: int = 16,
        size: int = 112,
        width: float = 1.0,
        fc_dim: int = 4096,
        dropout: float = 0.5,
    ):
        super().__init__()
        if frames < MIN_FRAMES or size < MIN_SIZE:
            raise ValueError(
                f"C3D needs clips of at least {MIN_FRAMES} frames × {MIN_SIZE} px "
                f"(five 2× spatial pools); got {frames} frames × {size} px"
            )
        chans = [max(1, round(c * width)) for c in CHANNELS]
        layers: list[nn.Module] = []
        t, s, c_in = frames, size, 3
        for i, c in enumerate(chans):
            layers += [nn.Conv3d(c_in, c, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = c
            if i in POOL_AFTER:
                kt = 1 if i == 0 or t == 1 else 2  # pool1 never pools time (Tran et al.)
                ks = 1 if s == 1 else 2
                layers.append(nn.MaxPool3d((kt, ks, ks), ceil_mode=True))
                t, s = math.ceil(t / kt), math.ceil(s / ks)
        self.body = nn.Sequential(*layers)
        hidden = max(1, round(fc_dim * width))
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * t * s * s, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),  # fc6
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),  # fc7
        )
        self.fc8 = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden
        self.embed_shape = (c_in, t, s, s)
        self.embed_dim = c_in * t * s * s

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 activations ``(B, 4096·width)`` (the classic "C3D features")."""
        return self.head(self.body(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """pool5 flattened ``(B, C·t·h·w)``: the body output before the head."""
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc8(self.features(x))
