"""``vst-unet``: the Video Spatio-Temporal U-Net selector (paper 003, §3.1, Algorithm 1).

One model is trained on all classes (Algorithm 1: for E_s epochs, for each class c, the
class's whole pool V̂_c of VAE latents is ONE input), then each class keeps the VPC clips
with the highest probability (line 13, ``argsort(p_c)[:VPC]``). On one screen:

    x: (N_c, C, T, h, w)  latents of one class (``latent`` embedder rows, un-flattened)
    U-Net, 2 levels, "4D" blocks = Conv3d over (T, h, w) of each clip
                                  + Conv1d along the N_c clips at every voxel
    f = mean over (T, h, w) of the last decoder block   (N_c, F)  penultimate features
    p = softmax(Linear(F → classes)(f))                 (N_c, classes)
    S_c = top-VPC clips by p[:, c]
    L = CE(p, c) + λ_d · L_div(f_S) + λ_r · L_rep(f, f_S)

Choices where the paper is vague (each written down because the paper is silent):

* **What p is.** The paper says the model "outputs both the probabilities p_c and the
  feature embeddings f_c from its penultimate layer" and trains with a cross-entropy
  "class-dependent objective"; Table 6 reports a *CE-only* VST-UNet that still selects.
  The one reading where all of this holds: p is the class posterior of each clip and a
  clip's selection score is p of its own class. So CE-only VST-UNet is a learned,
  context-aware confidence ranking; L_div and L_rep then reshape the features (and so
  p) through the selected clips.
* **Gradients of L_div / L_rep.** S_c is a hard top-k (no gradient to p); the two losses
  are differentiable in the features f of the clips, which is where they act.
* **L_rep's sign.** Eq. 2 writes ``exp(−mean_t min_{i∈S} ‖x_t − x_i‖)`` — DR-DSN's
  representativeness *reward*; minimising it as printed would push the selection away
  from the class, against the text ("minimizing the distance between the selected
  videos and all other videos"). We minimise ``1 − exp(−mean_t min_i d_MSE(f_t, f_i))``.
* **L_div** is Eq. 1 as printed: mean pairwise cosine similarity within S_c (0 when
  VPC = 1, where the paper sets λ_d = 0).
* **λ** from §4.1: VPC 1 → λ_r = 0.1, λ_d = 0; VPC ≥ 5 → λ_r = 1, λ_d = 0.1 (VPC 2–4,
  not in the paper, use the VPC ≥ 5 setting). Override with ``lambda_div`` / ``lambda_rep``.
* **Not stated, chosen**: E_s = ``epochs`` 20, Adam lr 1e-3, base width 16, GroupNorm +
  SiLU. A pool has no order among clips, so the clip axis (the Conv1d's) is shuffled
  every step and p is averaged over ``views`` = 4 random orders at selection time.
* **Input**: rows of the ``latent`` embedder (shape from its ``latent_shape``, or the
  ``latent_shape`` option). Any other (n, D) embedding is treated as latents of shape
  (D, 1, 1, 1), so the method also runs on VideoMAE/classifier vectors (the 3D convs
  then see one voxel); say which in the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from vidistill.select.base import ClassData, selector


class Block4D(nn.Module):
    """A factorised 4D convolution: Conv3d over each clip's (T, h, w), then a residual
    Conv1d along the clip axis at every (t, y, x) — the (2+1)D trick one dimension up."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv3d = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, cout), cout)
        self.across = nn.Conv1d(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T, h, w)
        x = F.silu(self.norm(self.conv3d(x)))
        n, c, t, h, w = x.shape
        seq = x.permute(2, 3, 4, 1, 0).reshape(t * h * w, c, n)  # every voxel: a sequence of clips
        mix = self.across(seq).reshape(t, h, w, c, n).permute(4, 3, 0, 1, 2)
        return x + mix


class VSTUNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 16):
        super().__init__()
        self.enc1 = Block4D(in_channels, width)
        self.enc2 = Block4D(width, 2 * width)
        self.dec1 = Block4D(3 * width, width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, T, h, w)`` → (features ``(N, F)``, class logits ``(N, classes)``)."""
        e1 = self.enc1(x)
        pool = (1, 2, 2) if x.shape[-1] >= 2 else (1, 1, 1)
        e2 = self.enc2(F.avg_pool3d(e1, pool))
        up = F.interpolate(e2, size=e1.shape[2:], mode="nearest")
        f = self.dec1(torch.cat([e1, up], dim=1)).mean(dim=(2, 3, 4))
        return f, self.head(f)


def diversity_loss(f_sel: torch.Tensor) -> torch.Tensor:
    """Eq. 1: mean pairwise cosine similarity among the selected clips (0 for one clip)."""
    k = len(f_sel)
    if k < 2:
        return f_sel.sum() * 0
    z = F.normalize(f_sel, dim=1)
    sim = z @ z.T
    return (sim.sum() - sim.diagonal().sum()) / (k * (k - 1))


def representativeness_loss(f_all: torch.Tensor, f_sel: torch.Tensor) -> torch.Tensor:
    """Eq. 2 turned into a loss: 1 − exp(−mean_t min_{i∈S} MSE(f_t, f_i))."""
    d = (f_all[:, None, :] - f_sel[None, :, :]).pow(2).mean(dim=2)  # (N, k)
    return 1 - torch.exp(-d.min(dim=1).values.mean())


def _latents(data: ClassData, shape: tuple[int, ...]) -> torch.Tensor:
    rows = np.concatenate([b for _, b in data.chunks()])  # check_vpc guarantees n >= 1
    return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)).reshape(-1, *shape)


def _shape(data: ClassData, latent_shape: Any) -> tuple[int, int, int, int]:
    shape = latent_shape or data.details.get("latent_shape") or (data.dim, 1, 1, 1)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or int(np.prod(shape)) != data.dim:
        raise ValueError(
            f"vst-unet: latent_shape {list(shape)} does not match embedding dim {data.dim} "
            f"(need C·T·h·w = D; embed with --embedder latent, which records it)"
        )
    return shape  # type: ignore[return-value]


def _lambdas(vpc: int, lambda_div: float | None, lambda_rep: float | None) -> tuple[float, float]:
    paper_div, paper_rep = (0.0, 0.1) if vpc == 1 else (0.1, 1.0)  # §4.1
    div = paper_div if lambda_div is None else float(lambda_div)
    rep = paper_rep if lambda_rep is None else float(lambda_rep)
    return div, rep


def fit_vst_unet(
    classes: list[ClassData],
    vpc: int,
    seed: int = 0,
    epochs: int = 20,
    lr: float = 1e-3,
    width: int = 16,
    lambda_div: float | None = None,
    lambda_rep: float | None = None,
    latent_shape: Any = None,
    views: int = 4,
) -> dict[str, Any]:
    """Algorithm 1, lines 1–10: one VST-UNet trained class by class for ``epochs``."""
    shape = _shape(classes[0], latent_shape)
    ld, lrep = _lambdas(vpc, lambda_div, lambda_rep)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = VSTUNet(shape[0], max(d.label for d in classes) + 1, width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    bar = tqdm(range(epochs), desc="vst-unet fit", unit="epoch", disable=None, leave=False)
    for _ in bar:
        total = 0.0
        for data in classes:
            x = _latents(data, shape)
            x = x[torch.randperm(len(x), generator=gen)]  # the clip axis has no order
            f, logits = model(x)
            target = torch.full((len(x),), data.label, dtype=torch.long)
            sel = logits.softmax(1)[:, data.label].detach().topk(vpc).indices
            loss = F.cross_entropy(logits, target)
            loss = loss + ld * diversity_loss(f[sel]) + lrep * representativeness_loss(f, f[sel])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        history.append(total / len(classes))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    return {"model": model.eval(), "shape": shape, "views": views, "seed": seed, "loss": history}


@selector("vst-unet", fit=fit_vst_unet)
def vst_unet(
    data: ClassData, vpc: int, seed: int = 0, fitted: dict[str, Any] | None = None, **_: Any
) -> np.ndarray:
    """Algorithm 1, lines 11–13: top-VPC clips by p of the class, averaged over clip orders."""
    assert fitted is not None  # run_selector fits on this class alone when not given
    x = _latents(data, fitted["shape"])
    gen = torch.Generator().manual_seed(fitted["seed"] * 1000 + data.label)
    p = torch.zeros(len(x))
    with torch.no_grad():
        for _ in range(fitted["views"]):
            perm = torch.randperm(len(x), generator=gen)
            _, logits = fitted["model"](x[perm])
            p[perm] += logits.softmax(1)[:, data.label]
    return np.argsort(-p.numpy(), kind="stable")[:vpc]
