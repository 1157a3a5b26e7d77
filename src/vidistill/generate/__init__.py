"""Generation: class-conditional latent video diffusion (VAE + Latte) → a synthetic pool.

``latte`` (the official class-conditional Latte, official parameter names), ``pretrained``
(official checkpoints: read weights-only, convert, ``--init``), ``train`` (VAE, cached
latents, DDPM training with EMA and exact resume) and ``sample_pool`` (DDPM / DDIM /
DPM-Solver with classifier-free guidance → ClipStore); quality metrics in ``quality``.
diffusers and accelerate are imported lazily (extra ``models``).
"""

from vidistill.generate.config import PRESETS, GenerateConfig, preset
from vidistill.generate.sample import load_generator, sample_latents, sample_pool
from vidistill.generate.train import train

__all__ = [
    "PRESETS",
    "GenerateConfig",
    "load_generator",
    "preset",
    "sample_latents",
    "sample_pool",
    "train",
]
