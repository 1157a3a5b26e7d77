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
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vidistill import __version__, registry
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
    """One run directory; :meth:`stage` runs a step unless its done-marker matches."""

    def __init__(
        self, root: str | Path, config: dict[str, Any], log: Callable[[str], None] = print
    ):
        self.root = Path(root)
        self.config = config
        self.log = log
        self.root.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(
            self.root / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode()
        )

    def stage(self, name: str, config: Any, inputs: list[Path], fn: Callable[[], Any]) -> bool:
        """Run ``fn`` unless ``stages/name.json`` records the same config and input hashes."""
        marker = self.root / "stages" / f"{name.replace('/', '__')}.json"
        key = {"config": _hash(config), "inputs": {str(p): _file_hash(p) for p in inputs}}
        if marker.is_file() and json.loads(marker.read_text()).get("key") == key:
            self.log(f"[skip] {name} (done, inputs unchanged)")
            return False
        self.log(f"[run ] {name}")
        t0 = time.perf_counter()
        fn()
        write_json_atomic(
            marker,
            {
                "stage": name,
                "key": key,
                "seconds": round(time.perf_counter() - t0, 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "versions": {
                    "vidistill": __version__,
                    "python": platform.python_version(),
                    **_torch_version(),
                },
            },
        )
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
    """:func:`_run_pipeline` under the run directory's lock."""
    with run_lock(Path(out)):
        return _run_pipeline(config, out, log)


def _run_pipeline(
    config: dict[str, Any], out: str | Path, log: Callable[[str], None] = print
) -> Path:
    """Prepare → (embed → select | synthesize) → evaluate (+ references) → report.

    Per-run protocol: for run seed ``s`` (``evaluate.seed + r``) every selector selects and
    every synthesizer learns with seed ``s``, and the evaluator trains run ``s`` on that set
    with seed ``s``, paired with random run ``s`` from the same pool (the real store)."""
    from vidistill.evaluate import (
        Recipe,
        TrainingSet,
        evaluate,
        full_real,
        load_selection,
        random_subset,
        selection_set,
        update_results,
    )
    from vidistill.evaluate.paired import format_ior
    from vidistill.evaluate.results import row_key

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
    results = run.root / "results.json"
    eval_cfg = {"recipe": recipe.to_dict(), "runs": ev["runs"], "seed": ev["seed"]}

    seeds = [ev["seed"] + r for r in range(ev["runs"])]
    pool = str(store.root)  # the pool every method here selects / learns from

    def evaluate_into(method: str, vpc: int | None, source: Any) -> None:
        row = evaluate(
            source,
            store,
            recipe,
            runs=ev["runs"],
            seed=ev["seed"],
            method=method,
            vpc=vpc,
            pool=pool,
        )
        merged = update_results(results, [row])
        row = next(r for r in merged if row_key(r) == row_key(row))
        ior = "" if method in ("random", "full-real") else f", IOR {format_ior(row)}"
        log(
            f"       {method} vpc={vpc}: top-1 {row['top1_mean']:.1f} ± {row['top1_std']:.1f} %{ior}"
        )

    for ref in config["references"]:
        if ref == "full-real":
            run.stage(
                "evaluate/full-real",
                eval_cfg,
                [store_dir / "store.json"],
                lambda: evaluate_into("full-real", None, full_real(store)),
            )
        elif ref == "random":
            for vpc in config["vpcs"]:
                run.stage(
                    f"evaluate/random/vpc{vpc}",
                    eval_cfg,
                    [store_dir / "store.json"],
                    lambda v=vpc: evaluate_into(
                        "random", v, lambda s, v=v: random_subset(store, v, s)
                    ),
                )
        else:
            raise ValueError(f"unknown reference {ref!r}; use full-real or random")

    if config["select"]:
        from vidistill.embed import embed_store, embeddings_path
        from vidistill.select import select_store

        emb = config["embedder"]
        emb_opts = config["embedder_options"]
        run.stage(
            f"embed/{emb}",
            {"embedder": emb, "options": emb_opts},
            [store_dir / "store.json"],
            lambda: embed_store(store, emb, seed=ev["seed"], progress=True, **emb_opts),
        )
        for method in config["select"]:
            for vpc in config["vpcs"]:
                # the paired protocol: one selection per run seed, evaluated in that run
                for sd in seeds:
                    run.stage(
                        f"select/{method}/vpc{vpc}/seed{sd}",
                        {"embedder": emb, "seed": sd},
                        [embeddings_path(store.root, emb)],
                        lambda m=method, v=vpc, s=sd: select_store(
                            store, m, v, seed=s, embedder=emb, out=selection_path(run.root, m, v, s)
                        ),
                    )
                run.stage(
                    f"evaluate/{method}/vpc{vpc}",
                    eval_cfg,
                    [selection_path(run.root, method, vpc, sd) for sd in seeds],
                    lambda m=method, v=vpc: evaluate_into(
                        m,
                        v,
                        lambda s: selection_set(
                            store, load_selection(selection_path(run.root, m, v, s))
                        ),
                    ),
                )

    if config["synthesize"]:
        from vidistill.synthesize.runner import synthesize
        from vidistill.synthetic import SyntheticSet

        for method, options in config["synthesize"].items():
            for vpc in config["vpcs"]:
                # one learned set per run seed, as for selections
                for sd in seeds:
                    run.stage(
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
                    )
                run.stage(
                    f"evaluate/{method}/vpc{vpc}",
                    eval_cfg,
                    [
                        synth_path(run.root, method, vpc, sd) / "synthetic.safetensors"
                        for sd in seeds
                    ],
                    lambda m=method, v=vpc: evaluate_into(
                        m,
                        v,
                        lambda s: TrainingSet.from_synthetic(
                            SyntheticSet.load(synth_path(run.root, m, v, s))
                        ),
                    ),
                )

    if config["report"]:
        run.stage("report", {}, [results], lambda: _report(run.root, store, config))
    return run.root


def _report(root: Path, store: ClipStore, config: dict[str, Any]) -> None:
    from vidistill.evaluate import load_results
    from vidistill.report import frame_strip, write_report

    out = root / "report"
    seed = config["evaluate"]["seed"]  # strips show run 0's selection / learned set
    images = []
    for sel_path in sorted((root / "select").glob(f"*_seed{seed}.json")):
        sel = json.loads(sel_path.read_text())
        idx = [i for c in store.class_names for i in sel["indices"].get(c, [])[:2]]
        name = f"strip_{sel_path.stem}.png"
        frame_strip(
            store.clips(idx), out / name, labels=[store.class_names[store.labels[i]] for i in idx]
        )
        images.append(
            (f"{sel['method']} VPC {sel['vpc']} (seed {seed}) — chosen clips (≤ 2 per class)", name)
        )
    for preview in sorted((root / "synth").glob(f"*_seed{seed}/preview")):
        pv = ClipStore(preview)
        idx = list(range(min(len(pv), 2 * pv.num_classes)))
        name = f"strip_{preview.parent.name}.png"
        frame_strip(pv.clips(idx), out / name, labels=[pv.class_names[pv.labels[i]] for i in idx])
        images.append((f"{preview.parent.name} — learned videos", name))
    notes = [
        f"config: {config['name']} — dataset {config['dataset']}, preset {config['evaluate']['preset']}, "
        f"{config['evaluate']['runs']} paired runs (run s re-selects / re-synthesises with seed s "
        "and shares evaluator seed s with random); final-epoch metrics on the real test split."
    ]
    write_report(
        load_results(root / "results.json"),
        out,
        title=f"vidistill — {config['name']}",
        images=images,
        notes=notes,
    )
