"""SyntheticSet: learned videos (float, normalised space) + labels, stored as safetensors.

Synthesizers (DM, IDTD, VDSD) produce these; the evaluator trains on them with the
same recipe as on real clips. Videos live in the networks' input space (ImageNet-
normalised, ``(N,3,T,H,W)``), because that is where they were optimised: quantising to
uint8 would change them. A uint8 preview ClipStore is written beside for reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidistill.atomic import save_safetensors_atomic

FILENAME = "synthetic.safetensors"


@dataclass
class SyntheticSet:
    videos: torch.Tensor  # float (N,3,T,H,W), normalised input space
    labels: torch.Tensor  # int64 (N,)
    class_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.videos.ndim != 5 or self.videos.shape[1] != 3:
            raise ValueError(
                f"synthetic videos must be (N,3,T,H,W), got {tuple(self.videos.shape)}"
            )
        if self.labels.shape != (self.videos.shape[0],):
            raise ValueError(
                f"labels {tuple(self.labels.shape)} do not match {self.videos.shape[0]} videos"
            )

    def __len__(self) -> int:
        return self.videos.shape[0]

    def bytes_stored(self) -> int:
        """Bytes of the learned tensors as stored (float32 unless saved otherwise)."""
        return self.videos.numel() * self.videos.element_size()

    def save(self, out: str | Path) -> Path:
        out = Path(out)
        path = out / FILENAME if out.suffix != ".safetensors" else out
        meta = {
            "class_names": json.dumps(self.class_names),
            "meta": json.dumps(self.meta, default=str),
        }
        tensors = {"videos": self.videos.detach().float().cpu(), "labels": self.labels.long().cpu()}
        return save_safetensors_atomic(path, tensors, metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> SyntheticSet:
        from vidistill.integrity import load_safetensors

        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no synthetic set at {path} (expected a {FILENAME} from `vidistill synthesize`)"
            )
        tensors, meta = load_safetensors(path, "`vidistill synthesize` for it")
        if "videos" not in tensors or "labels" not in tensors:
            raise ValueError(f"{path} is not a synthetic set (no videos / labels tensors)")
        videos, labels = tensors["videos"], tensors["labels"]
        return cls(
            videos,
            labels,
            json.loads(meta.get("class_names", "[]")),
            json.loads(meta.get("meta", "{}")),
        )
