"""The root click group. Command modules import ``main`` from here and decorate onto it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import click

from vidistill import __version__
from vidistill.atomic import DISK_FULL
from vidistill.errors import (
    CorruptArtifact,
    NonFiniteLoss,
    RankFailed,
    missing_dependency_message,
)


class _Main(click.Group):
    """The root group: a missing dependency, wherever a command imports it, ends in a one-line
    ``Error: ... pip install 'vidistill[EXTRA]'``, not a ModuleNotFoundError traceback; under
    torchrun, another rank's failure is one line naming that rank (its traceback is in its
    own output). So do a damaged artifact, a NaN loss and a full disk, in every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (RankFailed, CorruptArtifact, NonFiniteLoss) as err:
            raise click.ClickException(str(err)) from err
        except OSError as err:
            if err.errno not in DISK_FULL:
                raise
            raise click.ClickException(disk_full_message(err)) from err
        except ModuleNotFoundError as err:
            message = missing_dependency_message(err)
            if message is None:
                raise
            raise click.ClickException(message) from err


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="vidistill")
def main() -> None:
    """vidistill: video dataset distillation — prepare, embed, select, generate, synthesize,
    evaluate and report, each usable alone, or all at once with `vidistill run CONFIG`."""


def disk_full_message(err: OSError) -> str:
    """One line for a write that did not fit (every write is atomic: nothing half-written
    is left at a final path, and what earlier stages wrote is untouched)."""
    where = f" writing {err.filename}" if err.filename else ""
    return (
        f"{err.strerror or 'no space left on device'}{where}; nothing was left half-written "
        "and earlier artifacts are intact: free some space (or choose another --out) and re-run"
    )


def key_value_option(help: str) -> Any:
    """The repeatable ``-o/--option KEY=VALUE`` flag of every command that passes options
    through to a registered component (parsed by :func:`parse_key_values`)."""
    return click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help=help)


def parse_key_values(items: tuple[str, ...], example: str = "threshold=0.3") -> dict[str, Any]:
    """``-o key=value`` pairs of the method-option flags; values are JSON when they parse
    (numbers, true/false, null), else the raw string. Dashes in keys become underscores."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(
                f"{item!r}: expected KEY=VALUE (e.g. -o {example})", param_hint="-o"
            )
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key:
            raise click.BadParameter(
                f"{item!r}: the option name before '=' is empty (e.g. -o {example})",
                param_hint="-o",
            )
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value.strip()
    return out


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Bad inputs (an unknown name, a missing file or store, no weights, VPC too large, a
    test clip in a selection, an invalid value) → a one-line ``Error: ...`` and exit 1, not
    a traceback: the library raises these with messages written for the user. Also a
    decorator: ``@clean_errors()`` under a command's click decorators."""
    try:
        yield
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, NotImplementedError) as err:
        raise click.ClickException(str(err).strip("'\"")) from err
