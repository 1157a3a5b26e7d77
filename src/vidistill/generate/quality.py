"""How good is a generated pool? Measured with our own tools, named for what they are.

* **full-syn vs full-real** — the evaluator (``vidistill.evaluate``) trained on the whole
  pool vs on all real training clips, both tested on the REAL test split. The paper's
  MiniUCF ratio (whole pool 56.22 vs full real 60.14) is 93 %.
* **Fréchet classifier distance (FCD)** — the Fréchet distance between Gaussians fitted
  to penultimate features (``net.features``) of an *in-domain* classifier (the
  evaluator's net, trained on the real training clips) for real and generated clips:
  ‖μ_r − μ_g‖² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½). Not FVD: FVD uses an I3D network
  pretrained on Kinetics; ours is a small net trained on the same data, so FCD is only
  comparable between pools of one dataset measured with the same classifier. As a floor
  we report the FCD between the real TEST and the real TRAIN clips (two real samples).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidistill.clipstore import ClipStore
from vidistill.transforms import to_model_input


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N, D)``.

    tr((Σ_a Σ_b)^½) = tr((Σ_a^½ Σ_b Σ_a^½)^½): the inner matrix is symmetric PSD, so its
    square root's trace is the sum of the square roots of its eigenvalues — stable without
    ``scipy.linalg.sqrtm``'s complex round-off. Covariances use ddof 1 (as FID code).
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"need two (N, D) feature arrays with the same D, got {a.shape} and {b.shape}"
        )
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    s = _sqrtm_psd(cov_a)
    inner = s @ cov_b @ s
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)
    return max(fd, 0.0)


@torch.no_grad()
def classifier_features(
    net: torch.nn.Module,
    store: ClipStore,
    idx: np.ndarray,
    batch: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Penultimate features ``(N, D)`` of the clips ``idx`` (eval mode)."""
    net = net.to(device).eval()
    out = []
    for i in range(0, len(idx), batch):
        x = to_model_input(torch.from_numpy(store.clips(idx[i : i + batch])).to(device))
        out.append(net.features(x).float().cpu().numpy())
    return np.concatenate(out)


