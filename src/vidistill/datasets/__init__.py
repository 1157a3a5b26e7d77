"""Dataset adapters, registered by name (``vidistill list dataset``)."""

from vidistill.datasets import folder, hmdb51, kinetics, ssv2, toy, toy_motion, ucf101  # noqa: F401  (registration side effects)
from vidistill.datasets.base import Dataset, VideoError, VideoItem

__all__ = ["Dataset", "VideoError", "VideoItem"]
