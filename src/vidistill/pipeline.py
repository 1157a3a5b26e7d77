"""`vidistill run CONFIG`: every stage over one run directory, resumable stage by stage.

Run directory::

    RUN/config.yaml            the resolved config
    RUN/data/                  the ClipStore (prepare)
    RUN/select/M_vpcK_seedS.json  selections   RUN/synth/M_vpcK_seedS/  synthetic sets
                               (one per run seed S: the paired protocol redoes both per run)
    RUN/results.json           evaluator rows      RUN/report/         report.md + report.html
    RUN/stages/NAME.json       done markers: config hash, input hashes, versions, wall time, peak RSS

A stage whose marker matches its current config and inputs is skipped; a killed stage
leaves no marker (markers are written last, atomically) and simply runs again — each
stage's own writes are atomic, so nothing half-written is ever read back.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vidistill import __version__, distributed, registry
from vidistill.atomic import write_bytes_atomic, write_json_atomic
from vidistill.clipstore import ClipSpec, ClipStore
from vidistill.errors import RunInUse
from vidistill.evaluate.costs import peak_rss_mb

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "dataset": "toy",
    "dataset_options": {},
    "spec": {},
    "workers": None,
    # preset/runs/seed, plus any Recipe field as an override (net, width, epochs, min_steps, ...)
    # runs: paired runs (DESIGN §4): run s re-selects / re-synthesises with seed s and shares
    # evaluator seed s with random from the same pool; 10 = the protocol's default
    "evaluate": {"preset": "toy-quick", "runs": 10, "seed": 0},
    "vpcs": [1, 5, 10],
    "references": ["full-real", "random"],
    "embedder": "classifier",
    "embedder_options": {},
    "select": [],
    "synthesize": {},
    "report": True,
}


def load_config(path_or_name: str | Path) -> dict[str, Any]:
    """A YAML file, or the name of a shipped preset in ``configs/`` (e.g. ``toy-quick``)."""
    path = Path(path_or_name)
    if not path.is_file():
        shipped = resources.files("vidistill") / "configs" / f"{path_or_name}.yaml"
        if not shipped.is_file():
            names = sorted(
                p.name[:-5]
                for p in (resources.files("vidistill") / "configs").iterdir()
                if p.name.endswith(".yaml")
            )
            raise FileNotFoundError(
                f"no config file {path_or_name!r}; shipped presets: {', '.join(names)}"
            )
        text = shipped.read_text()
    else:
        text = path.read_text()
    user = yaml.safe_load(text) or {}
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; valid keys: {sorted(DEFAULTS)}")
    cfg = copy.deepcopy(DEFAULTS)
    for k, v in user.items():
        cfg[k] = {**cfg[k], **v} if isinstance(cfg[k], dict) and isinstance(v, dict) else v
    return cfg


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if f.name.startswith(".") or f.suffix in (".lock",):
            continue
        h.update(f.name.encode())
        h.update(f.read_bytes() if f.stat().st_size < 64 << 20 else str(f.stat().st_size).encode())
    return h.hexdigest()[:16]


class Run:
    """One run directory; :meth:`stage` runs a step unless its done-marker matches.

    Under torchrun (:mod:`vidistill.distributed`) rank 0 is the only one that decides and
    writes markers of shared stages: ``where="main"`` stages run on rank 0 while the others
    wait, ``where="all"`` stages run on every rank (the step shards its own work), and
    ``where="here"`` stages run on the calling rank alone (a task sharded to it, with its
    own output file and marker). Not launched, all three are the same thing.
    """

    def __init__(
        self, root: str | Path, config: dict[str, Any], log: Callable[[str], None] = print
    ):
        self.root = Path(root)
        self.config = config
        self.log = log
        self.root.mkdir(parents=True, exist_ok=True)
        if distributed.is_main():
            write_bytes_atomic(
                self.root / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode()
            )

    def _marker(self, name: str) -> Path:
        return self.root / "stages" / f"{name.replace('/', '__')}.json"

    def pending(self, name: str, config: Any, inputs: list[Path]) -> dict[str, Any] | None:
        """The stage's key if it must run; None (logged as skipped) if its marker matches."""
        key = {"config": _hash(config), "inputs": {str(p): _file_hash(p) for p in inputs}}
        marker = self._marker(name)
        if marker.is_file() and json.loads(marker.read_text()).get("key") == key:
            self.log(f"[skip] {name} (done, inputs unchanged)")
            return None
        return key

    def done(self, name: str, key: dict[str, Any], seconds: float) -> None:
        """Write the stage's marker (last, atomically)."""
        write_json_atomic(
            self._marker(name),
            {
                "stage": name,
                "key": key,
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "versions": {
                    "vidistill": __version__,
                    "python": platform.python_version(),
                    **_torch_version(),
                },
            },
        )

    def _here(self, name: str, config: Any, inputs: list[Path], fn: Callable[[], Any]) -> bool:
        key = self.pending(name, config, inputs)
        if key is None:
            return False
        self.log(f"[run ] {name}")
        t0 = time.perf_counter()
        fn()
        self.done(name, key, time.perf_counter() - t0)
        return True

    def stage(
        self,
        name: str,
        config: Any,
        inputs: list[Path],
        fn: Callable[[], Any],
        where: str = "main",
    ) -> bool:
        """Run ``fn`` unless ``stages/name.json`` records the same config and input hashes.
        ``where``: ``main`` (rank 0 runs it, the others wait), ``all`` (every rank runs
        it), ``here`` (this rank alone). Returns whether it ran."""
        if not distributed.current().distributed or where == "here":
            return self._here(name, config, inputs, fn)
        if where == "main":
            return distributed.on_main(lambda: self._here(name, config, inputs, fn), name)
        if where != "all":
            raise ValueError(f"where={where!r}: use 'main', 'all' or 'here'")
        key = distributed.on_main(lambda: self.pending(name, config, inputs), f"{name} (decide)")
        if key is None:
            return False
        if distributed.is_main():
            self.log(f"[run ] {name}")
        t0 = time.perf_counter()
        distributed.call_all(fn, name)
        distributed.on_main(lambda: self.done(name, key, time.perf_counter() - t0), name)
        return True


