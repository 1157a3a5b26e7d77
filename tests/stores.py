"""Tiny random-pixel stores for tests that need a real ClipStore on disk, not a dataset."""

from __future__ import annotations

import numpy as np

from vidistill.clipstore import ClipRecord, ClipSpec, write_store


def random_store(root, frames=8, size=64, classes=3, per=(4, 2)):
    """``per[0]`` train and ``per[1]`` test clips per class of uniform noise; meta ``mode``
    alternates 0/1 within a class (for the sub-mode coverage code)."""
    spec = ClipSpec(frames=frames, size=size)
    rng = np.random.default_rng(0)
    recs, clips = [], []
    for split, k in zip(("train", "test"), per, strict=True):
        for c in range(classes):
            for i in range(k):
                clips.append(rng.integers(0, 256, spec.shape, dtype=np.uint8))
                recs.append(ClipRecord(f"{split}-{c}-{i}", c, f"class{c}", split, {"mode": i % 2}))
    return write_store(root, spec, [f"class{c}" for c in range(classes)], iter(clips), recs)


def random_embeddings(store, name="fake", latent_shape=(2, 2, 4, 4), seed=0):
    """A ``name`` embeddings file of ``store``'s training split: N(0, 1) rows shaped as
    latents (``details.latent_shape``), as `vidistill embed` would lay it out."""
    import json

    from safetensors.numpy import save_file

    from vidistill.embed.store import embeddings_path

    idx = store.indices("train")
    dim = int(np.prod(latent_shape))
    rows = np.random.default_rng(seed).normal(size=(len(idx), dim)).astype(np.float32)
    path = embeddings_path(store.root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"embeddings": rows, "indices": idx.astype(np.int64), "labels": store.labels[idx]}
    meta = {
        "embedder": name,
        "split": "train",
        "details": json.dumps({"latent_shape": list(latent_shape)}),
    }
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), meta)
    return path
