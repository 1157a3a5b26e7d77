"""VDSD static + dynamic memory (Wang et al., "Dancing with Still Images", CVPR'24) with DM,
as its reference code (``distill_s2d_ms.py``, ``utils.py`` of ``yuz1wan/video_distillation``)
runs it.

Per class and per VPC slot: 2 still frames (static memory, ``(3,H,W)`` each) and 2
one-channel motion maps (dynamic memory, ``(1,T,H,W)``) — VDSD's ``--spc 2 --dpc 2`` at
VPC 1 and ``--spc 10 --dpc 10`` at VPC 5, i.e. 2 of each per slot. One **hallucinator**
shared by all classes turns a (still, dynamic) pair into a clip; it is VDSD's
``Conv3DNet``: a single ``Conv3d(3+1 → 3, kernel 3, padding 1)`` over the still repeated
over T concatenated with the map on channels, PyTorch's default init, no residual:

    video = H([still repeated over T ; dynamic])

Pairing, as VDSD's code: at every training step each slot uses one random still of its 2
and one random map of its 2 (``static_idx = spc·label + 2·idx + randint(2)``, the same for
``dynamic_idx``), drawn from the step's generator (so a resumed run redraws them). For
evaluation the set holds all 4 combinations of every slot (4·VPC clips per class); with
``eval_pairs=random`` (default) the synthetic set records each clip's slot
(``meta["epoch_groups"]``) and the evaluator trains each epoch on one random combination
per slot — what VDSD's ``MultiStaticSharedDataset`` does per evaluation epoch — while
``eval_pairs=all`` trains on all 4 every epoch (our earlier, deterministic choice).

Training follows VDSD's two stages: (1) the first ``static_fraction`` of the iterations
distil the stills alone (each as a static clip) with DM — VDSD distils the static memory
beforehand with an image method and loads it frozen (``--no_train_static --path_static``);
(2) the stills are frozen and the dynamic maps + hallucinator are trained with DM on the
hallucinated clips. VDSD's DM sums the loss over the classes and takes one optimiser step
per iteration; we backpropagate class by class (one class in memory) and accumulate the
gradients, then take that one step — the same update.

Learning rates, and why:

* stills: our DM's optimiser, SGD ``lr`` 30, ``static_momentum`` 0.5. VDSD learns the
  static memory beforehand with DC on single frames (its README, "Static Learning") and
  loads it frozen; its ``--lr_static`` 100 / momentum 0.95 is only for training stills
  jointly, which its published runs do not do. Our stage 1 stands in DM on static clips,
  where a still's gradient sums over the T frames: at lr 100 / momentum 0.95 the stills
  diverged on toy (|still| ≈ 10⁷ by iteration 200 of 400, VPC 1, then a non-finite loss),
  so stage 1 uses the optimiser our DM is stable with;
* dynamic maps and hallucinator: SGD momentum 0.95 at VDSD's *published* rates, which its
  README gives per VPC for the DM runs on MiniUCF: ``lr_dynamic`` / ``lr_hal`` = 1e-4 / 1e-5
  at VPC 1 (``bash s2d_DM_ms.sh 0,1,2,3 miniUCF101 1e-4 1e-5``) and 1e3 / 1e-6 at VPC 5
  (``bash s2d_DM_ms_5.sh ... 1e3 1e-6``; that script reads ``$LR_D``/``$LR_H`` while it sets
  ``L_D``/``L_H``, so as committed it passes empty values — the README's figures are the
  published ones). The argparse defaults (0.01 / 0.01) are not what VDSD ran. Left unset
  (``None``) they resolve from the VPC: the published row of VPC 1 for VPC ≤ 2, of VPC 5
  above (recorded in the run's config and ``meta["lr_source"]``); set them to override.
  ``dynamic_optimizer=adam`` is an opt-in alternative.

Accounting: ``bytes_stored`` counts stills + dynamic maps + the hallucinator's weights,
because VDSD's "VPC" is a storage budget, not a clip count.

Stills are initialised from a random frame of random real clips of the class (VDSD loads a
pre-distilled static memory; DM itself initialises from real); dynamic maps N(0, 1) like
VDSD's ``torch.randn``.
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
    matching_loss,
)

# VDSD README, DM+Ours on MiniUCF: VPC → (lr_dynamic, lr_hal)
PUBLISHED_LR = {1: (1e-4, 1e-5), 5: (1e3, 1e-6)}
EVAL_PAIRS = ("random", "all")


def published_lr(vpc: int) -> tuple[float, float, int]:
    """VDSD's published (lr_dynamic, lr_hal) for the nearest published VPC, and that VPC."""
    ref = 1 if vpc <= 2 else 5
    return (*PUBLISHED_LR[ref], ref)


