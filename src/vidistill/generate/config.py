"""Generator configuration and presets (saved as JSON beside every checkpoint).

Two presets, each a stated choice:

* ``toy`` — for the procedural toy set (8 × 64² clips) on 2 CPU cores: a small
  ``AutoencoderKL`` trained here (channels 16-32-32, 4× down, 4 latent channels →
  latents 8 × 4 × 16²; 400 steps of 16 frames — channels 32-64-64 cost 4 s a step) and
  a tiny Latte (hidden 96, 3 spatial + 3 temporal blocks, 4 heads, patch 4: 16 tokens
  per frame, 0.9 M parameters; patch 2 / hidden 128 was 10× slower, 4 s per batch of
  32 on one core); 5000 steps (~2.7 steps/s on one core). Quality is what that buys:
  far from converged, see docs/generation.md.
* ``latte-s`` — the paper's scale: 16 frames, SD-VAE latents 4 × 32² (pass ``--vae``),
  a Latte-S-size denoiser (hidden 384, 6 heads, patch 2, 12 spatial + 12 temporal
  blocks, ≈ 51 M parameters with the label cross-attention), AdamW lr 1e-4, EMA 0.9999.

Diffusion (both presets): DDPM with 1000 steps, linear betas 1e-4 → 0.02 (the DiT/Latte
defaults). ``latte-s`` predicts ε as Latte does; ``toy`` predicts **v** (Salimans & Ho):
with ε-prediction, the toy model after 250 steps had a high-noise ε-error of MSE ≈ 0.02,
which x̂₀ = (x_t − √(1−ᾱ)ε̂)/√ᾱ amplifies ~150× at t ≈ 999 — DDIM samples ended with
latent std ≈ 6-7 instead of 1 (at every guidance scale); v-prediction's x̂₀ does not
divide by √ᾱ. Latte learns the variance too ("learned sigma"); we do not, with the fixed
DDPM variance, which DDIM and DPM-Solver sampling do not need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


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
    layers: int = 3  # spatial blocks; as many temporal blocks are interleaved
    heads: int = 4
    patch: int = 4
    label_tokens: int = 1  # class embedding → this many cross-attention tokens
    # ---- diffusion ----
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "v_prediction"  # toy; latte-s: "epsilon" (Latte's)
    # ---- training ----
    steps: int = 5000  # toy: ~31 min on one CPU core (docs/generation.md); latte-s overrides
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
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(
                f"prediction_type must be 'epsilon' or 'v_prediction', got {self.prediction_type!r}"
            )
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        for name in ("steps", "batch", "checkpoint_every", "patch", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vae_channels"] = list(self.vae_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerateConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys {unknown}; known: {sorted(known)}")
        d = dict(d)
        if "vae_channels" in d:
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
        layers=12,
        heads=6,
        patch=2,
        steps=100_000,
        batch=16,
        lr=1e-4,
        warmup_steps=0,
        ema_decay=0.9999,
        checkpoint_every=2000,
        prediction_type="epsilon",
        vae_channels=(64, 128, 256, 256),
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
        layers=1,
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
