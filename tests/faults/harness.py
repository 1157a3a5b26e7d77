"""Fault injection for tests/faults: SIGKILL a CLI stage at a seeded point, fill the disk,
damage a file — and the checks every fault shares (nothing half-written read back, no
process left behind, earlier artifacts untouched).

Only processes this harness started are killed, by their pid; a process of the killed
run that outlives it is found by its session id (each stage starts its own session).
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from click.testing import CliRunner, Result
from killswitch import target  # tests/faults is on sys.path

import vidistill
from vidistill.cli import main
from vidistill.clipstore import ClipStore
from vidistill.integrity import load_safetensors

SRC = str(Path(vidistill.__file__).resolve().parents[1])


# -- running the CLI -----------------------------------------------------------------------
def env() -> dict[str, str]:
    """The child computes with this process's thread count: CPU kernels split work by
    thread, so a stage killed in a child and finished here is bit-identical to a run done
    here only when both use the same count (CI leaves ``OMP_NUM_THREADS`` unset)."""
    threads = str(torch.get_num_threads())
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": threads, "TQDM_DISABLE": "1"}


def cli(*args: Any) -> Result:
    """The CLI in this process (reference and resumed runs: no interpreter start-up)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(res: Result) -> Result:
    assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"
    return res


def one_error_line(res: Result, *needles: str) -> str:
    """A non-zero exit through click with one ``Error:`` line (no traceback) naming needles."""
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}\n{res.output}"
    assert "Traceback" not in res.output
    # a progress bar cut short by the error may share its line
    errors = [ln[ln.index("Error:") :] for ln in res.output.splitlines() if "Error:" in ln]
    assert len(errors) == 1, res.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


# -- SIGKILL -------------------------------------------------------------------------------
@dataclass
class Kill:
    """Where a SIGKILL landed and what it left."""

    landed: bool  # the process was still running when killed (else it had finished)
    after_s: float  # seconds from start to the kill
    leftovers: list[int] = field(default_factory=list)  # processes of its session still alive


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session is ``sid``."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            st = _stat(int(p.name))
            if st is not None and int(st[3]) == sid and st[0] != "Z":
                out.append(int(p.name))
    return out


def _start(cmd: list[str]) -> subprocess.Popen:
    """In its own session, so whatever it spawns can be found after it is killed."""
    return subprocess.Popen(
        cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _leftovers(sid: int) -> list[int]:
    leftovers = session_members(sid)
    deadline = time.time() + 10
    while leftovers and time.time() < deadline:  # PDEATHSIG is asynchronous
        time.sleep(0.05)
        leftovers = session_members(sid)
    for pid in leftovers:  # started by this test: clean up, then report them
        os.kill(pid, signal.SIGKILL)
    return leftovers


def kill_on_write(args: list[Any], n: int, root: Path, timeout: float = 120.0) -> Kill:
    """Run ``vidistill ARGS`` so that it SIGKILLs itself half-way through its ``n``-th file
    write under ``root`` (``killswitch.py``)."""
    switch = str(Path(__file__).with_name("killswitch.py"))
    proc = _start([sys.executable, switch, str(n), str(root), *map(str, args)])
    t0 = time.time()
    try:
        rc = proc.wait(timeout)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return Kill(rc == -signal.SIGKILL, time.time() - t0, _leftovers(proc.pid))


def kill_at(
    args: list[Any],
    seed: int,
    window: tuple[float, float],
    trigger: Callable[[int], bool] = lambda pid: True,
    timeout: float = 120.0,
) -> Kill:
    """Start ``vidistill ARGS`` in its own session, wait for ``trigger(pid)``, then a seeded
    random delay drawn from ``window`` (seconds), and SIGKILL it — the main process only,
    so any child that survives it is a leftover."""
    delay = random.Random(seed).uniform(*window)
    proc = _start([sys.executable, "-m", "vidistill.cli", *map(str, args)])
    t0 = time.time()
    try:
        while not trigger(proc.pid) and proc.poll() is None:
            if time.time() - t0 > timeout:
                raise TimeoutError(f"trigger never fired for {args}")
            time.sleep(0.01)
        deadline = time.time() + delay
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.005)
        landed = proc.poll() is None
        if landed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return Kill(landed, time.time() - t0, _leftovers(proc.pid))


