"""Why does (or doesn't) TAC-DT beat random on toy? Diagnostics that need no evaluator training.

    OMP_NUM_THREADS=1 python benchmarks/toy_selection_diagnose.py [--work /tmp/vidistill_toy_grid]

Uses the toy store and classifier embeddings that `toy_selection_grid.py` built. For each
embedding below it reports leave-one-out 1-NN class accuracy, within-class 1-NN sub-mode
accuracy (chance 25%: can the embedding see the visual sub-modes?), and the sub-mode
coverage (distinct modes of 4 per class) of TAC-DT / k-center / herding at VPC 1, 5, 10
against random's expectation. Embeddings compared (diagnostic only, none is tuned):

* ``classifier`` — the grid's embedder (toy-quick ConvNet3D trained on the real train split);
* ``random-convnet`` — the same architecture, randomly initialised (seed 0), features only
  (DM's premise: random conv features already encode appearance);
* ``vae-latent`` — flattened VAE latents (``latent`` embedder, VST-UNet's input), when
  ``STORE/embeddings/latent.safetensors`` exists;
* ``pixel-stats`` — per-clip mean and std of each RGB channel (6 numbers): a crude
  appearance descriptor, blind to motion; ``pixel-stats-standardised`` = the same with
  each of the 6 numbers z-scored over the pool (so no single statistic dominates).

Also evaluates the classifier embedder's own net on the REAL test split (it IS a
full-real toy-quick run with seed 0, so its accuracy costs no extra training).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vidistill.clipstore import ClipStore
from vidistill.evaluate import classification_metrics, random_indices
from vidistill.select import ClassData, run_selector
from vidistill.transforms import to_model_input


def knn_stats(x: np.ndarray, labels: np.ndarray, modes: np.ndarray) -> dict:
    t = torch.from_numpy(x.astype(np.float32))
    d = torch.cdist(t, t)
    d.fill_diagonal_(float("inf"))
    nn = d.argmin(1).numpy()
    d_in = d.masked_fill(~torch.from_numpy(labels[:, None] == labels[None]), float("inf"))
    nn_in = d_in.argmin(1).numpy()
    return {
        "class_1nn": float(np.mean(labels[nn] == labels)),
        "mode_1nn": float(np.mean(modes[nn_in] == modes)),
    }


def coverage(x: np.ndarray, labels: np.ndarray, modes: np.ndarray, method: str, vpc: int) -> float:
    cov = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        pos = run_selector(method, ClassData.from_array(x[rows], name=str(c), label=int(c)), vpc)
        cov.append(len(set(modes[rows[pos]].tolist())))
    return float(np.mean(cov))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/vidistill_toy_grid"))
    ap.add_argument("--store", type=Path, help="default: WORK/toy")
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "toy_selection_grid",
    )
    args = ap.parse_args()
    from safetensors.torch import load_file

    from vidistill.embed import EmbeddingFile, embeddings_path
    from vidistill.evaluate import Recipe
    from vidistill.nets import create_net

    store = ClipStore(args.store or args.work / "toy")
    f = EmbeddingFile(embeddings_path(store.root, "classifier"))
    idx, labels = f.indices, f.labels
    modes = np.array([store.records[i]["meta"]["mode"] for i in idx])
    clips = store.clips(idx)
    r = Recipe.preset("toy-quick")

    def net_features(net: torch.nn.Module) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            return np.concatenate(
                [
                    net.features(to_model_input(clips[s : s + 50])).numpy()
                    for s in range(0, len(clips), 50)
                ]
            )

    torch.manual_seed(0)
    rand_net = create_net(
        r.net, store.num_classes, store.spec.frames, store.spec.size, width=r.width
    )
    px = clips.reshape(len(clips), -1, 3).astype(np.float32)
    embeddings = {
        "classifier": f.rows(0, f.n),
        "random-convnet": net_features(rand_net),
        "pixel-stats": np.concatenate([px.mean(1), px.std(1)], axis=1),
    }
    lat = embeddings_path(store.root, "latent")
    if lat.is_file():  # VST-UNet's input space: the generation VAE's latents, flattened
        fl = EmbeddingFile(lat)
        assert np.array_equal(fl.indices, idx), "latent and classifier files cover other clips"
        embeddings["vae-latent"] = fl.rows(0, fl.n)
    ps = embeddings["pixel-stats"]
    embeddings["pixel-stats-standardised"] = (ps - ps.mean(0)) / ps.std(0)
    report: dict = {}
    for name, x in embeddings.items():
        row = knn_stats(x, labels, modes)
        for vpc in (1, 5, 10):
            for m in ("tac-dt", "k-center", "herding", "dm-mmd"):
                row[f"{m}@{vpc}"] = coverage(x, labels, modes, m, vpc)
        report[name] = row
    report["random"] = {
        f"random@{v}": float(
            np.mean(
                [
                    len(
                        set(
                            modes[np.searchsorted(idx, random_indices(store, v, s))][
                                labels[np.searchsorted(idx, random_indices(store, v, s))] == c
                            ].tolist()
                        )
                    )
                    for s in range(50)
                    for c in range(store.num_classes)
                ]
            )
        )
        for v in (1, 5, 10)
    }
    # the embedder's own net = a full-real toy-quick run (seed 0): test it, no training
    net = create_net(r.net, store.num_classes, store.spec.frames, store.spec.size, width=r.width)
    net.load_state_dict(load_file(str(store.root / "embeddings" / "classifier-net.safetensors")))
    net.eval()
    test = store.indices("test")
    with torch.no_grad():
        probs = torch.cat(
            [torch.softmax(net(store.tensor(test[s : s + 50])), 1) for s in range(0, len(test), 50)]
        ).numpy()
    m = classification_metrics(store.labels[test], probs, store.num_classes, scores_are_probs=True)
    report["embedder_net_full_real_seed0"] = {k: 100 * float(m[k]) for k in ("top1", "auc", "f1")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diagnose.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