def _key(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def real_reference(
    real: ClipStore,
    recipe_name: str = "toy-quick",
    seed: int = 0,
    cache: str | Path | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
):
    """The full-real reference and the in-domain classifier for FCD — one network.

    It is trained and tested with the calls ``evaluate`` makes for its run with seed
    ``seed`` (``train_net`` → ``predict`` → ``classification_metrics``), so its top-1 is
    the full-real row of one run; keeping the net lets FCD reuse it instead of training
    a second one (on 2 CPU cores that halves the cost). Cached in ``cache`` when given.
    """
    from vidistill.atomic import save_safetensors_atomic, write_json_atomic
    from vidistill.evaluate import (
        Recipe,
        TrainingSet,
        classification_metrics,
        full_real,
        predict,
        train_net,
    )
    from vidistill.evaluate.train import build_net

    recipe = Recipe.preset(recipe_name, **(overrides or {}))
    key = _key(str(Path(real.root).resolve()), recipe.to_dict(), seed)
    cache = Path(cache) if cache else None
    row_path = cache / f"full-real-{key}.json" if cache else None
    net_path = cache / f"fcd-classifier-{key}.safetensors" if cache else None
    if row_path is not None and row_path.is_file() and net_path.is_file():
        from vidistill.integrity import load_safetensors, read_json

        remake = f"`vidistill generate quality` (or pass another --cache than {cache})"
        net = build_net(recipe, real.num_classes, real.spec.frames, real.spec.size)
        net.load_state_dict(load_safetensors(net_path, remake)[0])
        return read_json(row_path, remake), net.eval()
    net, stats = train_net(
        full_real(real),
        recipe,
        seed=seed,
        device="cpu",
        progress=progress,
        desc="full-real (also the FCD classifier)",
    )
    test = TrainingSet.from_store(real, real.indices("test"))
    probs = predict(net, test, recipe, device="cpu", seed=seed)
    m = classification_metrics(test.labels.numpy(), probs, real.num_classes, scores_are_probs=True)
    row = {
        "method": "full-real",
        "recipe": recipe.to_dict(),
        "seed": seed,
        "top1": 100 * m["top1"],
        "train_acc": 100 * stats.train_acc,
        "train_seconds": stats.seconds,
        "diverged": stats.diverged,
    }
    if cache is not None:
        save_safetensors_atomic(net_path, net.state_dict())
        write_json_atomic(row_path, row)
    return row, net.cpu().eval()


def pool_quality(
    pool: ClipStore,
    real: ClipStore,
    recipe: str = "toy-quick",
    seed: int = 0,
    cache: str | Path | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """full-syn, full-real, their ratio, FCD(pool, real train) and the real-vs-real floor.

    One run each (seed ``seed``): on 2 CPU cores a run of the toy-quick recipe on 400
    clips takes minutes; for mean ± std over runs use ``vidistill evaluate``.
    """
    from vidistill.evaluate import Recipe, TrainingSet, evaluate

    if pool.class_names != real.class_names:
        raise ValueError("pool and real store have different class names (order matters)")
    if pool.spec.shape != real.spec.shape:
        raise ValueError(f"pool clips are {pool.spec.shape}, real clips {real.spec.shape}")
    real_row, net = real_reference(real, recipe, seed, cache, progress, overrides)
    syn_set = TrainingSet.from_store(pool, pool.indices("train"), meta={"method": "full-syn"})
    syn_row = evaluate(
        syn_set,
        real,
        Recipe.preset(recipe, **(overrides or {})),
        runs=1,
        seed=seed,
        method="full-syn",
        progress=progress,
    )
    f_train = classifier_features(net, real, real.indices("train"))
    f_test = classifier_features(net, real, real.indices("test"))
    f_pool = classifier_features(net, pool, pool.indices("train"))
    fcd = frechet_distance(f_train, f_pool)
    per_class = []
    for c in range(real.num_classes):
        a = classifier_features(net, real, real.indices("train", c))
        b = classifier_features(net, pool, pool.indices("train", c))
        per_class.append(frechet_distance(a, b) if min(len(a), len(b)) > 1 else float("nan"))
    return {
        "pool": str(pool.root),
        "real": str(real.root),
        "recipe": recipe,
        "recipe_overrides": overrides or {},
        "seed": seed,
        "full_real_top1": real_row["top1"],
        "full_real_train_acc": real_row["train_acc"],
        "full_syn_top1": syn_row["top1_mean"],
        "syn_over_real": syn_row["top1_mean"] / real_row["top1"],
        "full_syn_train_acc": syn_row["train_acc_mean"],
        "full_syn_diverged_runs": syn_row["diverged_runs"],
        "fcd_pool_vs_real_train": fcd,
        "fcd_real_test_vs_real_train": frechet_distance(f_train, f_test),
        "fcd_per_class_mean": float(np.nanmean(per_class)),
        "fcd_per_class": per_class,
        "fcd_feature_dim": int(f_train.shape[1]),
        "pool_clips": len(pool),
        "real_train_clips": int(len(f_train)),
        "real_test_clips": int(len(f_test)),
        "full_real_train_seconds": real_row["train_seconds"],
        "full_syn_seconds": syn_row["seconds"],
    }


def frame_strip(
    pool: ClipStore,
    png: str | Path,
    real: ClipStore | None = None,
    per_class: int = 1,
    frame_step: int = 2,
) -> Path:
    """One row per class: ``per_class`` generated clips' frames (and a real clip first, if
    ``real`` is given), every ``frame_step``-th frame, as a PNG with class names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, names = [], []
    for c, name in enumerate(pool.class_names):
        parts = []
        if real is not None:
            parts.append(real.clips(real.indices("train", c)[:1])[0])
        parts += list(pool.clips(pool.indices("train", c)[:per_class]))
        gap = np.full((parts[0].shape[1], 4, 3), 255, np.uint8)
        row = []
        for k, clip in enumerate(parts):
            if k:
                row.append(np.full((clip.shape[1], 12, 3), 255, np.uint8))
            row.append(np.concatenate([np.concatenate([f, gap], 1) for f in clip[::frame_step]], 1))
        rows.append(np.concatenate(row, 1))
        names.append(name)
    sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    img = np.concatenate([np.concatenate([r, sep], 0) for r in rows], 0)
    h, w = img.shape[:2]
    fig = plt.figure(figsize=(w / 100 + 1.2, h / 100 + 0.35), dpi=100)  # ~1:1 pixels
    ax = fig.add_axes(
        [1.1 / (w / 100 + 1.2), 0.01, w / 100 / (w / 100 + 1.2), 1 - 0.35 / (h / 100 + 0.35)]
    )
    ax.imshow(img)
    row_h = rows[0].shape[0] + 4
    ax.set_yticks([(i + 0.5) * row_h for i in range(len(names))], names, fontsize=8)
    ax.set_xticks([])
    title = "left: a real clip · right: generated" if real is not None else "generated clips"
    ax.set_title(f"{title} (every {frame_step}. frame, left → right)", fontsize=9)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png
