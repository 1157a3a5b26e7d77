"""A fake run directory for report tests: everything `vidistill run` leaves that a report reads
(store, embeddings, selections, a synthesized set's preview, results with paired runs, stage
markers, config), made in well under a second — no training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from safetensors.numpy import save_file

from vidistill.clipstore import ClipRecord, ClipSpec, ClipStore, write_store
from vidistill.evaluate.paired import attach_ior

CLASSES = ["slide-left", "slide-right", "slide-up"]
STEP = {0: (0, -2), 1: (0, 2), 2: (-2, 0)}  # (dy, dx) per frame
SPEC = ClipSpec(frames=8, size=32)
TRAIN, TEST = 6, 2  # clips per class
SEEDS = [0, 1, 2]


def _clip(c: int, i: int, rng: np.random.Generator) -> np.ndarray:
    """A square moving in its class's direction over a background of its sub-mode (i % 2)."""
    t, s = SPEC.frames, SPEC.size
    bg = np.array([[40, 60, 90], [90, 70, 40]][i % 2], np.uint8)
    clip = np.broadcast_to(bg, (t, s, s, 3)).copy()
    clip += rng.integers(0, 20, clip.shape, dtype=np.uint8)
    y, x = 10 + i % 4, 10 + (i * 3) % 7
    colour = np.array([(230, 200, 40), (40, 220, 120), (220, 60, 200)][c], np.uint8)
    for k in range(t):
        yy, xx = (y + k * STEP[c][0]) % (s - 8), (x + k * STEP[c][1]) % (s - 8)
        clip[k, yy : yy + 8, xx : xx + 8] = colour
    return clip


def _store(root: Path, clips: list[np.ndarray], records: list[ClipRecord]) -> ClipStore:
    return write_store(root, SPEC, CLASSES, iter(clips), records, dataset="toy")


def _row(method: str, vpc: int | None, top1: list[float], store: ClipStore, kind: str) -> dict:
    per = len(store.indices("train")) // len(CLASSES) if vpc is None else vpc
    clips = per * len(CLASSES)
    bytes_per = SPEC.clip_bytes * (4 if kind == "synthetic" else 1)
    return {
        "dataset": "toy",
        "source": f"{method}-source",
        "method": method,
        "vpc": vpc,
        "net": "convnet3d",
        "runs": len(SEEDS),
        "seeds": SEEDS,
        "pool": str(store.root.resolve()),
        "top1_mean": float(np.mean(top1)),
        "top1_std": float(np.std(top1)),
        "top5_mean": 100.0,
        "auc_mean": 70.0,
        "f1_mean": float(np.mean(top1)) - 2,
        "train_acc_mean": 100.0,
        "diverged_runs": 0,
        "seconds": 3.0 * clips,
        "peak_rss_mb": 600.0,
        "peak_vram_mb": None,
        "train_bytes": clips * bytes_per,
        "train_clips": clips,
        "train_frames": clips * SPEC.frames,
        "train_kind": kind,
        "flops_per_clip": 2.0e8,
        "class_names": CLASSES,
        "recipe": {"net": "convnet3d", "epochs": 2},
        "per_run": [{"seed": s, "top1": a} for s, a in zip(SEEDS, top1, strict=True)],
    }


def fake_run(root: Path) -> Path:
    rng = np.random.default_rng(0)
    clips, records = [], []
    for split, k in (("train", TRAIN), ("test", TEST)):
        for c, name in enumerate(CLASSES):
            for i in range(k):
                clips.append(_clip(c, i, rng))
                records.append(ClipRecord(f"{split}/{name}/{i}", c, name, split, {"mode": i % 2}))
    store = _store(root / "data", clips, records)

    train = store.indices("train")  # the classifier embedder: one row per train clip
    centre = np.eye(4, dtype=np.float32)[store.labels[train]] * 3
    emb = centre + rng.normal(0, 1, (train.size, 4)).astype(np.float32)
    (root / "data" / "embeddings").mkdir()
    save_file(
        {"embeddings": emb, "indices": train.astype(np.int64), "labels": store.labels[train]},
        str(root / "data" / "embeddings" / "classifier.safetensors"),
        metadata={"embedder": "classifier", "split": "train"},
    )

    (root / "select").mkdir()
    for vpc in (1, 2):
        for seed in SEEDS:
            picked = {n: store.indices("train", c)[seed : seed + vpc].tolist()
                      for c, n in enumerate(CLASSES)}  # fmt: skip
            sel = {"method": "tac-dt", "vpc": vpc, "seed": seed, "seconds": 0.25,
                   "embedder": "classifier", "store": str(store.root), "indices": picked}  # fmt: skip
            (root / "select" / f"tac-dt_vpc{vpc}_seed{seed}.json").write_text(json.dumps(sel))

    for vpc in (1, 2):  # DM's learned videos: a blurred class mean, as the preview holds them
        learned, recs = [], []
        for c, name in enumerate(CLASSES):
            mean = store.clips(store.indices("train", c)).mean(0)
            for k in range(vpc):
                learned.append(np.clip(mean + 10 * k, 0, 255).astype(np.uint8))
                recs.append(ClipRecord(f"synthetic/dm/{k}", c, name, "train"))
        _store(root / "synth" / f"dm_vpc{vpc}_seed0" / "preview", learned, recs)
        done = {"method": "dm", "vpc": vpc, "iterations": 100,
                "moved_from_init": {"mean_abs_levels": 2.5 * vpc, "changed_fraction": 0.5}}  # fmt: skip
        (root / "synth" / f"dm_vpc{vpc}_seed0" / "done.json").write_text(json.dumps(done))

    rows = [_row("full-real", None, [80.0, 83.3, 80.0], store, "real")]
    for vpc, base in ((1, 40.0), (2, 55.0)):
        rows.append(_row("random", vpc, [base, base - 5, base + 5], store, "real"))
        rows.append(_row("tac-dt", vpc, [base + 8, base + 5, base + 12], store, "real"))
        rows.append(_row("dm", vpc, [base - 1, base - 4, base + 6], store, "synthetic"))
    attach_ior(rows)
    (root / "results.json").write_text(json.dumps({"format": "vidistill-results/1", "rows": rows}))

    (root / "stages").mkdir()
    stages = ["prepare", "embed/classifier", "evaluate/full-real"]
    stages += [f"select/tac-dt/vpc{v}/seed{s}" for v in (1, 2) for s in SEEDS]
    stages += [f"synthesize/dm/vpc{v}/seed{s}" for v in (1, 2) for s in SEEDS]
    for k, name in enumerate(stages):
        marker = {"stage": name, "seconds": 1.0 + k, "peak_rss_mb": 500.0 + k}
        (root / "stages" / f"{name.replace('/', '__')}.json").write_text(json.dumps(marker))
    config = {
        "name": "fake",
        "dataset": "toy",
        "evaluate": {"preset": "toy-quick", "runs": len(SEEDS), "seed": 0},
        "embedder": "classifier",
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root
