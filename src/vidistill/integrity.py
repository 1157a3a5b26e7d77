"""Reading artifacts back: a damaged file is one clear error naming it and how to remake it.

Every artifact is written atomically (:mod:`vidistill.atomic`), so a killed stage never
leaves half a file at a final path; what remains is damage from outside — a disk fault, a
cut-short copy, a full disk in another tool. Readers go through here so such a file ends
in :class:`~vidistill.errors.CorruptArtifact` ("delete it and re-run ...") rather than a
JSON, safetensors or torch traceback. The safetensors files we write carry a CRC-32 of
their tensors and metadata (``CRC_KEY``), so a flipped bit in the data, which the format
itself cannot see, is caught too; files made elsewhere (official checkpoints) have none
and are only checked for a readable header.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vidistill.errors import CorruptArtifact

CRC_KEY = "vidistill.crc32"


def _raw_bytes(t: Any) -> np.ndarray:
    """The bytes of a torch tensor (any dtype, bf16 too) or numpy array, as uint8."""
    if isinstance(t, np.ndarray):
        return np.ascontiguousarray(t).reshape(-1).view(np.uint8)
    import torch

    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


def content_crc(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> str:
    """CRC-32 over tensor names, bytes and the metadata (without the CRC entry itself)."""
    crc = 0
    for key in sorted(tensors):
        crc = zlib.crc32(key.encode(), crc)
        crc = zlib.crc32(_raw_bytes(tensors[key]), crc)
    for key, value in sorted((metadata or {}).items()):
        if key != CRC_KEY:
            crc = zlib.crc32(f"{key}={value}".encode(), crc)
    return f"{crc:08x}"


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks (files of any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | Path, remake: str, delete: str | Path | None = None) -> Any:
    """``json.loads`` of a file we wrote; unreadable → :class:`CorruptArtifact` (``delete``:
    what the user should delete, when not the file itself)."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptArtifact(path, f"not valid JSON: {err}", remake, delete) from err


def _safetensors_error() -> type[Exception]:
    from safetensors import SafetensorError

    return SafetensorError


def open_safetensors(path: str | Path, remake: str, framework: str = "pt") -> Any:
    """``safe_open`` whose header errors (truncated, damaged) name the file. For readers
    that slice a large file (embeddings) instead of loading it whole."""
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework=framework)
    except _safetensors_error() as err:
        raise CorruptArtifact(path, f"unreadable safetensors: {err}", remake) from err


def safetensors_metadata(path: str | Path, remake: str) -> dict[str, str]:
    """The header metadata only (cheap: no tensor is read)."""
    with open_safetensors(path, remake) as fh:
        return dict(fh.metadata() or {})


def load_safetensors(
    path: str | Path, remake: str, framework: str = "pt"
) -> tuple[dict[str, Any], dict[str, str]]:
    """All tensors and the metadata of ``path``, the CRC checked where the file has one."""
    try:
        with open_safetensors(path, remake, framework) as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except _safetensors_error() as err:
        raise CorruptArtifact(path, f"unreadable safetensors: {err}", remake) from err
    want = meta.get(CRC_KEY)
    if want is not None and content_crc(tensors, meta) != want:
        raise CorruptArtifact(path, "checksum mismatch: its bytes changed after writing", remake)
    return tensors, meta
