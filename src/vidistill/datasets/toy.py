"""toy: a procedural, UCF-like video classification problem, deterministic from a seed.

Why it looks like this (DESIGN §2). On UCF101, HMDB51 and Kinetics much of a class is in
its *context* (scene, objects, actors), and a random real VPC-1 subset already generalises
above chance (MiniUCF: g(1) ≈ 0.14, g(5) ≈ 0.38 of the full-real gain). ``toy-motion``
(pure motion, appearance independent of the class) is the Something-Something regime;
this ``toy`` is the UCF one:

* **The class is a motion** (slide ×4, rotate cw/ccw, zoom in/out, shake, orbit, ...) —
  the same trajectories as ``toy-motion`` — **and a context distribution**: each class has
  an object hue and a scene tint (evenly spaced on the colour wheel), and each of its
  visual **modes** draws its scene type, shape and hues from that class's distribution.
  Hues are spread by ``hue_spread`` degrees, so neighbouring classes overlap: one frame
  says a lot about the class, not everything (calibrated in docs/toy.md).
* **Modes** (``NUM_MODES`` per class, recorded as ``meta.mode``): a scene type, a shape,
  a speed and hues. Different classes' modes share scene types and shapes.
* **Groups** like UCF101's ``gXX`` (recorded as ``meta.group``): clips of one group share
  the "actor and scene" — object colour and size, background pattern, its colours and
  layout. Group ``g`` belongs to mode ``g % NUM_MODES``. Train and test use **disjoint
  groups**, as UCF101's official splits do: test = the first ``test_groups`` groups
  (split 1 tests on g01–g07), train = the rest, so a classifier cannot win by
  recognising the very scene it was trained on.
* **Nuisances**: per-pixel noise and distractor discs, as in ``toy-motion``.

Deterministic from ``seed``: every random draw comes from a generator seeded by
``(seed, what, class, mode/group/clip)``, so one clip never depends on another.
"""

from __future__ import annotations

import colorsys
import math
from typing import Any

import numpy as np

from vidistill.clipstore import ClipSpec
from vidistill.datasets.base import VideoItem
from vidistill.datasets.toy_motion import (
    SHAPES,
    ProceduralToy,
    add_nuisances,
    draw_object,
    trajectory,
)
from vidistill.registry import register

NUM_MODES = 4
SCENES = ("flat", "gradient", "blotches", "stripes", "checker", "rings")
# What each rng stream draws; part of the seed so streams never collide.
_MODE, _GROUP, _CLIP = 1, 2, 3


def _rgb(hue_deg: float, sat: float, val: float) -> np.ndarray:
    return 255.0 * np.array(colorsys.hsv_to_rgb((hue_deg / 360.0) % 1.0, sat, val))


def scene_image(
    kind: str, base: np.ndarray, accent: np.ndarray, rng: np.random.Generator, size: int
) -> np.ndarray:
    """A static ``(size, size, 3)`` float background of one scene type (two colours)."""
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    angle = rng.uniform(0, 2 * math.pi)
    u = x * math.cos(angle) + y * math.sin(angle)
    if kind == "flat":
        w = np.zeros_like(x)
    elif kind == "gradient":
        w = u - u.min()
        w = w / max(w.max(), 1e-9)
    elif kind == "blotches":
        coarse = rng.uniform(0, 1, size=(6, 6))
        reps = -(-size // 6)
        w = np.kron(coarse, np.ones((reps, reps)))[:size, :size]
    elif kind == "stripes":
        w = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(3, 6) * u)
    elif kind == "checker":
        n = rng.integers(3, 6)
        w = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(float)
    elif kind == "rings":
        cx, cy = rng.uniform(0.2, 0.8, 2)
        w = 0.5 + 0.5 * np.cos(2 * math.pi * rng.uniform(3, 5) * np.hypot(x - cx, y - cy))
    else:
        raise ValueError(kind)
    w = w[..., None]
    return base * (1 - w) + accent * w


