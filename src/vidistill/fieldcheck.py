"""Kind checks of config dataclasses (ClipSpec, Recipe, GenerateConfig) from their hints.

Values come from YAML and ``-o KEY=VALUE``, so ``epochs: "x"`` or ``frames: [8]`` reach a
dataclass unchecked and fail later, deep in a training loop, as a TypeError. Checking
each field against its annotation at construction turns that into one line naming it.
"""

from __future__ import annotations

import numbers
import types
import typing
from dataclasses import fields
from functools import cache
from typing import Any


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # numpy integers too
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if origin is tuple:
        inner = typing.get_args(hint)[0] if typing.get_args(hint) else Any
        return isinstance(value, tuple) and all(_fits(v, inner) for v in value)
    if origin is not None:  # dict[...], list[...]
        return isinstance(value, origin)
    return isinstance(value, hint)


def check_kinds(obj: Any, what: str) -> None:
    """ValueError naming the first field of dataclass ``obj`` whose value is of another kind."""
    hints = _hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not _fits(value, hints[f.name]):
            want = str(hints[f.name]).replace("typing.", "")
            raise ValueError(f"{what} {f.name}: expected {want}, got {value!r}")
