"""Clip pictures for reports: frame strips (PNG) and animated GIFs, per class, of the clips a
method chose or learned. Pillow (the ``report`` extra) is imported inside each function.

A :class:`ClipSet` is what one method put in its distilled set at one VPC, as uint8 clips
per class; :func:`class_gallery` draws, for each class, every method's clips one above the
other — a strip (time left to right) and a GIF that plays them all at once — so a reader
compares, class by class, what random, a selector and a synthesizer kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidistill.atomic import write_atomic

PAD = 2
CHAR_W = 6  # Pillow's default bitmap font: ~6 px a character


def _label_width(labels: Sequence[str] | None) -> int:
    if not labels:
        return 0
    return min(8 + CHAR_W * max(len(str(t)) for t in labels), 160)


def _save(img, path: str | Path, **kwargs) -> Path:
    """By suffix: PNG (exact), JPEG (quality 90: noise-like textures make PNGs ~5× larger)."""
    fmt = {"png": "PNG", "gif": "GIF", "jpg": "JPEG", "jpeg": "JPEG"}[
        Path(path).suffix.lstrip(".").lower()
    ]
    if fmt == "JPEG":
        kwargs.setdefault("quality", 90)
    return write_atomic(path, lambda fh: img.save(fh, format=fmt, **kwargs), durable=False)


def _tile(rows: Sequence[Sequence[np.ndarray]], pad: int, scale: int) -> np.ndarray:
    """A white canvas with ``rows[i][j]`` (``(H,W,3)`` each) at row i, column j; ×scale."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = im
    return canvas.repeat(scale, 0).repeat(scale, 1) if scale != 1 else canvas


