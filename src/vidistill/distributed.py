"""torch.distributed for the sharded stages: one engine, launched by ``torchrun`` or
``accelerate launch`` (both set ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_*``)::

    torchrun --nproc_per_node 4 -m vidistill.cli embed STORE --embedder classifier --device cuda

Not launched (no ``WORLD_SIZE`` > 1 in the environment) nothing here touches
torch.distributed: :func:`init` returns rank 0 of 1 and every helper is the
single-process identity, so a plain ``vidistill ...`` runs exactly as before.

The pieces:

* :func:`init` — rank / world from the environment, ``init_process_group`` (``nccl`` on
  CUDA with ``cuda:LOCAL_RANK`` as this rank's device, ``gloo`` on CPU), plus two CPU
  (``gloo``) groups for the small Python objects the helpers exchange: one with the
  collective timeout ``VIDISTILL_DIST_TIMEOUT`` (seconds, default 1800) and one with
  ``VIDISTILL_DIST_WAIT_TIMEOUT`` (default 86400) for waiting while rank 0 alone works
  (prepare, training the classifier embedder, the report).
* :func:`shard` — the indices ``0..n-1`` of one rank, contiguous blocks or strided.
* :func:`map_in_order` / :func:`gather_in_order` — run a function on this rank's shard,
  reassemble every rank's results on rank 0 in the original order.
* :func:`check`, :func:`on_main`, :func:`call_all` — agree that every rank succeeded;
  run something on rank 0 only (the only writer of shared files), or on every rank
  (rank 0 first if asked).
* :func:`alone` — work handed to ONE rank (an item of :func:`map_in_order`, rank 0's
  :func:`on_main`, a task of `vidistill run`) runs inside it and sees a world of one, so
  data-parallel code called there (DDP evaluator training, a sharded synthesis) does not
  wait for ranks that are busy elsewhere. Outside it, code called by every rank together
  sees the job: :func:`current` is who works *together* on the calling code.
* :func:`all_reduce_sum`, :func:`all_gather_in_order` — tensors and small objects for
  data-parallel code (sum of gradients, per-class results in class order on every rank).

Failures never hang the job. A Python error on one rank is reported to every rank at the
next helper call, which raises :class:`vidistill.errors.RankFailed` naming that rank and
its error (its traceback goes to that rank's stderr). A rank that crashes or hangs is
found by the timeout (or at once, by the closed connection): the error names the ranks
that had not reached the collective, from a note each rank leaves in the rendezvous store
before every collective. Under torchrun any rank that exits non-zero also makes torchrun
stop the others.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np

from vidistill.errors import RankFailed

T = TypeVar("T")

TIMEOUT_ENV = "VIDISTILL_DIST_TIMEOUT"
WAIT_TIMEOUT_ENV = "VIDISTILL_DIST_WAIT_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_WAIT_TIMEOUT_S = 86400.0


@dataclass(frozen=True)
class Context:
    """Where this process stands in the job (rank 0 of 1 when not launched)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


class _State:
    ctx = Context()  # who runs the calling code together (rank 0 of 1 inside alone())
    job = Context()  # the whole job, as launched
    group: Any = None  # gloo, collective timeout: object gathers and status exchanges
    wait_group: Any = None  # gloo, long timeout: waiting while rank 0 alone works
    store: Any = None  # the rendezvous store: where each rank notes its last collective
    seq = 0
    owns_default_group = False
    failed = False  # a collective failed or a rank reported an error


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def from_env() -> Context:
    """Rank, world size and local rank from torchrun's variables (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``); rank 0 of 1 when they are absent."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return Context(rank=rank, world=world, local_rank=local)


def _seconds(env: str, default: float) -> float:
    value = os.environ.get(env)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{env}={value!r}: expected a number of seconds") from None
    if seconds <= 0:
        raise ValueError(f"{env}={value!r}: expected a positive number of seconds")
    return seconds


def timeout_s() -> float:
    """Collective timeout in seconds (``VIDISTILL_DIST_TIMEOUT``, default 1800)."""
    return _seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)


def current() -> Context:
    """Who runs the calling code together: the job once :func:`init` ran in a launched job,
    rank 0 of 1 when not launched or inside :func:`alone`."""
    return _State.ctx


def job() -> Context:
    """This process's place in the whole job, also inside :func:`alone` (for log lines)."""
    return _State.job


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """This rank works by itself inside (the others are busy with their own share): every
    helper here is the one-process identity and data-parallel code trains alone."""
    saved = _State.ctx
    _State.ctx = Context()
    try:
        yield
    finally:
        _State.ctx = saved


