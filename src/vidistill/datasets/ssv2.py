"""Something-Something v2 (174 template classes).

On-disk layout (as the official download unpacks)::

    ROOT/labels/labels.json       {"Approaching something with your camera": "0", ...}
    ROOT/labels/train.json        [{"id": "78687", "template": "Holding [something] ...", ...}]
    ROOT/labels/validation.json
    ROOT/20bn-something-something-v2/<id>.webm

Annotation files are searched in ``ROOT/labels``, ``ROOT/annotations`` and ``ROOT``, also
under their ``something-something-v2-<name>.json`` names; videos in
``ROOT/20bn-something-something-v2``, ``ROOT/videos``, then ``ROOT``.

The class of a video is its *template* with the brackets removed
(``"Holding [something] next to [something]"`` → ``"Holding something next to something"``),
mapped through labels.json; the free-text ``label`` field names the actual objects and
is not the class. Label order = labels.json ids. ``validation`` → store split ``test``
(the official test set has no public labels).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidistill.clipstore import ClipSpec
from vidistill.datasets.filelist import HEAVY_SPEC, FileListDataset, Row, first_dir
from vidistill.registry import register

ANNOTATION_DIRS = ("labels", "annotations", ".")
VIDEO_DIRS = ("20bn-something-something-v2", "videos")
SPLITS = (("train", "train"), ("validation", "test"))


def template_class(template: str) -> str:
    return template.replace("[", "").replace("]", "")


@register("dataset", "ssv2")
class SSv2(FileListDataset):
    name = "ssv2"
    layout = (
        "ROOT/labels/{labels,train,validation}.json and videos "
        "ROOT/20bn-something-something-v2/<id>.webm"
    )

    def __init__(self, root: str | Path, classes: Sequence[str] | str | None = None):
        super().__init__(root, classes)
        self.annotation_dir = self._find_annotations()
        video_dir = first_dir(self.root, VIDEO_DIRS)
        if video_dir is None and next(self.root.glob("*.webm"), None) is None:
            raise FileNotFoundError(
                f"ssv2: no video folder ({' or '.join(VIDEO_DIRS)}) and no .webm files under "
                f"{self.root}; expected {self.layout}"
            )
        self.video_prefix = f"{video_dir.name}/" if video_dir else ""
        self._items = self._build()

    def _json_path(self, base: Path, name: str) -> Path | None:
        for fname in (f"{name}.json", f"something-something-v2-{name}.json"):
            if (base / fname).is_file():
                return base / fname
        return None

    def _find_annotations(self) -> Path:
        for d in ANNOTATION_DIRS:
            base = (self.root / d).resolve()
            if all(self._json_path(base, n) for n in ("labels", "train", "validation")):
                return base
        raise FileNotFoundError(
            f"ssv2: labels.json, train.json and validation.json not found together in any of "
            f"{', '.join(str(self.root / d) for d in ANNOTATION_DIRS)}; expected {self.layout}"
        )

    def _list(self) -> tuple[list[str], list[Row]]:
        labels_path = self._json_path(self.annotation_dir, "labels")
        labels = json.loads(labels_path.read_text())
        ids = sorted(int(v) for v in labels.values())
        if ids != list(range(len(labels))):
            raise ValueError(f"{labels_path}: ids must be 0..{len(labels) - 1} without gaps")
        order = sorted(labels, key=lambda k: int(labels[k]))
        rows: list[Row] = []
        for fname, split in SPLITS:
            path = self._json_path(self.annotation_dir, fname)
            for n, entry in enumerate(json.loads(path.read_text())):
                if "id" not in entry or "template" not in entry:
                    raise ValueError(f"{path}: entry {n} lacks 'id' or 'template': {entry!r}")
                cls = template_class(entry["template"])
                if cls not in labels:
                    raise ValueError(
                        f"{path}: entry {n} (id {entry['id']}) has template {entry['template']!r}, "
                        f"whose class {cls!r} is not in {labels_path.name}"
                    )
                rows.append((f"{self.video_prefix}{entry['id']}.webm", cls, split, {}))
        return order, rows

    def default_spec(self) -> ClipSpec:
        return HEAVY_SPEC

    def _describe(self) -> dict[str, Any]:
        return {"split_definition": "train.json → train, validation.json → test; class = template"}
