"""resume: an approval answered → the apply started, against a bare flow that suspends and resumes.

Issue 11: "Resume latency: approval answered → apply started, against a bare Prefect flow that
suspends and resumes with no work (same server, same worker): <= 1.3x."

Setup (not timed): the sandbox (moto with IAM, the GitHub and Argo CD emulators, the provider,
the infra repository) on the benchmarks' Prefect server; the `gitops` process pool,
``prefect deploy --all`` of prefect.yaml, and the baseline deployment ``bench-bare-suspend/bench``
on the same pool with the same job variables; ONE process worker
(``PREFECT_WORKER_QUERY_SECONDS=1``). ``ROUNDS`` prod-like environments (``approval_rule``
``approvers = ["acme/platform"]``, as tests/test_scale_out.py), one deploy run each from
``deploy/deploy``: each plans, seals its plan into the state bucket and suspends; and ``ROUNDS``
bare runs, each suspended in ``suspend_flow_run``.

Each round (baseline, then product; each run finished before the next answer):

* **baseline**: ``resume_flow_run(run, run_input={"go": true})``; time from just before that
  call to the timestamp of the marker line the resumed flow logs (written by the flow process).
* **product**: erin (acme/platform) posts ``/gitops approve ENV FINGERPRINT`` on the commit (not
  timed: the answer exists before the run is told), then ``deployments.approvals.deliver(run,
  {"check_github": true, ...})``, the CLI's path; time from just before ``deliver`` to the start
  of the run's ``apply`` task run (tasks.terraform.apply_staged_plan). The run must end
  Completed with erin as its approver and the plan it resumed with the plan it applied.

Both clocks are this machine's: the answer is taken here, the marker and the task run start in
the flow process. The breakdown comes from the flow run's states (Resuming, Pending, Running),
its task runs' start and end, and its logs. Target: median product / median baseline <= 1.3.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from bench._prefect import prefect_server
from bench._report import Result, heading, median, say, secs, spread

NAME = "resume"
NEEDS_PREFECT = True
ROUNDS = 5
TARGET = 1.3
REPO = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))
TEAM_RULE = 'approvers = ["acme/platform"]\n'
APPROVER = "erin"
BASELINE_DEPLOYMENT = "bench-bare-suspend/bench"
SUSPEND_TIMEOUT = 600.0
FINISH_TIMEOUT = 300.0


# -- reading a run back from the API ---------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """One task run: its name (without Prefect's suffix), start and end."""

    name: str
    start: datetime
    end: datetime | None


@dataclass
class Resumed:
    """What one resumed run did after the answer at ``answered``."""

    answered: datetime
    states: list[tuple[str, datetime]] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    logs: list[tuple[datetime, str]] = field(default_factory=list)
    end: datetime | None = None
    """The timed event: the baseline's marker log line, the product's apply task run start."""

    @property
    def latency(self) -> float:
        assert self.end is not None
        return (self.end - self.answered).total_seconds()

    def state_at(self, name: str) -> datetime | None:
        return next((t for n, t in self.states if n == name), None)

    def timeline(self) -> list[tuple[float, str]]:
        """Every event after the answer, as (seconds after it, what)."""
        events = [(t, f"state {n}") for n, t in self.states]
        for span in self.spans:
            events.append((span.start, f"task {span.name} starts"))
            if span.end is not None:
                events.append((span.end, f"task {span.name} ends "
                                         f"({secs((span.end - span.start).total_seconds())})"))
        events += [(t, f"log: {m[:110]}") for t, m in self.logs]
        return [((t - self.answered).total_seconds(), what) for t, what in sorted(events,
                                                                                key=lambda e: e[0])]


def _task_name(run_name: str) -> str:
    """``checkout-a1b`` → ``checkout`` (Prefect appends a short key to each task run's name)."""
    return re.sub(r"-[0-9a-f]{3}$", "", run_name)


def read_resumed(run_id: uuid.UUID, answered: datetime) -> Resumed:
    """The states, task runs and logs of ``run_id`` from ``answered`` on."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import LogSort

    found = Resumed(answered)
    with get_client(sync_client=True) as client:
        for state in sorted(client.read_flow_run_states(run_id), key=lambda s: s.timestamp):
            if state.timestamp >= answered:
                found.states.append((state.name or state.type.value, state.timestamp))
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[run_id])), limit=200)
        for run in runs:
            if run.start_time is not None and run.start_time >= answered:
                found.spans.append(Span(_task_name(run.name), run.start_time, run.end_time))
        found.spans.sort(key=lambda s: s.start)
        offset = 0
        while True:
            page = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                any_=[run_id])), limit=200, offset=offset, sort=LogSort.TIMESTAMP_ASC)
            found.logs += [(log.timestamp, log.message) for log in page
                           if log.timestamp >= answered]
            if len(page) < 200:
                break
            offset += 200
    return found


def wait_state(run_id: uuid.UUID, done: Any, timeout: float, what: str) -> Any:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state is not None and done(run.state):
                return run
            if time.monotonic() > deadline:
                raise RuntimeError(f"flow run {run_id} not {what} within {timeout:.0f}s: "
                                   f"{run.state}")
            time.sleep(0.5)


def settled(read: Any, ready: Any, timeout: float = 30.0) -> Resumed:
    """``read()`` again until ``ready(found)``: task runs and logs reach the API in batches."""
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if ready(found) or time.monotonic() > deadline:
            return found
        time.sleep(1)


# -- the setup ---------------------------------------------------------------------------------

def _job_env() -> dict[str, str]:
    """The `gitops` pool's job variables of prefect.yaml (deploy/deploy runs with them)."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return dict(spec["definitions"]["work_pool"]["job_variables"]["env"])


class Worker:
    """One process worker on the `gitops` pool (and the deployments it runs), stopped at exit."""

    def __init__(self, logs: Path) -> None:
        self.log_path = logs / "worker.log"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def env() -> dict[str, str]:
        from prefect.settings import PREFECT_API_URL

        return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                "PREFECT_CLI_PROMPT": "false", "GITOPS_FLOWS_HOME": str(REPO),
                "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": str(REPO)}

    def deploy(self) -> None:
        # The flows byte-compiled, as on a worker image (Makefile's install does the same): a
        # resumed run is a new process, which would otherwise compile every module it imports.
        subprocess.run([sys.executable, "-m", "compileall", "-q", "flows", "tasks", "gitops",
                        "deployments", "bench"], cwd=REPO, check=True, capture_output=True)
        from prefect import Flow

        from deployments.sandbox.launcher import deploy_to_pool

        deploy_to_pool(REPO, self.env())

        bare = Flow.from_source(source=str(REPO), entrypoint="bench/resume_flow.py:bare_suspend")
        bare.deploy(name="bench", work_pool_name="gitops", job_variables={"env": {
            k: v for k, v in _job_env().items() if not k.startswith("GITOPS_")}},
            build=False, push=False, print_next_steps=False)
        if os.environ.get("BENCH_PROFILE_CMD"):
            self.profile(os.environ["BENCH_PROFILE_CMD"])

    @staticmethod
    def profile(command: str) -> None:
        """Start both deployments' flow processes with ``command`` instead of ``python -m
        prefect.engine`` (BENCH_PROFILE_CMD: a script that runs the engine under a profiler,
        see README); the figures are then the profiler's, not the product's."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import DeploymentUpdate

        with get_client(sync_client=True) as client:
            for name in ("deploy/deploy", BASELINE_DEPLOYMENT):
                found = client.read_deployment_by_name(name)
                variables = {**(found.job_variables or {}), "command": command}
                client.update_deployment(found.id, DeploymentUpdate(job_variables=variables))

    def start(self) -> None:
        out = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "gitops", "--type", "process", "--name",
             "bench-worker", "--limit", "2"], cwd=REPO, env=self.env(), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() \
            else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=30)


class SandboxSession:
    """The whole local sandbox on the current Prefect API, its settings in os.environ while open
    (as tests/conftest.py's ``sandbox`` fixture does)."""

    def __init__(self, root: Path) -> None:
        from deployments.sandbox.launcher import Sandbox

        self.box = Sandbox(root, source=REPO)
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> SandboxSession:
        from deployments.blocks import register_sandbox_blocks
        from deployments.sandbox.launcher import SandboxState

        try:
            env = self.box.up(services=("moto", "argocd", "github"), register_blocks=False)
            state = SandboxState.load(self.box.state_file)
            register_sandbox_blocks(None, moto_endpoint=state.services["moto"].url,
                                    tokens=state.tokens)
        except BaseException:
            self.box.down()
            raise
        env["GITOPS_ARGOCD_SYNC_TIMEOUT_SECONDS"] = "30"
        self.saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        return self

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.box.down()


def _suspended(state: Any) -> bool:
    return state.is_paused() or state.is_final()


def start_product_runs(tmp: Path, count: int) -> list[tuple[str, str, uuid.UUID]]:
    """``count`` new approval environments in one commit, one deploy run each, all suspended:
    (environment, sha, run id)."""
    from prefect.deployments import run_deployment

    from tests.infra_repo import InfraRepo

    infra = InfraRepo(os.environ["GITOPS_REPOSITORY_URL"], tmp / "infra")
    names = [f"rsm-{i}" for i in range(1, count + 1)]
    for name in names:
        infra.add_environment(name, approval=True, approval_rule=TEAM_RULE)
    sha = infra.push("Add the resume benchmark's environments")
    runs = [(name, sha, run_deployment("deploy/deploy", parameters={"environment": name,
                                                                    "sha": sha}, timeout=0).id)
            for name in names]
    for name, _, run_id in runs:
        run = wait_state(run_id, _suspended, SUSPEND_TIMEOUT, "suspended")
        if run.state.name != "Suspended":
            raise RuntimeError(f"deploy of {name} did not suspend: {run.state}")
    return runs


def start_baseline_runs(count: int) -> list[uuid.UUID]:
    from prefect.deployments import run_deployment

    runs = [run_deployment(BASELINE_DEPLOYMENT, parameters={"key": f"bench-{i}"}, timeout=0).id
            for i in range(count)]
    for run_id in runs:
        run = wait_state(run_id, _suspended, SUSPEND_TIMEOUT, "suspended")
        if run.state.name != "Suspended":
            raise RuntimeError(f"bare run {run_id} did not suspend: {run.state}")
    return runs


# -- one measurement each ----------------------------------------------------------------------

def resume_baseline(run_id: uuid.UUID) -> Resumed:
    from prefect.flow_runs import resume_flow_run

    from bench.resume_flow import MARKER

    answered = datetime.now(timezone.utc)
    resume_flow_run(run_id, run_input={"go": True})
    run = wait_state(run_id, lambda s: s.is_final(), FINISH_TIMEOUT, "finished")
    if not run.state.is_completed():
        raise RuntimeError(f"bare run {run_id} ended {run.state}")
    found = settled(lambda: read_resumed(run_id, answered),
                    lambda f: any(MARKER in m for _, m in f.logs))
    found.end = next(t for t, m in found.logs if MARKER in m)
    return found


def resume_product(environment: str, run_id: uuid.UUID) -> Resumed:
    from deployments.approvals import deliver, post_answer, waiting_request
    from gitops.github import GitHubClient
    from gitops.settings import load_settings
    from deployments.sandbox.launcher import Sandbox

    token = Sandbox(Path(os.environ["GITOPS_WORKDIR"]).parent).github_token(APPROVER)
    request = waiting_request(str(run_id))
    with GitHubClient.from_token(token, base_url=load_settings().github_api_url) as host:
        post_answer(host, request, approve=True)
    answered = datetime.now(timezone.utc)
    deliver(str(run_id), {"check_github": True, "approve": False, "approver": "",
                          "reason": f"bench: approve by @{APPROVER}"})
    run = wait_state(run_id, lambda s: s.is_final(), FINISH_TIMEOUT, "finished")
    if not run.state.is_completed():
        raise RuntimeError(f"deploy of {environment} ended {run.state.name}: "
                           f"{run.state.message}")
    report = run.state.result()
    if (report.outcome.value, report.approver) != ("deployed", APPROVER):
        raise RuntimeError(f"deploy of {environment}: {report.outcome}, by {report.approver!r}")
    fp = request.fingerprint
    found = settled(lambda: read_resumed(run_id, answered),
                    lambda f: any(s.name == "apply" and s.end for s in f.spans)
                    and any(f"applied {fp}" in m for _, m in f.logs))
    if not any(f"resumed with plan {fp}" in m for _, m in found.logs) or \
            not any(f"applied {fp}" in m for _, m in found.logs):
        raise RuntimeError(f"deploy of {environment}: no 'resumed with plan {fp}' and "
                           f"'applied {fp}' in its logs")
    found.end = next(s.start for s in found.spans if s.name == "apply")
    return found


# -- the breakdown -----------------------------------------------------------------------------

MILESTONES = (
    ("answer -> Resuming (API)", "state", "Resuming"),
    ("worker pickup (Resuming -> Pending)", "state", "Pending"),
    ("worker starts the process (-> 'submitted to infrastructure')", "log",
     "submitted to infrastructure"),
    ("process start -> pull steps done (Python + prefect import)", "log",
     "All deployment steps completed successfully"),
    ("loading the flow's module (pull steps -> Running)", "state", "Running"),
)
"""The phases before the flow's own code runs, each ending at a state or a log line."""


def breakdown(run: Resumed) -> dict[str, float]:
    """Seconds per phase from the answer to the timed event: the milestones above, then each
    task run before it by name, and the flow's own code between them ("between tasks")."""
    assert run.end is not None
    parts: dict[str, float] = {}
    cursor = run.answered
    for label, kind, what in MILESTONES:
        at = run.state_at(what) if kind == "state" else next(
            (t for t, m in run.logs if what in m), None)
        if at is None:
            if kind == "state":
                raise RuntimeError(f"no {what} state after the answer: {run.states}")
            continue
        parts[label] = (at - cursor).total_seconds()
        cursor = at
    running = cursor
    in_tasks = 0.0
    for span in run.spans:
        if span.start >= run.end:
            break
        end = min(span.end or run.end, run.end)
        if end <= cursor:  # nested in (or overlapping) a span already counted
            continue
        took = (end - max(span.start, cursor)).total_seconds()
        parts[f"task {span.name}"] = parts.get(f"task {span.name}", 0.0) + took
        in_tasks += took
        cursor = end
    parts["flow code between tasks (Running -> the timed event)"] = (
        (run.end - running).total_seconds() - in_tasks)
    return parts


def _print_breakdowns(label: str, runs: list[Resumed]) -> dict[str, float]:
    table: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for phase, seconds in breakdown(run).items():
            table[phase].append(seconds)
    medians = {phase: median(v + [0.0] * (len(runs) - len(v))) for phase, v in table.items()}
    total = median([r.latency for r in runs])
    say(f"{label}: where the time goes (median of {len(runs)} per phase; total {secs(total)})")
    for phase, seconds in medians.items():
        say(f"  {phase:62s} {secs(seconds)}")
    return medians


def run() -> Result:
    result = Result(NAME)
    heading(NAME, f"approval answered -> apply started ({ROUNDS} prod-like deploys, suspended "
                  f"on deploy/deploy) vs a bare suspend/resume flow; one process worker")
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp, prefect_server():
        work = Path(tmp)
        with SandboxSession(work / "sandbox"):
            worker = Worker(work)
            try:
                start = time.perf_counter()
                worker.deploy()
                worker.start()
                product_runs = start_product_runs(work, ROUNDS)
                baseline_runs = start_baseline_runs(ROUNDS)
                say(f"setup (sandbox, deployments, worker, {ROUNDS} deploys planned and "
                    f"suspended, {ROUNDS} bare runs suspended; not timed): "
                    f"{secs(time.perf_counter() - start)}")
                baseline: list[Resumed] = []
                product: list[Resumed] = []
                for i, (bare_id, (env, _, run_id)) in enumerate(zip(baseline_runs,
                                                                    product_runs)):
                    baseline.append(resume_baseline(bare_id))
                    product.append(resume_product(env, run_id))
                    say(f"round {i + 1}: baseline {secs(baseline[-1].latency)}, product "
                        f"{secs(product[-1].latency)} ({env})")
            except BaseException:
                print(f"  worker log (tail):\n{worker.tail()}", flush=True)
                raise
            finally:
                worker.stop()

    say(f"baseline (resume_flow_run -> marker log)  {spread([r.latency for r in baseline])}")
    say(f"product  (approval delivered -> apply starts) {spread([r.latency for r in product])}")
    _print_breakdowns("baseline", baseline)
    _print_breakdowns("product", product)
    for label, runs in (("baseline", baseline), ("product", product)):
        typical = sorted(runs, key=lambda r: r.latency)[len(runs) // 2]
        say(f"{label}, the median round's timeline (seconds after the answer):")
        for offset, what in typical.timeline():
            if offset <= typical.latency + 0.5:
                say(f"  {offset:7.3f}  {what}")
    ratio = median([r.latency for r in product]) / median([r.latency for r in baseline])
    result.check("resume product/baseline", ratio, TARGET, unit="x")
    return result
