"""TrainingSet: what a fresh evaluator network is trained on — real clips or learned videos.

Real subsets stay ``uint8 (N,T,H,W,3)`` on the training device and are normalised per
batch by :func:`vidistill.transforms.to_model_input`: no decoding and no float copy of the
whole set per step (a float copy would be 4× the memory; the uint8 → float cast of one
batch is cheap next to the network). Synthetic sets are float ``(N,3,T,H,W)`` already in the
network's input space, used as they are.

``bytes_stored()`` is what the set costs on disk — uint8 clip bytes for real subsets,
tensor bytes for learned sets — and must sit beside every VPC (DESIGN §4).

``groups`` (optional, one id per clip): the evaluator trains each epoch on ONE random
member of every group instead of on every clip. VDSD's static + dynamic sets use it
(``meta["epoch_groups"]``): its evaluation draws one random (still, dynamic) pair per slot
per epoch, so a slot's 4 combinations are one group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vidistill.clipstore import ClipStore
from vidistill.synthetic import SyntheticSet
from vidistill.transforms import to_model_input


class TrainingSet:
    def __init__(
        self,
        videos: torch.Tensor,
        labels: torch.Tensor,
        class_names: Sequence[str],
        kind: str,
        stored_bytes: int | None = None,
        meta: dict[str, Any] | None = None,
        groups: torch.Tensor | Sequence[int] | None = None,
    ):
        if kind == "real":
            if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
                raise ValueError(
                    "real clips must be uint8 (N,T,H,W,3), "
                    f"got {tuple(videos.shape)} {videos.dtype}"
                )
        elif kind == "synthetic":
            if not videos.is_floating_point() or videos.ndim != 5 or videos.shape[1] != 3:
                raise ValueError(
                    "synthetic videos must be float (N,3,T,H,W), "
                    f"got {tuple(videos.shape)} {videos.dtype}"
                )
        else:
            raise ValueError(f"kind must be 'real' or 'synthetic', got {kind!r}")
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (videos.shape[0],):
            raise ValueError(f"labels {tuple(labels.shape)} do not match {videos.shape[0]} videos")
        if videos.shape[0] == 0:
            raise ValueError("a training set needs at least one clip")
        if int(labels.min()) < 0 or int(labels.max()) >= len(class_names):
            raise ValueError(
                f"labels must be in [0, {len(class_names)}), "
                f"got [{int(labels.min())}, {int(labels.max())}]"
            )
        if groups is not None:
            groups = torch.as_tensor(groups, dtype=torch.long).cpu()
            if groups.shape != labels.shape:
                raise ValueError(
                    f"groups {tuple(groups.shape)} do not match {labels.shape[0]} clips"
                )
            _, groups = torch.unique(groups, return_inverse=True)  # ids 0..G-1
        self.videos = videos.detach()
        self.labels = labels
        self.class_names = list(class_names)
        self.kind = kind
        self._stored = stored_bytes
        self.meta = dict(meta or {})
        self.groups = groups

    # -- constructors ------------------------------------------------------------------
    @classmethod
    def from_store(
        cls,
        store: ClipStore,
        indices: Sequence[int] | np.ndarray | None = None,
        split: str = "train",
        meta: dict[str, Any] | None = None,
    ) -> TrainingSet:
        """Real clips of ``store``: the given indices, or the whole ``split`` when None."""
        idx = store.indices(split) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            raise ValueError(f"{store.root}: empty training selection")
        if idx.min() < 0 or idx.max() >= len(store):
            raise IndexError(
                f"selection indices must be in [0, {len(store)}), got [{idx.min()}, {idx.max()}]"
            )
        order = np.argsort(idx, kind="stable")  # sorted memmap reads, original order kept
        clips = np.empty((idx.size, *store.spec.shape), np.uint8)
        clips[order] = store.clips(idx[order])
        labels = torch.from_numpy(store.labels[idx].copy())
        info = {
            "store": str(store.root),
            "dataset": store.dataset,
            "indices": idx.tolist(),
            **(meta or {}),
        }
        return cls(
            torch.from_numpy(clips),
            labels,
            store.class_names,
            "real",
            stored_bytes=store.bytes_on_disk(idx),
            meta=info,
        )

    @classmethod
    def from_synthetic(cls, syn: SyntheticSet, meta: dict[str, Any] | None = None) -> TrainingSet:
        """The learned videos as they are; ``meta["epoch_groups"]`` (VDSD) becomes ``groups``."""
        return cls(
            syn.videos.float(),
            syn.labels,
            syn.class_names,
            "synthetic",
            stored_bytes=syn.bytes_stored(),
            meta={**syn.meta, **(meta or {})},
            groups=syn.meta.get("epoch_groups"),
        )

    @classmethod
    def from_tensors(
        cls,
        videos: torch.Tensor,
        labels: torch.Tensor,
        class_names: Sequence[str],
        meta: dict[str, Any] | None = None,
    ) -> TrainingSet:
        """uint8 ``(N,T,H,W,3)`` → real, float ``(N,3,T,H,W)`` → synthetic."""
        kind = "real" if videos.dtype == torch.uint8 else "synthetic"
        return cls(videos, labels, class_names, kind, meta=meta)

    # -- properties --------------------------------------------------------------------
    @property
    def num_clips(self) -> int:
        return int(self.videos.shape[0])

    def __len__(self) -> int:
        return self.num_clips

    @property
    def clips_per_epoch(self) -> int:
        """Clips one training epoch sees: all, or one per group."""
        return self.num_clips if self.groups is None else int(self.groups.max()) + 1

    def epoch_order(self, gen: torch.Generator) -> torch.Tensor:
        """Row indices of one epoch in random order (CPU): a permutation of all clips, or of
        one uniformly random member per group."""
        if self.groups is None:
            return torch.randperm(self.num_clips, generator=gen)
        r = torch.rand(self.num_clips, generator=gen)
        best = torch.full((self.clips_per_epoch,), -1.0).scatter_reduce(
            0, self.groups, r, reduce="amax"
        )
        chosen = torch.nonzero(r == best[self.groups]).squeeze(1)
        return chosen[torch.randperm(chosen.numel(), generator=gen)]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def frames(self) -> int:
        return int(self.videos.shape[1] if self.kind == "real" else self.videos.shape[2])

    @property
    def size(self) -> int:
        return int(self.videos.shape[2] if self.kind == "real" else self.videos.shape[3])

    @property
    def device(self) -> torch.device:
        return self.videos.device

    def bytes_stored(self) -> int:
        if self._stored is not None:
            return int(self._stored)
        return self.videos.numel() * self.videos.element_size()

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels.cpu(), minlength=self.num_classes).tolist()

    # -- use -----------------------------------------------------------------------------
    def to(self, device: str | torch.device) -> TrainingSet:
        """The same set with its tensors on ``device`` (uint8 stays uint8)."""
        out = TrainingSet.__new__(TrainingSet)
        out.__dict__.update(self.__dict__)
        out.videos = self.videos.to(device)
        out.labels = self.labels.to(device)
        return out

    def batch(self, idx: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Normalised float ``(B,3,T,H,W)`` of the given rows, on the set's device."""
        if self.kind == "real":
            return to_model_input(self.videos[idx], dtype=dtype)
        return self.videos[idx].to(dtype)

    def __repr__(self) -> str:
        return (
            f"TrainingSet({self.kind}, {self.num_clips} clips, {self.num_classes} classes, "
            f"{self.frames}×{self.size}², {self.bytes_stored()} bytes)"
        )
