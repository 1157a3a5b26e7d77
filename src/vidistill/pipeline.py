"""`vidistill run CONFIG`: every stage over one run directory, resumable stage by stage.

Run directory::

    RUN/config.yaml            the resolved config
    RUN/data/                  the ClipStore (prepare)
    RUN/generate/model/        the generator (``generate`` set: trained, fine-tuned or converted)
    RUN/generate/pool/         the generated pool: a ClipStore (split "train" only), its
                               embeddings/ beside it; selections then index THIS store
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
from vidistill.config_check import EVALUATE_AUGMENT, RUN_OPTIONS, SYNTH_VPCS, check_config
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
    # evaluator seed s with random from the same pool; 10 = the protocol's default.
    # ddp (torchrun only): false | true | full — which stages train each run data-parallel
    # on all ranks instead of one run per rank (docs/scaling.md)
    "evaluate": {"preset": "toy-quick", "runs": 10, "seed": 0},
    "vpcs": [1, 5, 10],
    "references": ["full-real", "random"],
    "embedder": "classifier",
    "embedder_options": {},
    "select": [],
    "synthesize": {},
    # generate-then-select (paper 003): a generator → a pool the selectors select from; {}
    # = off (select from the real clips). Keys: GENERATE_DEFAULTS; docs/generation.md
    "generate": {},
    "report": True,
}

SHIPPED_PREFIX = "shipped:"  # generate.weights: the generator shipped in the package

# `generate:` (all optional; any key given turns the path on). Either ``weights`` (a trained
# generator: nothing is trained) or ``train`` (+ optional ``init``): train one on the REAL
# training split here. Stages: generate/train | generate/convert → generate/sample →
# embed/pool/EMBEDDER (trained on the real store) → select from the pool → evaluate.
GENERATE_DEFAULTS: dict[str, Any] = {
    # generator preset + GenerateConfig overrides, e.g. {preset: toy, steps: 5000}; default
    # {preset: toy} when neither train nor weights is given
    "train": None,
    "init": None,  # fine-tune from an official Latte checkpoint / `convert latte` folder
    # a finished `generate train` run or `convert latte` folder (used in place), or an
    # official checkpoint file (converted into RUN/generate/model once)
    "weights": None,  # a folder / checkpoint, or shipped:NAME (the package's own, e.g. shipped:toy)
    "vae": None,  # AutoencoderKL folder (the SD VAE for the official Latte); default: trained
    # the clip spec the generator trains at (e.g. {size: 256}: the official Latte's 256²),
    # prepared from the same data into RUN/generate/data; {} = the run's. The pool is
    # resampled to the run's spec, which the evaluator and the embedder use
    "spec": {},
    "pool_per_class": 100,  # N_c, the paper's 100
    "sampler": "ddim",  # ddim | dpm | ddpm (the official Latte sampler)
    "steps": 50,
    "cfg": 4.0,  # classifier-free guidance scale (1.0 = none; official ucf101.pt: 7.0)
    "batch": 32,
    "seed": 0,  # clip i of class c starts from noise seeded by (seed, c, i)
    "ema": True,  # sample the EMA weights
    "device": None,  # None: CUDA if available; "cpu" forces the CPU
}
# references a generate run adds: the whole pool, and random real clips beside random from
# the pool (``random`` = random from the pool the selectors select from: their IOR partner)
GENERATE_REFERENCES = ("full-syn", "random-real")


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
    try:
        user = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path_or_name}: not valid YAML ({err})".replace("\n", " ")) from err
    if not isinstance(user, dict):
        raise ValueError(
            f"{path_or_name}: a config is a YAML mapping (key: value lines), not a "
            f"{type(user).__name__}; see the shipped presets, e.g. toy-quick"
        )
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; valid keys: {sorted(DEFAULTS)}")
    cfg = copy.deepcopy(DEFAULTS)
    for k, v in user.items():
        cfg[k] = {**cfg[k], **v} if isinstance(cfg[k], dict) and isinstance(v, dict) else v
    generate_settings(cfg.get("generate"))  # a bad generate section fails here, in one line
    return check_config(cfg)


def generate_settings(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``generate:`` section with its defaults filled in and checked; ``None`` when off.

    ``train`` comes back resolved to a full generator config dict (preset + overrides)."""
    if not section:
        return None
    if not isinstance(section, dict):
        raise ValueError(f"generate: expected a mapping of {sorted(GENERATE_DEFAULTS)}")
    unknown = set(section) - set(GENERATE_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown generate keys {sorted(unknown)}; valid keys: {sorted(GENERATE_DEFAULTS)}"
        )
    g = {**GENERATE_DEFAULTS, **section}
    if g["weights"] is not None and (g["train"] is not None or g["init"] is not None):
        raise ValueError(
            "generate: give `weights` (a trained generator, nothing is trained) or "
            "`train`/`init` (train one here), not both"
        )
    for k in ("weights", "init", "vae", "device"):
        if g[k] is not None and not isinstance(g[k], str):
            raise ValueError(f"generate.{k} must be a path / name (a string), got {g[k]!r}")
    if g["weights"] is None:
        from vidistill.generate.config import GenerateConfig, preset

        if g["train"] is not None and not isinstance(g["train"], dict):
            raise ValueError(
                f"generate.train must be a mapping ({{preset: toy, steps: ...}}), got {g['train']!r}"
            )
        train = dict(g["train"] or {})
        base = preset(str(train.pop("preset", "toy")))
        g["train"] = GenerateConfig.from_dict({**base.to_dict(), **train}).to_dict()
    from vidistill.generate.sample import SAMPLERS

    if not isinstance(g["sampler"], str) or g["sampler"] not in SAMPLERS:
        raise ValueError(f"generate.sampler {g['sampler']!r}: choose one of {list(SAMPLERS)}")
    for k in ("pool_per_class", "steps", "batch"):
        if not isinstance(g[k], int) or isinstance(g[k], bool) or g[k] < 1:
            raise ValueError(f"generate.{k} must be an integer >= 1, got {g[k]!r}")
    if not isinstance(g["cfg"], int | float) or isinstance(g["cfg"], bool):
        raise ValueError(f"generate.cfg (guidance scale) must be a number, got {g['cfg']!r}")
    if not isinstance(g["seed"], int) or isinstance(g["seed"], bool):
        raise ValueError(f"generate.seed must be an integer, got {g['seed']!r}")
    if not isinstance(g["ema"], bool):
        raise ValueError(f"generate.ema must be true or false, got {g['ema']!r}")
    if not isinstance(g["spec"], dict):
        raise ValueError(
            f"generate.spec: a clip spec mapping (frames, size, ...), got {g['spec']!r}"
        )
    try:
        ClipSpec(**{**ClipSpec().to_dict(), **g["spec"]})  # unknown or bad fields fail here
    except TypeError as e:
        raise ValueError(f"generate.spec: {e} (fields: frames, size, stride, short_policy)") from e
    return g


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

    def marker(self, name: str) -> Path:
        """The stage's done-marker (its key changes exactly when the stage's inputs do)."""
        return self.root / "stages" / f"{name.replace('/', '__')}.json"

    def pending(self, name: str, config: Any, inputs: list[Path]) -> dict[str, Any] | None:
        """The stage's key if it must run; None (logged as skipped) if its marker matches."""
        key = {"config": _hash(config), "inputs": {str(p): _file_hash(p) for p in inputs}}
        if _marker_key(self.marker(name)) == key:
            self.log(f"[skip] {name} (done, inputs unchanged)")
            return None
        return key

    def done(self, name: str, key: dict[str, Any], seconds: float) -> None:
        """Write the stage's marker (last, atomically)."""
        write_json_atomic(
            self.marker(name),
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
        if not distributed.current().distributed:
            return self._here(name, config, inputs, fn)
        if where == "here":  # this rank's own task: data-parallel code inside runs alone
            with distributed.alone():
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


def _read_record(path: Path) -> dict[str, Any] | None:
    """A small bookkeeping JSON (done-marker, key file); None when absent or unreadable — a
    damaged one only means its stage runs again."""
    try:
        data = json.loads(path.read_bytes())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "key" in data else None


def _marker_key(marker: Path) -> Any:
    return (_read_record(marker) or {}).get("key")


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
    # the store the clips are drawn from (the row's ``pool``: its IOR partner is random from
    # the same one); None = the run's real store
    pool: ClipStore | None = None
    row_name: str | None = None  # tells two rows of one method apart (random-from-pool / -real)
    # seed -> (net, stats) already trained for that run (full-real: the classifier embedder's)
    trained: Callable[[int], Any] | None = None
    recipe: Any = None  # the evaluator recipe when not the run's (a synthesizer's evaluate_augment)


def selection_steps(
    run: Run,
    store: ClipStore,
    method: str,
    vpc: int,
    seeds: list[int],
    emb: str,
    pool_inputs: list[Path] | None = None,
) -> list[tuple[str, Any]]:
    """The paired protocol for one selector and VPC: one selection task per run seed (from
    ``store``), then the evaluation row that trains run s on selection s. ``pool_inputs``: the
    store is a generated pool (the row's ``pool``, so its IOR partner is random from it), and
    these files say when it was re-sampled (the evaluation then reruns too)."""
    from_pool = pool_inputs is not None
    from vidistill.embed.store import embeddings_path
    from vidistill.evaluate import load_selection, selection_set
    from vidistill.select import select_store

    key_extra = {"pool": True} if from_pool else {}
    steps: list[tuple[str, Any]] = [
        (
            "task",
            _Task(
                f"select/{method}/vpc{vpc}/seed{sd}",
                {"embedder": emb, "seed": sd, **key_extra},
                [embeddings_path(store.root, emb)],
                lambda s=sd: select_store(
                    store,
                    method,
                    vpc,
                    seed=s,
                    embedder=emb,
                    out=selection_path(run.root, method, vpc, s),
                ),  # fmt: skip
            ),
        )
        for sd in seeds
    ]
    steps.append(
        (
            "eval",
            _Evaluation(
                f"evaluate/{method}/vpc{vpc}",
                method,
                vpc,
                lambda: (
                    lambda s: selection_set(
                        store, load_selection(selection_path(run.root, method, vpc, s))
                    )
                ),
                [
                    *(selection_path(run.root, method, vpc, sd) for sd in seeds),
                    *(pool_inputs or []),
                ],
                store if from_pool else None,
            ),
        )
    )
    return steps


def _run_pipeline(
    config: dict[str, Any], out: str | Path, log: Callable[[str], None] = print
) -> Path:
    """Prepare → (embed → select | synthesize) → evaluate (+ references) → report; with a
    ``generate:`` section the selectors select from a generated pool instead of the real
    clips (:func:`generate_then_select`).

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
        random_subset,
    )
    from vidistill.evaluate.recipe import RUN_KEYS

    check_config(config)  # before anything is written (also for configs made in Python)
    gen = generate_settings(config.get("generate"))
    for ref in config["references"]:
        if ref in GENERATE_REFERENCES and gen is None:
            raise ValueError(f"reference {ref!r} needs a `generate:` section (a generated pool)")
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
    overrides = {k: v for k, v in ev.items() if k not in RUN_KEYS}
    recipe = Recipe.preset(ev["preset"], **overrides)
    # ddp is how the runs are shared out, not what they compute: not in the stage key
    eval_cfg = {"recipe": recipe.to_dict(), "runs": ev["runs"], "seed": ev["seed"]}
    seeds = [ev["seed"] + r for r in range(ev["runs"])]
    grid = _Grid(run, store, recipe, eval_cfg, seeds, ddp_methods(ev.get("ddp", False)))

    # the stages, in the one-process order: (kind, stage)
    steps: list[tuple[str, Any]] = []
    real = [store_dir / "store.json"]

    def embedder_net(seed: int) -> Any:
        """Full-real run ``seed``'s net when the classifier embedder already trained it."""
        from vidistill.embed.classifier import cached_full_real

        return cached_full_real(store, recipe, seed)

    if gen is not None:  # the pool replaces the real clips as what selectors select from
        steps += generate_then_select(run, config, gen, store, seeds, embedder_net)
    for ref in [] if gen is not None else config["references"]:
        if ref == "full-real":
            steps.append(
                (
                    "eval",
                    _Evaluation(
                        "evaluate/full-real",
                        "full-real",
                        None,
                        lambda: full_real(store),
                        real,
                        trained=embedder_net,
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

    if config["select"] and gen is None:
        from vidistill.embed import embed_store

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
                steps += selection_steps(run, store, method, vpc, seeds, emb)

    if config["synthesize"]:
        from vidistill.synthesize.runner import synthesize
        from vidistill.synthetic import SyntheticSet

        augmented: set[tuple[str, int]] = set()  # (augment, vpc) with its random row
        for method, entry in config["synthesize"].items():
            # entry: a mapping (check_config); the run's own keys are not the synthesizer's
            options = {k: v for k, v in entry.items() if k not in RUN_OPTIONS}
            augment = entry.get(EVALUATE_AUGMENT)
            for vpc in entry.get(SYNTH_VPCS) or config["vpcs"]:
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
                if augment is not None:
                    steps += _augmented_rows(steps[-1][1], augment, recipe, store, augmented)

    # embedding first: its classifier net is full-real run `seed` (reused, not retrained)
    steps.sort(key=lambda step: step[0] != "embed")
    if not ctx.distributed:
        for kind, step in steps:
            if kind == "eval":
                run.stage(
                    step.name, grid.key(step), step.inputs, lambda e=step: grid.evaluate_all(e)
                )
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


def _augmented_rows(
    plain: _Evaluation, augment: str, recipe: Any, store: ClipStore, done: set[tuple[str, int]]
) -> list[tuple[str, Any]]:
    """``plain``'s sets evaluated with the training augmentation ``augment`` (IDTD trains its
    students with τ, §4.3), and — once per (augment, VPC) — random real clips under the same
    recipe, so the row keeps a paired IOR: every row is compared under one recipe."""
    from vidistill.evaluate import random_subset

    tagged = recipe.with_(augment=augment)
    rows = [
        _Evaluation(
            f"evaluate/{plain.method}+{augment}/vpc{plain.vpc}",
            plain.method,
            plain.vpc,
            plain.source,
            plain.inputs,
            row_name=f"{plain.method} +{augment}",
            recipe=tagged,
        )
    ]
    if (augment, plain.vpc) not in done:  # first, so the method row logs its IOR
        done.add((augment, plain.vpc))
        draw = lambda v=plain.vpc: lambda s: random_subset(store, v, s)  # noqa: E731
        name = f"evaluate/random+{augment}/vpc{plain.vpc}"
        real = [store.root / "store.json"]
        rows.insert(
            0,
            _Evaluation(
                name, "random", plain.vpc, draw, real, row_name=f"random +{augment}", recipe=tagged
            ),
        )
    return [("eval", e) for e in rows]


WHOLE_SET_REFERENCES = ("full-real", "full-syn")


def ddp_methods(setting: Any) -> Callable[[str], bool]:
    """``evaluate.ddp``: which evaluate stages train each run data-parallel on ALL ranks
    under torchrun instead of one run per rank — ``false`` (default: none), ``true`` (all),
    ``full`` (the whole-set references full-real / full-syn, whose runs are the long ones)."""
    if setting is False or setting is None:
        return lambda method: False
    if setting is True:
        return lambda method: True
    if setting == "full":
        return lambda method: method in WHOLE_SET_REFERENCES
    raise ValueError(f"evaluate.ddp: false, true or full, got {setting!r}")


class _Grid:
    """The evaluate stages of one run: all runs of a stage in this process, or the runs of
    many stages shared out across ranks (``together(method)``: those stages instead train
    each run data-parallel on every rank)."""

    def __init__(
        self,
        run: Run,
        store: ClipStore,
        recipe: Any,
        eval_cfg: dict[str, Any],
        seeds: list[int],
        together: Callable[[str], bool] = lambda method: False,
    ):
        self.run, self.store, self.recipe, self.eval_cfg, self.seeds = (
            run,
            store,
            recipe,
            eval_cfg,
            seeds,
        )
        self.together = together
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

    def key(self, e: _Evaluation) -> dict[str, Any]:
        """The stage key of ``e``: the run's evaluate settings with ``e``'s own recipe."""
        return (
            self.eval_cfg if e.recipe is None else {**self.eval_cfg, "recipe": e.recipe.to_dict()}
        )

    def _evaluate(self, e: _Evaluation, runs: int, seed: int, progress: bool) -> dict[str, Any]:
        from vidistill.evaluate import evaluate

        row = evaluate(
            self._source_of(e),
            self.store,
            e.recipe or self.recipe,
            runs=runs,
            seed=seed,
            method=e.method,
            vpc=e.vpc,
            pool=str(e.pool.root) if e.pool is not None else self.pool,
            progress=progress,
            trained=e.trained,
        )
        if e.row_name:
            row["row_name"] = e.row_name
        return row

    def _merge(self, row: dict[str, Any]) -> None:
        from vidistill.evaluate import update_results
        from vidistill.evaluate.paired import format_ior
        from vidistill.evaluate.results import row_key

        merged = update_results(self.results, [row])
        row = next(r for r in merged if row_key(r) == row_key(row))
        refs = ("random", "full-real", "full-syn")
        ior = "" if row["method"] in refs else f", IOR {format_ior(row)}"
        self.run.log(
            f"       {row.get('row_name') or row['method']} vpc={row['vpc']}: top-1 {row['top1_mean']:.1f} ± "
            f"{row['top1_std']:.1f} %{ior}"
        )

    def evaluate_all(self, e: _Evaluation) -> None:
        """One process: the stage's runs one after the other, one row."""
        self._merge(self._evaluate(e, len(self.seeds), self.seeds[0], progress=True))

    def _evaluate_together(self, e: _Evaluation, key: dict[str, Any]) -> None:
        """Every rank: the stage's runs one after the other, each trained data-parallel on
        all ranks (:mod:`vidistill.evaluate.ddp`); rank 0 writes the row and the marker."""
        t0 = time.perf_counter()
        if distributed.is_main():
            self.run.log(f"[run ] {e.name} (data-parallel)")
        row, error = None, None
        try:
            row = self._evaluate(e, len(self.seeds), self.seeds[0], progress=False)
        except Exception as err:
            error = err
        distributed.check(f"{e.name} (data-parallel)", error)

        def finish() -> None:
            self._merge(row)
            self.run.done(e.name, key, time.perf_counter() - t0)

        distributed.on_main(finish, f"{e.name} (write)")

    def evaluate_sharded(self, evaluations: list[_Evaluation]) -> None:
        """Every rank: the (stage, seed) runs of the stages that must run, shared out in
        rounds of W (rank r takes run r of each round); rank 0 finishes each stage — row,
        results.json, marker — once its last run is in."""
        from vidistill.evaluate import combine_runs

        run = self.run

        def decide() -> list[tuple[int, dict[str, Any]]]:
            out = []
            for i, e in enumerate(evaluations):
                key = run.pending(e.name, self.key(e), e.inputs)
                if key is not None:
                    out.append((i, key))
            return out

        todo = distributed.on_main(decide, "decide the evaluate stages")
        keys = dict(todo)
        for i, _ in todo:  # data-parallel stages: every rank trains each run together
            e = evaluations[i]
            if self.together(e.method):
                self._evaluate_together(e, keys[i])
        todo = [(i, k) for i, k in todo if not self.together(evaluations[i].method)]
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


# -- generate-then-select (paper 003) ---------------------------------------------------------
def pool_dir(root: Path) -> Path:
    """The generated pool of a run with a ``generate:`` section."""
    return root / "generate" / "pool"


def generate_then_select(
    run: Run,
    config: dict[str, Any],
    gen: dict[str, Any],
    store: ClipStore,
    seeds: list[int],
    embedder_net: Callable[[int], Any] | None = None,
) -> list[tuple[str, Any]]:
    """Generator → pool (run here, now: ``generate/prepare`` | ``generate/train`` |
    ``generate/convert``, then ``generate/sample``) and the stages that follow, returned as
    :func:`_run_pipeline`'s ``(kind, stage)`` steps: embed the pool, select from it per run
    seed, evaluate.

    Rows (all tested on the REAL test split): ``full-real`` (every real training clip),
    ``full-syn`` (every pool clip), ``random`` shown as *random-from-pool* (VPC pool clips
    per class: the selectors' IOR partner, same pool), ``random`` shown as *random-real*
    (VPC real clips per class: what the pool is worth against the real set), and every
    selector, whose selections index the pool. Under torchrun the generator trains on every
    rank (``generate train`` is data-parallel through accelerate), the ranks share the
    pool's batches, and the embedding, selections and evaluation runs are shared like the real path's."""
    from vidistill.embed import embed_store
    from vidistill.evaluate import full_real, random_subset
    from vidistill.evaluate.trainset import TrainingSet

    ev = config["evaluate"]
    real_head = store.root / "store.json"
    model_dir = _generator(run, config, gen, store, run.log)
    pool = _sample_pool(run, gen, model_dir, store)
    # the pool as sampled: its sample marker's key names the generator files and settings, so
    # every row drawn from the pool reruns when it is re-sampled (even if the indices match)
    pool_inputs = [pool.root / "store.json", run.marker("generate/sample")]

    steps: list[tuple[str, Any]] = []
    for ref in config["references"]:
        if ref == "full-real":
            steps.append(
                (
                    "eval",
                    _Evaluation(
                        "evaluate/full-real",
                        "full-real",
                        None,
                        lambda: full_real(store),
                        [real_head],
                        trained=embedder_net,
                    ),
                )
            )
        elif ref == "full-syn":
            whole = lambda: TrainingSet.from_store(  # noqa: E731
                pool, pool.indices("train"), meta={"method": "full-syn"}
            )
            steps.append(
                (
                    "eval",
                    _Evaluation("evaluate/full-syn", "full-syn", None, whole, pool_inputs, pool),
                )
            )
        elif ref in ("random", "random-real"):
            src, head = (pool, pool_inputs) if ref == "random" else (store, [real_head])
            name = "random-from-pool" if ref == "random" else "random-real"
            for vpc in config["vpcs"]:
                draw = lambda v=vpc, src=src: lambda s: random_subset(src, v, s)  # noqa: E731
                steps.append(
                    (
                        "eval",
                        _Evaluation(
                            f"evaluate/{ref}/vpc{vpc}", "random", vpc, draw, head, src, name
                        ),
                    )
                )
        else:
            raise ValueError(
                f"unknown reference {ref!r}; with generate: full-real, full-syn, random "
                "(from the pool), random-real"
            )

    if not config["select"]:
        return steps
    emb, opts = config["embedder"], _pool_embedder_options(config, gen, model_dir, store)
    steps.append(
        (
            "embed",
            _Task(
                f"embed/pool/{emb}",
                {"embedder": emb, "options": opts},
                [*pool_inputs, pool.root / "manifest.json", real_head],
                lambda: embed_store(pool, emb, seed=ev["seed"], progress=True, **opts),
            ),
        )
    )
    for method in config["select"]:
        for vpc in config["vpcs"]:
            steps += selection_steps(run, pool, method, vpc, seeds, emb, pool_inputs)
    return steps


def _generator(
    run: Run,
    config: dict[str, Any],
    gen: dict[str, Any],
    store: ClipStore,
    log: Callable[[str], None],
) -> Path:
    """The generator folder: ``weights`` as given (a folder) or converted into the run (an
    official checkpoint file), else trained here (``generate/train``) on the real store."""
    model_dir = run.root / "generate" / "model"
    vae = [Path(gen["vae"])] if gen["vae"] else []
    if gen["weights"] is not None:
        if gen["weights"].startswith(SHIPPED_PREFIX):  # e.g. shipped:toy — in the package
            from vidistill.generate.shipped import shipped_generator

            return shipped_generator(gen["weights"][len(SHIPPED_PREFIX) :])
        weights = Path(gen["weights"])
        if not weights.exists():
            raise FileNotFoundError(f"generate.weights: {weights} does not exist")
        if weights.is_dir():
            return weights
        run.stage(
            "generate/convert",
            {"weights": str(weights.resolve()), "vae": gen["vae"]},
            [weights, *vae],
            lambda: _convert(weights, model_dir, gen["vae"]),
        )
        return model_dir
    init = [Path(gen["init"])] if gen["init"] else []
    for path in init + vae:
        if not path.exists():
            raise FileNotFoundError(f"generate: {path} does not exist")
    train_store = _generator_store(run, config, gen, store)
    run.stage(
        "generate/train",
        {k: gen[k] for k in ("train", "init", "vae", "device")},
        [train_store.root / "store.json", *init, *vae],
        lambda: _train_generator(train_store, model_dir, gen, log),
        where="all",  # `generate train` is data-parallel under torchrun (accelerate)
    )
    return model_dir


def _generator_store(
    run: Run, config: dict[str, Any], gen: dict[str, Any], store: ClipStore
) -> ClipStore:
    """The real clips the generator learns from: the run's store, or — with
    ``generate.spec`` — the same data prepared at that spec (``generate/prepare``)."""
    spec = ClipSpec(**{**store.spec.to_dict(), **gen["spec"]})
    if spec == store.spec:
        return store
    root = run.root / "generate" / "data"

    def do_prepare() -> None:
        from vidistill.prepare import prepare

        shutil.rmtree(root, ignore_errors=True)  # a stale store (other data or spec)
        ds = registry.get("dataset", config["dataset"])(**config["dataset_options"])
        prepare(ds, root, spec=spec, workers=config["workers"])

    run.stage(
        "generate/prepare",
        {
            "dataset": config["dataset"],
            "options": config["dataset_options"],
            "spec": spec.to_dict(),
        },
        [],
        do_prepare,
    )
    return ClipStore(root)


def _convert(weights: Path, model_dir: Path, vae: str | None) -> None:
    from vidistill.generate.pretrained import convert_latte

    shutil.rmtree(model_dir, ignore_errors=True)
    convert_latte(weights, model_dir, vae_dir=vae)


def _train_generator(
    store: ClipStore, model_dir: Path, gen: dict[str, Any], log: Callable[[str], None]
) -> None:
    """``generate train`` into ``model_dir``. A folder left by a killed run of the same
    settings resumes from its last checkpoint, and so does a finished one given more
    ``steps`` (the loop is exact on resume); any other change starts afresh. Under torchrun
    every rank calls this: rank 0 readies the folder, then all train (data-parallel)."""
    from vidistill.generate import GenerateConfig, train
    from vidistill.generate.train import _RESUMABLE

    cfg = GenerateConfig.from_dict(gen["train"])
    key = {
        "generator": {k: v for k, v in cfg.to_dict().items() if k not in _RESUMABLE},
        "init": gen["init"],
        "vae": gen["vae"],
        "store": [_file_hash(store.root / f) for f in ("store.json", "manifest.json")],
    }
    keyfile = model_dir / "pipeline.json"

    def ready() -> None:
        old = _read_record(keyfile)
        if model_dir.exists() and (
            old is None or old["key"] != key or old.get("steps", 0) > cfg.steps
        ):
            shutil.rmtree(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(keyfile, {"key": json.loads(json.dumps(key)), "steps": cfg.steps})

    distributed.on_main(ready, "ready the generator folder")
    train(
        store.root,
        model_dir,
        cfg,
        vae_dir=gen["vae"],
        init=gen["init"],
        cpu=gen["device"] == "cpu",
        log=log,
    )


def _sample_pool(run: Run, gen: dict[str, Any], model_dir: Path, store: ClipStore) -> ClipStore:
    """``generate/sample``: ``pool_per_class`` clips of every real class, at the real store's
    clip spec, clip i of class c seeded by (seed, c, i) — reproducible and extendable (and
    so independent of how it is sampled). Under torchrun every rank samples a share of the
    batches (:func:`vidistill.generate.sample_pool`), rank 0 writes the store."""
    from vidistill.generate import sample_pool

    out = pool_dir(run.root)
    settings = {
        k: gen[k] for k in ("pool_per_class", "sampler", "steps", "cfg", "batch", "seed", "ema")
    }
    settings.update(vae=gen["vae"], classes=store.class_names, spec=store.spec.to_dict())
    weights = model_dir / ("ema.safetensors" if gen["ema"] else "model.safetensors")
    # done.json changes whenever the generator is retrained, even when a large weights file
    # is hashed by size alone
    inputs = [
        p for p in (model_dir / "config.json", weights, model_dir / "done.json") if p.is_file()
    ]

    def do_sample() -> None:
        # unfinished batches of the SAME settings and generator are kept (resume by batch)
        key = _hash([settings, {p.name: _file_hash(p) for p in inputs}])
        keyfile = out / ".pipeline-key"

        def ready() -> None:
            if out.exists() and (not keyfile.is_file() or keyfile.read_text() != key):
                shutil.rmtree(out)
            out.mkdir(parents=True, exist_ok=True)
            keyfile.write_text(key)

        distributed.on_main(ready, "ready the pool folder")
        sample_pool(
            model_dir,
            out,
            gen["pool_per_class"],
            steps=gen["steps"],
            guidance=gen["cfg"],
            sampler=gen["sampler"],
            batch=gen["batch"],
            seed=gen["seed"],
            ema=gen["ema"],
            device=gen["device"],
            vae=gen["vae"],
            seeding="clip",
            class_names=store.class_names,
            frames=store.spec.frames,
            size=store.spec.size,
        )

    # every rank samples its share of the batches; rank 0 writes the store
    run.stage("generate/sample", settings, inputs, do_sample, where="all")
    return ClipStore(out)


def _pool_embedder_options(
    config: dict[str, Any], gen: dict[str, Any], model_dir: Path, store: ClipStore
) -> dict[str, Any]:
    """``embedder_options`` for the pool: a net learning from clips learns from the REAL
    store (``train_store``), the ``latent`` embedder uses the generator's VAE by default."""
    import inspect

    emb = config["embedder"]
    opts = dict(config["embedder_options"])
    params = inspect.signature(registry.get("embedder", emb)).parameters
    if "train_store" in params:
        opts.setdefault("train_store", str(store.root))
    if emb == "latent":
        opts.setdefault("weights", gen["vae"] or str(model_dir))
    return opts


def _report(root: Path, store: ClipStore, config: dict[str, Any]) -> None:
    """RUN/report/: tables, plot, costs, per class clips and the pool projection of run 0."""
    from vidistill.report import report_run

    report_run(root, root / "report", config=config, store=store)