# -- what a fault may not break ------------------------------------------------------------
TEMP_SUFFIXES = (".tmp",)


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(TEMP_SUFFIXES))


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (temp files excluded)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(TEMP_SUFFIXES) and not p.name.endswith(".lock")
    }


def lost(before: dict[str, str], root: Path) -> list[str]:
    """Files of ``before`` that are gone or changed now: artifacts lost."""
    now = snapshot(root)
    return sorted(k for k, h in before.items() if now.get(k) != h)


def readable_artifacts(root: Path) -> int:
    """Open every final artifact under ``root`` as its reader would; return how many.
    A half-written file at a final path fails here (temp files are not artifacts)."""
    n = 0
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(TEMP_SUFFIXES) or ".parts" in p.parts:
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".safetensors":
            load_safetensors(p, "test")
        elif p.name == "store.json":
            pass
        else:
            continue
        n += 1
        if p.name == "store.json":
            ClipStore(p.parent)
    return n


# -- comparing results ---------------------------------------------------------------------
def same_tensors(a: Path, b: Path) -> None:
    """Bit-identical tensors (metadata may differ: timings)."""
    ta, tb = load_safetensors(a, "test")[0], load_safetensors(b, "test")[0]
    assert ta.keys() == tb.keys()
    for k in ta:
        x, y = np.asarray(ta[k].numpy()), np.asarray(tb[k].numpy())
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), k


def same_store(a: Path, b: Path) -> None:
    assert (a / "clips.u8").read_bytes() == (b / "clips.u8").read_bytes()
    assert ClipStore(a).records == ClipStore(b).records


RUN_FIELDS = ("seed", "top1", "top5", "auc", "f1", "train_acc", "train_loss", "epochs_run")


def metrics(results: Path) -> dict[tuple, list[dict[str, Any]]]:
    """Per-run metrics of every row of a results.json (timings left out)."""
    rows = json.loads(results.read_text())["rows"]
    return {
        (r["method"], r.get("row_name"), r["vpc"]): [
            {k: p[k] for k in RUN_FIELDS} for p in r["per_run"]
        ]
        for r in rows
    }


# -- a full disk ---------------------------------------------------------------------------
class DiskFull:
    """Simulated disk with ``budget`` bytes free under ``root``: a ``write`` past it raises
    ``OSError(ENOSPC)``, as the kernel does. Every Python-level write goes through
    ``io.open`` (``open``, ``Path.write_*``, ``os.fdopen``), so wrapping it covers the
    package's writers; reads and files outside ``root`` are untouched."""

    def __init__(self, root: Path, budget: float):
        self.root, self.budget, self.written = str(root.resolve()), budget, 0
        self.files: list[str] = []  # every file opened for writing under root, in order
        self.offsets: list[int] = []  # bytes written before each of them was opened
        self.failed: str | None = None

    def wrap(self, real_open: Callable[..., Any]) -> Callable[..., Any]:
        def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            fh = real_open(file, mode, *args, **kwargs)
            path = target(file, mode, self.root)
            if path is None:
                return fh
            self.files.append(path)
            self.offsets.append(self.written)
            return _Metered(fh, self, path)

        return fake_open

    def charge(self, nbytes: int, path: str) -> None:
        if self.written + nbytes > self.budget:
            self.failed = self.failed or path
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += nbytes


class _Metered:
    """A file object whose writes draw on a :class:`DiskFull` budget."""

    def __init__(self, fh: Any, disk: DiskFull, path: str):
        self._fh, self._disk, self._path = fh, disk, path

    def write(self, data: Any) -> int:
        n = len(data.encode() if isinstance(data, str) else memoryview(data).cast("B"))
        self._disk.charge(n, self._path)
        return self._fh.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __enter__(self) -> _Metered:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._fh.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._fh)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


@contextmanager
def disk_full(root: Path, budget: float) -> Iterator[DiskFull]:
    disk = DiskFull(root, budget)
    real = io.open
    fake = disk.wrap(real)
    builtins.open, io.open = fake, fake
    try:
        yield disk
    finally:
        builtins.open, io.open = real, real


# -- damage --------------------------------------------------------------------------------
def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_byte(path: Path, seed: int, lo: int = 0, hi: int | None = None) -> int:
    """XOR one seeded byte in ``[lo, hi)`` with 0xFF; returns its offset."""
    data = bytearray(path.read_bytes())
    pos = random.Random(seed).randrange(lo, len(data) if hi is None else hi)
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    return pos


def safetensors_header_end(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")
