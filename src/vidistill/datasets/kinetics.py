"""Kinetics-400 from its annotation CSVs; missing and broken clips are skipped and recorded.

On-disk layout::

    annotations: CSV(s) with columns label,youtube_id,time_start,time_end,split
                 (``csv_file=`` file or folder; default: the *.csv files of the first of
                 ROOT/annotations, ROOT/kinetics400, ROOT that has any)
    videos:      ROOT/<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4

Every copy of Kinetics lacks some videos (YouTube take-downs) and holds some broken
ones. Listing comes from the CSVs alone; a listed clip whose file is absent becomes a
``missing file`` skip in ``prepare`` and a broken one a decode skip, both recorded in
the store's manifest, so the store says exactly which clips a result was computed on.

Choices where copies differ (recorded here, not guessed silently):

* The CSV split ``val`` may be stored on disk as ``val/``, ``validate/`` or ``valid/``;
  the first that exists is used. Label folders may use ``_`` for spaces; a flat
  ``<split>/<file>.mp4`` (the CVDF mirror) is tried last.
* Store splits: CSV ``train`` → ``train``; ``eval_split`` (default ``val``, as in VDSD's
  19,760-clip evaluation set) → ``test``; other rows are left out.
* Class order: sorted label names of the kept rows (400 for the full CSVs).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidistill.clipstore import ClipSpec
from vidistill.datasets.base import VideoItem
from vidistill.datasets.filelist import HEAVY_SPEC, FileListDataset, Row
from vidistill.registry import register

COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
CSV_DIRS = ("annotations", "kinetics400", ".")
VAL_ALIASES = ("val", "validate", "valid", "validation")


def _canon_split(split: str) -> str:
    split = split.strip().lower()
    return "val" if split in VAL_ALIASES else split


@register("dataset", "kinetics400")
class Kinetics400(FileListDataset):
    name = "kinetics400"
    layout = (
        "CSV(s) label,youtube_id,time_start,time_end,split (ROOT/annotations/*.csv) and "
        "videos ROOT/<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4"
    )

    def __init__(
        self,
        root: str | Path,
        csv_file: str | Path | None = None,
        eval_split: str = "val",
        classes: Sequence[str] | str | None = None,
    ):
        super().__init__(root, classes)
        self.eval_split = _canon_split(eval_split)
        if self.eval_split not in ("val", "test"):
            raise ValueError(f"kinetics400: eval_split must be 'val' or 'test', got {eval_split!r}")
        self.csv_files, self.ignored_csvs = self._find_csvs(csv_file)
        self._items = self._build()

    def _find_csvs(self, csv_file: str | Path | None) -> tuple[list[Path], list[str]]:
        if csv_file is not None:
            given = Path(csv_file).expanduser()
            given = given if given.is_absolute() else (self.root / given)
            if not given.exists():
                raise FileNotFoundError(f"kinetics400: annotation CSV {given} not found")
            candidates = [sorted(given.glob("*.csv"))] if given.is_dir() else [[given]]
        else:
            candidates = [
                sorted((self.root / d).glob("*.csv")) for d in CSV_DIRS if (self.root / d).is_dir()
            ]
        for files in candidates:
            usable, ignored = [], []
            for f in files:
                with open(f, newline="") as fh:
                    header = set(csv.DictReader(fh).fieldnames or [])
                (usable if set(COLUMNS) <= header else ignored).append(f)
            if usable:
                return usable, [str(f) for f in ignored]
        where = str(csv_file) if csv_file else f"{self.root}/{{annotations,kinetics400,.}}"
        raise FileNotFoundError(
            f"kinetics400: no annotation CSV with columns {','.join(COLUMNS)} in {where}; "
            f"expected {self.layout} (or pass csv_file= / --csv)"
        )

    def _split_dir(self, split: str) -> str:
        """Folder name of a CSV split on disk (val may be val/, validate/, valid/)."""
        names = VAL_ALIASES if split == "val" else (split,)
        for n in names:
            if (self.root / n).is_dir():
                return n
        return names[0]

    def _list(self) -> tuple[list[str], list[Row]]:
        wanted = {"train": "train", self.eval_split: "test"}
        dirs = {s: self._split_dir(s) for s in wanted}
        if not any((self.root / d).is_dir() for d in dirs.values()):
            raise FileNotFoundError(
                f"kinetics400: no video folder {' or '.join(sorted(set(dirs.values())))}/ under "
                f"{self.root}; expected {self.layout}"
            )
        rows: list[Row] = []
        for path in self.csv_files:
            with open(path, newline="") as fh:
                for n, r in enumerate(csv.DictReader(fh), start=2):
                    split = _canon_split(r["split"])
                    if split not in wanted:
                        continue
                    try:
                        start, end = int(float(r["time_start"])), int(float(r["time_end"]))
                    except ValueError:
                        raise ValueError(
                            f"{path}:{n}: bad time_start/time_end "
                            f"{r['time_start']!r}, {r['time_end']!r}"
                        ) from None
                    fname = f"{r['youtube_id']}_{start:06d}_{end:06d}.mp4"
                    rows.append(
                        (f"{dirs[split]}/{r['label']}/{fname}", r["label"], wanted[split], {})
                    )
        order = sorted({c for _, c, _, _ in rows})
        return order, rows

    def _candidates(self, item: VideoItem) -> list[str]:
        split_dir, label, fname = (
            item.source.split("/")[0],
            item.class_name,
            item.source.rsplit("/", 1)[1],
        )
        out = [item.source]
        if " " in label:
            out.append(f"{split_dir}/{label.replace(' ', '_')}/{fname}")
        out.append(f"{split_dir}/{fname}")
        return out

    def default_spec(self) -> ClipSpec:
        return HEAVY_SPEC

    def _describe(self) -> dict[str, Any]:
        return {
            "csv": [str(p) for p in self.csv_files],
            "ignored_csv": self.ignored_csvs,
            "split_definition": f"CSV train → train, CSV {self.eval_split} → test",
        }