def _labelled(canvas: np.ndarray, labels: Sequence[str] | None, h: int, pad: int, scale: int):
    """``canvas`` as a Pillow image with row ``i``'s label left of it, drawn at the font's
    own size whatever ``scale`` (so labels stay crisp)."""
    from PIL import Image, ImageDraw

    if labels is None:
        return Image.fromarray(canvas)
    label_w = _label_width(labels)
    img = Image.new("RGB", (label_w + canvas.shape[1], canvas.shape[0]), (255, 255, 255))
    img.paste(Image.fromarray(canvas), (label_w, 0))
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(labels):
        y = (pad + i * (h + pad)) * scale + h * scale // 2 - 5
        draw.text((4, y), str(text)[: (label_w - 8) // CHAR_W], fill=(0, 0, 0))
    return img


def frame_strip(
    clips: np.ndarray, path: str | Path, scale: int = 1, labels: Sequence[str] | None = None
) -> Path:
    """Image grid (PNG, or JPEG for a ``.jpg`` path): one row per clip ``(n,T,H,W,3)`` uint8,
    frames left to right, each row optionally labelled on its left."""
    clips = np.asarray(clips)
    canvas = _tile([list(c) for c in clips], PAD, scale)
    return _save(_labelled(canvas, labels, clips.shape[2], PAD, scale), path)


def clip_gif(clip: np.ndarray, path: str | Path, fps: int = 6, scale: int = 2) -> Path:
    """Animated GIF of one uint8 clip ``(T,H,W,3)``."""
    return grid_gif([[np.asarray(clip)]], path, fps=fps, scale=scale, pad=0)


def grid_gif(
    rows: Sequence[Sequence[np.ndarray]],
    path: str | Path,
    labels: Sequence[str] | None = None,
    fps: int = 6,
    scale: int = 2,
    pad: int = PAD,
) -> Path:
    """One animated GIF of a grid of uint8 clips ``(T,H,W,3)``, all playing in step: row ``i``
    holds ``rows[i]`` (rows may differ in length), optionally labelled on its left."""
    from PIL import Image

    if not any(len(r) for r in rows):
        raise ValueError("grid_gif needs at least one clip")
    t = max(c.shape[0] for r in rows for c in r)
    h = rows[0][0].shape[1]
    frames = [
        _labelled(_tile([[c[k % c.shape[0]] for c in r] for r in rows], pad, scale),
                  labels, h, pad, scale)
        for k in range(t)
    ]  # fmt: skip
    # one palette for every frame (fast octree over all of them): no colour flicker between
    # frames, and ~10× faster than Pillow's per-frame median cut
    everything = Image.fromarray(np.concatenate([np.asarray(f) for f in frames], axis=0))
    palette = everything.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    return _save(
        frames[0], path, save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0
    )


@dataclass
class ClipSet:
    """The clips one method's distilled set holds at one VPC, per class (uint8 ``(k,T,H,W,3)``).

    ``kind`` is ``chosen`` (real or pool clips a selector picked; random too) or ``learned``
    (a synthesizer's videos, from their uint8 preview)."""

    method: str
    vpc: int
    kind: str
    clips: dict[str, np.ndarray] = field(default_factory=dict)
    seed: int | None = None
    store: str | None = None  # the store the chosen clips come from
    indices: dict[str, list[int]] = field(default_factory=dict)  # chosen: store indices

    @property
    def label(self) -> str:
        return self.method if self.kind == "chosen" else f"{self.method} (learned)"


@dataclass
class GalleryItem:
    class_name: str
    strip: str  # paths relative to the report folder
    gif: str
    methods: list[str]  # the GIF's rows, top to bottom
    gif_size: tuple[int, int]  # (width, height) of the GIF in pixels
    row_pitch: int  # pixels from one GIF row to the next (clip height + padding)
    zoom: int = 1  # the page shows small clips (≤ 64 px) with their pixels doubled


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:40] or "class"


def gallery_vpc(sets: Sequence[ClipSet]) -> int | None:
    """The VPC the gallery shows: the largest ≤ 5 present (enough clips to see diversity,
    few enough to read), else the smallest."""
    vpcs = sorted({s.vpc for s in sets})
    if not vpcs:
        return None
    small = [v for v in vpcs if v <= 5]
    return small[-1] if small else vpcs[0]


def class_gallery(
    sets: Sequence[ClipSet],
    class_names: Sequence[str],
    out: str | Path,
    max_classes: int = 10,
    max_clips: int = 5,
    folder: str = "clips",
) -> list[GalleryItem]:
    """Per class (the first ``max_classes``): ``folder/NN_class.jpg``, a strip with one row per
    clip of every set (labelled ``method #k``), and ``folder/NN_class.gif``, one row per set,
    its clips side by side, playing (at 1×, unlabelled: the page draws the labels beside it
    and doubles small clips with CSS, which keeps the file 4× smaller). Returns the items,
    paths relative to ``out``."""
    out = Path(out)
    items = []
    for c, name in enumerate(class_names[:max_classes]):
        rows, row_labels, strip, strip_labels = [], [], [], []
        for s in sets:
            clips = s.clips.get(name)
            if clips is None or len(clips) == 0:
                continue
            clips = np.asarray(clips)[:max_clips]
            rows.append(list(clips))
            row_labels.append(s.label)
            strip.extend(clips)
            strip_labels += [f"{s.method} #{k + 1}" for k in range(len(clips))]
        if not rows:
            continue
        stem = f"{folder}/{c:02d}_{_slug(name)}"
        frame_strip(np.stack(strip), out / f"{stem}.jpg", labels=strip_labels)
        grid_gif(rows, out / f"{stem}.gif", scale=1)  # 1×, unlabelled: the page labels rows
        h, w = strip[0].shape[1:3]
        size = (max(len(r) for r in rows) * (w + PAD) + PAD, len(rows) * (h + PAD) + PAD)
        items.append(
            GalleryItem(name, f"{stem}.jpg", f"{stem}.gif", row_labels, size, h + PAD,
                        2 if h <= 64 else 1)
        )  # fmt: skip
    return items
