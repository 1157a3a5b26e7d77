"""Decode one fixed clip from a video file with PyAV, and write videos (tests, GIFs, export).

Sampling policy (stated, deterministic): the clip spans ``frames * stride`` source
frames centred in the video; shorter videos follow ``spec.short_policy``. Frames are
resized so the short side equals ``spec.size`` (swscale, bilinear) and centre-cropped.
Only the kept frames are converted to RGB, and decoding stops after the last kept
frame, so cutting a clip costs less than decoding the whole file.

Odd inputs (tests/faults): frames are indexed in decode order, so a variable-frame-rate
video is sampled by frame, not by time; a display rotation (phone videos) is applied as
players apply it (multiples of 90°); any pixel format (gray, 10-bit) is converted to RGB by
swscale; a video whose frames are under ``MIN_SIDE`` pixels on a side holds no picture to
resize and is skipped, as are audio-only files, symlink loops and folders named like videos.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from vidistill.clipstore import ClipSpec
from vidistill.errors import VideoError

MIN_SIDE = 8  # the smallest ClipSpec.size: below it a frame is not a picture worth upscaling


def clip_indices(num_frames: int, spec: ClipSpec) -> np.ndarray:
    """Source-frame indices of the centred clip; short videos loop or pad."""
    if num_frames <= 0:
        raise VideoError("video has no frames")
    span = spec.frames * spec.stride
    start = max((num_frames - span) // 2, 0)
    idx = start + np.arange(spec.frames) * spec.stride
    if span > num_frames:
        idx = idx % num_frames if spec.short_policy == "loop" else np.minimum(idx, num_frames - 1)
    return idx


def _count_frames(path: Path) -> int:
    """Frame count from demuxed packets (no decoding), for containers that don't store it."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size > 0)


def _check_size(w: int, h: int) -> None:
    """A stream that states its size (some only do once decoded: 0) must be a picture."""
    if 0 < min(w, h) < MIN_SIDE:
        raise VideoError(
            f"frames of {w}×{h} px are too small to hold a picture (under {MIN_SIDE} px a side)"
        )


def _resize_crop(frame: av.VideoFrame, size: int) -> np.ndarray:
    """Short side to ``size`` (aspect kept), display rotation applied, centre crop.
    Resizing by the short side commutes with a 90° turn, so the turn comes after it."""
    w, h = frame.width, frame.height
    _check_size(w, h)
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    rgb = frame.reformat(width=nw, height=nh, format="rgb24", interpolation="BILINEAR").to_ndarray()
    turns = round(getattr(frame, "rotation", 0) / 90) % 4  # counter-clockwise, as displayed
    if turns:
        rgb = np.rot90(rgb, turns)
        nh, nw = rgb.shape[:2]
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])


def decode_clip(path: str | Path, spec: ClipSpec) -> np.ndarray:
    """uint8 ``(T, S, S, 3)`` clip of ``path``; raises :class:`VideoError` on unreadable input."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(_not_a_file(path))
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            _check_size(stream.width, stream.height)
            n = stream.frames or _count_frames(path)
            wanted = clip_indices(n, spec)
            need = {int(i): [] for i in wanted}
            for pos, src in enumerate(wanted):
                need[int(src)].append(pos)
            out = np.empty(spec.shape, np.uint8)
            last = int(wanted.max())
            got = set()
            for i, frame in enumerate(container.decode(stream)):
                if i in need:
                    rgb = _resize_crop(frame, spec.size)
                    for pos in need[i]:
                        out[pos] = rgb
                    got.add(i)
                if i >= last:
                    break
    except VideoError:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError) as err:
        raise VideoError(f"decode failed: {type(err).__name__}: {err}") from err
    if len(got) < len(need):
        # The header promised more frames than decoded (truncated file): re-plan on what exists.
        if not got:
            raise VideoError("no decodable frames")
        raise VideoError(f"truncated: header says {n} frames, decoded only up to {max(got) + 1}")
    return out


def _not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as a file: a symlink loop, a folder, or missing."""
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop this way
        return f"symlink loop at {path}"
    except OSError as err:
        if err.errno == 40:  # ELOOP
            return f"symlink loop at {path}"
        return f"missing file {path}"
    if path.is_dir():
        return f"{path} is a folder, not a video file"
    return f"{path} is not a regular file"


def write_video(
    path: str | Path, frames: np.ndarray, fps: int = 25, codec: str | None = None
) -> Path:
    """Write uint8 ``(T,H,W,3)`` frames; codec from the extension (mp4→h264, avi→mpeg4, webm→vp9)."""
    path = Path(path)
    codec = (
        codec
        or {".mp4": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9", ".mkv": "libx264"}[
            path.suffix.lower()
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "veryfast"}
        elif codec == "mpeg4":
            stream.bit_rate = 4_000_000
        for arr in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# Lossless encoders for `vidistill export`: codec → (container extension, pixel format).
# libx264rgb at qp 0 codes the RGB planes themselves (no YUV conversion, no chroma
# subsampling), so every decoded pixel equals the written one; its High 4:4:4 Predictive
# profile plays in ffmpeg/ffplay/VLC but not in most browsers. FFV1 in Matroska is the
# archival lossless alternative where a PyAV build lacks x264.
LOSSLESS_CODECS: dict[str, tuple[str, str]] = {
    "libx264rgb": (".mp4", "rgb24"),
    "ffv1": (".mkv", "bgr0"),
}


def check_lossless_codec(codec: str) -> str:
    """``codec`` if it is a lossless codec this PyAV build can encode, else a ValueError
    naming what to use instead."""
    if codec not in LOSSLESS_CODECS:
        raise ValueError(
            f"unknown lossless codec {codec!r}; choose one of: {', '.join(LOSSLESS_CODECS)}"
        )
    try:
        av.codec.Codec(codec, "w")
    except ValueError as err:  # UnknownCodecError: this FFmpeg build was made without it
        others = [c for c in LOSSLESS_CODECS if c != codec]
        raise ValueError(
            f"this PyAV build (av {av.__version__}) cannot encode {codec}; use --codec {others[0]}"
        ) from err
    return codec


def write_lossless_video(path: str | Path, frames: np.ndarray, codec: str, fps: int = 8) -> Path:
    """Write uint8 ``(T,H,W,3)`` RGB frames so that :func:`decode_clip` (same T and size,
    stride 1) returns them bit for bit. ``path`` should carry the codec's extension."""
    ext, pix_fmt = LOSSLESS_CODECS[check_lossless_codec(codec)]
    path = Path(path)
    if path.suffix.lower() != ext:
        raise ValueError(f"{codec} is written to a {ext} file, not {path.name}")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T,H,W,3), got {frames.shape} {frames.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        if codec == "libx264rgb":
            stream.options = {"qp": "0"}  # qp 0: x264's lossless mode
        for arr in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
