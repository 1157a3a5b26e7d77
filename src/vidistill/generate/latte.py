"""Class-conditional Latte (Ma et al., 2024) as the official code builds it — one file.

The architecture and **every parameter name** follow ``models/latte.py`` of the official
repository (``Vchitect/Latte``, the ``extras=2`` class-conditional model), so an official
checkpoint such as ``ucf101.pt`` loads with ``load_state_dict(strict=True)``::

    x ──► x_embedder (Conv2d p×p per frame) + pos_embed (fixed 2-D sin-cos)   tokens (B·F, N, D)
    t ──► t_embedder (sinusoid 256 → Linear → SiLU → Linear) ─┐
    y ──► y_embedder.embedding_table (num_classes + 1 rows) ──┴─ + ─► c  (B, D)
    for i in 0, 2, 4, …:  blocks[i]   spatial: attention among the N patches of one frame
                          (+ temp_embed, fixed 1-D sin-cos, once, after blocks[0])
                          blocks[i+1] temporal: attention among the F frames at one patch
    final_layer (adaLN: shift/scale from c, Linear → p²·out_channels) ─► unpatchify

Each block is DiT's adaLN-Zero block: LayerNorm without affine (eps 1e-6), ``adaLN_modulation
= SiLU → Linear(D, 6D)`` giving shift/scale/gate for attention and MLP, fused ``qkv`` with
bias, MLP ratio 4 with tanh-GELU. The condition ``c = t_embed + y_embed`` modulates every
block and the final layer. Label row ``num_classes`` is the **null label** of classifier-free
guidance. ``learn_sigma`` doubles the output channels: the first ``in_channels`` are the ε
(or v) prediction, the rest the variance interpolation ``v ∈ [-1, 1]`` of improved DDPM.

Differences from the official module, none of which touches a weight:

* ``forward(x, t, y)`` takes and returns ``(B, C, F, H, W)`` — the layout of diffusers' video
  models and of the rest of vidistill, so diffusers' schedulers split the learned-sigma
  channels on dim 1. The official forward takes ``(B, F, C, H, W)``.
* Label dropout for CFG is done by the training loop (from its own seeded generator, for
  exact resume) instead of inside ``LabelEmbedder.forward``; the null row is the same.
* Attention uses ``F.scaled_dot_product_attention`` (the same math as the official
  ``attention_mode='math'``).
* The unconditional (``extras=1``) and text (``extras=78``) variants are not built: the
  generate stage needs class labels.

Official sizes (``Latte_models``): :data:`VARIANTS`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidistill.generate.config import GenerateConfig

#: The official ``Latte-*/p`` sizes: depth (spatial + temporal blocks), hidden size, heads.
VARIANTS: dict[str, dict[str, int]] = {
    f"Latte-{name}/{p}": {"depth": d, "hidden": h, "heads": n, "patch": p}
    for name, d, h, n in (
        ("XL", 28, 1152, 16),
        ("L", 24, 1024, 16),
        ("B", 12, 768, 12),
        ("S", 12, 384, 6),
    )
    for p in (2, 4, 8)
}
#: Heads by hidden size in the official variants (the head count is not in the weights).
HEADS_BY_DIM = {1152: 16, 1024: 16, 768: 12, 384: 6}


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, head_dim) each
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """timm's ``Mlp`` (``fc1``, ``fc2``) with tanh-approximated GELU, as the official block."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    """timm's ``PatchEmbed``: a stride-p convolution, tokens flattened row-major."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = (patch_size, patch_size)
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of t (GLIDE's: cos first, period 10000) → a two-layer MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
        half = dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
        )
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        freq = self.timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(freq.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """``num_classes + 1`` rows; the last is the null label (classifier-free guidance)."""

    def __init__(self, num_classes: int, hidden_size: int):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)
        self.num_classes = num_classes

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels)