class ToyDataset(ProceduralToy):
    """UCF-like toy: class = motion + class-correlated context; UCF101-style groups."""

    name = "toy"
    KNOBS = (*ProceduralToy.KNOBS, "hue_spread", "groups", "test_groups")

    def __init__(
        self,
        num_classes: int = 10,
        train_per_class: int = 100,
        test_per_class: int = 30,
        seed: int = 0,
        noise: float = 12.0,
        distractors: int = 1,
        motion_scale: float = 3.0,
        object_scale: float = 2.0,
        hue_spread: float = 60.0,
        groups: int = 25,
        test_groups: int = 7,
    ):
        super().__init__(num_classes, train_per_class, test_per_class, seed, noise,
                         distractors, motion_scale, object_scale)  # fmt: skip
        if not 1 <= test_groups < groups:
            raise ValueError(
                f"toy needs 1 <= test_groups < groups (train and test use disjoint groups), "
                f"got test_groups={test_groups}, groups={groups}"
            )
        if hue_spread < 0:
            raise ValueError(f"toy hue_spread is a std in degrees, >= 0; got {hue_spread}")
        self.hue_spread = hue_spread
        self.groups = groups
        self.test_groups = test_groups

    def group_of(self, split: str, k: int) -> int:
        """Group of the ``k``-th clip of a class in ``split``: test = groups ``0..test_groups-1``."""
        if split == "test":
            return k % self.test_groups
        return self.test_groups + k % (self.groups - self.test_groups)

    def items(self) -> list[VideoItem]:
        items = []
        for split, per_class in (("train", self.train_per_class), ("test", self.test_per_class)):
            for c, name in enumerate(self.class_names):
                for k in range(per_class):
                    g = self.group_of(split, k)
                    uid = f"toy/{split}/{name}/g{g + 1:02d}_c{k:03d}"
                    meta = {"mode": g % NUM_MODES, "group": g + 1, "index": k}
                    items.append(VideoItem(uid, c, name, split, meta))
        return items

    # -- the context distribution -----------------------------------------------------
    def _class_hues(self, c: int) -> tuple[float, float]:
        """Object hue and scene tint of class ``c``: evenly spaced, tint a half-turn
        shifted by a class-dependent offset, so classes differ in both."""
        step = 360.0 / self.num_classes
        return c * step, (180.0 + c * step * 3.0) % 360.0

    def mode_params(self, c: int, m: int) -> dict[str, Any]:
        """A class's visual mode: scene type, shape, speed and hues (overlapping classes)."""
        rng = np.random.default_rng([self.seed, _MODE, c, m])
        hue, tint = self._class_hues(c)
        return {
            "scene": SCENES[rng.integers(len(SCENES))],
            "shape": SHAPES[rng.integers(len(SHAPES))],
            "speed": rng.uniform(0.8, 1.3),
            "hue": hue + self.hue_spread * rng.normal(),
            "tint": tint + self.hue_spread * rng.normal(),
        }

    def group_params(self, c: int, g: int) -> dict[str, Any]:
        """One group's actor and scene: fixed colours, size and background layout."""
        mode = self.mode_params(c, g % NUM_MODES)
        rng = np.random.default_rng([self.seed, _GROUP, c, g])
        return {
            **mode,
            "colour": _rgb(mode["hue"] + rng.normal(0, 12), rng.uniform(0.55, 0.9),
                           rng.uniform(0.75, 0.95)),
            "base": _rgb(mode["tint"] + rng.normal(0, 12), rng.uniform(0.25, 0.55),
                         rng.uniform(0.25, 0.45)),
            "accent": _rgb(mode["tint"] + rng.normal(0, 30), rng.uniform(0.2, 0.5),
                           rng.uniform(0.45, 0.65)),
            "size": rng.uniform(0.9, 1.1),
            "layout_seed": int(rng.integers(2**31)),
        }  # fmt: skip

    def load(self, item: VideoItem, spec: ClipSpec) -> np.ndarray:
        c, g = item.label, item.meta["group"] - 1
        split_id = 0 if item.split == "train" else 1
        group = self.group_params(c, g)
        rng = np.random.default_rng([self.seed, _CLIP, split_id, c, item.meta["index"]])
        T, S = spec.frames, spec.size
        t = np.arange(T, dtype=np.float64) * spec.stride
        bg = scene_image(
            group["scene"], group["base"], group["accent"],
            np.random.default_rng(group["layout_seed"]), S,
        )  # fmt: skip
        speed = group["speed"] * rng.uniform(0.85, 1.15) * self.motion_scale
        cx, cy, th, s = trajectory(
            self.class_names[c], rng, t, speed, S, self.object_scale * group["size"]
        )
        colour = np.clip(group["colour"] + rng.normal(0, 8, 3), 0, 255)
        frames = np.broadcast_to(bg, (T, S, S, 3)).copy()
        draw_object(frames, group["shape"], colour, cx, cy, th, s)
        return add_nuisances(frames, rng, t, self.noise, self.distractors)


register("dataset", "toy")(ToyDataset)
