"""Conformance of Rego engines on real policy suites: their own `test_*` rules, as `opa test`.

    python -m bench.rego_conformance SUITE_DIR... [--engine MODULE:CLASS]

Each directory holding a test file is one unit (its .rego and .json files, plus the suite's
``lib/`` folders when there are some), run by :func:`gitops.rego.run_policy_tests` in child
processes (a crash fails one test, not the run). Prints passed/total per suite. The suites and
the figures measured are in tests/fixtures/policies/SOURCES.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from gitops.rego import run_policy_tests


def units(suite: Path) -> list[Path]:
    dirs = sorted({p.parent for p in suite.rglob("*.rego") if "test" in p.name})
    return dirs


def run_suite(suite: Path, engine: str) -> Counter:
    counts: Counter = Counter()
    libs = [p for p in suite.rglob("lib") if p.is_dir()]
    for unit in units(suite):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "policies"
            shutil.copytree(unit, work, ignore=shutil.ignore_patterns("*.yaml", "*.yml"))
            for lib in libs:
                if lib != unit:
                    shutil.copytree(lib, work / "_lib" / lib.name, dirs_exist_ok=True)
            for result in run_policy_tests(work, engine=engine, timeout_seconds=60):
                counts[result.outcome] += 1
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rego_conformance")
    parser.add_argument("suites", nargs="+", type=Path)
    parser.add_argument("--engine", default="")
    args = parser.parse_args(argv)
    for suite in args.suites:
        c = run_suite(suite, args.engine)
        total = sum(c.values())
        print(f"{suite.name}: {c['passed']}/{total} passed ({c['failed']} failed, "
              f"{c['error']} errors)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
