"""End to end the way a team runs it past one machine: `prefect deploy --all` from prefect.yaml,
Prefect workers on the `gitops` process pool, and the drift deployment, whose environment runs
spread over two workers. (A signed push running deploy-main on a worker, and the rest of the
scale-out, are in test_scale_out.py, on a PostgreSQL-backed server.)"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra_repo import InfraRepo

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


def prefect_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_CLI_PROMPT": "false", "GITOPS_FLOWS_HOME": str(REPO_ROOT),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": str(REPO_ROOT)}


def deploy_everything(env: dict[str, str]) -> None:
    """The `gitops` process pool and every deployment of prefect.yaml on the test server."""
    from deployments.sandbox.launcher import deploy_to_pool

    deploy_to_pool(REPO_ROOT, env)


@contextlib.contextmanager
def process_worker(env: dict[str, str], log_path: Path,
                   *args: str) -> Iterator[subprocess.Popen]:
    """A `prefect worker start --pool gitops` process (with ``args``), stopped on exit."""
    log = open(log_path, "wb")
    proc = subprocess.Popen([PREFECT, "worker", "start", "--pool", "gitops", "--type", "process",
                             *args], cwd=REPO_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def wait_final(run_id: str, timeout: float = 300.0) -> Any:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(1)
    raise AssertionError(f"flow run {run_id} did not finish within {timeout}s")


FANOUT_ENVS = ("fan-a", "fan-b", "fan-c")


def test_drift_spreads_one_run_per_environment_over_two_workers(sandbox, tmp_path, monkeypatch):
    """The drift deployment (as the schedule starts it) starts one drift-environment run per
    environment; two workers take them, and drift's table has every environment's result.

    Each worker runs two flow runs at a time: drift itself holds one slot while it waits, so
    with ``--limit 1`` each, its environment runs could only go to the other worker."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.deployments import run_deployment
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    repo = InfraRepo.isolated(tmp_path, FANOUT_ENVS)  # never applied: each plan is all creates
    monkeypatch.setenv("GITOPS_REPOSITORY_URL", repo.url)
    sha = repo.push("Three environments")
    env = prefect_env()
    deploy_everything(env)
    with process_worker(env, tmp_path / "one.log", "--name", "drift-one", "--limit", "2"), \
            process_worker(env, tmp_path / "two.log", "--name", "drift-two", "--limit", "2"):
        parent = run_deployment("drift/drift", parameters={"timeout_seconds": 240}, timeout=0,
                                as_subflow=False)
        run = wait_final(str(parent.id), timeout=300)
        logs = "".join((tmp_path / f).read_text()[-2000:] for f in ("one.log", "two.log"))
        assert run.state.is_completed(), (run.state.message, logs)

    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])))
        events = client.read_events(filter=EventFilter(
            event=EventNameFilter(name=["prefect.worker.submitted-flow-run"]),
            resource=EventResourceFilter(id=[f"prefect.worker.process.{name}"
                                             for name in ("drift-one", "drift-two")])),
            limit=50).events
        table = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["drift"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[parent.id])))
    assert sorted(r.parameters["environment"] for r in children) == sorted(FANOUT_ENVS)
    assert all(r.parameters["sha"] == sha and r.state.is_completed() for r in children)
    worker_of = {related.id.removeprefix("prefect.flow-run."): event.resource.name
                 for event in events for related in event.related if related.role == "flow-run"}
    assert {worker_of[str(r.id)] for r in children} == {"drift-one", "drift-two"}, worker_of
    rows = json.loads(table[0].data)
    assert sorted((r["environment"], r["status"], r["commit"]) for r in rows) == [
        (name, "pending_changes", sha[:12]) for name in FANOUT_ENVS]