def _torch_version() -> dict[str, str]:
    import torch

    return {"torch": torch.__version__}


def selection_path(root: Path, method: str, vpc: int, seed: int) -> Path:
    """The selection of ``method`` at ``vpc`` made with run seed ``seed``."""
    return root / "select" / f"{method}_vpc{vpc}_seed{seed}.json"


def synth_path(root: Path, method: str, vpc: int, seed: int) -> Path:
    """The synthetic set of ``method`` at ``vpc`` learned with run seed ``seed``."""
    return root / "synth" / f"{method}_vpc{vpc}_seed{seed}"


@contextlib.contextmanager
def run_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.run.lock`` (``flock``) for the whole run, so two ``vidistill run`` on one
    directory never interleave their writes: the second refuses at once, naming the first."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".run.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise RunInUse(
                f"{root} is in use by {holder}: wait for that run to finish (it resumes "
                "from its stages), or pass another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"vidistill run (pid {os.getpid()})")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_pipeline(
    config: dict[str, Any], out: str | Path, log: Callable[[str], None] = print
) -> Path:
    """:func:`_run_pipeline` under the run directory's lock.

    Under torchrun every rank calls this: rank 0 holds the lock and writes the shared files
    (stage markers, results.json, the report); selections, syntheses and evaluation runs
    are shared out across ranks (see :func:`_run_pipeline`)."""
    ctx = distributed.init()
    if not ctx.distributed:
        with run_lock(Path(out)):
            return _run_pipeline(config, out, log)
    with contextlib.ExitStack() as held:
        distributed.call_all(
            lambda: held.enter_context(run_lock(Path(out))) if ctx.is_main else None,
            "lock the run directory",
        )
        rank_log = log if ctx.is_main else (lambda line: log(f"[rank {ctx.rank}] {line}"))
        return _run_pipeline(config, out, rank_log)


