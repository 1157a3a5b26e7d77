"""Generation: class-conditional latent video diffusion (VAE + Latte) → a synthetic pool.

``train`` (VAE, cached latents, DDPM training with EMA and exact resume) and
``sample_pool`` (DDIM / DPM-Solver with classifier-free guidance → ClipStore); quality
metrics in ``quality``. diffusers and accelerate are imported lazily (extra ``models``).
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
