"""UCF101 (official splits 1/2/3) and MiniUCF (VDSD's 50-class benchmark subset).

On-disk layout (as the official archives unpack)::

    ROOT/UCF-101/<Class>/v_<Class>_gXX_cYY.avi
    ROOT/ucfTrainTestlist/classInd.txt        "1 ApplyEyeMakeup"   (1-based)
    ROOT/ucfTrainTestlist/trainlist0{1,2,3}.txt "ApplyEyeMakeup/v_..._g08_c01.avi 1"
    ROOT/ucfTrainTestlist/testlist0{1,2,3}.txt  "ApplyEyeMakeup/v_..._g01_c01.avi"

``ROOT`` may also be the ``UCF-101`` folder itself (class folders directly inside).
Split 1 is the benchmark split (9,537 train / 3,783 test). Class order = classInd.

MiniUCF needs only the videos: its 50 classes (``resources/miniucf_classes.txt``, in
that order) and its per-clip train/test split (``resources/miniucf_split1.csv``,
4,662 / 1,861 clips) are shipped with vidistill, copied from VDSD (CVPR'24).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidistill.datasets.filelist import (
    FileListDataset,
    Row,
    read_lines,
    read_resource_csv,
    resource_path,
)
from vidistill.registry import register

VIDEO_DIR = "UCF-101"
LISTS_DIR = "ucfTrainTestlist"


def _video_prefix(root: Path, classes: Sequence[str], layout: str, name: str) -> str:
    """'UCF-101/' when ROOT holds the UCF-101 folder, '' when ROOT *is* that folder."""
    if (root / VIDEO_DIR).is_dir():
        return VIDEO_DIR + "/"
    if any((root / c).is_dir() for c in classes):
        return ""
    raise FileNotFoundError(
        f"{name}: no {VIDEO_DIR}/ folder (nor any class folder) under {root}; expected {layout}"
    )


@register("dataset", "ucf101")
class UCF101(FileListDataset):
    """UCF101 with the official train/test lists; ``split`` ∈ {1, 2, 3}."""

    name = "ucf101"
    layout = (
        "ROOT/UCF-101/<Class>/v_<Class>_gXX_cYY.avi and ROOT/ucfTrainTestlist/"
        "{classInd.txt, trainlist0N.txt, testlist0N.txt}"
    )

    def __init__(
        self,
        root: str | Path,
        split: int = 1,
        classes: Sequence[str] | str | None = None,
        lists_dir: str | Path | None = None,
    ):
        super().__init__(root, classes)
        if int(split) not in (1, 2, 3):
            raise ValueError(f"ucf101: split must be 1, 2 or 3 (1 = benchmark split), got {split}")
        self.split = int(split)
        self.lists_dir = (
            Path(lists_dir).expanduser().resolve() if lists_dir else self.root / LISTS_DIR
        )
        if (
            not self.lists_dir.is_dir()
            and lists_dir is None
            and (self.root.parent / LISTS_DIR).is_dir()
        ):
            self.lists_dir = self.root.parent / LISTS_DIR  # ROOT is the UCF-101 folder itself
        self._items = self._build()

    def _list_file(self, name: str) -> Path:
        path = self.lists_dir / name
        if not path.is_file():
            raise FileNotFoundError(
                f"ucf101: split file {path} not found; expected {self.layout} "
                "(Python: lists_dir= the folder holding classInd.txt)"
            )
        return path

    def _list(self) -> tuple[list[str], list[Row]]:
        class_file = self._list_file("classInd.txt")
        pairs = []
        for n, line in enumerate(read_lines(class_file), start=1):
            idx, _, cls = line.partition(" ")
            if not idx.isdigit() or not cls.strip():
                raise ValueError(f"{class_file}:{n}: expected '<index> <Class>', got {line!r}")
            pairs.append((int(idx), cls.strip()))
        pairs.sort()
        if [i for i, _ in pairs] != list(range(1, len(pairs) + 1)):
            raise ValueError(f"{class_file}: class indices must be 1..{len(pairs)} without gaps")
        order = [c for _, c in pairs]
        known = set(order)
        prefix = _video_prefix(self.root, order, self.layout, self.name)

        rows: list[Row] = []
        for split, fname in (
            ("train", f"trainlist0{self.split}.txt"),
            ("test", f"testlist0{self.split}.txt"),
        ):
            path = self._list_file(fname)
            for n, line in enumerate(read_lines(path), start=1):
                rel = line.split()[0]
                cls = rel.split("/")[0]
                if "/" not in rel or cls not in known:
                    raise ValueError(
                        f"{path}:{n}: {rel!r} is not '<Class>/<file>.avi' "
                        "with a class of classInd.txt"
                    )
                parts = line.split()
                if len(parts) > 1:
                    k = int(parts[1]) if parts[1].isdigit() else 0
                    if not 1 <= k <= len(order):
                        raise ValueError(
                            f"{path}:{n}: class index {parts[1]!r} is not one of 1..{len(order)} "
                            f"of {class_file.name}"
                        )
                    if order[k - 1] != cls:
                        raise ValueError(
                            f"{path}:{n}: index {k} is class {order[k - 1]!r}, but the path "
                            f"says {cls!r}"
                        )
                rows.append((prefix + rel, cls, split, {}))
        return order, rows

    def _describe(self) -> dict[str, Any]:
        return {"split": self.split, "split_definition": f"official split {self.split}"}


@register("dataset", "miniucf")
class MiniUCF(FileListDataset):
    """VDSD's MiniUCF: 50 UCF101 classes, per-clip split from the shipped CSV."""

    name = "miniucf"
    layout = (
        "ROOT/UCF-101/<Class>/v_<Class>_gXX_cYY.avi (the UCF101 videos; split files not needed)"
    )
    CLASSES_FILE = "miniucf_classes.txt"
    SPLIT_FILE = "miniucf_split1.csv"

    def __init__(self, root: str | Path, classes: Sequence[str] | str | None = None):
        super().__init__(root, classes)
        self._items = self._build()

    def _list(self) -> tuple[list[str], list[Row]]:
        order = read_lines(resource_path(self.CLASSES_FILE))
        prefix = _video_prefix(self.root, order, self.layout, self.name)
        rows: list[Row] = [
            (f"{prefix}{r['label']}/{r['folder_name']}.avi", r["label"], r["split"], {})
            for r in read_resource_csv(self.SPLIT_FILE)
        ]
        return order, rows

    def _describe(self) -> dict[str, Any]:
        return {"split_definition": f"VDSD MiniUCF ({self.SPLIT_FILE}, 50 classes)"}