@dataclass
class _Task:
    """A stage that one rank runs alone: a selection or a synthesis of one run seed."""

    name: str
    config: Any
    inputs: list[Path]
    fn: Callable[[], Any]


@dataclass
class _Evaluation:
    """An evaluate stage: one row of ``runs`` paired runs of one method (or reference)."""

    name: str
    method: str
    vpc: int | None
    source: Callable[[], Any]  # makes evaluate's source: a TrainingSet, or seed -> TrainingSet
    inputs: list[Path] = field(default_factory=list)


def _run_pipeline(
    config: dict[str, Any], out: str | Path, log: Callable[[str], None] = print
) -> Path:
    """Prepare → (embed → select | synthesize) → evaluate (+ references) → report.

    Per-run protocol: for run seed ``s`` (``evaluate.seed + r``) every selector selects and
    every synthesizer learns with seed ``s``, and the evaluator trains run ``s`` on that set
    with seed ``s``, paired with random run ``s`` from the same pool (the real store).

    Under torchrun (world W > 1) the same stages run in phases: prepare (rank 0), embed
    (every rank embeds a share, :func:`vidistill.embed.embed_store`), all selections and
    syntheses (one (method, VPC, seed) task per rank in turn, strided), then all evaluation
    runs (one (stage, seed) run per rank in turn; rank 0 combines each stage's runs into its
    row with :func:`vidistill.evaluate.combine_runs`, merges it into results.json and writes
    the marker as soon as the stage's last run is in), then the report (rank 0). Run ``s``
    depends only on its seed, so the rows are the one-process rows (up to timings)."""
    from vidistill.evaluate import (
        Recipe,
        TrainingSet,
        full_real,
        load_selection,
        random_subset,
        selection_set,
    )

    ctx = distributed.current()
    run = Run(out, config, log)
    store_dir = run.root / "data"
    ds_cfg = {
        "dataset": config["dataset"],
        "options": config["dataset_options"],
        "spec": config["spec"],
    }

    def do_prepare() -> None:
        from vidistill.prepare import prepare

        ds = registry.get("dataset", config["dataset"])(**config["dataset_options"])
        spec = ClipSpec(**{**ds.default_spec().to_dict(), **config["spec"]})
        try:
            prepare(ds, store_dir, spec=spec, workers=config["workers"])
        except FileExistsError:
            # the dataset or spec changed since the store was built: it is stale (and so is
            # everything downstream, whose markers hash store.json), so build it afresh
            shutil.rmtree(store_dir)
            prepare(ds, store_dir, spec=spec, workers=config["workers"])

    run.stage("prepare", ds_cfg, [], do_prepare)
    store = ClipStore(store_dir)
    ev = config["evaluate"]
    overrides = {k: v for k, v in ev.items() if k not in ("preset", "runs", "seed")}
    recipe = Recipe.preset(ev["preset"], **overrides)
    eval_cfg = {"recipe": recipe.to_dict(), "runs": ev["runs"], "seed": ev["seed"]}
    seeds = [ev["seed"] + r for r in range(ev["runs"])]
    grid = _Grid(run, store, recipe, eval_cfg, seeds)

    # the stages, in the one-process order: (kind, stage)
    steps: list[tuple[str, Any]] = []
    real = [store_dir / "store.json"]
    for ref in config["references"]:
        if ref == "full-real":
            steps.append(
                (
                    "eval",
                    _Evaluation(
                        "evaluate/full-real", "full-real", None, lambda: full_real(store), real
                    ),
                )
            )
        elif ref == "random":
            for vpc in config["vpcs"]:
                draw = lambda v=vpc: lambda s: random_subset(store, v, s)  # noqa: E731
                steps.append(
                    ("eval", _Evaluation(f"evaluate/random/vpc{vpc}", "random", vpc, draw, real))
                )
        else:
            raise ValueError(f"unknown reference {ref!r}; use full-real or random")

    if config["select"]:
        from vidistill.embed import embed_store, embeddings_path
        from vidistill.select import select_store

        emb = config["embedder"]
        emb_opts = config["embedder_options"]
        steps.append(
            (
                "embed",
                _Task(
                    f"embed/{emb}",
                    {"embedder": emb, "options": emb_opts},
                    [store_dir / "store.json"],
                    lambda: embed_store(store, emb, seed=ev["seed"], progress=True, **emb_opts),
                ),
            )
        )
        for method in config["select"]:
            for vpc in config["vpcs"]:
                # the paired protocol: one selection per run seed, evaluated in that run
                for sd in seeds:
                    steps.append(
                        (
                            "task",
                            _Task(
                                f"select/{method}/vpc{vpc}/seed{sd}",
                                {"embedder": emb, "seed": sd},
                                [embeddings_path(store.root, emb)],
                                lambda m=method, v=vpc, s=sd: select_store(
                                    store,
                                    m,
                                    v,
                                    seed=s,
                                    embedder=emb,
                                    out=selection_path(run.root, m, v, s),
                                ),
                            ),
                        )
                    )
                steps.append(
                    (
                        "eval",
                        _Evaluation(
                            f"evaluate/{method}/vpc{vpc}",
                            method,
                            vpc,
                            lambda m=method, v=vpc: (
                                lambda s: selection_set(
                                    store, load_selection(selection_path(run.root, m, v, s))
                                )
                            ),
                            [selection_path(run.root, method, vpc, sd) for sd in seeds],
                        ),
                    )
                )

    if config["synthesize"]:
        from vidistill.synthesize.runner import synthesize
        from vidistill.synthetic import SyntheticSet

        for method, options in config["synthesize"].items():
            for vpc in config["vpcs"]:
                # one learned set per run seed, as for selections
                for sd in seeds:
                    steps.append(
                        (
                            "task",
                            _Task(
                                f"synthesize/{method}/vpc{vpc}/seed{sd}",
                                {"options": options, "seed": sd},
                                [store_dir / "store.json"],
                                lambda m=method, v=vpc, s=sd, o=options: synthesize(
                                    store,
                                    m,
                                    v,
                                    synth_path(run.root, m, v, s),
                                    options=dict(o or {}),
                                    seed=s,
                                ),
                            ),
                        )
                    )
                steps.append(
                    (
                        "eval",
                        _Evaluation(
                            f"evaluate/{method}/vpc{vpc}",
                            method,
                            vpc,
                            lambda m=method, v=vpc: (
                                lambda s: TrainingSet.from_synthetic(
                                    SyntheticSet.load(synth_path(run.root, m, v, s))
                                )
                            ),
                            [
                                synth_path(run.root, method, vpc, sd) / "synthetic.safetensors"
                                for sd in seeds
                            ],
                        ),
                    )
                )

    if not ctx.distributed:
        for kind, step in steps:
            if kind == "eval":
                run.stage(step.name, eval_cfg, step.inputs, lambda e=step: grid.evaluate_all(e))
            else:
                run.stage(step.name, step.config, step.inputs, step.fn)
    else:
        for kind, step in steps:  # embedding: every rank embeds its share
            if kind == "embed":
                run.stage(step.name, step.config, step.inputs, step.fn, where="all")
        tasks = [step for kind, step in steps if kind == "task"]
        error: BaseException | None = None
        try:  # selections and syntheses: rank r takes tasks r, r + W, ...
            for i in distributed.shard(len(tasks), mode="strided").tolist():
                run.stage(tasks[i].name, tasks[i].config, tasks[i].inputs, tasks[i].fn, "here")
        except Exception as err:
            error = err
        distributed.check("selections and syntheses", error)
        grid.evaluate_sharded([step for kind, step in steps if kind == "eval"])

    if config["report"]:
        results = run.root / "results.json"
        run.stage("report", {}, [results], lambda: _report(run.root, store, config))
    return run.root


