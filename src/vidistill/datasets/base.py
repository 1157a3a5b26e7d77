"""Dataset adapters: list the videos of a dataset and cut one fixed clip from each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidistill.clipstore import ClipSpec
from vidistill.errors import VideoError

__all__ = ["Dataset", "VideoError", "VideoItem"]


@dataclass
class VideoItem:
    """One video of a dataset: where it is, its class and split, and adapter-specific meta."""

    source: str
    label: int
    class_name: str
    split: str
    meta: dict[str, Any] = field(default_factory=dict)


class Dataset(ABC):
    """An adapter: ``items()`` lists videos, ``load()`` returns one uint8 clip ``spec.shape``.

    ``load`` runs in worker processes, so adapters must be picklable and cheap to copy.
    """

    name: str = "dataset"
    class_names: list[str]

    @abstractmethod
    def items(self) -> list[VideoItem]: ...

    @abstractmethod
    def load(self, item: VideoItem, spec: ClipSpec) -> np.ndarray: ...

    def default_spec(self) -> ClipSpec:
        return ClipSpec()

    def describe(self) -> dict[str, Any]:
        """Recorded in store.json so a run says which definition (split, variant) it used."""
        return {"dataset": self.name}