class TransformerBlock(nn.Module):
    """adaLN-Zero block (DiT): ``x += gate·f(modulate(norm(x), shift, scale))`` for attention
    and MLP, the six vectors from ``adaLN_modulation(c)``."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(
            c
        ).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class Latte(nn.Module):
    """``forward(x, t, y) -> prediction``: ``x (B, C, F, H, W)``, ``t (B,)`` diffusion steps,
    ``y (B,)`` labels in ``[0, num_classes]`` (``num_classes`` = ``null_label``). Returns
    ``(B, out_channels, F, H, W)``, ``out_channels = 2·C`` with ``learn_sigma``."""

    def __init__(
        self,
        input_size: int = 32,
        patch_size: int = 2,
        in_channels: int = 4,
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_frames: int = 16,
        num_classes: int = 101,
        learn_sigma: bool = True,
    ):
        super().__init__()
        if depth < 2 or depth % 2:
            raise ValueError(f"depth must be even and >= 2 (spatial/temporal pairs), got {depth}")
        if input_size % patch_size:
            raise ValueError(f"latent size {input_size} is not divisible by patch {patch_size}")
        if hidden_size % num_heads or hidden_size % 4:
            raise ValueError(
                f"hidden size {hidden_size} must be divisible by heads ({num_heads}) and by 4 "
                "(the 2-D sin-cos position table)"
            )
        self.learn_sigma = learn_sigma
        self.in_channels = in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.patch_size = patch_size
        self.num_heads = num_heads
        self.num_frames = num_frames
        self.num_classes = num_classes
        self.null_label = num_classes

        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size)
        n = self.x_embedder.num_patches
        # Fixed sin-cos tables; parameters without gradient, as in the official model (so
        # they are in the state dict under these names).
        self.pos_embed = nn.Parameter(torch.zeros(1, n, hidden_size), requires_grad=False)
        self.temp_embed = nn.Parameter(torch.zeros(1, num_frames, hidden_size), requires_grad=False)
        self.blocks = nn.ModuleList(
            TransformerBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """The official initialisation: Xavier linears, sin-cos tables, N(0, 0.02) label and
        timestep embeddings, adaLN modulations and the output layer zeroed (adaLN-Zero)."""

        def _basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)

        self.apply(_basic_init)
        grid = self.x_embedder.grid_size
        self.pos_embed.data.copy_(sincos_2d(self.pos_embed.shape[-1], grid).unsqueeze(0))
        self.temp_embed.data.copy_(sincos_1d(self.temp_embed.shape[-1], self.num_frames)[None])
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.constant_(self.x_embedder.proj.bias, 0)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.constant_(block.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(block.adaLN_modulation[-1].bias, 0)
        nn.init.constant_(self.final_layer.adaLN_modulation[-1].weight, 0)
        nn.init.constant_(self.final_layer.adaLN_modulation[-1].bias, 0)
        nn.init.constant_(self.final_layer.linear.weight, 0)
        nn.init.constant_(self.final_layer.linear.bias, 0)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, h·w, p·p·C)`` → ``(N, C, h·p, w·p)`` (the official channel-last patch order)."""
        c, p = self.out_channels, self.patch_size
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], h, w, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, w * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        if f != self.num_frames or c != self.in_channels:
            raise ValueError(
                f"Latte expects latents (B, {self.in_channels}, {self.num_frames}, h, w); "
                f"got {tuple(x.shape)}"
            )
        if y.min() < 0 or y.max() > self.null_label:
            raise ValueError(
                f"labels must be in [0, {self.null_label}] "
                f"({self.null_label} = null label); got {y.tolist()}"
            )
        x = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        x = self.x_embedder(x) + self.pos_embed  # (B·F, N, D)
        n, d = x.shape[1], x.shape[2]
        cond = self.t_embedder(t) + self.y_embedder(y)  # (B, D)
        c_spatial = cond.repeat_interleave(f, dim=0)  # one per (clip, frame)
        c_temporal = cond.repeat_interleave(n, dim=0)  # one per (clip, patch)
        for i in range(0, len(self.blocks), 2):
            x = self.blocks[i](x, c_spatial)
            x = x.reshape(b, f, n, d).transpose(1, 2).reshape(b * n, f, d)  # frames as tokens
            if i == 0:
                x = x + self.temp_embed
            x = self.blocks[i + 1](x, c_temporal)
            x = x.reshape(b, n, f, d).transpose(1, 2).reshape(b * f, n, d)
        x = self.unpatchify(self.final_layer(x, c_spatial))  # (B·F, out, H, W)
        return x.reshape(b, f, self.out_channels, h, w).permute(0, 2, 1, 3, 4)


# -- fixed sin-cos tables (MAE's util/pos_embed.py, as the official code) -----------------
def _sincos_from_grid(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_1d(dim: int, length: int) -> torch.Tensor:
    """``(length, dim)``: the official ``temp_embed``."""
    return torch.from_numpy(_sincos_from_grid(dim, np.arange(length))).float()


def sincos_2d(dim: int, grid_size: int) -> torch.Tensor:
    """``(grid², dim)``: the official ``pos_embed`` (first half from the w coordinate — the
    official ``np.meshgrid(grid_w, grid_h)`` puts w first)."""
    g = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(g, g), axis=0)  # here w goes first
    emb = np.concatenate(
        [_sincos_from_grid(dim // 2, grid[0]), _sincos_from_grid(dim // 2, grid[1])], axis=1
    )
    return torch.from_numpy(emb).float()


# -- construction from a generator config --------------------------------------------------
def build_latte(
    cfg: GenerateConfig, num_classes: int, in_channels: int, frames: int, latent_size: int
) -> Latte:
    """A freshly initialised Latte of ``cfg``'s size for latents ``(C, frames, h, h)``."""
    if latent_size % cfg.patch:
        raise ValueError(
            f"latent size {latent_size} is not divisible by patch {cfg.patch}; "
            f"pick a patch that divides it"
        )
    return Latte(
        input_size=latent_size,
        patch_size=cfg.patch,
        in_channels=in_channels,
        hidden_size=cfg.hidden,
        depth=cfg.depth,
        num_heads=cfg.heads,
        mlp_ratio=cfg.mlp_ratio,
        num_frames=frames,
        num_classes=num_classes,
        learn_sigma=cfg.learn_sigma,
    )


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
