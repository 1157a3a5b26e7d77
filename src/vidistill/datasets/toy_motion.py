"""toy-motion: a procedural, SSv2-like video classification problem, deterministic from a seed.

The class is the motion and nothing else (Something-Something's regime): one frame
carries no class information. ``toy`` (``vidistill.datasets.toy``) is the UCF-like
sibling with class-correlated context and groups, built from the same primitives.

Why it looks like this (DESIGN §2):

* **Classes are motions** (slide in 4 directions, rotate cw/ccw, zoom in/out, shake,
  orbit, ...). Every appearance factor is drawn independently of the class, positions
  wrap around the frame (torus), start angles are uniform and zoom sizes overlap, so a
  single frame carries (almost) no class information — ``benchmarks/toy_calibrate.py --dataset toy-motion``
  measures the gap.
* **Sub-modes**: each clip belongs to one of 4 visual modes (shape, background, colour
  family, speed) shared by all classes. A VPC-1 set covers one mode of a class, so which
  clips a method picks matters.
* **Nuisances**: per-pixel noise, moving distractor blobs, jittered colours/sizes.

Rendering is vectorised NumPy over an (H, W) grid per frame: the default 1,300 clips
(100 train + 30 test per class) take a few seconds.
The clip is rendered directly at the store's spec; ``stride`` scales the motion per
kept frame, as if every ``stride``-th frame of a longer video were kept.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vidistill.clipstore import ClipSpec
from vidistill.datasets.base import Dataset, VideoItem
from vidistill.registry import register

MOTIONS = (
    "slide-right",
    "slide-left",
    "slide-up",
    "slide-down",
    "rotate-cw",
    "rotate-ccw",
    "zoom-in",
    "zoom-out",
    "shake",
    "orbit",
    "pulse",
    "orbit-ccw",
)
SHAPES = ("bar", "triangle", "ell", "half-disc")
NUM_MODES = 4
# Per mode: (shape, background, colour family RGB, speed factor). Shared by all classes.
_MODE_COLOURS = np.array([[230, 70, 60], [60, 200, 90], [70, 110, 240], [235, 210, 60]], float)
_MODE_SPEED = (0.8, 1.0, 1.3, 1.1)


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test in object coordinates (unit size); none is rotation-symmetric except by 180°."""
    if shape == "bar":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.4)
    if shape == "triangle":
        return (v >= -0.6) & (v <= 0.9) & (np.abs(u) <= 0.75 * (0.9 - v) / 1.5 + 0.02)
    if shape == "ell":
        return ((np.abs(u) <= 1.0) & (v >= 0.45) & (v <= 1.0)) | (
            (u >= -1.0) & (u <= -0.45) & (np.abs(v) <= 1.0)
        )
    if shape == "half-disc":
        return (u * u + v * v <= 1.0) & (v >= -0.1)
    raise ValueError(shape)


def _background(mode: int, rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    base = rng.uniform(40, 110, size=3)
    if mode == 0:  # flat
        img = np.broadcast_to(base, (size, size, 3)).copy()
    elif mode == 1:  # gradient
        g = (x * math.cos(rng.uniform(0, 6.28)) + y * math.sin(rng.uniform(0, 6.28)))[..., None]
        img = base + 70 * (g - g.mean())
    elif mode == 2:  # blotchy texture: upsampled coarse noise
        coarse = rng.normal(0, 30, size=(8, 8, 3))
        reps = -(-size // 8)
        img = base + np.kron(coarse, np.ones((reps, reps, 1)))[:size, :size]
    else:  # stripes
        f = rng.uniform(3, 7)
        img = base + 35 * np.sin(2 * math.pi * f * (x + 0.3 * y))[..., None]
    return img


class ProceduralToy(Dataset):
    """What both toys share: generated from a seed (``prepare`` needs no --root), motion
    classes, clip counts, nuisances and the two difficulty knobs; ``describe`` records every
    knob (``KNOBS``) so a store says exactly which toy made it."""

    procedural = True
    KNOBS: tuple[str, ...] = (
        "num_classes", "train_per_class", "test_per_class", "seed", "noise", "distractors",
        "motion_scale", "object_scale",
    )  # fmt: skip

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
    ):
        if not 2 <= num_classes <= len(MOTIONS):
            raise ValueError(
                f"{self.name} num_classes must be in 2..{len(MOTIONS)}, got {num_classes}"
            )
        self.num_classes = num_classes
        self.class_names = list(MOTIONS[:num_classes])
        self.train_per_class = train_per_class
        self.test_per_class = test_per_class
        self.seed = seed
        self.noise = noise
        self.distractors = distractors
        # Difficulty knobs: speed of every motion and object size (1.0 = the session-1 toy).
        # Defaults 3.0 / 2.0 were chosen so that RANDOM real subsets of 10 clips per class
        # generalise well above chance (docs/toy.md has the history); no selector or
        # synthesizer was looked at when choosing them.
        self.motion_scale = motion_scale
        self.object_scale = object_scale

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, **{k: getattr(self, k) for k in self.KNOBS}}


class ToyMotionDataset(ProceduralToy):
    """Motion-defined toy classes. See module docstring for the design."""

    name = "toy-motion"

    def items(self) -> list[VideoItem]:
        items = []
        for split, per_class in (("train", self.train_per_class), ("test", self.test_per_class)):
            for c, name in enumerate(self.class_names):
                for k in range(per_class):
                    # Modes are balanced within each class and split.
                    mode = k % NUM_MODES
                    uid = f"toy-motion/{split}/{name}/{k:05d}"
                    items.append(VideoItem(uid, c, name, split, {"mode": mode, "index": k}))
        return items

    def _rng(self, item: VideoItem) -> np.random.Generator:
        split_id = 0 if item.split == "train" else 1
        return np.random.default_rng([self.seed, split_id, item.label, item.meta["index"]])

    def load(self, item: VideoItem, spec: ClipSpec) -> np.ndarray:
        return render_clip(
            self.class_names[item.label],
            item.meta["mode"],
            self._rng(item),
            spec,
            self.noise,
            self.distractors,
            self.motion_scale,
            self.object_scale,
        )