def init() -> Context:
    """Join the job if this process was launched distributed; idempotent.

    Not launched: returns ``Context()`` (rank 0 of 1) and does nothing else. Launched:
    initialises the default process group (unless ``accelerate`` already did), selects
    ``cuda:LOCAL_RANK`` when CUDA is available, and creates the helpers' CPU groups.
    """
    if _State.group is not None:
        return _State.ctx
    ctx = from_env()
    if not ctx.distributed:
        return ctx
    import torch
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s())
    wait = timedelta(seconds=_seconds(WAIT_TIMEOUT_ENV, DEFAULT_WAIT_TIMEOUT_S))
    cuda = torch.cuda.is_available()
    if cuda:
        if ctx.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={ctx.local_rank} but {torch.cuda.device_count()} GPU(s) are visible: "
                "launch at most one process per GPU (torchrun --nproc_per_node <= GPUs)"
            )
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        # the env:// rendezvous (torchrun's agent store when there is one), kept so each
        # rank can note in it which collective it last reached
        store, _, _ = next(dist.rendezvous("env://", ctx.rank, ctx.world, timeout=timeout))
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            store=store,
            rank=ctx.rank,
            world_size=ctx.world,
            timeout=timeout,
        )
        _State.store = store
        _State.owns_default_group = True
    elif (dist.get_rank(), dist.get_world_size()) != (ctx.rank, ctx.world):
        raise RuntimeError(
            f"torch.distributed is initialised as rank {dist.get_rank()} of "
            f"{dist.get_world_size()}, but the environment says rank {ctx.rank} of {ctx.world}"
        )
    _State.group = dist.new_group(backend="gloo", timeout=timeout)
    _State.wait_group = dist.new_group(backend="gloo", timeout=wait)
    _State.ctx = _State.job = ctx
    atexit.register(_at_exit)
    return ctx


def _at_exit() -> None:
    # a clean exit leaves the job; after a failure the groups may be broken, and the
    # process is ending anyway: do not risk blocking in destroy_process_group
    if not _State.failed:
        shutdown()


def shutdown() -> None:
    """Leave the job (destroys the process group if :func:`init` created it)."""
    if _State.group is None:
        return
    import torch.distributed as dist

    if _State.owns_default_group and dist.is_initialized():
        dist.destroy_process_group()
    _State.ctx, _State.group, _State.wait_group, _State.store = Context(), None, None, None
    _State.job = Context()
    _State.seq, _State.owns_default_group, _State.failed = 0, False, False


# -- sharding ------------------------------------------------------------------------------
def shard(n: int, rank: int | None = None, world: int | None = None, mode: str = "contiguous"):
    """The indices of ``0..n-1`` that ``rank`` of ``world`` handles (default: this process).

    ``contiguous``: ranks take consecutive blocks, the first ``n % world`` ranks one item
    more (``numpy.array_split``); ``strided``: rank r takes ``r, r + world, r + 2·world, ...``
    (balanced when cost grows along the list). Every index belongs to exactly one rank.
    """
    ctx = current()
    rank = ctx.rank if rank is None else rank
    world = ctx.world if world is None else world
    if n < 0 or world < 1 or not 0 <= rank < world:
        raise ValueError(
            f"shard(n={n}, rank={rank}, world={world}): need n >= 0, 0 <= rank < world"
        )
    if mode == "strided":
        return np.arange(rank, n, world, dtype=np.int64)
    if mode == "contiguous":
        base, extra = divmod(n, world)
        start = rank * base + min(rank, extra)
        return np.arange(start, start + base + (rank < extra), dtype=np.int64)
    raise ValueError(f"unknown shard mode {mode!r}; use 'contiguous' or 'strided'")


# -- failures ------------------------------------------------------------------------------
def _where() -> str:
    ctx = job()
    return f"rank {ctx.rank} of {ctx.world} (host {socket.gethostname()}, pid {os.getpid()})"


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _note(what: str) -> None:
    """Leave ``seq<TAB>what`` in the store: the collective this rank is entering."""
    _State.seq += 1
    if _State.store is not None:
        with contextlib.suppress(Exception):
            _State.store.set(f"vidistill/at/{current().rank}", f"{_State.seq}\t{what}")


