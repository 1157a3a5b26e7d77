"""Generator configuration and presets (saved as JSON beside every checkpoint).

The denoiser is the official class-conditional Latte (``latte.py``); ``hidden``, ``depth``
(all blocks: spatial and temporal alternate, so ``depth / 2`` of each), ``heads``,
``patch``, ``mlp_ratio`` and ``learn_sigma`` are its constructor's arguments. Presets, each a
stated choice:

* ``toy`` — for the procedural toy set (8 × 64² clips) on 2 CPU cores: a small
  ``AutoencoderKL`` trained here (channels 16-32-32, 4× down, 4 latent channels →
  latents 4 × 8 × 16²; 400 steps of 16 frames) and a tiny Latte (hidden 96, depth 6 = 3
  spatial + 3 temporal blocks, 4 heads, patch 4: 16 tokens per frame; patch 2 / hidden 128
  was 10× slower on one core), 5000 steps, **v-prediction**, fixed variance.
* ``latte-s`` — the official Latte-S/2 (hidden 384, depth 12, 6 heads, patch 2, learned
  sigma, ε-prediction) for SD-VAE latents (pass ``--vae``), AdamW lr 1e-4, EMA 0.9999.
* ``latte-xl`` — the official Latte-XL/2 (hidden 1152, depth 28, 16 heads): the size of the
  released ``ucf101.pt``; the recipe of its ``configs/ucf101/ucf101_train.yaml`` (AdamW
  1e-4, no weight decay, no warm-up, EMA 0.9999, local batch 5). ``--init`` takes the
  architecture and diffusion settings from the checkpoint in any case.
* ``tiny`` — tests only.

Diffusion (all presets): DDPM with 1000 steps, linear betas 1e-4 → 0.02 (the DiT/Latte
defaults). The Latte presets predict ε and learn the variance as the official model does
(``learn_sigma``: loss = MSE(ε) + the improved-DDPM variational term on the variance
channels, mean frozen); ``toy`` predicts **v** (Salimans & Ho) with a fixed variance: with
ε-prediction, the toy model after 250 steps had a high-noise ε-error of MSE ≈ 0.02, which
x̂₀ = (x_t − √(1−ᾱ)ε̂)/√ᾱ amplifies ~150× at t ≈ 999 — DDIM samples ended with latent std ≈
6-7 instead of 1 (at every guidance scale); v-prediction's x̂₀ does not divide by √ᾱ.

Gradient clipping: the official recipe clips at 0.1 only from step 100,000 on
(``start_clip_iter``), so fine-tuning runs shorter than that never clip: the Latte presets
do not clip (``grad_clip=0``); ``toy`` clips at 1.0 (from scratch, large LR).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from vidistill.fieldcheck import check_kinds


@dataclass(frozen=True)
class GenerateConfig:
    preset: str = "toy"
    # ---- VAE (trained here unless a pretrained one is given with --vae) ----
    vae_channels: tuple[int, ...] = (16, 32, 32)  # len-1 stride-2 downsamples: 3 blocks → 4×
    vae_layers_per_block: int = 1
    vae_latent_channels: int = 4
    vae_norm_groups: int = 8
    vae_steps: int = 400
    vae_batch: int = 16
    vae_lr: float = 2e-3
    vae_kl_weight: float = 1e-6  # SD's KL weight: a near-deterministic autoencoder
    # ---- Latte denoiser ----
    hidden: int = 96
    depth: int = 6  # all blocks (official ``depth``): spatial and temporal alternate
    heads: int = 4
    patch: int = 4
    mlp_ratio: float = 4.0
    learn_sigma: bool = False  # 2·C outputs: ε (or v) and the variance interpolation
    # ---- diffusion ----
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "v_prediction"  # toy; latte-s: "epsilon" (Latte's)
    # ---- training ----
    steps: int = 5000  # toy (docs/generation.md); the Latte presets override
    batch: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    label_dropout: float = 0.1  # classifier-free guidance: p(label → null) in training
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_kinds(self, "generator config")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(
                f"prediction_type must be 'epsilon' or 'v_prediction', got {self.prediction_type!r}"
            )
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        for name in ("steps", "batch", "checkpoint_every", "patch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.depth < 2 or self.depth % 2:
            raise ValueError(
                f"depth must be even and >= 2 (spatial/temporal block pairs), got {self.depth}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vae_channels"] = list(self.vae_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerateConfig:
        known = {f.name for f in fields(cls)}
        if "label_tokens" in d or "layers" in d:
            raise ValueError(
                "this generator config was written by the previous Latte (a diffusers "
                "text-to-video model with a label cross-attention, before issue 16); its "
                "weights do not fit the official class-conditional Latte — retrain it"
            )
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys {unknown}; known: {sorted(known)}")
        d = dict(d)
        if isinstance(d.get("vae_channels"), list | tuple):
            d["vae_channels"] = tuple(d["vae_channels"])
        return cls(**d)

    def override(self, **kw: Any) -> GenerateConfig:
        """Copy with the given non-None fields replaced (CLI options)."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


PRESETS: dict[str, GenerateConfig] = {
    "toy": GenerateConfig(),
    "latte-s": GenerateConfig(
        preset="latte-s",
        hidden=384,
        depth=12,
        heads=6,
        patch=2,
        learn_sigma=True,
        prediction_type="epsilon",
        steps=100_000,
        batch=16,
        lr=1e-4,
        warmup_steps=0,
        grad_clip=0.0,
        ema_decay=0.9999,
        checkpoint_every=2000,
        vae_channels=(64, 128, 256, 256),
        vae_layers_per_block=2,
        vae_norm_groups=32,
    ),
    "latte-xl": GenerateConfig(
        preset="latte-xl",
        hidden=1152,
        depth=28,
        heads=16,
        patch=2,
        learn_sigma=True,
        prediction_type="epsilon",
        steps=100_000,
        batch=5,
        lr=1e-4,
        warmup_steps=0,
        grad_clip=0.0,
        ema_decay=0.9999,
        checkpoint_every=2000,
        vae_channels=(128, 256, 512, 512),
        vae_layers_per_block=2,
        vae_norm_groups=32,
    ),
    # Used by the tests: seconds on one core.
    "tiny": GenerateConfig(
        preset="tiny",
        vae_channels=(8, 16),
        vae_layers_per_block=1,
        vae_norm_groups=4,
        vae_steps=3,
        vae_batch=8,
        hidden=32,
        depth=2,
        heads=2,
        patch=2,
        steps=4,
        batch=4,
        lr=1e-3,
        warmup_steps=0,
        checkpoint_every=2,
        ema_decay=0.9,
    ),
}


def preset(name: str) -> GenerateConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown generator preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
