"""DM for video: distribution matching (Zhao & Bilen, WACV'23) applied to whole clips.

Synthetic videos are free tensors ``(vpc,3,T,H,W)`` per class, initialised from random
real clips of that class (DM's ``init='real'``). Each outer iteration draws a fresh,
randomly initialised ConvNet3D φ and, class by class, minimises
``‖mean φ(real_c) − mean φ(syn_c)‖²`` by SGD on the pixels (normalised input space).

Optimiser: DM's own recipe for the pixels — SGD, momentum 0.5 — at lr **100**. DM uses
lr 1 on images with a ConvNet that has instance norm; our ConvNet3D (VDSD's) has no
normalisation and its mean-embedding gradients are ~1e-5 per pixel on 8×64² toy clips,
so lr 1 would leave the real initialisation untouched. Neither IDTD nor DESIGN states
DM's video lr; VDSD's code (``yuz1wan/video_distillation``) passes it as an argument for
its DM baseline and defaults the DM-distilled static memory to ``--lr_static 100``, which
we adopt and record (``--lr`` overrides). Updates are class by class, which for SGD
equals DM's summed loss (each class's videos get only their own class's gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from vidistill.registry import register
from vidistill.synthesize.common import RealSampler, SynthConfig, Synthesizer, matching_loss


@dataclass
class DMConfig(SynthConfig):
    lr: float = 100.0
    momentum: float = 0.5
    init: str = "real"  # "real" (DM default) or "noise"


@register("synthesizer", "dm")
class DM(Synthesizer):
    config_cls = DMConfig

    def __init__(self, store, vpc: int, config: DMConfig, seed: int = 0):
        super().__init__(store, vpc, config, seed)
        if config.init not in ("real", "noise"):
            raise ValueError(f"dm init must be 'real' or 'noise', got {config.init!r}")
        gen = torch.Generator().manual_seed(seed)
        sampler = RealSampler(store, batch=vpc)
        per_class = []
        for c in range(self.num_classes):
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

    def step(self, it, net, sampler: RealSampler, gen, optimizers):
        opt = optimizers["videos"]
        total = 0.0
        for c in range(self.num_classes):
            with torch.no_grad():
                real = net.features(sampler.batch_of(c, gen))
            loss = matching_loss(real, net.features(self.syn[c]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        return {"loss": total / self.num_classes}

    @torch.no_grad()
    def videos(self):
        v = torch.cat([p.detach() for p in self.syn])
        labels = torch.arange(self.num_classes).repeat_interleave(self.vpc)
        return v, labels
