"""Dataset adapters, registered by name (``vidistill list dataset``)."""

from vidistill.datasets import folder, hmdb51, kinetics, ssv2, toy, ucf101  # noqa: F401  (registration side effects)  # noqa: F401  (real datasets)
from vidistill.datasets.base import Dataset, VideoError, VideoItem

__all__ = ["Dataset", "VideoError", "VideoItem"]
