"""Name → component registries, so the CLI and configs name methods and a new method is one file.

Kinds used across the package: ``dataset``, ``net``, ``embedder``, ``selector``,
``synthesizer``. ``vidistill list`` prints them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_REGISTRIES: dict[str, dict[str, Any]] = {}

# Modules whose import fills the registries. Listed here (not discovered) so that
# `vidistill list` is deterministic and a missing optional dependency is visible.
_PROVIDERS: dict[str, tuple[str, ...]] = {
    "dataset": ("vidistill.datasets",),
    "net": ("vidistill.nets",),
    "embedder": ("vidistill.embed",),
    "selector": ("vidistill.select",),
    "synthesizer": ("vidistill.synthesize",),
    # training augmentations for the evaluator: ``(videos (B,3,T,H,W), generator) -> videos``
    "augment": ("vidistill.evaluate", "vidistill.synthesize"),
}


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: ``@register("selector", "tac-dt")`` makes the object findable by name."""

    def deco(obj: T) -> T:
        table = _REGISTRIES.setdefault(kind, {})
        if name in table and table[name] is not obj:
            raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = obj
        return obj

    return deco


def _load(kind: str) -> None:
    for module in _PROVIDERS.get(kind, ()):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real missing dependency inside the module
                raise


def get(kind: str, name: str) -> Any:
    """Look up a registered component; the error lists the valid names."""
    _load(kind)
    table = _REGISTRIES.get(kind, {})
    if name not in table:
        valid = ", ".join(sorted(table)) or "(none registered)"
        raise KeyError(f"unknown {kind} {name!r}; choose one of: {valid}")
    return table[name]


def names(kind: str) -> list[str]:
    _load(kind)
    return sorted(_REGISTRIES.get(kind, {}))


def kinds() -> list[str]:
    return sorted(_PROVIDERS)


def kind(name: str) -> str:
    """The registry kind ``name`` names, singular or plural (``selectors`` → ``selector``)."""
    key = name.strip().lower()
    for k in kinds():
        if key in (k, f"{k}s"):
            return k
    raise KeyError(f"unknown kind {name!r}; choose one of: {', '.join(kinds())} (or a plural)")
