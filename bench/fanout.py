"""fanout: drift checks of 12 environments, serially vs 4 at a time.

Setup: 12 environments of the sandbox stack (``worker_count = WORKERS``: 49 resources each), each
with its own state key in the moto S3 bucket, applied once; then the web service of every
``TAMPER_EVERY``-th environment is changed out of band (a console click), so some checks find
real drift. Setup is not timed.

The unit of work is what the drift flow's ``plan_drift`` task does for one environment: a real
``terraform plan -refresh-only`` and a normal ``terraform plan`` (each with ``show -json``),
both parsed, then ``gitops.drift.classify`` (init ran in setup; the Prefect slot check and
notifications are left out).

* **serial** (baseline): the 12 units one after the other.
* **threads**: a ``ThreadPoolExecutor(max_workers=4)``.
* **prefect**: the drift flow's way: the unit as a Prefect task, submitted to a
  ``ThreadPoolTaskRunner(max_workers=4)`` inside a flow run (the flow run's own fixed cost,
  see plan_overhead, is excluded: the clock runs inside the flow).

Speedup = serial time / concurrent time. Ideals: min(4, 12) = 4 for the concurrency, and
min(4, cores) for a CPU-bound unit (terraform and the Python provider mostly burn CPU); and the
tighter one the serial pass itself implies: it already keeps more than one core busy (terraform's
Go threads, the provider process, moto), measured as CPU seconds of this process and everything it
started (``bench/_cpu.py``).
Target: speedup >= 1.7 (for threads and for prefect).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench._cpu import cpu_seconds, machine_seconds
from bench._prefect import prefect_server
from bench._report import Result, heading, say, secs
from bench._sandbox import Environment, SandboxStack, terraform_crash
from gitops.drift import DriftReport, classify
from gitops.models import PlanStatus
from gitops.plan import parse_plan
from deployments.sandbox.cloud import SandboxCloud

NAME = "fanout"
NEEDS_PREFECT = True
ENVIRONMENTS = 12
CONCURRENCY = 4
WORKERS = 45
TAMPER_EVERY = 4
TARGET = 1.7
RETRIES = 2
COMMIT = "0" * 40


def drift_check(env: Environment) -> DriftReport:
    """A -refresh-only plan and a normal plan of one environment, classified."""
    refresh = env.runner.plan(env.plan_dir / "drift-refresh.tfplan", refresh_only=True)
    normal = env.runner.plan(env.plan_dir / "drift-plan.tfplan")
    if PlanStatus.LOCKED in (refresh.status, normal.status):
        raise RuntimeError(f"{env.name}: state unexpectedly locked")
    return classify(parse_plan(refresh.plan_json), parse_plan(normal.plan_json),
                    environment=env.name, commit=COMMIT)


def setup(stack: SandboxStack) -> list[Environment]:
    """12 applied environments, some tampered with out of band."""
    envs = [stack.environment(f"env-{i:02d}", worker_count=WORKERS)  # init: serially
            for i in range(1, ENVIRONMENTS + 1)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # separate state keys: safe in parallel
        list(pool.map(stack.apply, envs))
    cloud = SandboxCloud(stack.cloud_dir)
    for env in envs[TAMPER_EVERY - 1::TAMPER_EVERY]:
        web = next(s for s in cloud.list("service") if s["name"] == f"expense-{env.name}-web")
        cloud.tamper("service", web["id"], {"replicas": 5, "tags": {**web["tags"],
                                                                     "Hotfix": "INC-1234"}})
    return envs


@dataclass(frozen=True)
class Pass:
    """One timed pass: wall time, CPU of everything it started, CPU other processes used."""

    wall: float
    cpu: float
    others: float
    reports: list[DriftReport]

    def describe(self) -> str:
        return (f"{secs(self.wall)}, CPU {secs(self.cpu)} = {self.cpu / self.wall:.2f} cores "
                f"busy; other processes meanwhile: {self.others / self.wall:.2f} cores")


def timed(fn: Callable[[], list[DriftReport]]) -> Pass:
    """Run one pass and measure it."""
    cpu, machine, start = cpu_seconds(), machine_seconds(), time.perf_counter()
    reports = fn()
    wall = time.perf_counter() - start
    ours = cpu_seconds() - cpu
    return Pass(wall, ours, max(0.0, machine_seconds() - machine - ours), reports)


def clean_pass(name: str, fn: Callable[[], Pass]) -> Pass:
    """One pass; run again (at most ``RETRIES`` times) if terraform crashed in it."""
    for attempt in range(RETRIES + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - only terraform crashes are retried
            crash = terraform_crash(exc) or terraform_crash(exc.__cause__ or exc)
            if crash is None or attempt == RETRIES:
                raise
            say(f"{name} pass: terraform crashed ({crash}); running the pass again")
    raise AssertionError("unreachable")


def run() -> Result:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    result = Result(NAME)
    cores = len(os.sched_getaffinity(0))
    heading(NAME, f"drift checks (refresh-only + normal plan) of {ENVIRONMENTS} environments "
                  f"({WORKERS + 4} resources each), serial vs {CONCURRENCY} at a time")
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp, \
            SandboxStack(Path(tmp)) as stack, prefect_server():
        start = time.perf_counter()
        envs = setup(stack)
        say(f"setup (init + apply of {ENVIRONMENTS} environments, not timed below): "
            f"{secs(time.perf_counter() - start)}")

        @task(name="bench-drift-plan", cache_policy=NO_CACHE)
        def drift_task(env: Environment) -> DriftReport:
            return drift_check(env)

        @flow(name="bench-fanout", validate_parameters=False)
        def prefect_fanout() -> Pass:
            def fan() -> list[DriftReport]:
                with ThreadPoolTaskRunner(max_workers=CONCURRENCY) as runner:
                    futures = [runner.submit(drift_task, {"env": env}) for env in envs]
                    return [f.result() for f in futures]
            return timed(fan)

        def threads() -> list[DriftReport]:
            with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
                return list(pool.map(drift_check, envs))

        serial = clean_pass("serial", lambda: timed(lambda: [drift_check(env) for env in envs]))
        threaded = clean_pass("threads", lambda: timed(threads))
        prefected = clean_pass("prefect", prefect_fanout)

    reports = serial.reports
    drifted = [r.environment for r in reports if r.status.has_drift]
    say(f"drift found in {len(drifted)}/{ENVIRONMENTS} environments ({', '.join(drifted)}), "
        f"expected {ENVIRONMENTS // TAMPER_EVERY}")
    for name, other in (("threads", threaded), ("prefect", prefected)):
        if [(r.environment, r.status) for r in other.reports] != [(r.environment, r.status)
                                                                   for r in reports]:
            raise AssertionError(f"{name} found other results than the serial pass")
    if len(drifted) != ENVIRONMENTS // TAMPER_EVERY:
        raise AssertionError("the tampered environments were not all reported as drifted")
    say(f"serial  {serial.describe()} ({secs(serial.wall / ENVIRONMENTS)} per environment)")
    say(f"threads {threaded.describe()} (ThreadPoolExecutor({CONCURRENCY}))")
    say(f"prefect {prefected.describe()} (ThreadPoolTaskRunner({CONCURRENCY}) in a flow run)")
    ideal = min(CONCURRENCY, ENVIRONMENTS)
    bound = min(ideal, cores)
    say(f"ideal speedup: {ideal} by concurrency, {bound} bound by {cores} cores; "
        f"{min(bound, serial.wall / (serial.cpu / cores)):.2f} from the serial pass's CPU use "
        "(serial wall / (serial CPU / cores), at most the core bound)")
    result.check("speedup threads", serial.wall / threaded.wall, TARGET, at_most=False, unit="x")
    result.check("speedup prefect", serial.wall / prefected.wall, TARGET, at_most=False, unit="x")
    return result
