"""folder: users' own videos, as ``root/{train,test}/<class>/*.ext`` or a CSV.

The CSV is either ``path,label,split`` (paths relative to the root) or the field's
``folder_name,label,split`` (the MiniUCF / HMDB51 split files: the video is
``root/<label>/<folder_name>.<ext>``), which is what `vidistill export` writes.
``root/videos.csv`` is read without ``--csv``; ``root/classes.txt`` (one name a line), when
present, fixes the class order (label indices) instead of the sorted names.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from vidistill.clipstore import ClipSpec
from vidistill.datasets.base import Dataset, VideoItem
from vidistill.registry import register
from vidistill.video import decode_clip

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov")
SPLITS = ("train", "test", "val")


class FolderDataset(Dataset):
    """Class names are sorted folder names (or sorted CSV labels), so label indices are stable;
    ``root/classes.txt`` overrides the order (an exported set keeps its original labels)."""

    name = "folder"

    def __init__(self, root: str | Path, csv_file: str | Path | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"folder dataset root {self.root} does not exist")
        self.csv_file = Path(csv_file) if csv_file else None
        if self.csv_file is None and (self.root / "videos.csv").is_file():
            self.csv_file = self.root / "videos.csv"
        self._items = self._from_csv() if self.csv_file else self._from_tree()
        if not self._items:
            raise FileNotFoundError(
                f"no videos found under {self.root}: expected root/{{train,test}}/<class>/*"
                f"{{{','.join(VIDEO_EXTENSIONS)}}} or a CSV with columns path,label,split"
            )

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, "root": str(self.root), "csv": str(self.csv_file or "")}

    def _from_tree(self) -> list[VideoItem]:
        splits = [d for d in ("train", "test", "val") if (self.root / d).is_dir()]
        if not splits:
            raise FileNotFoundError(f"{self.root}: no train/ or test/ folder (and no videos.csv)")
        rows = []
        for split in splits:
            folders = (self.root / split).iterdir()
            for cls_dir in sorted(p for p in folders if p.is_dir() and not p.name.startswith(".")):
                videos = [
                    f for f in sorted(cls_dir.iterdir()) if f.suffix.lower() in VIDEO_EXTENSIONS
                ]
                if not videos:
                    raise ValueError(
                        f"{cls_dir} holds no video ({', '.join(VIDEO_EXTENSIONS)}): an empty "
                        "class; add its videos or remove the folder"
                    )
                rows += [(str(f.relative_to(self.root)), cls_dir.name, split) for f in videos]
        return self._build(rows)

    def _from_csv(self) -> list[VideoItem]:
        path = self.csv_file if self.csv_file.is_absolute() else self.root / self.csv_file
        if not path.is_file():
            raise FileNotFoundError(f"CSV file {path} not found (--csv is relative to --root)")
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rows = self._csv_rows(path, csv.DictReader(fh))
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text ({err}); save the CSV as UTF-8") from err
        except csv.Error as err:
            raise ValueError(f"{path}: not a readable CSV ({err})") from err
        return self._build(rows)

    def _csv_rows(self, path: Path, reader: csv.DictReader) -> list[tuple[str, str, str]]:
        """``(path, label, split)`` per data line, each field checked (file:line in errors)."""
        columns = {c.strip() for c in reader.fieldnames or [] if c}
        key = "folder_name" if "path" not in columns and "folder_name" in columns else "path"
        missing = {key, "label", "split"} - columns
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {sorted(missing)}; need path,label,split "
                "or folder_name,label,split"
            )
        rows = []
        for row in reader:
            line = reader.line_num
            row = {
                (k or "").strip(): (v or "").strip() if isinstance(v, str) else ""
                for k, v in row.items()
            }
            if not any(row.values()):
                continue  # a blank line
            empty = [c for c in (key, "label", "split") if not row.get(c)]
            if empty:
                raise ValueError(
                    f"{path}:{line}: empty {', '.join(empty)}; every line needs {key},label,split"
                )
            if row["split"] not in SPLITS:
                raise ValueError(
                    f"{path}:{line}: split {row['split']!r} is not one of {', '.join(SPLITS)}"
                )
            rel = row["path"] if key == "path" else self._video_of(row)
            target = (self.root / rel).resolve()
            if not target.is_relative_to(self.root):
                raise ValueError(
                    f"{path}:{line}: path {rel!r} escapes the dataset root {self.root}; "
                    "use paths relative to the root"
                )
            rows.append((str(target.relative_to(self.root)), row["label"], row["split"]))
        return rows

    def _video_of(self, row: dict[str, str]) -> str:
        """``<label>/<folder_name>`` with the first video extension found on disk (none
        found: the bare name, which `prepare` records as a missing file)."""
        stem = f"{row['label']}/{row['folder_name']}"
        for ext in VIDEO_EXTENSIONS:
            if (self.root / (stem + ext)).is_file():
                return stem + ext
        return stem

    def _class_order(self, labels: set[str]) -> list[str]:
        order_file = self.root / "classes.txt"
        if not order_file.is_file():
            return sorted(labels)
        names = [n.strip() for n in order_file.read_text().splitlines() if n.strip()]
        unknown = sorted(labels - set(names))
        if unknown or len(set(names)) != len(names):
            problem = f"lacks {unknown[:5]}" if unknown else "repeats a name"
            raise ValueError(f"{order_file} {problem}; it lists every class once, in label order")
        return names

    def _build(self, rows: list[tuple[str, str, str]]) -> list[VideoItem]:
        self.class_names = self._class_order({label for _, label, _ in rows})
        index = {c: i for i, c in enumerate(self.class_names)}
        trained = {c for _, c, s in rows if s == "train"}
        empty = [c for c in self.class_names if c not in trained]
        if trained and empty:
            raise ValueError(
                f"{self.root}: class(es) {empty[:5]} have no training video (a class needs "
                "at least one in train/ or on a 'train' line of the CSV): add videos or remove "
                "the class (its folders, CSV lines and classes.txt entry)"
            )
        return [VideoItem(p, index[c], c, s) for p, c, s in rows]

    def items(self) -> list[VideoItem]:
        return list(self._items)

    def load(self, item: VideoItem, spec: ClipSpec) -> np.ndarray:
        return decode_clip(self.root / item.source, spec)


register("dataset", "folder")(FolderDataset)