@dataclass
class VDSDConfig(SynthConfig):
    lr: float = 30.0  # stills: our DM's rate (VDSD learns them with DC, see the docstring)
    static_momentum: float = 0.5  # stills: our DM's momentum
    momentum: float = 0.95  # dynamic maps + hallucinator (VDSD's SGD)
    lr_dynamic: float | None = None  # None → VDSD's published rate for this VPC
    lr_hal: float | None = None  # None → VDSD's published rate for this VPC
    dynamic_optimizer: str = "sgd"
    static_per_slot: int = 2
    dynamic_per_slot: int = 2
    dyn_channels: int = 1
    static_fraction: float = 0.5
    eval_pairs: str = "random"  # "random" (VDSD: one pair per slot per epoch) or "all"


class Hallucinator(nn.Module):
    """VDSD's ``Conv3DNet`` (mode ``concat``): one Conv3d over [still repeated ; dynamic]."""

    def __init__(self, dyn_channels: int = 1):
        super().__init__()
        self.encoder = nn.Conv3d(3 + dyn_channels, 3, 3, padding=1)

    def forward(self, still: torch.Tensor, dyn: torch.Tensor) -> torch.Tensor:
        # still (B,3,H,W); dyn (B,c,T,H,W) → (B,3,T,H,W)
        base = still[:, :, None].expand(-1, -1, dyn.shape[2], -1, -1)
        return self.encoder(torch.cat([base, dyn], 1))


