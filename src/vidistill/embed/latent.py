"""``latent``: flattened VAE latents of each clip (the VST-UNet input space).

Registered now so the CLI lists it; it needs the VAE of the generation stage
(`vidistill generate`), which does not expose an encoder yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidistill.embed.base import Embedder
from vidistill.registry import register


@register("embedder", "latent")
class LatentEmbedder(Embedder):
    name = "latent"

    def __init__(self, store: Any, **kwargs: Any):
        raise NotImplementedError(
            "the 'latent' embedder needs the video VAE of the generation stage "
            "(vidistill.generate), which does not expose an encoder yet; use --embedder "
            "classifier (in-domain) or videomae (pretrained, --weights DIR) meanwhile"
        )

    def embed(self, clips: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError
