"""Run the fault-injection suite (tests/faults) and print its table: per category the faults
injected / bad inputs tried, how many were survived / handled, and the artifacts lost.

    OMP_NUM_THREADS=1 python benchmarks/reliability_table.py [--write-docs]

The figures come from the test outcomes (tests/faults/conftest.py's ledger): a passing
test counts its tries as survived, a failing one as none. ``--write-docs`` puts the table
between the markers of docs/reliability.md; ``--report FILE`` reads the ledger a pytest
run wrote (``VIDISTILL_FAULT_REPORT=FILE pytest tests/faults``) instead of running it.
Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- fault-table:begin -->", "<!-- fault-table:end -->"
COMMAND = "OMP_NUM_THREADS=1 python benchmarks/reliability_table.py --write-docs"


def run_suite(extra: list[str]) -> tuple[int, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.json"
        env = {**os.environ, "VIDISTILL_FAULT_REPORT": str(report), "OMP_NUM_THREADS": "1"}
        rc = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "tests/faults", *extra], cwd=ROOT, env=env
        )
        data = json.loads(report.read_text()) if report.is_file() else {"tests": []}
    return rc, data


def table(data: dict) -> str:
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for t in data["tests"]:
        r = rows[t["category"]]
        for k in ("tried", "survived", "lost", "seconds"):
            r[k] += t[k]
        r["tests"] += 1
        r["failed"] += t["outcome"] != "passed"
    lines = [
        "| fault / bad input | injected or tried | survived or handled | artifacts lost | tests (failed) |",
        "|---|---|---|---|---|",
    ]
    total: dict[str, float] = defaultdict(float)
    for cat, what in data.get("categories", {}).items():
        r = rows.get(cat)
        if r is None:
            continue
        lines.append(
            f"| {what} | {int(r['tried'])} | {int(r['survived'])} | {int(r['lost'])} | "
            f"{int(r['tests'])} ({int(r['failed'])}) |"
        )
        for k, v in r.items():
            total[k] += v
    lines.append(
        f"| **all** | **{int(total['tried'])}** | **{int(total['survived'])}** | "
        f"**{int(total['lost'])}** | {int(total['tests'])} ({int(total['failed'])}) |"
    )
    lines.append("")
    lines.append(
        f"Made by `{COMMAND}`: {len(data['tests'])} tests in {data.get('seconds', 0):.0f} s "
        f"({os.cpu_count()} CPU cores); "
        f"Python {sys.version.split()[0]}."
    )
    return "\n".join(lines)


def write_docs(text: str) -> None:
    doc = DOC.read_text()
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} markers")
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-docs", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    ap.add_argument("--report", type=Path, help="a ledger JSON written by a pytest run")
    args, extra = ap.parse_known_args()
    if args.report is not None:
        data = json.loads(args.report.read_text())
        failed = sum(t["outcome"] != "passed" for t in data["tests"])
        rc = int(bool(failed)) if data["tests"] else 1
    else:
        rc, data = run_suite(extra)
    text = table(data)
    print(text)
    if args.write_docs and rc == 0:
        write_docs(text)
    elif args.write_docs:
        print("tests failed: docs not updated", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
