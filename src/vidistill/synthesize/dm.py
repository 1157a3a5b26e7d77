"""DM for video: distribution matching (Zhao & Bilen, WACV'23) applied to whole clips.

Synthetic videos are free tensors ``(vpc,3,T,H,W)`` per class, initialised from random
real clips of that class (DM's ``init='real'``, as VDSD's ``DM.sh --init real``). Each
outer iteration draws a fresh, randomly initialised ConvNet3D φ and, class by class,
minimises ``‖mean φ(real_c) − mean φ(syn_c)‖²`` by SGD on the pixels (normalised input
space), φ = ``net.embed`` (VDSD's: flattened before the final pooling, time kept; see
``common.py``).

Choices, and why:

* **lr 30**, SGD momentum 0.5 (DM's optimiser for the images). 30 is what VDSD's README
  runs its DM baseline with on MiniUCF (``bash DM.sh 0 miniUCF101 30 1``; ``DM.sh`` passes
  it as ``--lr_img``), the only published video-DM learning rate for this net. DM's image
  lr 1 is for a ConvNet with instance norm; ours (VDSD's ConvNet3D) has none. Until now we
  used 100, justified by an argparse default of VDSD's *static memory* (``--lr_static``),
  which is not DM's video setting. ``--lr`` overrides.
* **Class-by-class updates**: for SGD each class's videos get only their own class's
  gradient, so this equals VDSD's one step on the summed loss, with one class in memory.
* **augment** (``none`` default = VDSD's DM, which has none; ``clip`` = the original
  DM's Siamese DSA made clip-consistent, without flips or rotations: ``clip_aug.py``). One
  transform per class and step, drawn from the step's generator, applied to the real and
  the synthetic batch alike (Siamese), the same on every frame. Measured on and off in the
  synthesis grid; the default stays VDSD's until it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from vidistill.registry import register
from vidistill.synthesize import clip_aug
from vidistill.synthesize.common import (
    RealSampler,
    SynthConfig,
    Synthesizer,
    class_generators,
    matching_loss,
)

AUGMENTS = ("none", "clip")


@dataclass
class DMConfig(SynthConfig):
    lr: float = 30.0
    momentum: float = 0.5
    init: str = "real"  # "real" (DM default) or "noise"
    augment: str = "none"  # "none" (VDSD's DM) or "clip" (DM's Siamese DSA, clip-consistent)


@register("synthesizer", "dm")
class DM(Synthesizer):
    config_cls = DMConfig

    def __init__(self, store, vpc: int, config: DMConfig, seed: int = 0):
        super().__init__(store, vpc, config, seed)
        if config.init not in ("real", "noise"):
            raise ValueError(f"dm init must be 'real' or 'noise', got {config.init!r}")
        if config.augment not in AUGMENTS:
            raise ValueError(f"dm augment must be one of {AUGMENTS}, got {config.augment!r}")
        gens = class_generators(torch.Generator().manual_seed(seed), self.num_classes)
        sampler = RealSampler(store, batch=vpc)
        per_class = []
        for c, gen in enumerate(gens):
            if config.init == "real":
                x = sampler.batch_of(c, gen)
                if x.shape[0] < vpc:  # fewer real clips than vpc: repeat them
                    x = x[torch.arange(vpc) % x.shape[0]]
            else:
                x = torch.randn(vpc, 3, self.frames, self.size, self.size, generator=gen)
            per_class.append(nn.Parameter(x.clone()))
        self.syn = nn.ParameterList(per_class)

    def make_optimizers(self):
        cfg = self.config
        return {"videos": torch.optim.SGD(self.parameters(), lr=cfg.lr, momentum=cfg.momentum)}

    def class_loss(
        self, c: int, net: nn.Module, real: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """L_M of class ``c`` against the real batch ``real`` (augmented alike if asked)."""
        syn = self.syn[c]
        if self.config.augment == "clip":
            params = clip_aug.sample_params(self.size, gen)
            real, syn = clip_aug.apply(real, params), clip_aug.apply(syn, params)
        with torch.no_grad():
            real_feats = self.phi(net, real)
        return matching_loss(real_feats, self.phi(net, syn))

    def step(self, it, net, sampler: RealSampler, gen, optimizers):
        opt = optimizers["videos"]
        gens = class_generators(gen, self.num_classes)
        losses = {}
        for c in self.classes:
            loss = self.class_loss(c, net, sampler.batch_of(c, gens[c]), gens[c])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[c] = float(loss.detach())
        total = 0.0
        for value in self.in_class_order(losses, "dm losses"):
            total += value
        return {"loss": total / self.num_classes}

    @torch.no_grad()
    def videos(self):
        v = torch.cat([p.detach() for p in self.syn])
        labels = torch.arange(self.num_classes).repeat_interleave(self.vpc)
        return v, labels