def trajectory(
    motion: str,
    rng: np.random.Generator,
    t: np.ndarray,
    speed: float,
    size: int,
    object_scale: float = 1.0,
):
    """Per-frame centre (cx, cy), angle θ and scale s for a motion class."""
    s0 = size * rng.uniform(0.11, 0.16) * object_scale
    cx0, cy0 = rng.uniform(0, size, 2)
    th0 = rng.uniform(0, 2 * math.pi)
    step = speed * size / 64 * rng.uniform(2.2, 3.2)  # pixels per kept frame
    omega = speed * rng.uniform(0.22, 0.32)  # radians per kept frame
    zero = np.zeros_like(t)
    cx, cy, th, s = cx0 + zero, cy0 + zero, th0 + zero, s0 + zero
    T = len(t)
    if motion == "slide-right":
        cx = cx0 + step * t
    elif motion == "slide-left":
        cx = cx0 - step * t
    elif motion == "slide-up":
        cy = cy0 - step * t
    elif motion == "slide-down":
        cy = cy0 + step * t
    elif motion == "rotate-cw":
        th = th0 + omega * t
    elif motion == "rotate-ccw":
        th = th0 - omega * t
    elif motion in ("zoom-in", "zoom-out"):
        # Sizes overlap between the two classes: start size is drawn so both span ~[0.6, 1.6]·s0.
        rate = 1.0 + 0.09 * speed
        grow = rate ** (t - (T - 1) / 2)
        s = s0 * (grow if motion == "zoom-in" else grow[::-1])
    elif motion == "shake":
        phase = rng.uniform(0, 2 * math.pi)
        cx = cx0 + 1.6 * step * np.sin(math.pi * t / 1.5 + phase)
    elif motion in ("orbit", "orbit-ccw"):
        radius = size * rng.uniform(0.14, 0.22)
        phase = rng.uniform(0, 2 * math.pi)
        sign = 1.0 if motion == "orbit" else -1.0
        cx = cx0 + radius * np.cos(phase + sign * omega * 1.6 * t)
        cy = cy0 + radius * np.sin(phase + sign * omega * 1.6 * t)
    elif motion == "pulse":
        phase = rng.uniform(0, 2 * math.pi)
        s = s0 * (1.0 + 0.35 * np.sin(math.pi * t / 2.0 + phase))
    else:
        raise ValueError(motion)
    return cx, cy, th, s


def render_clip(
    motion: str,
    mode: int,
    rng: np.random.Generator,
    spec: ClipSpec,
    noise: float = 12.0,
    distractors: int = 1,
    motion_scale: float = 1.0,
    object_scale: float = 1.0,
) -> np.ndarray:
    """Render one uint8 clip ``(T, S, S, 3)`` of ``motion`` in visual ``mode``."""
    T, S = spec.frames, spec.size
    t = np.arange(T, dtype=np.float64) * spec.stride
    speed = _MODE_SPEED[mode] * rng.uniform(0.85, 1.15)
    bg = _background(mode, rng, S)
    colour = np.clip(_MODE_COLOURS[mode] + rng.normal(0, 18, 3), 0, 255)
    cx, cy, th, s = trajectory(motion, rng, t, speed * motion_scale, S, object_scale)

    frames = np.broadcast_to(bg, (T, S, S, 3)).copy()
    draw_object(frames, SHAPES[mode], colour, cx, cy, th, s)
    return add_nuisances(frames, rng, t, noise, distractors)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    return yy, xx


def draw_object(
    frames: np.ndarray,
    shape: str,
    colour: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    th: np.ndarray,
    s: np.ndarray,
) -> None:
    """Paint ``shape`` in ``colour`` into float ``frames`` (T, S, S, 3) along a trajectory."""
    S = frames.shape[1]
    yy, xx = _grid(S)
    # Torus wrap: the displacement to the centre is taken modulo the frame size.
    dx = (xx[None] - cx[:, None, None] + S / 2) % S - S / 2
    dy = (yy[None] - cy[:, None, None] + S / 2) % S - S / 2
    cos, sin = np.cos(th)[:, None, None], np.sin(th)[:, None, None]
    u = (dx * cos + dy * sin) / s[:, None, None]
    v = (-dx * sin + dy * cos) / s[:, None, None]
    frames[shape_mask(shape, u, v)] = colour


def add_nuisances(
    frames: np.ndarray, rng: np.random.Generator, t: np.ndarray, noise: float, distractors: int
) -> np.ndarray:
    """Distractor discs on independent random walks (any colour), pixel noise → uint8."""
    T, S = frames.shape[0], frames.shape[1]
    yy, xx = _grid(S)
    for _ in range(distractors):
        p = rng.uniform(0, S, 2)
        vel = rng.normal(0, 1.5, 2) * S / 64
        walk = p + vel * t[:, None] + np.cumsum(rng.normal(0, 0.8, (T, 2)), axis=0)
        r = S * rng.uniform(0.03, 0.06)
        ddx = (xx[None] - walk[:, 0, None, None] + S / 2) % S - S / 2
        ddy = (yy[None] - walk[:, 1, None, None] + S / 2) % S - S / 2
        frames[ddx * ddx + ddy * ddy <= r * r] = rng.uniform(40, 255, 3)
    frames += rng.normal(0, noise, frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


register("dataset", "toy-motion")(ToyMotionDataset)
