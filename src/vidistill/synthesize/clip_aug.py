"""Clip-consistent differentiable augmentation for matching (DM's Siamese DSA, for video).

The original DM (Zhao & Bilen, WACV'23) matches embeddings of *augmented* real and
synthetic batches: Differentiable Siamese Augmentation (DSA, Zhao & Bilen, ICML'21), one
randomly chosen transform per matching step (``aug_mode='S'``) with the *same* parameters
for the real and the synthetic batch ("Siamese") and for every image of both. VDSD's DM
baseline drops it. We keep it as a named option (``augment=clip`` on ``dm``), with two
changes for video, both because a clip's class may be its motion:

* **clip-consistent**: one transform per call, applied identically to every frame of
  every clip — so what moves between frames still moves the same way (a per-frame
  random crop would add jitter that is not in the data);
* **no flips or rotations** (DSA's ``flip`` and ``rotate``): they turn "moving left"
  into "moving right" or "up", i.e. change the label of a motion-defined class.

What remains is DSA's ``color`` (brightness, saturation, contrast together), ``crop``
(translation with zero fill), ``cutout`` and ``scale``, with DSA's parameters
(``ParamDiffAug``: brightness 1.0, saturation 2.0, contrast 0.5, crop pad 0.125, cutout
0.5, scale 1.2). DSA's contrast centres each *image* on its own mean; we centre each clip
on its mean over all its frames, so the transform stays the same for every frame. Every
random number comes from the caller's ``torch.Generator``, so a resumed synthesis draws
the same transforms. All ops are differentiable in the input (``grid_sample``, masks,
padding), so the synthetic videos get the gradient through them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

OPS = ("color", "crop", "cutout", "scale")
BRIGHTNESS, SATURATION, CONTRAST = 1.0, 2.0, 0.5
CROP_PAD, CUTOUT, SCALE = 0.125, 0.5, 1.2


def sample_params(size: int, gen: torch.Generator | None = None) -> dict[str, Any]:
    """One transform for a matching step: the op (uniform over ``OPS``) and its parameters."""
    op = OPS[int(torch.randint(len(OPS), (1,), generator=gen))]
    u = torch.rand(3, generator=gen).tolist()
    if op == "color":
        return {"op": op, "brightness": u[0], "saturation": u[1], "contrast": u[2]}
    if op == "crop":
        shift = int(size * CROP_PAD + 0.5)
        dx, dy = torch.randint(-shift, shift + 1, (2,), generator=gen).tolist()
        return {"op": op, "dx": dx, "dy": dy}
    if op == "cutout":
        cut = int(size * CUTOUT + 0.5)
        cx, cy = torch.randint(0, size + (1 - cut % 2), (2,), generator=gen).tolist()
        return {"op": op, "cx": cx, "cy": cy, "cut": cut}
    sx, sy = (v * (SCALE - 1.0 / SCALE) + 1.0 / SCALE for v in u[:2])
    return {"op": op, "sx": sx, "sy": sy}


def apply(x: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    """Apply transform ``p`` to clips ``(B,3,T,H,W)``: the same one on every frame of every clip."""
    if x.ndim != 5:
        raise ValueError(f"expected clips (B,3,T,H,W), got {tuple(x.shape)}")
    b, c, t, h, w = x.shape
    op = p["op"]
    if op == "color":
        x = x + (p["brightness"] - 0.5) * BRIGHTNESS
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (p["saturation"] * SATURATION) + m
        m = x.mean(dim=(1, 2, 3, 4), keepdim=True)  # the clip's own mean, all frames
        return (x - m) * (p["contrast"] + CONTRAST) + m
    if op == "crop":  # translate by (dx, dy) px, zero fill (DSA pads and crops)
        dx, dy = p["dx"], p["dy"]
        pad = max(abs(dx), abs(dy))
        xp = F.pad(x, (pad, pad, pad, pad))
        return xp[..., pad + dx : pad + dx + h, pad + dy : pad + dy + w]
    if op == "cutout":
        half = p["cut"] // 2
        mask = torch.ones(h, w, dtype=x.dtype, device=x.device)
        r0, r1 = max(p["cx"] - half, 0), min(p["cx"] - half + p["cut"], h)
        c0, c1 = max(p["cy"] - half, 0), min(p["cy"] - half + p["cut"], w)
        mask[r0:r1, c0:c1] = 0
        return x * mask
    if op == "scale":
        theta = torch.tensor(
            [[p["sx"], 0.0, 0.0], [0.0, p["sy"], 0.0]], dtype=x.dtype, device=x.device
        )
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        grid = F.affine_grid(theta.expand(b * t, 2, 3), list(frames.shape), align_corners=False)
        out = F.grid_sample(frames, grid, align_corners=False)
        return out.view(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    raise ValueError(f"unknown clip augmentation op {op!r}; choose one of {OPS}")