@register("synthesizer", "vdsd")
class VDSD(Synthesizer):
    config_cls = VDSDConfig

    def __init__(self, store, vpc: int, config: VDSDConfig, seed: int = 0):
        super().__init__(store, vpc, config, seed)
        cfg = self.config
        if not 0.0 <= cfg.static_fraction <= 1.0:
            raise ValueError(f"static_fraction must be in [0, 1], got {cfg.static_fraction}")
        if cfg.dynamic_optimizer not in ("sgd", "adam"):
            raise ValueError(
                f"dynamic_optimizer must be 'sgd' or 'adam', got {cfg.dynamic_optimizer!r}"
            )
        if cfg.eval_pairs not in EVAL_PAIRS:
            raise ValueError(f"eval_pairs must be one of {EVAL_PAIRS}, got {cfg.eval_pairs!r}")
        lr_dyn, lr_hal, ref = published_lr(vpc)
        self.lr_source = {
            "lr_dynamic": "set" if cfg.lr_dynamic is not None else f"VDSD README, VPC {ref}",
            "lr_hal": "set" if cfg.lr_hal is not None else f"VDSD README, VPC {ref}",
        }
        # resolved in the config itself, so the run's key, meta and done.json state the rates
        cfg.lr_dynamic = lr_dyn if cfg.lr_dynamic is None else float(cfg.lr_dynamic)
        cfg.lr_hal = lr_hal if cfg.lr_hal is None else float(cfg.lr_hal)
        self.n_static = cfg.static_per_slot * vpc
        self.n_dynamic = cfg.dynamic_per_slot * vpc
        gens = class_generators(torch.Generator().manual_seed(seed), self.num_classes)
        sampler = RealSampler(store, batch=self.n_static)
        stills, dyns = [], []
        for c, gen in enumerate(gens):
            clips = sampler.batch_of(c, gen)
            clips = clips[torch.arange(self.n_static) % clips.shape[0]]
            frame = torch.randint(0, self.frames, (self.n_static,), generator=gen)
            stills.append(nn.Parameter(clips[torch.arange(self.n_static), :, frame].clone()))
            dyns.append(
                nn.Parameter(
                    torch.randn(
                        self.n_dynamic,
                        cfg.dyn_channels,
                        self.frames,
                        self.size,
                        self.size,
                        generator=gen,
                    )
                )
            )
        self.still, self.dyn = nn.ParameterList(stills), nn.ParameterList(dyns)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.hallucinator = Hallucinator(cfg.dyn_channels)
        # every (still, dynamic) pair inside a slot: slot i owns stills/maps [i·2, i·2+1]
        si, di, slot_of = [], [], []
        for slot in range(vpc):
            for a in range(cfg.static_per_slot):
                for b in range(cfg.dynamic_per_slot):
                    si.append(slot * cfg.static_per_slot + a)
                    di.append(slot * cfg.dynamic_per_slot + b)
                    slot_of.append(slot)
        self.register_buffer("pair_still", torch.tensor(si), persistent=False)
        self.register_buffer("pair_dyn", torch.tensor(di), persistent=False)
        self.pair_slot = slot_of

    def static_stage(self, it: int) -> bool:
        return it < round(self.config.static_fraction * self.config.iterations)

    def random_pairs(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One random (still, dynamic) per slot: indices into a class's stills and maps."""
        cfg, slots = self.config, torch.arange(self.vpc)
        a = torch.randint(cfg.static_per_slot, (self.vpc,), generator=gen)
        b = torch.randint(cfg.dynamic_per_slot, (self.vpc,), generator=gen)
        return slots * cfg.static_per_slot + a, slots * cfg.dynamic_per_slot + b

    def class_videos(
        self,
        c: int,
        static_only: bool = False,
        pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Class c's clips: its stills as static clips, the given pairs, or all pairs."""
        still = self.still[c]
        if static_only:
            return still[:, :, None].expand(-1, -1, self.frames, -1, -1)
        si, di = pairs if pairs is not None else (self.pair_still, self.pair_dyn)
        return self.hallucinator(still[si], self.dyn[c][di])

    def make_optimizers(self):
        cfg = self.config
        groups = [
            {"params": self.dyn.parameters(), "lr": cfg.lr_dynamic},
            {"params": self.hallucinator.parameters(), "lr": cfg.lr_hal},
        ]
        if cfg.dynamic_optimizer == "adam":
            dyn_opt: torch.optim.Optimizer = torch.optim.Adam(groups)
        else:
            dyn_opt = torch.optim.SGD(groups, momentum=cfg.momentum)
        return {
            "static": torch.optim.SGD(
                self.still.parameters(), lr=cfg.lr, momentum=cfg.static_momentum
            ),
            "dynamic": dyn_opt,
        }

    def step(self, it, net, sampler: RealSampler, gen, optimizers):
        static = self.static_stage(it)
        opt = optimizers["static" if static else "dynamic"]
        self.still.requires_grad_(static)
        opt.zero_grad(set_to_none=True)
        gens = class_generators(gen, self.num_classes)
        shared = list(self.hallucinator.parameters())
        losses: dict[int, float] = {}
        grads: dict[int, list[torch.Tensor | None]] = {}
        for c in self.classes:  # backward per class, one step on the summed loss
            with torch.no_grad():
                real = self.phi(net, sampler.batch_of(c, gens[c]))
            pairs = None if static else self.random_pairs(gens[c])
            syn = self.class_videos(c, static_only=static, pairs=pairs)
            loss = matching_loss(real, self.phi(net, syn))
            loss.backward()
            losses[c] = float(loss.detach())
            grads[c] = [p.grad for p in shared]  # class c's part of the shared gradient
            for p in shared:
                p.grad = None
        # the hallucinator's gradient: every class's part, summed in class order (as the
        # accumulation of one process's backward passes), the same on every rank
        every = self.in_class_order(grads, "vdsd hallucinator gradients")
        for i, p in enumerate(shared):
            for part in every:
                if part[i] is not None:
                    p.grad = part[i].clone() if p.grad is None else p.grad.add_(part[i])
        total = 0.0
        for value in self.in_class_order(losses, "vdsd losses"):
            total += value
        opt.step()
        return {"loss": total / self.num_classes, "stage": 1.0 if static else 2.0}

    @torch.no_grad()
    def videos(self):
        v = torch.cat([self.class_videos(c) for c in range(self.num_classes)])
        return v, torch.arange(self.num_classes).repeat_interleave(len(self.pair_still))

    def epoch_groups(self) -> list[int]:
        """Slot of every evaluated clip (global over classes): one per slot per epoch."""
        return [c * self.vpc + s for c in range(self.num_classes) for s in self.pair_slot]

    def bytes_stored(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())

    def meta(self):
        clip_bytes = 3 * self.frames * self.size * self.size * 4
        out = {
            "n_static_per_class": self.n_static,
            "n_dynamic_per_class": self.n_dynamic,
            "videos_per_class": len(self.pair_still),
            "bytes_stored_in_float32_clips": round(self.bytes_stored() / clip_bytes, 3),
            "hallucinator_bytes": sum(p.numel() * 4 for p in self.hallucinator.parameters()),
            "lr_source": self.lr_source,
            "eval_pairs": self.config.eval_pairs,
        }
        if self.config.eval_pairs == "random":
            out["epoch_groups"] = self.epoch_groups()
        return out
