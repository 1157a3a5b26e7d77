"""``latent``: flattened VAE latents of each clip (the VST-UNet input space, paper 003 §3.1).

The paper projects every video into the latent space of a pretrained autoencoder before
selection ("This step significantly reduces memory requirements"). We encode each frame
with a per-frame ``diffusers.AutoencoderKL`` — the same VAE and the same scaling as the
generation stage, so a generated pool and its latents live in one space — and flatten
the posterior mean ``(C, T, h, w)`` into one row. The shape is recorded in the
embeddings file (``latent_shape``) so 4D selectors can un-flatten the rows.

``--weights`` may be an ``AutoencoderKL`` folder (e.g. Stable Diffusion's ``vae/``), a
pipeline root holding ``vae/``, or a ``vidistill generate train`` run folder (its trained
``vae/``). There is no default: without a VAE there is no latent space to embed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidistill.clipstore import ClipStore
from vidistill.embed.base import Embedder
from vidistill.registry import register

HOW_TO_GET = (
    "pass --weights DIR: a diffusers AutoencoderKL folder (e.g. the 'vae' folder of a local "
    "Stable-Diffusion checkpoint) or a `vidistill generate train` run folder (it trains one)"
)


@register("embedder", "latent")
class LatentEmbedder(Embedder):
    name = "latent"

    def __init__(self, store: ClipStore, **kwargs: Any):
        super().__init__(store, **kwargs)  # weights, split, seed, device → attributes
        weights, device = self.weights, self.device
        if weights is None:
            raise ValueError(f"the latent embedder needs a VAE: {HOW_TO_GET}")
        from vidistill.generate.vae import downsample_factor, load_vae

        self.vae_dir = Path(weights)
        self.vae = load_vae(self.vae_dir).to(device)
        f = downsample_factor(self.vae)
        s = store.spec.size
        if s % f:
            raise ValueError(
                f"store frames are {s}×{s}, not divisible by the VAE's {f}× downsampling"
            )
        self.latent_shape = (
            int(self.vae.config.latent_channels),
            store.spec.frames,
            s // f,
            s // f,
        )

    @torch.no_grad()
    def embed(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        from vidistill.generate.vae import encode_clips

        z = encode_clips(self.vae, torch.from_numpy(np.ascontiguousarray(clips)).to(self.device))
        return {"embeddings": z.reshape(len(z), -1).float().cpu().numpy()}

    def describe(self) -> dict[str, Any]:
        return {"vae": str(self.vae_dir), "latent_shape": list(self.latent_shape)}
