"""Atomic file writes: write to a temp name in the same folder, then rename.

A reader therefore sees either the old file or the complete new one, never half of it,
which is what makes every stage safely resumable after a kill.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None], durable: bool = True) -> Path:
    """Call ``write(fh)`` on a temp file next to ``path`` and rename it into place.

    The rename alone makes the write atomic against a killed process; ``durable``
    adds an fsync so it also survives power loss (skipped for cheap resumable parts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    return write_atomic(path, lambda fh: fh.write(data), durable)


def write_json_atomic(path: str | Path, obj: Any, durable: bool = True) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    return write_bytes_atomic(path, text.encode(), durable)


def save_safetensors_atomic(path: str | Path, tensors: dict, metadata: dict | None = None) -> Path:
    """safetensors checkpoint written atomically (we never pickle weights)."""
    from safetensors.torch import save

    blob = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    return write_bytes_atomic(path, blob)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
