"""Checks of a `vidistill run` config's values, before any stage runs.

``load_config`` rejects unknown keys; this rejects known keys with values of the wrong kind
— ``select: tac-dt`` (a string, iterated letter by letter), ``vpcs: 5``, ``vpcs: [0]``, an
unknown selector or dataset — which otherwise surface minutes later, deep in a stage, or
silently run the defaults. Each error names the key, what it got and what it takes.
"""

from __future__ import annotations

from typing import Any

from vidistill import registry
from vidistill.clipstore import ClipSpec

REFERENCES = ("full-real", "random", "full-syn", "random-real")
# a synthesize entry's pipeline option (not the synthesizer's): also evaluate its sets with
# this training augmentation, beside random under the same recipe (IDTD's τ, its §4.3)
EVALUATE_AUGMENT = "evaluate_augment"
# ... and the VPCs it runs at, when not all of the run's (a costly method kept to VPC 1)
SYNTH_VPCS = "vpcs"
RUN_OPTIONS = (EVALUATE_AUGMENT, SYNTH_VPCS)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _fail(key: str, want: str, got: Any) -> None:
    raise ValueError(f"config: {key} must be {want}, got {got!r}")


def _names(key: str, got: Any, kind: str) -> None:
    """``got`` is a list of registered ``kind`` names."""
    if not isinstance(got, list) or not all(isinstance(n, str) for n in got):
        _fail(key, f"a list of {kind} names, e.g. [{', '.join(registry.names(kind)[:2])}]", got)
    for name in got:
        registry.get(kind, name)  # unknown: a KeyError listing the valid names


def _recipe(ev: dict[str, Any]) -> Any:
    from vidistill.evaluate.recipe import RUN_KEYS, Recipe

    overrides = {k: v for k, v in ev.items() if k not in RUN_KEYS}
    return Recipe.preset(ev.get("preset", "toy-quick"), **overrides)


def _build(key: str, make: Any) -> None:
    """Build what the section describes now (unknown or ill-kinded fields fail here)."""
    try:
        make()
    except TypeError as err:  # an unknown field name
        raise ValueError(f"config: {key}: {err}") from err


def check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` (defaults filled in) if every value has the right kind; else a ValueError."""
    if not isinstance(cfg.get("name"), str) or not cfg["name"]:
        _fail("name", "a non-empty string", cfg.get("name"))
    if not isinstance(cfg.get("dataset"), str):
        _fail("dataset", "a dataset name", cfg.get("dataset"))
    registry.get("dataset", cfg["dataset"])
    for key in ("dataset_options", "spec", "evaluate", "embedder_options", "synthesize"):
        if not isinstance(cfg.get(key), dict):
            _fail(key, "a mapping (key: value, ...)", cfg.get(key))
    if cfg.get("generate") is not None and not isinstance(cfg["generate"], dict):
        _fail("generate", "a mapping or empty", cfg["generate"])
    if cfg.get("workers") is not None and not (_int(cfg["workers"]) and cfg["workers"] >= 1):
        _fail("workers", "an integer >= 1 (or null: all cores)", cfg["workers"])
    vpcs = cfg.get("vpcs")
    if not isinstance(vpcs, list) or not vpcs or not all(_int(v) and v >= 1 for v in vpcs):
        _fail("vpcs", "a non-empty list of integers >= 1, e.g. [1, 5, 10]", vpcs)
    refs = cfg.get("references")
    if not isinstance(refs, list) or any(r not in REFERENCES for r in refs):
        _fail("references", f"a list of {', '.join(REFERENCES)}", refs)
    if not isinstance(cfg.get("embedder"), str):
        _fail("embedder", "an embedder name", cfg.get("embedder"))
    _names("select", cfg.get("select"), "selector")
    for name, options in cfg["synthesize"].items():
        registry.get("synthesizer", name)
        if not isinstance(options, dict):
            _fail(f"synthesize.{name}", "a mapping of its options (or {})", options)
        augment = options.get(EVALUATE_AUGMENT)
        if augment is not None:
            if not isinstance(augment, str):
                _fail(f"synthesize.{name}.{EVALUATE_AUGMENT}", "an augment name", augment)
            registry.get("augment", augment)
        own = options.get(SYNTH_VPCS)
        if own is not None and not (
            isinstance(own, list) and own and all(_int(v) for v in own) and set(own) <= set(vpcs)
        ):
            _fail(f"synthesize.{name}.{SYNTH_VPCS}", f"a non-empty subset of vpcs {vpcs}", own)
    ev = cfg["evaluate"]
    if not (_int(ev.get("runs", 1)) and ev.get("runs", 1) >= 1):
        _fail("evaluate.runs", "an integer >= 1", ev.get("runs"))
    if not _int(ev.get("seed", 0)):
        _fail("evaluate.seed", "an integer", ev.get("seed"))
    _build("evaluate", lambda: _recipe(ev))
    _build("spec", lambda: ClipSpec(**{**ClipSpec().to_dict(), **cfg["spec"]}))
    if not isinstance(cfg.get("report"), bool):
        _fail("report", "true or false", cfg.get("report"))
    return cfg
