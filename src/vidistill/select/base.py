"""The selector contract, the per-class data view, and `select_store` behind `vidistill select`.

A selector is a registered function ``fn(data: ClassData, vpc: int, seed: int, **options)
-> np.ndarray`` returning VPC distinct *positions* into the class (0..n-1). It is called
once per class, so a new method only thinks about one class at a time. ``ClassData``
hides where the embeddings live: in memory (small pools, tests) or streamed from the
safetensors file in row blocks bounded by the memory budget (pools bigger than RAM).
Methods that need the whole class matrix call ``data.load()``; streaming-aware ones
iterate ``data.chunks()``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vidistill import distributed, registry
from vidistill.atomic import write_json_atomic

DEFAULT_BUDGET_MB = 1024


class ClassData:
    """One class of a pool: ``n`` clips, their embeddings ``(n, D)`` and optional scores.

    ``scores`` (MAE-Score) rank the clips by the classifier's confidence in their OWN
    class, higher = more confident: the own-class log-odds (from the stored logits, so
    confident clips stay distinct), or any monotone score such as a probability.
    """

    def __init__(
        self,
        name: str,
        label: int,
        n: int,
        dim: int | None,
        array: np.ndarray | None = None,
        reader: Any = None,
        positions: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        budget_bytes: int = DEFAULT_BUDGET_MB << 20,
    ):
        self.name, self.label, self.n, self.dim = name, label, n, dim
        self._array, self._reader, self._positions = array, reader, positions
        self.scores = scores
        self.budget_bytes = budget_bytes
        # What the embedder recorded (e.g. ``latent_shape`` of the ``latent`` embedder).
        self.details: dict[str, Any] = {}

    @classmethod
    def from_array(
        cls,
        x: np.ndarray | None,
        name: str = "class",
        label: int = 0,
        scores: np.ndarray | None = None,
        n: int | None = None,
    ) -> ClassData:
        if x is not None:
            x = np.ascontiguousarray(x, dtype=np.float32)
            if x.ndim != 2:
                raise ValueError(f"class {name!r}: embeddings must be (n, D), got {x.shape}")
            if not np.isfinite(x).all():
                raise ValueError(f"class {name!r}: embeddings hold NaN/Inf values")
            n = x.shape[0]
        if n is None:
            raise ValueError("give embeddings or n")
        return cls(name, label, n, None if x is None else x.shape[1], array=x, scores=scores)

    @property
    def has_embeddings(self) -> bool:
        return self._array is not None or self._reader is not None

    @property
    def chunk_rows(self) -> int:
        """Rows per streamed block: a quarter of the budget (room for the method's own arrays)."""
        return max(16, self.budget_bytes // (4 * 4 * max(1, self.dim or 1)))

    @property
    def fits_in_memory(self) -> bool:
        return self._array is not None or self.n <= self.chunk_rows

    def _need(self) -> None:
        if not self.has_embeddings:
            raise ValueError(
                f"class {self.name!r}: this method needs embeddings (pass --embedder NAME)"
            )

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, block)``: ``block`` = rows ``start:start+len(block)`` of the class."""
        self._need()
        if self._array is None and self.fits_in_memory:
            self.load()  # read the class once; multi-pass methods then reuse it
        if self._array is not None:
            step = self.chunk_rows
            for s in range(0, self.n, step):
                yield s, self._array[s : s + step]
        else:
            for s, block in self._reader.iter_rows(self._positions, self.chunk_rows):
                yield s, self._finite(block)

    def load(self) -> np.ndarray:
        """The whole ``(n, D)`` class matrix in memory (methods that need it at once)."""
        self._need()
        if self._array is None:
            out = np.empty((self.n, self.dim), np.float32)
            for s, block in self._reader.iter_rows(self._positions, self.chunk_rows):
                out[s : s + len(block)] = block
            self._array = self._finite(out)
        return self._array

    def _finite(self, block: np.ndarray) -> np.ndarray:
        """NaN / Inf in embeddings would make every distance meaningless: stop, name them."""
        bad = ~np.isfinite(block)
        if bad.any():
            where = getattr(self._reader, "path", "the embeddings")
            raise ValueError(
                f"class {self.name!r}: {int(bad.any(1).sum())} clip embeddings hold NaN/Inf "
                f"values ({where}); the embedder diverged or the file is damaged — re-run "
                "`vidistill embed` for this store"
            )
        return block

    def mean(self) -> np.ndarray:
        total = np.zeros(self.dim, np.float64)
        for _, block in self.chunks():
            total += block.sum(0, dtype=np.float64)
        return (total / self.n).astype(np.float32)


Selector = Callable[..., np.ndarray]


def selector(
    name: str,
    needs: tuple[str, ...] = ("embeddings",),
    fit: Callable[..., Any] | None = None,
) -> Callable[[Selector], Selector]:
    """``@selector("tac-dt")``: register a per-class selection function.

    ``needs`` ⊆ {"embeddings", "scores"}: what `select_store` must provide. ``fit``, for
    methods that learn ONE model from all classes first (VST-UNet, Algorithm 1), is called
    once as ``fit(classes, vpc, seed, **options)``; its result reaches every per-class
    call as the keyword ``fitted``.
    """

    def deco(fn: Selector) -> Selector:
        fn.needs = needs  # type: ignore[attr-defined]
        fn.fit = fit  # type: ignore[attr-defined]
        return registry.register("selector", name)(fn)

    return deco


def own_class_log_odds(reader: Any, positions: np.ndarray, label: int) -> np.ndarray:
    """``log p(label | clip) − log(1 − p(label | clip))`` of the rows at ``positions``, float64.

    From the logits when the file has them (``z_c − logsumexp_{j≠c} z_j``: monotone in p but
    unbounded — a float32 softmax, and even a float64 log-softmax, saturate for confident
    clips, which would leave their ranking to store order); from the stored probabilities
    otherwise (older files; clips saturated at p = 1 then tie).
    """
    use_logits = reader.has_logits
    out = []
    for _, block in reader.iter_rows(positions, 1 << 16, probs=not use_logits, logits=use_logits):
        b = block.astype(np.float64)
        if use_logits:
            others = np.delete(b, label, axis=1)
            if others.shape[1] == 0:
                out.append(np.zeros(len(b)))
                continue
            top = others.max(1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(others - top).sum(1))
            out.append(b[:, label] - lse)
        else:
            with np.errstate(divide="ignore"):
                out.append(np.log(b[:, label]) - np.log1p(-b[:, label]))
    return np.concatenate(out) if out else np.zeros(0)


def check_vpc(data: ClassData, vpc: int) -> None:
    if vpc < 1:
        raise ValueError(f"vpc must be >= 1, got {vpc}")
    if data.n == 0:
        raise ValueError(
            f"class {data.name!r} has no clips in the pool to select from (an empty class): "
            "add clips to it, or leave it out of the store (--only-classes)"
        )
    if data.n < vpc:
        raise ValueError(
            f"class {data.name!r} has only {data.n} clips in the pool, fewer than vpc={vpc}; "
            f"lower --vpc to at most {data.n} or add clips to that class"
        )


def class_rng(seed: int, label: int) -> np.random.Generator:
    """Per-class generator: results for one class do not depend on the other classes."""
    return np.random.default_rng([seed, label])


def fit_selector(
    method: str, classes: list[ClassData], vpc: int, seed: int = 0, **options: Any
) -> dict[str, Any]:
    """Options for the per-class calls: ``options`` plus ``fitted`` when the method learns
    from all classes at once (its ``fit`` hook); every class is checked for VPC first."""
    for data in classes:
        check_vpc(data, vpc)
    check_options(method, options)
    fit = getattr(registry.get("selector", method), "fit", None)
    return options if fit is None else {**options, "fitted": fit(classes, vpc, seed, **options)}


def check_options(method: str, options: dict[str, Any]) -> None:
    """Unknown ``-o`` names are a ValueError listing the method's options (not a TypeError
    from deep in the call). The options are those of its ``fit`` hook when it has one."""
    import inspect

    fn = registry.get("selector", method)
    target = getattr(fn, "fit", None) or fn
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    fixed = {"data", "classes", "vpc", "seed", "fitted"}
    known = [k for k in params if k not in fixed]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"selector {method!r} has no option(s) {unknown}; its options: "
            f"{', '.join(known) or '(none)'}"
        )


def run_selector(
    method: str, data: ClassData, vpc: int, seed: int = 0, **options: Any
) -> np.ndarray:
    """Call a registered selector on one class and validate its answer.

    A method with a ``fit`` hook is fitted on this one class when ``fitted`` is not given.
    """
    fn = registry.get("selector", method)
    check_vpc(data, vpc)
    if getattr(fn, "fit", None) is not None and "fitted" not in options:
        options = fit_selector(method, [data], vpc, seed, **options)
    pos = np.asarray(fn(data, vpc, seed, **options), dtype=np.int64)
    if pos.shape != (vpc,) or len(set(pos.tolist())) != vpc or pos.min() < 0 or pos.max() >= data.n:
        raise RuntimeError(
            f"selector {method!r} returned {pos.tolist()} for class {data.name!r}: "
            f"need {vpc} distinct positions in [0, {data.n})"
        )
    return pos


def select_arrays(
    method: str,
    classes: Mapping[str, np.ndarray],
    vpc: int,
    seed: int = 0,
    scores: Mapping[str, np.ndarray] | None = None,
    **options: Any,
) -> dict[str, list[int]]:
    """In-memory API: ``{class: (n, D) embeddings}`` → ``{class: [row positions]}``."""
    data = [
        ClassData.from_array(
            x, name=name, label=label, scores=None if scores is None else scores[name]
        )
        for label, (name, x) in enumerate(classes.items())
    ]
    options = fit_selector(method, data, vpc, seed, **options)
    return {d.name: run_selector(method, d, vpc, seed, **options).tolist() for d in data}


def select_store(
    store: Any,
    method: str,
    vpc: int,
    seed: int = 0,
    embedder: str | None = None,
    split: str | None = "train",
    memory_budget_mb: int = DEFAULT_BUDGET_MB,
    out: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Select ``vpc`` clips per class of ``store``'s ``split`` with a registered method.

    Returns (and, with ``out``, atomically writes) the selection JSON that
    ``vidistill evaluate STORE --selection FILE`` reads; indices are store clip indices.
    Called by every rank of a launched job, the classes are shared out, every rank returns
    the whole selection and rank 0 writes it.
    """
    from tqdm.auto import tqdm

    from vidistill.clipstore import ClipStore
    from vidistill.embed.store import EmbeddingFile, embeddings_path

    store = store if isinstance(store, ClipStore) else ClipStore(store)
    if split != "train" and (store.splits == "test").any():
        raise ValueError(
            f"refusing to select from split {split or 'all'!r} of {store.root}: it holds a "
            "test split, and a selection that includes test clips would be evaluated on the "
            "clips it trained on. Use --split train (a generated pool has no test split)"
        )
    fn = registry.get("selector", method)
    needs = getattr(fn, "needs", ("embeddings",))
    budget = int(memory_budget_mb) << 20
    reader = None
    if needs:
        if embedder is None:
            raise ValueError(
                f"method {method!r} needs embeddings: pass --embedder NAME "
                f"(after `vidistill embed {store.root} --embedder NAME`)"
            )
        reader = EmbeddingFile(embeddings_path(store.root, embedder))
        if "scores" in needs and not reader.has_probs:
            raise ValueError(
                f"method {method!r} needs class probabilities, which embedder "
                f"{reader.embedder!r} does not provide; use --embedder classifier"
            )
        in_split = set(store.indices(split).tolist()) if split is not None else None
        if in_split is not None and not in_split.issubset(set(reader.indices.tolist())):
            raise ValueError(
                f"{reader.path} (split {reader.metadata.get('split')!r}) does not cover "
                f"split {split!r}; re-run `vidistill embed --split {split}`"
            )
    t0 = time.perf_counter()
    details = json.loads(reader.metadata.get("details", "{}")) if reader is not None else {}
    classes: list[tuple[np.ndarray, ClassData]] = []
    for label in range(store.num_classes):
        name = store.class_names[label]
        idx = store.indices(split, label) if split is not None else store.indices(None, label)
        if reader is not None:
            positions = np.searchsorted(reader.indices, idx)
            scores = own_class_log_odds(reader, positions, label) if "scores" in needs else None
            data = ClassData(
                name,
                label,
                len(idx),
                reader.dim,
                reader=reader,
                positions=positions,
                scores=scores,
                budget_bytes=budget,
            )
        else:
            data = ClassData(name, label, len(idx), None, budget_bytes=budget)
        data.details = details
        classes.append((idx, data))
    call_options = fit_selector(method, [d for _, d in classes], vpc, seed, **options)
    # under torchrun each rank selects in its share of the classes (strided), every rank
    # gets them all; a method's fit hook may itself share its work (vst-unet)
    mine = distributed.shard(len(classes), mode="strided").tolist()
    picked: list[list[int]] = []
    error: BaseException | None = None
    try:
        with distributed.alone():
            bar = tqdm(
                mine, desc=f"select {method}", disable=not (progress and distributed.is_main())
            )
            for i in bar:
                idx, data = classes[i]
                picked.append(idx[run_selector(method, data, vpc, seed, **call_options)].tolist())
    except Exception as err:
        if not distributed.current().distributed:
            raise
        error = err
    distributed.check(f"select {method}", error)
    every = distributed.all_gather_in_order(picked, len(classes), what=f"select {method}")
    result = {data.name: every[i] for i, (_, data) in enumerate(classes)}
    seconds = time.perf_counter() - t0
    doc = {
        "method": method,
        "vpc": vpc,
        "seed": seed,
        "seconds": round(seconds, 4),
        "embedder": embedder if needs else None,
        "split": split,
        "store": str(store.root),
        "options": options,
        "indices": result,
    }
    if out is not None and distributed.is_main():
        write_json_atomic(out, doc)
    return doc
