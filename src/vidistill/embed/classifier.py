"""``classifier``: penultimate features of an evaluator net trained on real training clips.

On toy (and any data set without a pretrained video model) this is the in-domain
embedder; the coreset baselines (Herding, K-Center) use exactly such features in the
literature, and MAE-Score needs the class probabilities it also writes (``probs``).

Recipe (stated): the evaluator's ``Recipe.preset(recipe)`` — default ``toy-quick``
(quarter-width ConvNet3D, 30 epochs but at least 300 SGD steps, VDSD's SGD schedule) —
trained with ``vidistill.evaluate.train_net`` on ALL clips of the training store's training
split, seed ``seed`` (``-o epochs=N`` / ``-o train_batch_size=B`` / ``-o min_steps=S``
override the preset: with 400 toy clips, batch 256 gives only 2 SGD steps per epoch;
``epochs`` alone is still raised to the preset's ``min_steps``, ``min_steps=0`` turns that
off).

Which store trains the net: ``train_store`` (``--train-store REAL``), default the store
being embedded. A generated pool has no labels worth learning from (its clips are what is
judged), so it is embedded by a net trained on the REAL clips: same class names (checked)
and clip spec. The weights are cached as safetensors in the TRAINING store,
``TRAIN/embeddings/classifier-net.safetensors``, keyed (metadata ``key``) by recipe, seed,
split and the training store's identity (resolved path + its prepare plan hash, else a hash
of its store.json and manifest) — so one net serves the real set and every pool embedded
with it, two training stores never share a file, and a net trained on another store (or an
older version of this one) is never silently reused: it is retrained. Features are taken in
eval mode (no dropout): ``net.features(x)``, the pooled map averaged over time and space.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidistill.atomic import save_safetensors_atomic
from vidistill.clipstore import ClipStore
from vidistill.embed.base import Embedder
from vidistill.errors import NonFiniteLoss
from vidistill.registry import register
from vidistill.transforms import to_model_input

NET_FILE = "classifier-net.safetensors"


def store_identity(store: ClipStore) -> dict[str, str]:
    """Resolved path + content id of a store: its prepare plan hash, else a hash of its
    store.json and manifest (generated pools have no plan)."""
    plan = store.info_json.get("plan")
    if plan is None:
        h = hashlib.sha256()
        for name in ("store.json", "manifest.json"):
            h.update((store.root / name).read_bytes())
        plan = f"sha256:{h.hexdigest()}"
    return {"path": str(store.root.resolve()), "id": str(plan)}


def net_key(recipe: Any, seed: int, train_store: ClipStore, split: str = "train") -> dict:
    """What a cached net was trained with (the cache file's ``key`` metadata)."""
    return {
        "recipe": recipe.to_dict(),
        "seed": seed,
        "train_split": split,
        "train_store": store_identity(train_store),
        "store_count": len(train_store),
        "num_classes": train_store.num_classes,
    }


def read_cached_net(
    path: Path, key: dict[str, Any], explicit: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """The state dict and metadata of the cached net at ``path`` if it was trained with
    ``key``; else ``None`` (a missing, damaged or stale cache is only a cache) — or, with
    ``explicit`` (weights the user named), the error saying which."""
    from vidistill.errors import CorruptArtifact
    from vidistill.integrity import load_safetensors

    if not path.is_file():
        if explicit:
            raise FileNotFoundError(f"no classifier weights at {path}")
        return None
    try:
        state, meta = load_safetensors(path, "`vidistill embed` (it trains the net again)")
        saved = json.loads(meta.get("key", "{}"))
    except (CorruptArtifact, json.JSONDecodeError):
        if explicit:
            raise
        return None  # a damaged cache: retrain (and overwrite it)
    if saved != json.loads(json.dumps(key)):
        if explicit:
            raise ValueError(f"{path} was trained with {saved}, not {key}")
        return None  # stale cache: retrain
    return state, meta


def cached_full_real(
    store: ClipStore, recipe: Any, seed: int
) -> tuple[torch.nn.Module, Any] | None:
    """The classifier embedder's cached net when it IS full-real run ``seed`` of ``recipe``
    (trained by ``train_net`` on every training clip of ``store`` with that recipe and
    seed), with its training stats; else ``None``.

    Why: the embedder and the full-real row train the same network — on 2 cores that is
    ~3 CPU-minutes each — so the run grid tests this one instead of training it twice."""
    from vidistill.evaluate.train import TrainStats, build_net

    found = read_cached_net(store.root / "embeddings" / NET_FILE, net_key(recipe, seed, store))
    if found is None:
        return None
    state, meta = found
    try:
        stats = json.loads(meta.get("stats", "null"))
    except json.JSONDecodeError:
        return None
    if not stats:
        return None
    net = build_net(recipe, store.num_classes, store.spec.frames, store.spec.size)
    net.load_state_dict(state)
    return net, TrainStats(**stats)


def _training_store(store: ClipStore, train_store: str | Path | ClipStore | None) -> ClipStore:
    """The store the net learns from, checked against the one it embeds."""
    if train_store is None:
        return store
    real = train_store if isinstance(train_store, ClipStore) else ClipStore(train_store)
    if real.class_names != store.class_names:
        raise ValueError(
            f"--train-store {real.root} has classes {real.class_names} but the embedded store "
            f"{store.root} has {store.class_names}: the net's classes must be the pool's, in order"
        )
    if real.spec.shape != store.spec.shape:
        raise ValueError(
            f"--train-store {real.root} holds clips of shape {real.spec.shape} but "
            f"{store.root} holds {store.spec.shape}: train the embedder at the pool's clip spec"
        )
    return real


@register("embedder", "classifier")
class ClassifierEmbedder(Embedder):
    name = "classifier"
    builds_cache = True  # trains the net on construction (rank 0 first under torchrun)

    def __init__(
        self,
        store: ClipStore,
        weights: str | Path | None = None,
        split: str | None = "train",
        seed: int = 0,
        device: str = "cpu",
        recipe: str = "toy-quick",
        epochs: int | None = None,
        train_batch_size: int | None = None,
        min_steps: int | None = None,
        train_split: str = "train",
        train_store: str | Path | ClipStore | None = None,
        **options: Any,
    ):
        super().__init__(store, weights, split, seed, device, **options)
        from vidistill.evaluate import Recipe

        self.recipe = Recipe.preset(
            recipe, epochs=epochs, batch_size=train_batch_size, min_steps=min_steps
        )
        self.train_split = train_split
        self.train_store = _training_store(store, train_store)
        default = self.train_store.root / "embeddings" / NET_FILE
        path = Path(weights) if weights is not None else default
        if path.is_dir():
            path = path / NET_FILE
        self.net_path = path
        key = net_key(self.recipe, seed, self.train_store, train_split)
        self.net, self.cached = self._load(path, key, weights is not None), True
        if self.net is None:
            self.cached = False
            self.net = self._train(key)
        self.net.to(device).eval()

    def _build(self) -> torch.nn.Module:
        from vidistill.nets import create_net

        r = self.recipe
        return create_net(
            r.net,
            num_classes=self.store.num_classes,
            frames=self.store.spec.frames,
            size=self.store.spec.size,
            width=r.width,
            **r.net_kwargs,
        )

    def _load(self, path: Path, key: dict[str, Any], explicit: bool) -> torch.nn.Module | None:
        found = read_cached_net(path, key, explicit)
        if found is None:
            return None
        net = self._build()
        net.load_state_dict(found[0])
        return net

    def _train(self, key: dict[str, Any]) -> torch.nn.Module:
        from vidistill.evaluate import TrainingSet, train_net

        train_set = TrainingSet.from_store(self.train_store, split=self.train_split)
        net, stats = train_net(
            train_set,
            self.recipe,
            seed=self.seed,
            device=self.device,
            progress=True,
            desc="classifier embedder",
        )
        stats = stats.to_dict() if hasattr(stats, "to_dict") else dict(stats)
        if not math.isfinite(stats["train_loss"]):
            raise NonFiniteLoss(
                f"classifier embedder: {stats['diverged_reason']} (recipe {self.recipe.preset_name}, "
                f"seed {self.seed}); stopped before caching the net or writing embeddings — "
                "lower its learning rate or try another seed"
            )
        self.train_stats = stats
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        save_safetensors_atomic(
            self.net_path,
            state,
            metadata={"key": json.dumps(key), "stats": json.dumps(stats, default=str)},
        )
        return net

    @torch.no_grad()
    def embed(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(clips)).to(self.device))
        feats = self.net.features(x)
        logits = self.net(x).float()
        return {
            "embeddings": feats.float().cpu().numpy(),
            "probs": torch.softmax(logits, dim=1).cpu().numpy(),
            "logits": logits.cpu().numpy(),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
            "train_split": self.train_split,
            "train_store": store_identity(self.train_store),
            "net_weights": str(self.net_path),
            "cached": self.cached,
            "features": "net.features",
        }

    def file_metadata(self) -> dict[str, str]:
        return {"train_store": str(self.train_store.root.resolve())}
