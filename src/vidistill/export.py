"""Export a distilled set as videos any tool can read: `vidistill export RUN_OR_SET --out DIR`.

``DIR`` holds::

    <class>/<clip>.mp4      one video per clip, lossless: H.264 RGB (libx264rgb, qp 0) —
                            or FFV1 in <clip>.mkv with ``codec="ffv1"``
    videos.csv              folder_name,label,split — the field's split-file form (MiniUCF,
                            HMDB51): the video of a row is <label>/<folder_name>.<ext>
    classes.txt             class names in label order (``prepare folder`` keeps that order)
    distilled.safetensors   the exact tensors: ``clips`` uint8 (N,T,H,W,3) — what the videos
                            hold —, ``labels`` int64 (N,); for a synthesized set also
                            ``videos`` float32 (N,3,T,H,W), the learned tensors as optimised
                            (normalised input space), and VDSD's ``groups``; metadata:
                            class_names, names (clip file stems) and what export.json says
    export.json             what was exported, from where, with which codec

``vidistill prepare folder --root DIR --out STORE --frames T --size S --stride 1`` reads it
back into a ClipStore whose train split is the same training set, pixel for pixel. The whole
folder is written under a temporary name beside ``DIR`` and renamed into place, so ``DIR`` is
either absent or complete.

A synthesized set's videos are float tensors: its videos hold their uint8 rendering (the
preview store's: denormalised, clamped to [0, 255], rounded); ``export.json`` records how
far that is from the learned tensors, which stay exact in ``distilled.safetensors``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "vidistill-export/1"
TENSORS = "distilled.safetensors"
CSV_FILE = "videos.csv"
CLASSES_FILE = "classes.txt"
INFO_FILE = "export.json"
DEFAULT_CODEC = "libx264rgb"
# codec → (what the videos are, where they play)
CODECS = {
    "libx264rgb": (
        "lossless H.264 RGB (libx264rgb, qp 0)",
        "plays in ffmpeg/ffplay/VLC, not in most browsers (High 4:4:4 Predictive profile)",
    ),
    "ffv1": ("lossless FFV1 (bgr0) in Matroska", "plays in ffmpeg/ffplay/VLC"),
}
_RUN_NAME = re.compile(r"^(?P<method>.+)_vpc(?P<vpc>\d+)_seed(?P<seed>-?\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class DistilledSet:
    """A distilled training set ready to export: uint8 clips, labels, names per clip."""

    clips: np.ndarray  # uint8 (N,T,H,W,3): what the videos hold
    labels: np.ndarray  # int64 (N,)
    class_names: list[str]
    names: list[str]  # one per clip, unique within its class: file stem and folder_name
    info: dict[str, Any] = field(default_factory=dict)  # kind, source, method, vpc, seed, ...
    videos: torch.Tensor | None = None  # synthesized sets: the learned float tensors
    groups: torch.Tensor | None = None  # VDSD: one training group per clip

    def __post_init__(self) -> None:
        n = len(self.clips)
        if self.clips.dtype != np.uint8 or self.clips.ndim != 5 or self.clips.shape[-1] != 3:
            raise ValueError(f"clips must be uint8 (N,T,H,W,3), got {self.clips.shape}")
        if len(self.labels) != n or len(self.names) != n:
            raise ValueError(f"{n} clips but {len(self.labels)} labels, {len(self.names)} names")
        if n == 0:
            raise ValueError("nothing to export: the set has no clips")
        seen = set()
        for label, name in zip(self.labels.tolist(), self.names, strict=True):
            if (label, name) in seen:
                raise ValueError(f"clip name {name!r} repeats in class {self.class_names[label]!r}")
            seen.add((label, name))


# -- sources -------------------------------------------------------------------------------
def _stem(source: str) -> str:
    """A file-safe clip name from a manifest source (``UCF-101/X/v_X_g01_c01.avi`` →
    ``v_X_g01_c01``; ``generated:3:5`` → ``generated_3_5``)."""
    base = re.split(r"[/\\]", source.rstrip("/\\"))[-1]
    base = base.rsplit(".", 1)[0] if "." in base[1:] else base
    return _UNSAFE.sub("_", base).strip("._") or "clip"


def _unique_names(stems: list[str], labels: list[int], fallback: list[int]) -> list[str]:
    """``stems`` with ``_<fallback id>`` appended where a stem repeats within a class."""
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for s, y in zip(stems, labels, strict=True):
        counts[(y, s)] += 1
    return [
        s if counts[(y, s)] == 1 else f"{s}_{i}"
        for s, y, i in zip(stems, labels, fallback, strict=True)
    ]


def _selection_store(sel: dict[str, Any], path: Path, store: str | Path | None):
    from vidistill.clipstore import ClipStore

    if store is not None:
        return ClipStore(store)
    recorded = sel.get("store")
    if not recorded:
        raise ValueError(f"{path} does not name the store it indexes; pass --store STORE")
    # as recorded (relative to where `select` ran), else beside the file or its folder
    # (a run's RUN/select/X.json indexes RUN/data), wherever the run folder now is
    name = Path(recorded).name
    for cand in (Path(recorded), path.parent.parent / name, path.parent / name):
        if (cand / "store.json").is_file():
            return ClipStore(cand)
    raise FileNotFoundError(
        f"{path} indexes the store {recorded}, which is not a ClipStore from here; "
        "pass --store STORE"
    )


def from_selection(path: str | Path, store: str | Path | None = None) -> DistilledSet:
    """The real clips a selection JSON (``vidistill select``) names, checked against its store."""
    from vidistill.evaluate import load_selection, selection_set

    path = Path(path)
    sel = load_selection(path)
    pool = _selection_store(sel, path, store)
    train = selection_set(pool, sel)  # every class known, every clip of it, no test clip
    idx = train.meta["indices"]
    labels = train.labels.numpy()
    stems = [_stem(pool.records[i]["source"]) for i in idx]
    return DistilledSet(
        clips=train.videos.numpy(),
        labels=labels,
        class_names=list(pool.class_names),
        names=_unique_names(stems, labels.tolist(), idx),
        info={
            "kind": "selection",
            "source": str(path),
            "method": sel.get("method"),
            "vpc": sel.get("vpc"),
            "seed": sel.get("seed"),
            "store": str(pool.root),
            "store_indices": [int(i) for i in idx],
        },
    )


def from_synthetic(path: str | Path) -> DistilledSet:
    """A synthesized set (``vidistill synthesize``: a folder with synthetic.safetensors, or
    the file): its uint8 rendering as clips, the learned tensors kept exactly."""
    from vidistill.synthetic import SyntheticSet
    from vidistill.transforms import IMAGENET_MEAN, IMAGENET_STD, to_uint8

    syn = SyntheticSet.load(path)
    videos = syn.videos.detach().float().cpu()
    clips = to_uint8(videos)
    # how far the uint8 rendering is from the learned tensors, in pixel units (0..255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    pixels = (videos * std + mean) * 255
    rendered = clips.permute(0, 4, 1, 2, 3).float()
    method = str(syn.meta.get("method", "synthetic"))
    labels = syn.labels.long().numpy()
    groups = syn.meta.get("epoch_groups")
    return DistilledSet(
        clips=clips.numpy(),
        labels=labels,
        class_names=list(syn.class_names),
        names=[f"{_stem(method)}_{i:04d}" for i in range(len(labels))],
        info={
            "kind": "synthetic",
            "source": str(path),
            "method": method,
            "vpc": syn.meta.get("vpc"),
            "seed": syn.meta.get("seed"),
            "store": syn.meta.get("store"),
            "iterations": syn.meta.get("iterations"),
            "rendering": {
                "max_abs_error_px": round(float((pixels - rendered).abs().max()), 3),
                "clamped_fraction": round(float(((pixels < 0) | (pixels > 255)).float().mean()), 6),
                "note": "videos = learned tensors denormalised, clamped to [0,255] and rounded; "
                "the learned tensors are `videos` in distilled.safetensors",
            },
        },
        videos=videos,
        groups=None if groups is None else torch.as_tensor(groups, dtype=torch.long),
    )


def run_contents(run: str | Path) -> list[dict[str, Any]]:
    """The selections (``select/M_vpcK_seedS.json``) and synthesized sets
    (``synth/M_vpcK_seedS/``) of a ``vidistill run`` folder."""
    from vidistill.synthetic import FILENAME

    run = Path(run)
    found = [(p, p.stem, "selection") for p in sorted((run / "select").glob("*.json"))]
    found += [
        (p.parent, p.parent.name, "synthetic")
        for p in sorted((run / "synth").glob(f"*/{FILENAME}"))
    ]
    entries = []
    for path, name, kind in found:
        m = _RUN_NAME.match(name)
        if m:
            entries.append(
                {
                    "kind": kind,
                    "method": m["method"],
                    "vpc": int(m["vpc"]),
                    "seed": int(m["seed"]),
                    "path": path,
                }
            )
    return entries


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``0-2, 5``."""
    values, parts = sorted(set(values)), []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def describe_run(entries: list[dict[str, Any]]) -> str:
    """One line per method and VPC: ``  --method tac-dt --vpc 5 --seed 0-9  (selection)``."""
    seeds: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for e in entries:
        seeds[(e["method"], e["kind"], e["vpc"])].append(e["seed"])
    return "\n".join(
        f"  --method {m} --vpc {v} --seed {_ranges(s)}  ({k})"
        for (m, k, v), s in sorted(seeds.items())
    )


