"""Improvement over random (IOR), paired run by run — the number every method row reports.

Why paired (DESIGN §4, DD-Ranking): the gains of the seed papers over a random subset of
the same pool are 1–4 points, smaller than the run-to-run spread of either row. Run ``s``
of a method and run ``s`` of ``random`` share the evaluator seed ``s`` (weights, batch
order, dropout) and the method's selection / synthesis is redone with seed ``s``, so the
per-run difference ``d_s = top1_method(s) − top1_random(s)`` cancels what the two runs
share. We report over the seeds both rows have:

* ``ior_mean`` — mean of ``d_s`` (points of top-1);
* ``ior_std`` — sample std of ``d_s`` (ddof 1: the one the interval uses; the rows' own
  ``*_std`` stay NumPy's population std, the field's convention);
* ``ior_ci95`` — the two-sided 95 % Student-t interval ``mean ± t(0.975, n−1)·std/√n``;
* ``ior_verdict`` — ``better`` / ``worse`` when the interval excludes 0, else
  ``no difference`` (a difference inside its interval is not a difference).

The partner is the ``random`` row of the SAME pool (``row["pool"]``: a generated pool's
method is compared with random from that pool, not from the real set), dataset, VPC and
recipe. Rows without a partner get no IOR.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

IOR_FIELDS = ("ior_mean", "ior_std", "ior_ci95", "ior_runs", "ior_verdict", "ior_reference")


def t_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, sample std, low, high)`` of the Student-t interval; NaN bounds for n < 2."""
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n == 0:
        raise ValueError("t_interval needs at least one difference")
    mean = float(d.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan")
    from scipy.stats import t

    std = float(d.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def verdict(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "n/a (1 run)"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no difference"


def paired_ior(row: dict[str, Any], random_row: dict[str, Any], metric: str = "top1") -> dict:
    """IOR of ``row`` against ``random_row``, pairing their per-run records by seed."""
    theirs = {p["seed"]: p[metric] for p in random_row.get("per_run", [])}
    pairs = [(p["seed"], p[metric] - theirs[p["seed"]]) for p in row.get("per_run", [])
             if p["seed"] in theirs]  # fmt: skip
    if not pairs:
        raise ValueError(
            f"no shared seeds: {row.get('method')} ran {row.get('seeds')}, "
            f"random ran {random_row.get('seeds')}"
        )
    seeds, diffs = zip(*sorted(pairs), strict=True)
    mean, std, low, high = t_interval(diffs)
    return {
        "ior_mean": mean,
        "ior_std": std,
        "ior_ci95": [low, high],
        "ior_runs": len(diffs),
        "ior_seeds": list(seeds),
        "ior_diffs": list(diffs),
        "ior_verdict": verdict(low, high),
        "ior_reference": random_row.get("source"),
    }


def partner_key(row: dict[str, Any]) -> tuple:
    """What pairs a row with its ``random`` row: same dataset, pool, VPC and recipe."""
    return tuple(
        json.dumps(row.get(k), sort_keys=True) for k in ("dataset", "pool", "vpc", "recipe")
    )


def attach_ior(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every method row with a ``random`` partner its paired IOR (in place; returned).

    A row that lost its partner (or has no pool) has stale IOR fields removed."""
    partners = {
        partner_key(r): r
        for r in rows
        if r.get("method") == "random" and r.get("pool") is not None and r.get("vpc") is not None
    }
    for r in rows:
        for k in (*IOR_FIELDS, "ior_seeds", "ior_diffs"):
            r.pop(k, None)
        if r.get("method") == "random" or r.get("pool") is None or r.get("vpc") is None:
            continue
        partner = partners.get(partner_key(r))
        if partner is None:
            continue
        try:
            r.update(paired_ior(r, partner))
        except ValueError:
            continue
    return rows


def format_ior(row: dict[str, Any], digits: int = 1) -> str:
    """``+3.2 [+1.0, +5.4] better`` — or ``–`` without a partner."""
    if row.get("ior_mean") is None:
        return "–"
    low, high = row["ior_ci95"]
    f = f"{{:+.{digits}f}}"
    if math.isnan(low):
        return f"{f.format(row['ior_mean'])} (1 run)"
    return f"{f.format(row['ior_mean'])} [{f.format(low)}, {f.format(high)}] {row['ior_verdict']}"


# -- the random partner of a method row ----------------------------------------------------
def find_random_partner(
    rows: Sequence[dict[str, Any]], dataset: str, pool: str, vpc: int, recipe: dict[str, Any]
) -> dict[str, Any] | None:
    """The ``random`` row ``attach_ior`` would pair a (dataset, pool, vpc, recipe) row with."""
    key = partner_key({"dataset": dataset, "pool": pool, "vpc": vpc, "recipe": recipe})
    found = [r for r in rows if r.get("method") == "random" and partner_key(r) == key]
    return found[-1] if found else None  # attach_ior's dict keeps the last one too


def _contiguous(seeds: Sequence[int]) -> list[tuple[int, int]]:
    """``[(first seed, runs), ...]``: `evaluate` runs contiguous seeds in one call."""
    spans: list[tuple[int, int]] = []
    for s in sorted(seeds):
        if spans and spans[-1][0] + spans[-1][1] == s:
            spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        else:
            spans.append((s, 1))
    return spans


def random_partner(
    rows: Sequence[dict[str, Any]],
    pool: Any,
    test_store: Any,
    recipe: Any,
    vpc: int,
    seeds: Sequence[int],
    source: str | None = None,
    **evaluate_kwargs: Any,
) -> dict[str, Any] | None:
    """The ``random`` row a method row run on ``seeds`` needs, drawn from ``pool``.

    Reuses what ``rows`` (a results.json) already holds: ``None`` when its random row of the
    same dataset, pool, VPC and recipe covers every seed; else that row extended by the
    missing seeds (runs depend only on their seed, so this equals a fresh evaluation); else
    a fresh row. Run ``s`` draws ``random_subset(pool, vpc, s)`` and uses evaluator seed ``s``.
    """
    from vidistill.evaluate.protocol import _resolved, combine_runs, evaluate, random_subset

    pool_path = _resolved(str(pool.root))
    recipe_dict = json.loads(json.dumps(recipe.to_dict()))
    old = find_random_partner(rows, test_store.dataset, pool_path, vpc, recipe_dict)
    have = {p["seed"] for p in old["per_run"]} if old else set()
    missing = [s for s in seeds if s not in have]
    if not missing:
        return None
    new = [
        evaluate(
            lambda s: random_subset(pool, vpc, s),
            test_store,
            recipe,
            runs=n,
            seed=first,
            method="random",
            vpc=vpc,
            source=old["source"] if old else source or str(pool.root),
            pool=pool_path,
            **evaluate_kwargs,
        )
        for first, n in _contiguous(missing)
    ]
    for r in new:
        r["recipe"] = recipe_dict  # as results.json holds it, so combine_runs compares equal
    return combine_runs([old, *new] if old else new)
