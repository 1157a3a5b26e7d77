"""IDTD: Information Diversification and Temporal Densification (Zhao et al., 2024).

Per synthetic video v_{m,n} (class n, index m < M = vpc):

* **Feature Pool** p_{m,n}: a learnable tensor ``(C_p, T, H, W)``;
* **K Feature Selectors** s_{m,n,k}: linear layers ``C_p → 3`` applied at every
  (t, h, w), giving K **Diverse Segments** d_{m,n,k} = s_{m,n,k}(p_{m,n}), each a
  ``(3, T, H, W)`` clip;
* **Temporal Fusor** f_{m,n}: the K segments concatenated along time (K·T frames) and
  convolved by a 1D convolution over time with stride K, giving the T-frame video;
* **stochastic temporal augmentation** τ (``temporal_aug.py``) on the fused video;
* loss (§3.4, Eq. 1) ``L = L_M(D, T) + α1·L_div + α2·L_M(V′, T)`` with DM's mean-
  embedding matching under a fresh random ConvNet3D each iteration, updated **class by
  class** (§3.5), lr 0.01, α1 = 0.05, α2 = 1e-4, K = 8 (§4.2).

Choices where the paper is vague (each is a config option, recorded in the output):

* **Pool shape** ``C_p × T × H × W`` with ``C_p = 3K`` by default: full spatio-temporal
  resolution (segments must be clips φ can embed — ConvNet3D needs ≥ 8 frames — so
  segment length = T), and 3K channels so the pool can hold exactly K clips (the
  capacity of K free segments, and what ``init=real`` uses). The paper initialises the
  pool randomly (§4.2): ``init=noise`` (N(0,1)) is the default; ``init=real`` (pool = K
  real clips of the class stacked on channels, selector k = the one-hot picking clip k)
  is an opt-in warm start for short runs.
* **Selector form**: a per-pixel linear map (1×1×1 conv) ``C_p → 3`` with bias, PyTorch's
  default ``nn.Linear`` init — "light-weighted linear layers" (§4.2).
* **Fusor**: "concatenated Diverse Segments … convolution along the time dimension"
  (§4.2): we concatenate along time and use one 1D kernel of length ``K + 2·fusor_pad``
  (default pad 0, i.e. kernel K) with stride K, shared by channels and pixels, with
  bias; a learnable per-video kernel, initialised to the average (1/kernel), so at the
  start output frame t is the temporal mean of the frames that fall in its window.
  Stride K is what maps K·T frames to T; this is the learned version of Table 3-A's
  "temporal sampling and stitch", which is the same layout with a fixed one-hot kernel.
  MEASURED CONSEQUENCE (docs/synthesis.md): with segment length T and K = T (toy: 8),
  output frame t is a weighted average of all frames of segment t, so each output frame
  comes from a different segment and no segment's motion survives; on the motion-defined
  toy every IDTD variant is at chance. A motion-preserving layout (segments of T/K frames,
  or fusing across segments per time step) is the open next step.
* **Sign of L_div**: the printed Eq. 1 *adds* ``α1·L_div`` where L_div is a sum of
  squared distances — minimising it would pull the segments *together*, while the
  text says the loss "pushed the feature of the Diverse Segments away from each
  other". We follow the stated intent (``div_sign = -1``: the total subtracts
  ``α1·L_div``); ``div_sign = 1`` reproduces the printed sign. ``div_pairs`` chooses
  between all pairs (text) and the printed K−2 bound (see ``diversity_loss``).
  Measured consequence (docs/synthesis.md): our φ (VDSD's ConvNet3D, no normalisation,
  ReLU) is ~positively homogeneous, so −α1·L_div is unbounded below — the segments grow
  until L_div dominates (toy, VPC 1, 100 iterations: l_div ≈ 3,300 while L_M(D) rose
  to ≈ 34 — the segments left the data — and L_M(V′) ≈ 0.04).
  ``div_features="normalised"`` (a stated DEVIATION, off by default) computes L_div on
  unit-norm features, which bounds it (each pair ≤ 4), as DM's instance-normalised
  ConvNet would roughly do.
* **Optimiser**: not named in the paper; Adam (lr 0.01), the usual choice for a
  parameterised generator, and scale-free, so Table 4-A's lone ``α2·L_M`` still trains.
* **Ablations** (``ablation=`` sets the switches): Table 3 — ``t3-a`` stitch K random real
  clips (no optimisation); ``t3-b`` temporal densification only (no pool/selectors:
  segments are free tensors initialised with K real clips, fusor trained, all losses);
  ``t3-c`` information diversification only (pool + selectors trained with
  ``L_M(D) + α1·L_div``, segments stitched by the fixed one-hot layout, no fusor, so
  no ``L_M(V′)``). Table 4 — ``t4-a`` fusor L_M only; ``t4-b`` fusor L_M + L_div; ``t4-c``
  selector L_M + fusor L_M; the full method is all three.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from vidistill.registry import register
from vidistill.synthesize.common import (
    RealSampler,
    SynthConfig,
    Synthesizer,
    diversity_loss,
    matching_loss,
)
from vidistill.synthesize.temporal_aug import stochastic_temporal_augment

VARIANTS = ("full", "stitch", "densify-only", "diversify-only")
ABLATIONS: dict[str, dict] = {
    "": {},
    "t3-a": {"variant": "stitch"},
    "t3-b": {"variant": "densify-only"},
    "t3-c": {"variant": "diversify-only", "loss_fusor_match": False},
    "t4-a": {"loss_sel_match": False, "loss_div": False},
    "t4-b": {"loss_sel_match": False},
    "t4-c": {"loss_div": False},
}


@dataclass
class IDTDConfig(SynthConfig):
    lr: float = 0.01
    k: int = 8
    alpha1: float = 0.05
    alpha2: float = 1e-4
    variant: str = "full"
    loss_sel_match: bool = True
    loss_div: bool = True
    loss_fusor_match: bool = True
    div_pairs: str = "all"
    div_sign: float = -1.0
    div_features: str = "raw"  # "raw" = Eq. 1; "normalised" = on unit-norm φ (bounded)
    pool_channels: int = 0  # 0 → 3·K
    init: str = "noise"
    fusor_pad: int = 0
    aug_min_len: float = 0.5
    ablation: str = ""

    def __post_init__(self) -> None:
        if self.ablation not in ABLATIONS:
            raise ValueError(
                f"unknown IDTD ablation {self.ablation!r}; choose one of {sorted(ABLATIONS)}"
            )
        for key, value in ABLATIONS[self.ablation].items():
            setattr(self, key, value)
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown IDTD variant {self.variant!r}; choose one of {VARIANTS}")
        if self.variant == "diversify-only":
            self.loss_fusor_match = False  # no fusor to match through
        if self.init not in ("noise", "real"):
            raise ValueError(f"IDTD init must be 'noise' or 'real', got {self.init!r}")
        if self.k < 2:
            raise ValueError(f"IDTD needs K >= 2 feature selectors, got {self.k}")
        if self.div_features not in ("raw", "normalised"):
            raise ValueError(
                f"div_features must be 'raw' or 'normalised', got {self.div_features!r}"
            )
        if self.div_sign not in (-1.0, 1.0):
            raise ValueError(
                f"div_sign must be -1 (push apart) or 1 (printed sign), got {self.div_sign}"
            )


@register("synthesizer", "idtd")
class IDTD(Synthesizer):
    config_cls = IDTDConfig

    def __init__(self, store, vpc: int, config: IDTDConfig, seed: int = 0):
        super().__init__(store, vpc, config, seed)
        cfg = self.config
        m, k, t, s = vpc, cfg.k, self.frames, self.size
        cp = cfg.pool_channels or 3 * k
        gen = torch.Generator().manual_seed(seed)
        need_real = cfg.variant in ("stitch", "densify-only") or cfg.init == "real"
        if cfg.init == "real" and cfg.variant in ("full", "diversify-only") and cp != 3 * k:
            raise ValueError(f"init=real needs pool_channels = 3·K = {3 * k}, got {cp}")
        sampler = RealSampler(store, batch=m * k)
        pools, sel_w, sel_b, segs, fus_w, fus_b = [], [], [], [], [], []
        self.kernel = k + 2 * cfg.fusor_pad
        for c in range(self.num_classes):
            real = None
            if need_real:
                real = sampler.batch_of(c, gen)
                real = real[torch.randperm(real.shape[0], generator=gen)]
                real = real[torch.arange(m * k) % real.shape[0]].view(m, k, 3, t, s, s)
            if cfg.variant in ("full", "diversify-only"):
                if cfg.init == "real":
                    pools.append(nn.Parameter(real.reshape(m, 3 * k, t, s, s).clone()))
                    w = torch.zeros(m, k, 3, cp)
                    for j in range(k):
                        w[:, j, :, 3 * j : 3 * j + 3] = torch.eye(3)
                    sel_w.append(nn.Parameter(w))
                    sel_b.append(nn.Parameter(torch.zeros(m, k, 3)))
                else:
                    bound = cp**-0.5  # nn.Linear's default init range
                    pools.append(nn.Parameter(torch.randn(m, cp, t, s, s, generator=gen)))
                    sel_w.append(
                        nn.Parameter((torch.rand(m, k, 3, cp, generator=gen) * 2 - 1) * bound)
                    )
                    sel_b.append(nn.Parameter((torch.rand(m, k, 3, generator=gen) * 2 - 1) * bound))
            elif cfg.variant == "densify-only":
                segs.append(nn.Parameter(real.clone()))
            else:  # stitch: fixed real clips
                segs.append(nn.Parameter(real.clone(), requires_grad=False))
            if cfg.variant in ("full", "densify-only"):
                fus_w.append(nn.Parameter(torch.full((m, self.kernel), 1.0 / self.kernel)))
                fus_b.append(nn.Parameter(torch.zeros(m)))
        self.pool, self.sel_w, self.sel_b = (
            nn.ParameterList(pools),
            nn.ParameterList(sel_w),
            nn.ParameterList(sel_b),
        )
        self.seg = nn.ParameterList(segs)
        self.fus_w, self.fus_b = nn.ParameterList(fus_w), nn.ParameterList(fus_b)

    # -- the generator --------------------------------------------------------------
    def segments(self, c: int) -> torch.Tensor:
        """Diverse Segments of class c: ``(M, K, 3, T, H, W)``."""
        if self.config.variant in ("stitch", "densify-only"):
            return self.seg[c]
        d = torch.einsum("mkoc,mcthw->mkothw", self.sel_w[c], self.pool[c])
        return d + self.sel_b[c][..., None, None, None]

    def fuse(self, c: int, segs: torch.Tensor) -> torch.Tensor:
        """Temporal Fusor (or the fixed stitch): ``(M,K,3,T,H,W)`` → ``(M,3,T,H,W)``."""
        m, k, ch, t, h, w = segs.shape
        seq = segs.permute(0, 2, 1, 3, 4, 5).reshape(m, ch, k * t, h, w)  # time-concatenated
        if self.config.variant in ("stitch", "diversify-only"):
            return seq[:, :, k // 2 :: k]  # temporal sampling: the middle frame of each stride
        pad = self.config.fusor_pad
        if pad:
            seq = torch.cat(
                [
                    seq[:, :, :1].expand(-1, -1, pad, -1, -1),
                    seq,
                    seq[:, :, -1:].expand(-1, -1, pad, -1, -1),
                ],
                dim=2,
            )
        win = seq.unfold(2, self.kernel, k)  # (M, 3, T, H, W, kernel)
        return torch.einsum("mcthwj,mj->mcthw", win, self.fus_w[c]) + self.fus_b[c].view(
            m, 1, 1, 1, 1
        )

    def class_videos(self, c: int) -> torch.Tensor:
        return self.fuse(c, self.segments(c))

    # -- training -------------------------------------------------------------------
    def make_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return {"idtd": torch.optim.Adam(params, lr=self.config.lr)} if params else {}

    def class_loss(
        self, c: int, net: nn.Module, real_feats: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 1 for one class, with the ablation switches applied."""
        cfg = self.config
        segs = self.segments(c)
        m, k = segs.shape[:2]
        total = real_feats.new_zeros(())
        parts: dict[str, float] = {}
        if cfg.loss_sel_match or cfg.loss_div:
            seg_feats = net.features(segs.flatten(0, 1)).view(m, k, -1)
            if cfg.loss_sel_match:
                l_seg = matching_loss(real_feats, seg_feats.flatten(0, 1))
                total = total + l_seg
                parts["l_m_seg"] = float(l_seg.detach())
            if cfg.loss_div:
                div_feats = seg_feats
                if cfg.div_features == "normalised":
                    div_feats = torch.nn.functional.normalize(seg_feats, dim=-1)
                l_div = diversity_loss(div_feats, cfg.div_pairs)
                total = total + cfg.div_sign * cfg.alpha1 * l_div
                parts["l_div"] = float(l_div.detach())
        if cfg.loss_fusor_match:
            v = stochastic_temporal_augment(self.fuse(c, segs), gen, cfg.aug_min_len)
            l_fus = matching_loss(real_feats, net.features(v))
            total = total + cfg.alpha2 * l_fus
            parts["l_m_vid"] = float(l_fus.detach())
        parts["loss"] = float(total.detach())
        return total, parts

    def step(self, it, net, sampler: RealSampler, gen, optimizers):
        if not optimizers:  # Table 3-A: nothing to learn
            return {"loss": 0.0}
        opt = optimizers["idtd"]
        sums: dict[str, float] = {}
        for c in range(self.num_classes):
            with torch.no_grad():
                real_feats = net.features(sampler.batch_of(c, gen))
            loss, parts = self.class_loss(c, net, real_feats, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, val in parts.items():
                sums[key] = sums.get(key, 0.0) + val / self.num_classes
        return sums

    @torch.no_grad()
    def videos(self):
        v = torch.cat([self.class_videos(c) for c in range(self.num_classes)])
        labels = torch.arange(self.num_classes).repeat_interleave(self.vpc)
        return v, labels

    def meta(self):
        learned = sum(p.numel() * p.element_size() for p in self.parameters() if p.requires_grad)
        return {"parameterisation_bytes": learned, "fusor_kernel": self.kernel}
