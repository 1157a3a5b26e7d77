"""Atomic file writes: write to a temp name in the same folder, then rename.

A reader therefore sees either the old file or the complete new one, never half of it,
which is what makes every stage safely resumable after a kill. A write that fails (a
full disk) removes its temp file and raises an ``OSError`` that names the final path, so
the CLI can say which artifact could not be written (earlier ones are untouched).

A process killed mid-write leaves its temp file behind. Temp names carry the writer's host
and pid (``.NAME.HOST-PID.XXXX.tmp``), so the next durable write of the same artifact
removes the temps of writers on this host that are gone (:func:`remove_stale_temps`) — a
killed and re-run stage leaves no debris, and a live writer's temp is never touched.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

# Errors of a write that did not fit: the disk (or quota, or file-size limit) is full.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _umask() -> int:
    """The process umask (read once: setting it back at once is the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a renamed artifact gets the mode a plain open() would give,
# so a store prepared by one user stays readable by the others sharing it.
FILE_MODE = 0o666 & ~_umask()


def _token() -> str:
    """``HOST-PID`` of this writer (computed per call: a forked worker has its own pid)."""
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def temp_prefix(path: Path) -> str:
    """Prefix of the temp names of ``path`` written by this process."""
    return f".{path.name}.{_token()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(folder: str | Path, name: str | None = None) -> int:
    """Delete temp files in ``folder`` (of artifact ``name``, or all) left by writers on this
    host that no longer run; returns how many. Temps of other hosts (a shared filesystem)
    and of live processes stay."""
    host = socket.gethostname().replace(".", "_")
    head = f".{name}." if name else "."
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(head) and entry.name.endswith(".tmp")):
            continue
        token = entry.name[: -len(".tmp")].rsplit(".", 2)
        if len(token) != 3:
            continue
        who, _, pid = token[1].rpartition("-")
        if who == host and pid.isdigit() and not _alive(int(pid)):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def named_os_error(err: OSError, path: str | Path) -> OSError:
    """``err`` with ``path`` as its filename when it has none (a failed ``write`` names no
    file): what the user needs is which artifact could not be written."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or os.strerror(err.errno), str(path))


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None], durable: bool = True) -> Path:
    """Call ``write(fh)`` on a temp file next to ``path`` and rename it into place.

    The rename alone makes the write atomic against a killed process; ``durable``
    adds an fsync so it also survives power loss (skipped for cheap resumable parts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if durable:  # cheap parts skip it: a folder of 100k parts is swept once, by prepare
        remove_stale_temps(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        named = named_os_error(err, path)
        if named is err:
            raise
        raise named from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    return write_atomic(path, lambda fh: fh.write(data), durable)


def write_json_atomic(path: str | Path, obj: Any, durable: bool = True) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n"
    return write_bytes_atomic(path, text.encode(), durable)


def save_safetensors_atomic(path: str | Path, tensors: dict, metadata: dict | None = None) -> Path:
    """safetensors checkpoint written atomically (we never pickle weights), with a CRC of
    its content in the metadata so a damaged copy is refused on load (:mod:`integrity`)."""
    from safetensors.torch import save

    from vidistill.integrity import CRC_KEY, content_crc

    tensors = {k: v.contiguous() for k, v in tensors.items()}
    meta = dict(metadata or {})
    meta[CRC_KEY] = content_crc(tensors, meta)
    return write_bytes_atomic(path, save(tensors, metadata=meta))


def json_default(obj: Any) -> Any:
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