def _missing_ranks() -> str:
    """Which ranks had not reached this rank's collective, from their store notes."""
    if _State.store is None:
        return ""
    with contextlib.suppress(Exception):
        _State.store.set_timeout(timedelta(seconds=10))  # the job is failing: do not wait long
    behind = []
    for r in range(current().world):
        key = f"vidistill/at/{r}"
        try:
            note = (
                _State.store.get(key).decode()
                if _State.store.check([key])
                else "0\tno collective yet"
            )
        except Exception:
            return ""
        seq, what = note.split("\t", 1)
        if int(seq) < _State.seq:
            behind.append(f"rank {r} (last reached: {what})")
    return "; not there: " + ", ".join(behind) if behind else ""


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """Turn a backend error (timeout, a peer's closed connection) into a RankFailed that
    names the collective and the ranks that had not reached it."""
    _note(what)
    try:
        yield
    except RankFailed:
        raise
    except Exception as err:  # DistBackendError / RuntimeError from gloo or nccl
        _State.failed = True
        raise RankFailed(
            f"{_where()}: {what}: no answer from the other ranks ({_describe(err)})"
            f"{_missing_ranks()}. A rank crashed or hangs: see its own message above and "
            f"torchrun's summary (collective timeout {timeout_s():g} s, {TIMEOUT_ENV})"
        ) from err


def _report(err: BaseException, what: str) -> str:
    """Print this rank's traceback (the detail stays in its own log); the one-line status."""
    _State.failed = True
    print(f"[{_where()}] failed in {what}:", file=sys.stderr)
    traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    return f"{_where()} failed in {what}: {_describe(err)}"


def _raise_failures(statuses: Sequence[str | None], own: BaseException | None) -> None:
    failed = [s for s in statuses if s]
    if not failed:
        return
    _State.failed = True
    if own is not None:
        raise own  # this rank's own error, as it would be in one process
    raise RankFailed("; ".join(failed))


def check(what: str, error: BaseException | None = None) -> None:
    """Every rank reports ``error`` (None: fine); if any rank failed, every rank raises —
    the failed rank its own error, the others :class:`RankFailed` naming it. Also a barrier.
    Not launched: re-raises ``error`` if given."""
    ctx = current()
    if not ctx.distributed:
        if error is not None:
            raise error
        return
    import torch.distributed as dist

    status = _report(error, what) if error is not None else None
    statuses: list[str | None] = [None] * ctx.world
    with _collective(what):
        dist.all_gather_object(statuses, status, group=_State.group)
    _raise_failures(statuses, error)


# -- gathering in the original order ----------------------------------------------------------
def gather_in_order(
    items: Sequence[T],
    n: int,
    *,
    mode: str = "contiguous",
    dst: int = 0,
    what: str = "gather",
    error: BaseException | None = None,
) -> list[T] | None:
    """Reassemble ``n`` results on rank ``dst``: every rank passes its items for
    ``shard(n, rank, world, mode)``, in that order; ``dst`` gets all ``n`` in the original
    order, the other ranks ``None``. ``error``: this rank failed (then every rank raises,
    see :func:`check`). Not launched: ``list(items)``."""
    ctx = current()
    if not ctx.distributed:
        if error is not None:
            raise error
        return list(items)
    import torch.distributed as dist

    status = _report(error, what) if error is not None else None
    payload = (ctx.rank, None if error is not None else list(items), status)
    received: list[Any] | None = [None] * ctx.world if ctx.rank == dst else None
    with _collective(what):
        dist.gather_object(payload, received, dst=dst, group=_State.group)
    verdict = [None]
    if ctx.rank == dst:
        assert received is not None
        verdict = [[s for _, _, s in received if s] or None]
    with _collective(f"{what} (status)"):
        dist.broadcast_object_list(verdict, src=dst, group=_State.group)
    _raise_failures(verdict[0] or [], error)
    if ctx.rank != dst:
        return None
    assert received is not None
    return _unshard([got for _, got, _ in received], n, ctx.world, mode, what)


def _unshard(parts: Sequence[Sequence[Any]], n: int, world: int, mode: str, what: str) -> list[Any]:
    """Rank r's results (``parts[r]``, in the order of its shard) back in the original order."""
    out: list[Any] = [None] * n
    for rank, part in enumerate(parts):
        pos = shard(n, rank, world, mode)
        if len(part) != len(pos):
            raise RankFailed(f"rank {rank} sent {len(part)} results for {len(pos)} items in {what}")
        for p, item in zip(pos.tolist(), part, strict=True):
            out[p] = item
    return out


