"""``python -m bench [--strict] [NAME ...]``: run every benchmark, or the named ones.

Prints each benchmark's absolute figures, its ratio against a baseline measured in the same run,
the target and MET/MISSED, then a summary. Exit status: 1 if a benchmark failed to run (or, with
``--strict``, missed a target), else 0: timings depend on the machine, so they gate nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCHMARKS = ("plan_overhead", "big_plan", "fanout", "drift_pool", "webhook", "scrub", "policies",
              "resume")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run the benchmarks (ratios against a baseline "
                                            "measured in the same run) and print the figures.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(BENCHMARKS)}")
    names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)

    with tempfile.TemporaryDirectory(prefix="bench-prefect-home-") as home:
        from bench._cpu import load_average
        from bench._prefect import isolate, prefect_server

        isolate(Path(home))
        print(f"machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), "
              f"{_cpu_model()}, Python {platform.python_version()}, {platform.platform()}; "
              f"load average {load_average()} (other work on the machine skews the figures)")
        modules = {name: importlib.import_module(f"bench.{name}") for name in names}
        results, failed = [], []
        started = time.perf_counter()
        with contextlib.ExitStack() as stack:
            if any(getattr(m, "NEEDS_PREFECT", False) for m in modules.values()):
                print("starting a temporary Prefect server...", flush=True)
                stack.enter_context(prefect_server())
            for name, module in modules.items():
                t0 = time.perf_counter()
                try:
                    result = module.run()
                except Exception:  # noqa: BLE001 - report it, run the others
                    traceback.print_exc()
                    failed.append(name)
                    continue
                result.seconds = time.perf_counter() - t0
                results.append(result)
        total = time.perf_counter() - started

    print(f"\n== summary ({total:.0f} s in all; load average now {load_average()})")
    for result in results:
        print(f"{result.name:14s} {'MET' if result.met else 'MISSED':6s} ({result.seconds:.0f} s)")
        for check in result.checks:
            print(f"  {check.line().strip()}")
    for name in failed:
        print(f"{name:14s} FAILED (see the traceback above)")
    if failed or (args.strict and not all(r.met for r in results)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
