"""plan_overhead: what the plan stage costs on top of terraform itself.

Stack: the sandbox stack with ``worker_count = 45`` on the moto S3 backend, after the base stack
(4 resources) was applied: every plan is 45 creates next to 4 no-ops (49 resource changes), as
in ``tests/fixtures/plans/scaled.json``. Nothing is applied between plans, so each is the same.

* **bare** (baseline): ``terraform plan -out`` then ``terraform show -json`` as two plain
  ``subprocess.run`` calls with the runner's flags and environment; stdout captured, not parsed.
* **stage**: ``TerraformRunner.plan()`` (python_terraform command line, plan -out, show -json,
  json.loads, state identity and sha256 of the plan file) + ``parse_plan`` + ``check_tags`` +
  ``render_plan_summary`` + ``render_plan_markdown``: what ``tasks.terraform.stage_plan`` and the
  plan artifact do, minus the credential-block lookups.
* **task**: the same stage as a Prefect task run, against a real temporary Prefect server
  (task run states, logs to the API).

All three run inside ONE flow run, as the pr-plan flow runs its plan stage for each environment,
alternating (rotating order) for ``ROUNDS`` rounds after one warm-up each; medians.
Target: task / bare <= 1.15 (stage / bare is printed too).

A flow run's own fixed cost is measured apart (``FLOW_RUNS`` empty flow runs), because a flow run
wraps a whole pipeline, not one stage. Note: Prefect 3.9.1's sync flow engine joins its heartbeat
thread on exit, and that thread sleeps in 1 s steps, so every flow run ends on the next whole
second after its start (up to ~1 s extra, ~0.5 s on average); see ``_send_heartbeats`` in
``prefect/flow_engine.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._prefect import prefect_server
from bench._report import Result, heading, median, say, spread
from bench._sandbox import TERRAFORM, Environment, SandboxStack, terraform_crash
from gitops.models import PlanFingerprint, PlanStatus
from gitops.plan import parse_plan
from gitops.checks import blocking
from gitops.policy import tag_check
from gitops.rego import check_plan
from gitops.render import render_plan_markdown, render_plan_summary

NAME = "plan_overhead"
NEEDS_PREFECT = True
ROUNDS = 7
FLOW_RUNS = 5
RETRIES = 2
WORKERS = 45
TARGET = 1.15
COMMIT = "0" * 40


def bare_plan(env: Environment, stack: SandboxStack, out: Path) -> bytes:
    """terraform plan -out + show -json as plain subprocess calls; the show output."""
    runner = env.runner
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    environ.update(stack.terraform_env)
    environ.update({"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0",
                    "TF_DATA_DIR": str(runner.data_dir)})
    out.unlink(missing_ok=True)
    plan = subprocess.run(
        [TERRAFORM, "plan", "-input=false", "-no-color", "-detailed-exitcode",
         f"-lock-timeout={runner.settings.lock_timeout_seconds}s", f"-var-file={env.var_file}",
         f"-out={out}"],
        cwd=runner.working_dir, env=environ, stdin=subprocess.DEVNULL, capture_output=True)
    if plan.returncode not in (0, 2):
        raise RuntimeError(f"bare terraform plan exited {plan.returncode}: {plan.stderr[-2000:]!r}")
    show = subprocess.run([TERRAFORM, "show", "-json", str(out)], cwd=runner.working_dir,
                          env=environ, stdin=subprocess.DEVNULL, capture_output=True, check=True)
    return show.stdout


POLICIES = Path(__file__).resolve().parent.parent / "deployments" / "infra-repo" / "policies"
"""The default policies the sandbox's infra repository ships (issue 12's benchmark condition)."""


def plan_stage(env: Environment, out: Path) -> tuple[str, str]:
    """The plan stage: runner plan + parse + tag policy + the default Rego policies (in their
    child process, as tasks.terraform.stage_plan runs them) + summary + full markdown."""
    planned = env.runner.plan(out)
    if planned.status is not PlanStatus.CHANGES:
        raise RuntimeError(f"expected a plan with changes, got {planned.status}")
    plan = parse_plan(planned.plan_json)
    policy = (tag_check(plan), *check_plan(POLICIES, json.dumps(planned.plan_json),
                                           environment=env.name, root=POLICIES.parent))
    fingerprint = PlanFingerprint(plan_sha256=planned.plan_sha256, state=planned.state,
                                  commit=COMMIT)
    summary = render_plan_summary(plan, policy, fingerprint.short)
    markdown = render_plan_markdown(env.name, plan, policy)
    if len(plan.changes) < 45 or blocking(policy):
        raise RuntimeError(f"unexpected plan: {len(plan.changes)} changes, "
                           f"blocking: {[r.name for r in blocking(policy)]}")
    return summary, markdown


def run() -> Result:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    result = Result(NAME)
    heading(NAME, f"plan stage vs bare terraform plan+show, sandbox stack worker_count={WORKERS} "
                  "(49 resource changes), moto S3 backend")
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp, \
            SandboxStack(Path(tmp)) as stack, prefect_server():
        work = Path(tmp)
        base = stack.environment("bench", worker_count=0)
        stack.apply(base)
        env = stack.environment("bench", worker_count=WORKERS)  # same state key, bigger stack
        say(f"show -json of one plan: {len(bare_plan(env, stack, work / 'bare.tfplan')):,} bytes")

        @task(name="bench-plan-stage", cache_policy=NO_CACHE)
        def plan_task() -> tuple[str, str]:
            return plan_stage(env, work / "task.tfplan")

        variants: dict[str, Callable[[], object]] = {
            "bare": lambda: bare_plan(env, stack, work / "bare.tfplan"),
            "stage": lambda: plan_stage(env, work / "stage.tfplan"),
            "task": plan_task,
        }

        @flow(name="bench-plan-overhead", validate_parameters=False)
        def measure() -> dict[str, list[float]]:
            times: dict[str, list[float]] = {name: [] for name in variants}
            for fn in variants.values():  # warm-up: page cache, provider imports, first task run
                fn()
            names = list(variants)
            crashes = 0
            while len(times["bare"]) < ROUNDS:
                i = len(times["bare"])
                took = {}
                try:
                    for name in names[i % 3:] + names[:i % 3]:
                        start = time.perf_counter()
                        variants[name]()
                        took[name] = time.perf_counter() - start
                except Exception as exc:  # noqa: BLE001 - only terraform crashes are retried
                    crash = terraform_crash(exc)
                    crashes += 1
                    if crash is None or crashes > RETRIES:
                        raise
                    say(f"round {i + 1}: terraform crashed ({crash}); running the round again")
                    continue
                for name, seconds in took.items():
                    times[name].append(seconds)
            return times

        @flow(name="bench-empty-flow", validate_parameters=False)
        def empty() -> None:
            return None

        times = measure()
        flow_runs = []
        for _ in range(FLOW_RUNS):
            start = time.perf_counter()
            empty()
            flow_runs.append(time.perf_counter() - start)

    for name in variants:
        say(f"{name:6s} {spread(times[name])}")
    bare = median(times["bare"])
    say(f"overhead per plan: stage {median(times['stage']) - bare:+.3f} s, "
        f"task {median(times['task']) - bare:+.3f} s")
    say(f"fixed cost of one (empty) flow run: {spread(flow_runs)}; once per pipeline run, "
        "not per stage")
    result.check("stage/bare (no Prefect)", median(times["stage"]) / bare, TARGET)
    result.check("task/bare (task run in a flow run)", median(times["task"]) / bare, TARGET)
    return result
