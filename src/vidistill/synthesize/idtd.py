"""IDTD: Information Diversification and Temporal Densification (Zhao et al., 2024).

Per synthetic video v_{m,n} (class n, index m < M = vpc):

* **Feature Pool** p_{m,n}: a learnable tensor ``(C_p, T, H, W)``;
* **K Feature Selectors** s_{m,n,k}: linear layers ``C_p → 3`` applied at every
  (t, h, w), giving K **Diverse Segments** d_{m,n,k} = s_{m,n,k}(p_{m,n}), each a
  ``(3, T, H, W)`` clip;
* **Temporal Fusor** f_{m,n}: the K segments → the T-frame video (below);
* **stochastic temporal augmentation** τ (``temporal_aug.py``) on the fused video;
* loss (§3.4, Eq. 1) ``L = L_M(D, T) + α1·L_div + α2·L_M(V′, T)`` with DM's mean-
  embedding matching under a fresh random ConvNet3D each iteration (φ = its ``embed``,
  VDSD's, time kept — ``common.py``), updated **class by class** (§3.5), lr 0.01,
  α1 = 0.05, α2 = 1e-4, K = 8 (§4.2).

Choices where the paper is vague or inconsistent (each is a config option, recorded in
the output), and why:

* **Temporal Fusor, ``fusor=aligned`` (default): aligned mixing.** The paper: "concatenated
  Diverse Segments are input into a light-weighted convolution layer for convolution along
  the time dimension" (§4.2). Read literally (``fusor=strided``: concatenate the K
  segments of T frames to K·T frames, one kernel of length K with stride K) each output
  frame t is the blur of the whole segment t, so no segment's motion survives — with
  K = T, the paper's own K400/SSv2 setting (K = T = 8), it cannot be what was meant, and
  on the motion-defined toy (now ``toy-motion``) every such variant was at chance. The
  aligned fusor is the same "convolution along time over the concatenated segments" with
  a constrained weight that keeps time aligned: per video a learnable per-output-time
  softmax over the segments ``A`` (M, T, K) and a short stride-1 temporal kernel ``h``
  (length ``fusor_len`` = 3, replicate padding), ``v[:, t] = Σ_k A[t,k] · Σ_j h[j] · D_k[:, t + j − J//2] + bias``.
  Segments keep length T (so φ embeds them and L_M(D), L_div are unchanged); every output
  frame t reads frame t (± J//2) of the segments, so a motion present in the segments
  survives at its own speed whatever A is (``tests/test_synthesize.py``). Init: A uniform
  (logits 0: the fused video starts as the segments' mean), h the identity (1 at the
  centre), bias 0 — the fusor starts as neither a blur nor a choice, and learns both.
* **``fusor=strided``** keeps the literal layout above (kernel ``K + 2·fusor_pad``, stride
  K, initialised to the average, bias) for the paper-literal row.
* **Fixed stitch** (Table 3-A, 3-C: no learned fusor) follows the fusor's layout: strided →
  frame t = the middle frame of the t-th stride of the time-concatenation ("temporal
  sampling and stitch", literally); aligned → the same fusor with a fixed one-hot A,
  frame t taken from segment ``⌊t·K/T⌋`` at its own time t (contiguous blocks of T/K
  frames of each segment; one frame each when K = T), h the identity. So an ablation
  differs from the full method only by what it switches off, not by the layout.
* **L_div, ``div=hinge`` (default, bounded).** ``Σ_m Σ_{k<q} relu(δ_c − ‖φ(d_k) − φ(d_q)‖²)``,
  added with +α1, where δ_c is the mean pairwise squared distance of the class's real
  batch under the same φ, detached. Why: the printed Eq. 1 *adds* α1·Σ‖φ(d_k) − φ(d_q)‖²,
  which pulls the segments together (``div=printed``); the text says the loss "pushed the
  feature of the Diverse Segments away from each other", i.e. subtracting it
  (``div=text``), which is unbounded below under VDSD's ConvNet3D (ReLU, no
  normalisation, ~positively homogeneous): measured L_div ≈ 3,300 after 100 toy steps
  while L_M(D) rose to ≈ 34 — the segments left the data. The hinge pushes segments apart
  only until they are as spread as real clips of the class are, then is 0: the stated
  intent, bounded by ``M·P·δ_c``. ``div=normalised`` (the text's sign on unit-norm
  features, each pair ≤ 4) is kept as the earlier bounded alternative. ``div_pairs``:
  all pairs (the text) or the printed outer bound K−2 (``common.segment_pair_distances``).
* **Pool shape** ``C_p × T × H × W`` with ``C_p = 3K`` by default: full spatio-temporal
  resolution (segments must be clips φ can embed — ConvNet3D needs ≥ 8 frames — so
  segment length = T), and 3K channels so the pool can hold exactly K clips (the
  capacity of K free segments, and what ``init=real`` uses). The paper initialises the
  pool randomly (§4.2): ``init=noise`` (N(0,1)) is the default; ``init=real`` (pool = K
  real clips of the class stacked on channels, selector k = the one-hot picking clip k)
  is an opt-in warm start for short runs.
* **Selector form**: a per-pixel linear map (1×1×1 conv) ``C_p → 3`` with bias, PyTorch's
  default ``nn.Linear`` init — "light-weighted linear layers" (§4.2).
* **Optimiser**: not named in the paper; Adam (lr 0.01), the usual choice for a
  parameterised generator, and scale-free, so Table 4-A's lone ``α2·L_M`` still trains.
* **Evaluation with τ**: IDTD trains its evaluation students with τ (§4.3). τ is the
  evaluator augmentation ``idtd-temporal`` (``Recipe(augment="idtd-temporal")``), opt-in
  and named in result rows; the synthesis grid's headline IDTD row ``idtd+τ`` uses it.
* **Ablations** (``ablation=`` sets the switches; the fusor layout is the ``fusor``
  option's): Table 3 — ``t3-a`` stitch K random real clips (no optimisation); ``t3-b``
  temporal densification only (no pool/selectors: segments are free tensors initialised
  with K real clips, fusor trained, all losses); ``t3-c`` information diversification only
  (pool + selectors trained with ``L_M(D) + α1·L_div``, segments stitched by the fixed
  layout, no fusor, so no ``L_M(V′)``). Table 4 — ``t4-a`` fusor L_M only; ``t4-b`` fusor
  L_M + L_div; ``t4-c`` selector L_M + fusor L_M; the full method is all three. Tests check
  each by which loss terms reach which parameters.
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
    class_generators,
    diversity_loss,
    hinge_diversity_loss,
    matching_loss,
    real_spread,
)
from vidistill.synthesize.temporal_aug import stochastic_temporal_augment

VARIANTS = ("full", "stitch", "densify-only", "diversify-only")
FUSORS = ("aligned", "strided")
DIV_FORMS = ("hinge", "printed", "text", "normalised")
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
    fusor: str = "aligned"  # "aligned" (time-aligned mixing) or "strided" (literal layout)
    fusor_len: int = 3  # aligned: length of the stride-1 temporal kernel h (odd)
    fusor_pad: int = 0  # strided: kernel K + 2·pad
    div: str = "hinge"  # "hinge" (bounded, default), "printed", "text", "normalised"
    div_pairs: str = "all"
    pool_channels: int = 0  # 0 → 3·K
    init: str = "noise"
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
        if self.fusor not in FUSORS:
            raise ValueError(f"fusor must be one of {FUSORS}, got {self.fusor!r}")
        if self.fusor_len < 1 or self.fusor_len % 2 == 0:
            raise ValueError(
                f"fusor_len must be odd and >= 1 (centred kernel), got {self.fusor_len}"
            )
        if self.div not in DIV_FORMS:
            raise ValueError(f"div must be one of {DIV_FORMS}, got {self.div!r}")

    # Table 3's module switches, read by the synthesizer and by the grid's ablation table
    @property
    def learns_pool(self) -> bool:
        """Feature Pool & Selectors generate the segments (else: fixed or free real clips)."""
        return self.variant in ("full", "diversify-only")

    @property
    def learns_fusor(self) -> bool:
        """A learned Temporal Fusor joins the segments (else: the fixed stitch)."""
        return self.variant in ("full", "densify-only")


@register("synthesizer", "idtd")
class IDTD(Synthesizer):
    config_cls = IDTDConfig

    def __init__(self, store, vpc: int, config: IDTDConfig, seed: int = 0):
        super().__init__(store, vpc, config, seed)
        cfg = self.config
        m, k, t, s = vpc, cfg.k, self.frames, self.size
        cp = cfg.pool_channels or 3 * k
        gens = class_generators(torch.Generator().manual_seed(seed), self.num_classes)
        need_real = not cfg.learns_pool or cfg.init == "real"
        if cfg.init == "real" and cfg.learns_pool and cp != 3 * k:
            raise ValueError(f"init=real needs pool_channels = 3·K = {3 * k}, got {cp}")
        sampler = RealSampler(store, batch=m * k)
        pools, sel_w, sel_b, segs = [], [], [], []
        mix, kern, bias = [], [], []
        self.kernel = k + 2 * cfg.fusor_pad if cfg.fusor == "strided" else cfg.fusor_len
        for c, gen in enumerate(gens):
            real = None
            if need_real:
                real = sampler.batch_of(c, gen)
                real = real[torch.randperm(real.shape[0], generator=gen)]
                real = real[torch.arange(m * k) % real.shape[0]].view(m, k, 3, t, s, s)
            if cfg.learns_pool:
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
            if cfg.learns_fusor:
                if cfg.fusor == "aligned":
                    mix.append(nn.Parameter(torch.zeros(m, t, k)))  # softmax → uniform A
                    h = torch.zeros(m, self.kernel)
                    h[:, self.kernel // 2] = 1.0  # identity
                    kern.append(nn.Parameter(h))
                else:
                    kern.append(nn.Parameter(torch.full((m, self.kernel), 1.0 / self.kernel)))
                bias.append(nn.Parameter(torch.zeros(m)))
        self.pool, self.sel_w, self.sel_b = (
            nn.ParameterList(pools),
            nn.ParameterList(sel_w),
            nn.ParameterList(sel_b),
        )
        self.seg = nn.ParameterList(segs)
        self.fus_mix = nn.ParameterList(mix)  # aligned: logits of A (M, T, K)
        self.fus_kernel = nn.ParameterList(kern)  # aligned: h (M, J); strided: (M, K + 2·pad)
        self.fus_bias = nn.ParameterList(bias)  # (M,)

    # -- the generator --------------------------------------------------------------
    def segments(self, c: int) -> torch.Tensor:
        """Diverse Segments of class c: ``(M, K, 3, T, H, W)``."""
        if not self.config.learns_pool:
            return self.seg[c]
        d = torch.einsum("mkoc,mcthw->mkothw", self.sel_w[c], self.pool[c])
        return d + self.sel_b[c][..., None, None, None]

    def mixing(self, c: int) -> torch.Tensor:
        """A of class c's videos ``(M, T, K)`` (rows sum to 1): learned, or the fixed stitch."""
        if self.config.learns_fusor:
            return self.fus_mix[c].softmax(-1)
        m, k, t = self.vpc, self.config.k, self.frames
        stitch = torch.zeros(m, t, k)
        stitch[:, torch.arange(t), (torch.arange(t) * k) // t] = 1.0
        return stitch

    def fuse(self, c: int, segs: torch.Tensor) -> torch.Tensor:
        """Temporal Fusor (or the fixed stitch): ``(M,K,3,T,H,W)`` → ``(M,3,T,H,W)``."""
        if self.config.fusor == "strided":
            return self._fuse_strided(c, segs)
        if not self.config.learns_fusor:
            return aligned_fuse(segs, self.mixing(c).to(segs))
        return aligned_fuse(segs, self.mixing(c), self.fus_kernel[c], self.fus_bias[c])

    def _fuse_strided(self, c: int, segs: torch.Tensor) -> torch.Tensor:
        m, k, ch, t, h, w = segs.shape
        seq = segs.permute(0, 2, 1, 3, 4, 5).reshape(m, ch, k * t, h, w)  # time-concatenated
        if not self.config.learns_fusor:
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
        out = torch.einsum("mcthwj,mj->mcthw", win, self.fus_kernel[c])
        return out + self.fus_bias[c].view(m, 1, 1, 1, 1)

    def class_videos(self, c: int) -> torch.Tensor:
        return self.fuse(c, self.segments(c))

    # -- training -------------------------------------------------------------------
    def make_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return {"idtd": torch.optim.Adam(params, lr=self.config.lr)} if params else {}

    def class_loss(
        self, c: int, net: nn.Module, real_feats: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 1 for one class, with the ablation switches and the L_div form applied."""
        cfg = self.config
        segs = self.segments(c)
        m, k = segs.shape[:2]
        total = real_feats.new_zeros(())
        parts: dict[str, float] = {}
        if cfg.loss_sel_match or cfg.loss_div:
            seg_feats = self.phi(net, segs.flatten(0, 1)).view(m, k, -1)
            if cfg.loss_sel_match:
                l_seg = matching_loss(real_feats, seg_feats.flatten(0, 1))
                total = total + l_seg
                parts["l_m_seg"] = float(l_seg.detach())
            if cfg.loss_div:
                if cfg.div == "hinge":
                    delta = real_spread(real_feats)
                    l_div = hinge_diversity_loss(seg_feats, delta, cfg.div_pairs)
                    total = total + cfg.alpha1 * l_div
                    parts["div_target"] = float(delta)
                elif cfg.div == "printed":
                    l_div = diversity_loss(seg_feats, cfg.div_pairs)
                    total = total + cfg.alpha1 * l_div
                else:  # "text" / "normalised": push apart, unbounded / on unit-norm φ
                    f = seg_feats
                    if cfg.div == "normalised":
                        f = torch.nn.functional.normalize(seg_feats, dim=-1)
                    l_div = diversity_loss(f, cfg.div_pairs)
                    total = total - cfg.alpha1 * l_div
                parts["l_div"] = float(l_div.detach())
        if cfg.loss_fusor_match:
            v = stochastic_temporal_augment(self.fuse(c, segs), gen, cfg.aug_min_len)
            l_fus = matching_loss(real_feats, self.phi(net, v))
            total = total + cfg.alpha2 * l_fus
            parts["l_m_vid"] = float(l_fus.detach())
        parts["loss"] = float(total.detach())
        return total, parts

    def step(self, it, net, sampler: RealSampler, gen, optimizers):
        if not optimizers:  # Table 3-A: nothing to learn
            return {"loss": 0.0}
        opt = optimizers["idtd"]
        gens = class_generators(gen, self.num_classes)
        mine: dict[int, dict[str, float]] = {}
        for c in self.classes:
            with torch.no_grad():
                real_feats = self.phi(net, sampler.batch_of(c, gens[c]))
            loss, parts = self.class_loss(c, net, real_feats, gens[c])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            mine[c] = parts
        sums: dict[str, float] = {}
        for parts in self.in_class_order(mine, "idtd losses"):
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
        return {
            "parameterisation_bytes": learned,
            "fusor": self.config.fusor,
            "fusor_kernel": self.kernel,
        }


def aligned_fuse(
    segs: torch.Tensor,
    mix: torch.Tensor,
    kernel: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``v[:, t] = Σ_k A[t,k] · Σ_j h[j] · D_k[:, t + j − J//2] + bias`` (replicate padding).

    ``segs`` (M,K,3,T,H,W), ``mix`` = A (M,T,K), ``kernel`` = h (M,J) (None: identity),
    ``bias`` (M,) (None: 0) → ``(M,3,T,H,W)``. Every output frame t reads the segments at
    time t (± J//2): time stays aligned, so a motion in the segments keeps its speed.

    Computed as one contraction with the fusor's whole weight ``B[m,t,k,s] = A[t,k] ·
    Σ_{j : clamp(t+j−J//2) = s} h[j]`` (M,T,K,T) — tiny — so the segments are read once
    instead of padded and copied J times (and their gradients likewise); the test checks it
    against the formula term by term, values and gradients.
    """
    t = segs.shape[3]
    if kernel is None:
        weight = mix[..., None] * torch.eye(t, dtype=segs.dtype)[None, :, None, :]  # δ(s = t)
    else:
        j = kernel.shape[1]
        src = (torch.arange(t)[:, None] + torch.arange(j)[None, :] - j // 2).clamp(0, t - 1)
        shift = torch.zeros(j, t, t, dtype=segs.dtype)  # shift[j, t, s] = 1 iff s = src[t, j]
        shift[torch.arange(j)[None, :], torch.arange(t)[:, None], src] = 1.0
        taps = torch.einsum("mj,jts->mts", kernel, shift)  # Σ_j h[j] over taps reading s
        weight = mix[..., None] * taps[:, :, None, :]  # (M,T,K,T)
    out = torch.einsum("mtks,mkcshw->mcthw", weight, segs)
    if bias is not None:
        out = out + bias.view(-1, 1, 1, 1, 1)
    return out