def map_in_order(
    fn: Callable[[int], T],
    n: int,
    *,
    mode: str = "contiguous",
    dst: int = 0,
    what: str = "map",
) -> list[T] | None:
    """``[fn(i) for i in range(n)]`` with the ``i`` shared out by :func:`shard`; rank
    ``dst`` gets the list in order, the other ranks ``None``. An error in ``fn`` on any
    rank ends every rank (:func:`check`'s rule). Not launched: the plain list."""
    if not current().distributed:
        return [fn(i) for i in range(n)]
    items: list[T] = []
    error: BaseException | None = None
    try:
        mine = shard(n, mode=mode).tolist()
        with alone():  # an item is this rank's own work
            items = [fn(i) for i in mine]
    except Exception as err:
        error = err
    return gather_in_order(items, n, mode=mode, dst=dst, what=what, error=error)


# -- rank 0 alone ------------------------------------------------------------------------------
def _wait_for_main(what: str, error: BaseException | None, result: Any = None) -> Any:
    """Rank 0 sends its status (and a small result) to the others, who wait for it (the
    long wait timeout: rank 0 may work for hours)."""
    import torch.distributed as dist

    msg: list[Any] = [None]
    if current().is_main:
        msg = [(_report(error, what) if error is not None else None, result)]
    _note(what)
    try:
        dist.broadcast_object_list(msg, src=0, group=_State.wait_group)
    except Exception as err:
        _State.failed = True
        raise RankFailed(
            f"{_where()}: waiting for rank 0 ({what}): {_describe(err)}. Rank 0 crashed or "
            f"hangs: see its message ({WAIT_TIMEOUT_ENV} sets how long ranks wait for it)"
        ) from err
    status, result = msg[0]
    _raise_failures([status], error)
    return result


def on_main(fn: Callable[[], T], what: str = "rank 0's work") -> T:
    """Run ``fn`` on rank 0 only (the one writer of shared files); every rank waits for it
    and gets its (small, picklable) return value. A failure on rank 0 ends every rank.
    Not launched: ``fn()``."""
    if not current().distributed:
        return fn()
    result, error = None, None
    if current().is_main:
        try:
            with alone():
                result = fn()
        except Exception as err:
            error = err
    return _wait_for_main(what, error, result)


def call_all(fn: Callable[[], T], what: str, *, main_first: bool = False) -> T:
    """``fn()`` on every rank, then :func:`check` that all succeeded: by default the ranks
    work on it together (``fn`` may shard its work and call the helpers). ``main_first``:
    rank 0 calls it first, alone, and the others (each alone) only once it succeeded (e.g.
    rank 0 trains and caches a net, the others load the cache); a failure on rank 0 stops
    them before they start. Not launched: ``fn()``."""
    ctx = current()
    if not ctx.distributed:
        return fn()
    if main_first:
        solo = fn

        def fn() -> T:
            with alone():
                return solo()

    if main_first and ctx.is_main:
        try:
            result = fn()
        except Exception as err:
            _wait_for_main(what, err)  # tells the others, raises here
            raise
        _wait_for_main(what, None)
        check(what)
        return result
    if main_first:
        _wait_for_main(what, None)
    result, error = None, None
    try:
        result = fn()
    except Exception as err:
        error = err
    check(what, error)
    return result  # type: ignore[return-value]


def is_main() -> bool:
    """True on rank 0 (and when not launched): the process that writes shared files."""
    return current().is_main


# -- data-parallel collectives -------------------------------------------------------------------
def all_reduce_sum(tensor: Any, what: str = "all-reduce") -> Any:
    """Sum ``tensor`` over the ranks working together, in place, on the job's backend (nccl
    on CUDA, gloo on CPU); returns it. Not launched (or :func:`alone`): unchanged."""
    if not current().distributed:
        return tensor
    import torch.distributed as dist

    with _collective(what):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather(obj: T, what: str = "all-gather") -> list[T]:
    """Every rank's ``obj`` (small, picklable: it travels through the CPU group), on every
    rank, in rank order. Not launched: ``[obj]``."""
    ctx = current()
    if not ctx.distributed:
        return [obj]
    import torch.distributed as dist

    got: list[Any] = [None] * ctx.world
    with _collective(what):
        dist.all_gather_object(got, obj, group=_State.group)
    return got


def all_gather_in_order(
    items: Sequence[T], n: int, *, mode: str = "strided", what: str = "all-gather"
) -> list[T]:
    """Like :func:`gather_in_order` (this rank passes its items of ``shard(n, mode=mode)``)
    but EVERY rank gets the ``n`` results in the original order — e.g. per-class losses or
    gradients that each rank then sums in class order, as one process would. Small
    picklable items. Not launched: ``list(items)``."""
    ctx = current()
    if not ctx.distributed:
        return list(items)
    return _unshard(all_gather(list(items), what), n, ctx.world, mode, what)