def find_in_run(
    run: str | Path, method: str | None = None, vpc: int | None = None, seed: int | None = None
) -> dict[str, Any]:
    """The one set of ``run`` that ``method`` / ``vpc`` / ``seed`` (None: any) pick; an error
    listing what the run holds when none or several match."""
    entries = run_contents(run)
    if not entries:
        raise FileNotFoundError(
            f"{run} holds no selection (select/*.json) and no synthesized set "
            "(synth/*/synthetic.safetensors) yet"
        )
    wanted = {"method": method, "vpc": vpc, "seed": seed}
    match = [e for e in entries if all(v is None or e[k] == v for k, v in wanted.items())]
    if len(match) == 1:
        return match[0]
    given = " ".join(f"--{k} {v}" for k, v in wanted.items() if v is not None)
    if not match:
        raise ValueError(f"{run} holds no set matching {given}; it holds:\n{describe_run(entries)}")
    raise ValueError(
        f"{run} holds {len(match)} sets{' matching ' + given if given else ''}; choose one with "
        f"--method, --vpc and --seed:\n{describe_run(match)}"
    )


def load_distilled(
    source: str | Path,
    method: str | None = None,
    vpc: int | None = None,
    seed: int | None = None,
    store: str | Path | None = None,
) -> DistilledSet:
    """A selection JSON, a synthesized set (folder or .safetensors) or a ``vidistill run``
    folder (one of its sets, picked by ``method`` / ``vpc`` / ``seed``)."""
    from vidistill.synthetic import FILENAME

    path = Path(source)
    accepted = (
        "a selection JSON (`vidistill select`), a synthesized set folder "
        f"(`vidistill synthesize`, holding {FILENAME}) or a `vidistill run` folder"
    )
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; export takes {accepted}")
    picks = {"--method": method, "--vpc": vpc, "--seed": seed}
    if path.is_dir() and ((path / "select").is_dir() or (path / "synth").is_dir()):
        entry = find_in_run(path, method, vpc, seed)
        if entry["kind"] == "selection":
            return from_selection(entry["path"], store)
        return from_synthetic(entry["path"])
    given = [k for k, v in picks.items() if v is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} pick a set inside a `vidistill run` folder; {path} is not one "
            "(it has no select/ or synth/ folder)"
        )
    if path.is_file() and path.suffix == ".json":
        return from_selection(path, store)
    if (path.is_file() and path.suffix == ".safetensors") or (path / FILENAME).is_file():
        if store is not None:
            raise ValueError("--store applies to selections; a synthesized set holds its videos")
        return from_synthetic(path)
    if (path / "store.json").is_file():
        raise ValueError(
            f"{path} is a ClipStore, not a distilled set: select from it first "
            f"(`vidistill select {path} --method M --vpc K --out sel.json`) and export that"
        )
    if (path / INFO_FILE).is_file():
        raise ValueError(f"{path} is already an export (read it with `vidistill prepare folder`)")
    raise ValueError(f"{path} is not {accepted}")