class _Grid:
    """The evaluate stages of one run: all runs of a stage in this process, or the runs of
    many stages shared out across ranks."""

    def __init__(
        self, run: Run, store: ClipStore, recipe: Any, eval_cfg: dict[str, Any], seeds: list[int]
    ):
        self.run, self.store, self.recipe, self.eval_cfg, self.seeds = (
            run,
            store,
            recipe,
            eval_cfg,
            seeds,
        )
        self.results = run.root / "results.json"
        self.pool = str(store.root)  # the pool every method here selects / learns from
        self._source: tuple[_Evaluation | None, Any] = (None, None)

    def _source_of(self, e: _Evaluation) -> Any:
        """evaluate's source for ``e``, made once for consecutive runs of one stage (the
        full-real set is read from the store once, not once per run)."""
        if self._source[0] is not e:
            self._source = (None, None)  # let the previous set go first
            self._source = (e, e.source())
        return self._source[1]

    def _evaluate(self, e: _Evaluation, runs: int, seed: int, progress: bool) -> dict[str, Any]:
        from vidistill.evaluate import evaluate

        return evaluate(
            self._source_of(e),
            self.store,
            self.recipe,
            runs=runs,
            seed=seed,
            method=e.method,
            vpc=e.vpc,
            pool=self.pool,
            progress=progress,
        )

    def _merge(self, row: dict[str, Any]) -> None:
        from vidistill.evaluate import update_results
        from vidistill.evaluate.paired import format_ior
        from vidistill.evaluate.results import row_key

        merged = update_results(self.results, [row])
        row = next(r for r in merged if row_key(r) == row_key(row))
        ior = "" if row["method"] in ("random", "full-real") else f", IOR {format_ior(row)}"
        self.run.log(
            f"       {row['method']} vpc={row['vpc']}: top-1 {row['top1_mean']:.1f} ± "
            f"{row['top1_std']:.1f} %{ior}"
        )

    def evaluate_all(self, e: _Evaluation) -> None:
        """One process: the stage's runs one after the other, one row."""
        self._merge(self._evaluate(e, len(self.seeds), self.seeds[0], progress=True))

    def evaluate_sharded(self, evaluations: list[_Evaluation]) -> None:
        """Every rank: the (stage, seed) runs of the stages that must run, shared out in
        rounds of W (rank r takes run r of each round); rank 0 finishes each stage — row,
        results.json, marker — once its last run is in."""
        from vidistill.evaluate import combine_runs

        run = self.run

        def decide() -> list[tuple[int, dict[str, Any]]]:
            out = []
            for i, e in enumerate(evaluations):
                key = run.pending(e.name, self.eval_cfg, e.inputs)
                if key is not None:
                    out.append((i, key))
            return out

        todo = distributed.on_main(decide, "decide the evaluate stages")
        keys = dict(todo)
        jobs = [(i, s) for i, _ in todo for s in self.seeds]
        world = distributed.current().world
        rows: dict[int, list[dict[str, Any]]] = {i: [] for i in keys}
        started: dict[int, float] = {}
        for first in range(0, len(jobs), world):
            chunk = jobs[first : first + world]
            for i, _ in chunk:
                if i not in started:
                    started[i] = time.perf_counter()
                    if distributed.is_main():
                        run.log(f"[run ] {evaluations[i].name}")
            got = distributed.map_in_order(
                lambda j, c=chunk: self._evaluate(evaluations[c[j][0]], 1, c[j][1], False),
                len(chunk),
                mode="strided",
                what="evaluation runs " + ", ".join(f"{evaluations[i].name}#{s}" for i, s in chunk),
            )
            if got is None:
                continue  # rank 0 merges
            for (i, _), row in zip(chunk, got, strict=True):
                rows[i].append(row)
                if len(rows[i]) == len(self.seeds):
                    self._merge(combine_runs(rows[i]))
                    run.done(evaluations[i].name, keys[i], time.perf_counter() - started[i])
        distributed.check("evaluations")


def _report(root: Path, store: ClipStore, config: dict[str, Any]) -> None:
    """RUN/report/: tables, plot, costs, per class clips and the pool projection of run 0."""
    from vidistill.report import report_run

    report_run(root, root / "report", config=config, store=store)
