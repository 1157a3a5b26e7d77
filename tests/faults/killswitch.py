"""``python killswitch.py N ROOT ARGS...``: the vidistill CLI, SIGKILLed in the middle of its
N-th file write under ROOT — half of that write's bytes reach the disk, then the process
dies. The worst moment for a kill, at a point the test chooses (seeded)."""

from __future__ import annotations

import builtins
import io
import os
import signal
import sys
from pathlib import Path
from typing import Any


def target(file: Any, mode: str, root: str) -> str | None:
    """The resolved path of a file opened for writing under ``root``, else None."""
    if not any(c in mode for c in "wax+"):
        return None
    if isinstance(file, int):
        try:
            path = os.readlink(f"/proc/self/fd/{file}")
        except OSError:
            return None
    elif isinstance(file, str | bytes | os.PathLike):
        path = str(Path(os.fsdecode(file)).resolve())
    else:
        return None
    return path if path.startswith(root) else None


class _Dying:
    def __init__(self, fh: Any):
        self._fh = fh

    def write(self, data: Any) -> int:
        self._fh.write(data[: max(1, len(data) // 2)])
        self._fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        return 0  # never reached

    def __enter__(self) -> _Dying:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._fh.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def arm(n: int, root: str) -> None:
    real, seen = io.open, [0]

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = real(file, mode, *args, **kwargs)
        if target(file, mode, root) is not None:
            seen[0] += 1
            if seen[0] == n:
                return _Dying(fh)
        return fh

    builtins.open = io.open = fake_open


if __name__ == "__main__":
    arm(int(sys.argv[1]), str(Path(sys.argv[2]).resolve()))
    from vidistill.cli import main

    main(args=sys.argv[3:], prog_name="vidistill")
