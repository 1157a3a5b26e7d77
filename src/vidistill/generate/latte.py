"""Class-conditional Latte: ``diffusers.LatteTransformer3DModel`` + a label embedding.

Latte (Ma et al., 2024) interleaves spatial blocks (attention among the patches of one
frame) with temporal blocks (attention among the frames at one patch position); the
timestep modulates every block through adaLN-single. diffusers' implementation is the
text-to-video variant: its spatial blocks cross-attend to ``encoder_hidden_states``.
We condition on the class by feeding ``label_tokens`` learned tokens from an
``nn.Embedding(num_classes + 1, label_tokens * caption_channels)`` there — index
``num_classes`` is the **null label** for classifier-free guidance. That is clean: no
change to diffusers' code, and a pretrained diffusers Latte loads unchanged (only the
label embedding is new). With one token the cross-attention output is a learned
per-class vector added in every spatial block (attention over one key is 1); more
tokens let each patch weigh them differently.

A pretrained Latte that learns sigma (``out_channels == 2 * in_channels``, as Latte-1)
keeps its head; only the first ``in_channels`` outputs (the ε/v prediction) are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from vidistill.generate.config import GenerateConfig


def _latte_cls():
    from diffusers import LatteTransformer3DModel

    return LatteTransformer3DModel


class ClassConditionedLatte(nn.Module):
    """``forward(x, t, labels) -> prediction`` with ``x: (B, C, T, h, w)``; label
    ``num_classes`` (``self.null_label``) is the unconditional branch."""

    def __init__(self, transformer: nn.Module, num_classes: int, label_tokens: int = 1):
        super().__init__()
        self.transformer = transformer
        self.num_classes = num_classes
        self.null_label = num_classes
        self.label_tokens = label_tokens
        self.in_channels = transformer.config.in_channels
        dim = transformer.config.caption_channels
        self.label_embed = nn.Embedding(num_classes + 1, label_tokens * dim)
        nn.init.normal_(self.label_embed.weight, std=0.02)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.min() < 0 or labels.max() > self.null_label:
            raise ValueError(
                f"labels must be in [0, {self.null_label}] "
                f"({self.null_label} = null label); got {labels.tolist()}"
            )
        cond = self.label_embed(labels).view(len(labels), self.label_tokens, -1)
        out = self.transformer(
            x, timestep=t, encoder_hidden_states=cond.to(x.dtype), return_dict=False
        )[0]
        return out[:, : self.in_channels]


def latte_kwargs(
    cfg: GenerateConfig, in_channels: int, frames: int, latent_size: int
) -> dict[str, Any]:
    """diffusers config for a Latte of the given size (Latte-1's block settings)."""
    if latent_size % cfg.patch:
        raise ValueError(
            f"latent size {latent_size} is not divisible by patch {cfg.patch}; "
            f"pick --patch that divides it"
        )
    return dict(
        num_attention_heads=cfg.heads,
        attention_head_dim=cfg.hidden // cfg.heads,
        in_channels=in_channels,
        out_channels=in_channels,
        num_layers=cfg.layers,
        cross_attention_dim=cfg.hidden,
        caption_channels=cfg.hidden,
        attention_bias=True,
        sample_size=latent_size,
        patch_size=cfg.patch,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=cfg.num_train_timesteps,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        video_length=frames,
    )


def build_latte(
    cfg: GenerateConfig,
    num_classes: int,
    in_channels: int,
    frames: int,
    latent_size: int,
    init: str | Path | None = None,
) -> ClassConditionedLatte:
    """A fresh denoiser, or one whose transformer is loaded from a local diffusers Latte."""
    if init is None:
        transformer = _latte_cls()(**latte_kwargs(cfg, in_channels, frames, latent_size))
        _zero_init_output(transformer)
    else:
        path = Path(init)
        if (path / "transformer" / "config.json").is_file():
            path = path / "transformer"  # a pipeline root
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"--init {init}: no config.json (pass a diffusers "
                f"LatteTransformer3DModel folder or a pipeline root)"
            )
        # video_length only sizes a non-persistent sin-cos buffer: safe to override.
        transformer = _latte_cls().from_pretrained(path, video_length=frames)
        if transformer.config.in_channels != in_channels:
            raise ValueError(
                f"--init Latte expects {transformer.config.in_channels} latent "
                f"channels but the VAE gives {in_channels}; use the matching --vae"
            )
    return ClassConditionedLatte(transformer, num_classes, cfg.label_tokens)


def _zero_init_output(transformer: nn.Module) -> None:
    """DiT/Latte zero-initialise the final projection so training starts at ε̂ = 0."""
    nn.init.zeros_(transformer.proj_out.weight)
    nn.init.zeros_(transformer.proj_out.bias)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
