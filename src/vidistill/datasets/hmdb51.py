"""HMDB51, with both split definitions in use.

On-disk layout::

    ROOT/<class>/<clip>.avi
    <SPLITS>/<class>_test_split{1,2,3}.txt   lines "<clip>.avi <tag>"
                                             (tag 1 train / 2 test / 0 unused)

``SPLITS`` is searched as ``splits_dir``, ``ROOT/testTrainMulti_7030_splits``,
``ROOT/splits``, then ``ROOT`` (the official archive unpacks the first name).

Two definitions (``variant``), recorded in store.json via ``describe()``:

* ``official``: tag 1 → train, tag 2 → test, tag 0 clips left out (3,570 / 1,530 on split 1).
* ``vdsd``: the VDSD (CVPR'24) benchmark: every clip not in split 1's test set trains
  (5,236 / 1,530). Taken from the shipped ``resources/hmdb51_split1_vdsd.csv``, so the
  split files are not needed.

Both use the sorted class names as label order, so labels agree across variants.
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
)
from vidistill.registry import register

VARIANTS = ("official", "vdsd")
SPLIT_DIRS = ("testTrainMulti_7030_splits", "splits", ".")
TAGS = {"1": "train", "2": "test"}  # "0" = not used by this split


@register("dataset", "hmdb51")
class HMDB51(FileListDataset):
    name = "hmdb51"
    layout = (
        "ROOT/<class>/<clip>.avi and split files <class>_test_split{1,2,3}.txt (official variant)"
    )
    SPLIT_FILE = "hmdb51_split1_vdsd.csv"

    def __init__(
        self,
        root: str | Path,
        variant: str = "official",
        split: int = 1,
        classes: Sequence[str] | str | None = None,
        splits_dir: str | Path | None = None,
    ):
        super().__init__(root, classes)
        if variant not in VARIANTS:
            raise ValueError(f"hmdb51: variant must be one of {VARIANTS}, got {variant!r}")
        if int(split) not in (1, 2, 3):
            raise ValueError(f"hmdb51: split must be 1, 2 or 3, got {split}")
        if variant == "vdsd" and int(split) != 1:
            raise ValueError(
                "hmdb51: the vdsd variant is defined on split 1 only; use variant='official'"
            )
        self.variant = variant
        self.split = int(split)
        self.splits_dir = Path(splits_dir).expanduser().resolve() if splits_dir else None
        self._items = self._build()

    def _check_videos(self, order: list[str]) -> None:
        if not any((self.root / c).is_dir() for c in order):
            raise FileNotFoundError(
                f"hmdb51: none of the {len(order)} class folders (e.g. {order[0]}/) is under "
                f"{self.root}; expected {self.layout}"
            )

    def _list(self) -> tuple[list[str], list[Row]]:
        return self._list_vdsd() if self.variant == "vdsd" else self._list_official()

    def _list_vdsd(self) -> tuple[list[str], list[Row]]:
        table = read_resource_csv(self.SPLIT_FILE)
        order = sorted({r["label"] for r in table})
        self._check_videos(order)
        return order, [
            (f"{r['label']}/{r['folder_name']}.avi", r["label"], r["split"], {}) for r in table
        ]

    def _split_files(self) -> dict[str, Path]:
        suffix = f"_test_split{self.split}.txt"
        dirs = [self.splits_dir] if self.splits_dir else [self.root / d for d in SPLIT_DIRS]
        for d in dirs:
            found = sorted(d.glob(f"*{suffix}")) if d.is_dir() else []
            if found:
                return {p.name[: -len(suffix)]: p for p in found}
        raise FileNotFoundError(
            f"hmdb51: no '<class>{suffix}' files in {', '.join(str(d) for d in dirs)}; expected "
            f"{self.layout} (Python: splits_dir=; or the vdsd variant, which needs no split files)"
        )

    def _list_official(self) -> tuple[list[str], list[Row]]:
        files = self._split_files()
        order = sorted(files)
        self._check_videos(order)
        rows: list[Row] = []
        for cls in order:
            for n, line in enumerate(read_lines(files[cls]), start=1):
                parts = line.rsplit(maxsplit=1)  # clip names never end in whitespace
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ValueError(
                        f"{files[cls]}:{n}: expected '<clip>.avi <0|1|2>', got {line!r}"
                    )
                if parts[1] in TAGS:
                    rows.append((f"{cls}/{parts[0]}", cls, TAGS[parts[1]], {}))
        return order, rows

    def _describe(self) -> dict[str, Any]:
        definition = (
            "vdsd: all non-test clips of split 1 train (hmdb51_split1_vdsd.csv)"
            if self.variant == "vdsd"
            else f"official split {self.split}: tag 1 train, tag 2 test, tag 0 unused"
        )
        return {"variant": self.variant, "split": self.split, "split_definition": definition}
