"""Recipe: how an evaluator network is trained. One dataclass, two named presets.

The default is VDSD's recipe (DESIGN §4): SGD momentum 0.9, weight decay 5e-4, lr 0.01,
lr × 0.1 at half of the epochs, batch 256, cross-entropy on hard labels, no
augmentation. Every deviation is a named field, never a silent change:

* ``grad_clip`` — an explicit stabiliser (VDSD's recipe can blow up on tiny sets,
  DESIGN §4); ``None`` = the reference recipe.
* ``augment`` — name of a registered training augmentation (``register("augment", name)``,
  a callable ``(videos float (B,3,T,H,W), torch.Generator) -> videos``); ``None`` = none.
* ``test_views`` — 1 = the stored, centred clip (deterministic, our default); N > 1 =
  VDSD-style: N random temporal shifts + random horizontal flips, softmax averaged.
* ``amp_bf16`` — bf16 autocast on CUDA (ignored on CPU, where it is slower).
* ``standardize`` — ``None`` (default: ImageNet normalisation only) or ``"batch"``: every
  training and test batch is re-standardised by its own scalar mean and std,
  ``x = (x − x.mean()) / x.std()``, on top of ImageNet normalisation, as VDSD's ``epoch()``
  (``utils.py``) does in both modes. Why opt-in and named: it is VDSD's evaluator, and a
  learned set whose scale drifted during synthesis may be unfittable without it, but it
  also makes a batch's inputs depend on the rest of the batch; rows say which they used.

Choices where VDSD's code and paper differ: VDSD runs ``Epoch + 1`` = 501 epochs with the
drop at epoch 251; we run exactly ``epochs`` epochs with the drop at ``epochs // 2``
(``lr_drop_at`` = 0.5). VDSD also re-standardises every batch by its own scalar mean/std on
top of ImageNet normalisation; ours does it only with ``standardize="batch"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from vidistill.fieldcheck import check_kinds
from vidistill.registry import register  # noqa: F401  (re-exported: the augment registry hook)

# ---------------------------------------------------------------------------------------
# The presets, in one place. ``toy-quick`` is the stated cheaper preset for 2 CPU cores
# (DESIGN §6: ConvNet3D trains ~35 clips/s there): quarter-width ConvNet3D (channels
# 16-32-32, ~8x cheaper), batch 32, 30 epochs
# but at least 300 SGD steps — so a 10-clip VPC-1 set gets 300 steps, as VDSD's 500 epochs
# at one step per epoch give its small sets 500 (see ``min_steps``).
# Change its numbers HERE; docs/evaluation.md quotes them.
# ---------------------------------------------------------------------------------------
PRESETS: dict[str, dict[str, Any]] = {
    "vdsd": {"net": "convnet3d", "width": 1.0, "epochs": 500},
    "toy-quick": {
        "net": "convnet3d",
        "width": 0.25,
        "epochs": 30,
        "batch_size": 32,
        "min_steps": 300,
    },
}


STANDARDIZE = (None, "batch")


# keys of a run config's `evaluate:` section that say how runs are made and shared, not
# what one run computes: everything else there is a Recipe field
RUN_KEYS = ("preset", "runs", "seed", "ddp")
ADDED_OFF = ("standardize",)  # keys omitted from to_dict() while None (see Recipe.to_dict)


def standardize_batch(x, how: str | None):
    """VDSD's ``(x − x.mean()) / x.std()`` over the whole batch when ``how == "batch"``."""
    if how is None:
        return x
    return (x - x.mean()) / x.std()


@dataclass
class Recipe:
    net: str = "convnet3d"
    width: float = 1.0
    epochs: int = 500
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_drop_at: float = 0.5  # fraction of the epochs after which lr *= lr_drop
    lr_drop: float = 0.1
    batch_size: int = 256
    grad_clip: float | None = None  # max global grad norm; None = reference recipe
    amp_bf16: bool = False  # CUDA only
    augment: str | None = None  # a registered "augment" name; None = no augmentation
    test_views: int = 1  # 1 = centred clip; N > 1 = VDSD multi-view test
    min_steps: int = 0  # train at least this many SGD steps: epochs grow for small sets (0 = off)
    standardize: str | None = None  # None = off; "batch" = VDSD's per-batch scalar standardisation
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    preset_name: str = "custom"

    def __post_init__(self) -> None:
        check_kinds(self, "recipe")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.width <= 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        if self.test_views < 1:
            raise ValueError(f"test_views must be >= 1 (1 = centred clip), got {self.test_views}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None (off), got {self.grad_clip}")
        if self.standardize not in STANDARDIZE:
            raise ValueError(
                f"standardize must be None (off) or 'batch' (VDSD's per-batch scalar "
                f"standardisation), got {self.standardize!r}"
            )
        if not 0.0 <= self.lr_drop_at <= 1.0:
            raise ValueError(
                f"lr_drop_at is a fraction of the epochs in [0, 1], got {self.lr_drop_at}"
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Recipe:
        """``Recipe.preset("vdsd")`` (the paper's) or ``"toy-quick"`` (stated cheaper).

        Keyword overrides win; ``None`` overrides are ignored (CLI options left unset)."""
        if not isinstance(name, str) or name not in PRESETS:
            raise KeyError(f"unknown recipe preset {name!r}; choose one of: {', '.join(PRESETS)}")
        kw = {**PRESETS[name], "preset_name": name}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)

    @property
    def drop_epoch(self) -> int:
        """First epoch (0-based) trained at the dropped learning rate."""
        return int(self.epochs * self.lr_drop_at)

    def lr_at(self, epoch: int) -> float:
        return self.lr * (self.lr_drop if epoch >= self.drop_epoch else 1.0)

    def for_set_size(self, n: int) -> Recipe:
        """The recipe as run on ``n`` clips: ``epochs`` raised so that ``min_steps`` are taken."""
        steps_per_epoch = -(-n // self.batch_size)
        need = -(-self.min_steps // steps_per_epoch) if self.min_steps else 0
        return self if need <= self.epochs else replace(self, epochs=need)

    def with_(self, **changes: Any) -> Recipe:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as stored in result rows. Options added after rows were first written
        are left out while at their "off" value, so a recipe that does not use them has the
        same identity as before (rows stay paired and per-seed caches stay valid)."""
        d = asdict(self)
        for key in ADDED_OFF:
            if d.get(key) is None:
                d.pop(key, None)
        return d