# -- writing -------------------------------------------------------------------------------
def _check_class_names(names: list[str]) -> None:
    for name in names:
        if not name or name in (".", "..") or any(c in name for c in "/\\\0\n"):
            raise ValueError(
                f"class name {name!r} cannot be a folder name; export writes <class>/<clip> files"
            )


def _csv_text(rows: list[tuple[str, str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["folder_name", "label", "split"])
    writer.writerows(rows)
    return buf.getvalue()


def _place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` folder to ``out``; an earlier export there is replaced."""
    if not out.exists() or not any(out.iterdir()):
        os.replace(tmp, out)  # an empty folder is replaced in one rename
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export(
    ds: DistilledSet,
    out: str | Path,
    codec: str = DEFAULT_CODEC,
    fps: int = 8,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``ds`` to ``out`` (layout in the module docstring); returns export.json's dict.

    ``fps`` is the playback rate written in the videos only; frames are the clips' frames.
    An existing non-empty ``out`` is replaced only with ``overwrite`` and only when it is an
    earlier export (it has export.json)."""
    from safetensors.torch import save

    from vidistill.video import LOSSLESS_CODECS, check_lossless_codec, write_lossless_video

    ext, _ = LOSSLESS_CODECS[check_lossless_codec(codec)]
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is a file; choose another --out")
        if not overwrite:
            raise FileExistsError(
                f"{out} exists and is not empty; pass --overwrite to replace an earlier "
                "export, or choose another --out"
            )
        if not (out / INFO_FILE).is_file():
            raise FileExistsError(
                f"{out} is not an earlier export (no {INFO_FILE}); refusing to replace it, "
                "choose another --out"
            )
    _check_class_names(ds.class_names)
    n, t, h, w, _ = ds.clips.shape
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a killed export by this pid
    tmp.mkdir()
    try:
        rows = []
        video_bytes = 0
        for clip, label, name in zip(ds.clips, ds.labels.tolist(), ds.names, strict=True):
            cls = ds.class_names[label]
            video = write_lossless_video(tmp / cls / f"{name}{ext}", clip, codec, fps)
            video_bytes += video.stat().st_size
            rows.append((name, cls, "train"))
        (tmp / CSV_FILE).write_text(_csv_text(rows))
        (tmp / CLASSES_FILE).write_text("".join(f"{c}\n" for c in ds.class_names))
        info = {
            "format": FORMAT,
            **{k: v for k, v in ds.info.items() if k != "store_indices"},
            "clips": n,
            "classes": len(ds.class_names),
            "clips_per_class": np.bincount(ds.labels, minlength=len(ds.class_names)).tolist(),
            "frames": t,
            "height": h,
            "width": w,
            "codec": codec,
            "container": ext[1:],
            "lossless": True,
            "codec_note": "; ".join(CODECS[codec]),
            "fps": fps,
            "bytes": {"videos": video_bytes, "uint8_clips": int(ds.clips.nbytes)},
            "files": {
                "videos": f"<class>/<clip>{ext}",
                "csv": CSV_FILE,
                "classes": CLASSES_FILE,
                "tensors": TENSORS,
            },
            "prepare": f"vidistill prepare folder --root {out} --out STORE --frames {t} "
            f"--size {h} --stride 1",
        }
        if ds.groups is not None:
            info["groups"] = (
                "VDSD: the evaluator trains each epoch on one random clip per group; "
                "the groups are in distilled.safetensors, not in the videos or the CSV"
            )
        tensors = {
            "clips": torch.from_numpy(np.ascontiguousarray(ds.clips)),
            "labels": torch.as_tensor(ds.labels, dtype=torch.long),
        }
        if ds.videos is not None:
            tensors["videos"] = ds.videos.detach().float().cpu().contiguous()
        if ds.groups is not None:
            tensors["groups"] = ds.groups.long().cpu()
        if "store_indices" in ds.info:
            tensors["store_indices"] = torch.as_tensor(ds.info["store_indices"], dtype=torch.long)
        metadata = {
            "format": FORMAT,
            "class_names": json.dumps(ds.class_names),
            "names": json.dumps(ds.names),
            "info": json.dumps(info, default=str),
        }
        (tmp / TENSORS).write_bytes(save(tensors, metadata=metadata))
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
        _place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def load_export(path: str | Path) -> DistilledSet:
    """Read ``distilled.safetensors`` of an export back (the exact tensors)."""
    from vidistill.integrity import load_safetensors

    path = Path(path)
    file = path / TENSORS if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no {TENSORS} at {path} (is it a `vidistill export` folder?)")
    tensors, meta = load_safetensors(file, "`vidistill export` into a new folder")
    return DistilledSet(
        clips=tensors["clips"].numpy(),
        labels=tensors["labels"].numpy(),
        class_names=json.loads(meta["class_names"]),
        names=json.loads(meta["names"]),
        info=json.loads(meta.get("info", "{}")),
        videos=tensors.get("videos"),
        groups=tensors.get("groups"),
    )
