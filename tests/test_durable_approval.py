"""Approvals that wait without a process: a deploy run from its deployment on a process worker
suspends, its worker is killed, a fresh worker takes the approval and applies exactly the plan
that was approved, read back sealed from the state bucket: the fault matrix's kill-the-worker case.
A deploy killed while it *runs* (Crashed by the zombie automation, its slot's lease running out)
is in test_scale_out.py, on a real `prefect server start`: the test harness's server runs no lease
repossessor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployments.sandbox import iam
from deployments.sandbox.launcher import SANDBOX_BACKEND
from gitops.planstore import PREFIX
from tests.test_approvals_flow import (  # noqa: F401 - fixtures
    TEAM_RULE,
    fingerprint_of,
    github,
    request_comment,
)
from tests.test_deploy_flow import argocd, infra, state_versions, wait_for_log  # noqa: F401

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


def prefect_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_CLI_PROMPT": "false", "GITOPS_FLOWS_HOME": str(REPO_ROOT),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": str(REPO_ROOT)}


class Workers:
    """Process workers on the `gitops` pool of the session's Prefect server, killed at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}

    def deploy_all(self) -> None:
        for args in (["work-pool", "create", "gitops", "--type", "process", "--overwrite"],
                     ["deploy", "--all", "--prefect-file", str(REPO_ROOT / "prefect.yaml")]):
            done = subprocess.run([PREFECT, "--no-prompt", *args], cwd=REPO_ROOT,
                                  env=prefect_env(), capture_output=True, text=True,
                                  timeout=300, check=False)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "gitops", "--type", "process", "--name", name,
             "--limit", "2"], cwd=REPO_ROOT, env=prefect_env(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        """SIGKILL the worker and everything it started (a node that went away)."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@pytest.fixture()
def workers(sandbox: Any, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    pool.deploy_all()
    try:
        yield pool
    finally:
        pool.stop_all()


def wait_run(run_id: Any, done: Any, timeout: float, what: str) -> Any:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state is not None and done(run.state):
                return run
            time.sleep(1)
    raise AssertionError(f"flow run {run_id} not {what} within {timeout}s: {run.state}")


def saved_plans(sandbox: Any, env: str, run_id: Any) -> list[str]:
    s3 = sandbox.aws_client("s3")
    found = s3.list_objects_v2(Bucket=SANDBOX_BACKEND.bucket, Prefix=f"{PREFIX}/{env}/{run_id}/")
    return [o["Key"] for o in found.get("Contents", [])]


def test_a_suspended_approval_survives_its_worker_and_applies_exactly_the_approved_plan(
        sandbox, infra, argocd, github, workers, monkeypatch, capsys):
    from botocore.exceptions import ClientError
    from prefect.deployments import run_deployment

    from deployments.cli import main as cli

    env = "dur-a"
    infra.add_environment(env, approval=True, approval_rule=TEAM_RULE)
    sha = infra.push(f"Add {env}")
    workers.start("worker-a")
    run_id = run_deployment("deploy/deploy", parameters={"environment": env, "sha": sha},
                            timeout=0).id

    run = wait_run(run_id, lambda s: s.is_paused() or s.is_final(), 300, "waiting")
    assert run.state.name == "Suspended", (run.state, workers.log("worker-a"))
    fingerprint = fingerprint_of(request_comment(github, env, sha=sha), env)
    # Nothing waits on the worker: no process, no files; the plan waits sealed in the state
    # bucket, where the environment's plan credentials cannot read it.
    assert not (Path(os.environ["GITOPS_WORKDIR"]) / "runs" / str(run_id)).exists()
    (key,) = saved_plans(sandbox, env, run_id)
    assert key.endswith(".tfplan.enc") and key.split("/")[-1].startswith(fingerprint[:12])
    with pytest.raises(ClientError, match="AccessDenied"):
        sandbox.aws_client("s3", iam.plan_block(env)).get_object(
            Bucket=SANDBOX_BACKEND.bucket, Key=key)
    assert state_versions(sandbox, env) == 0

    workers.kill("worker-a")      # a redeploy of the workers, a drained node
    workers.start("worker-b")     # what replaces it
    monkeypatch.setenv("GITOPS_GITHUB_TOKEN", sandbox.github_token("erin"))
    capsys.readouterr()
    code = cli(["approve", env, "--wait", "240"])
    out = capsys.readouterr()
    assert code == 0 and "approved" in out.out, (out, workers.log("worker-b"))

    run = wait_run(run_id, lambda s: s.is_final(), 300, "finished")
    assert run.state.is_completed(), (run.state.message, workers.log("worker-b"))
    report = run.state.result()   # persisted to S3: readable over the API, by anyone with it
    assert (report.outcome.value, report.approver) == ("deployed", "erin")
    assert state_versions(sandbox, env) == 1
    assert wait_for_log(run_id, f"resumed with plan {fingerprint}")
    assert wait_for_log(run_id, f"applied {fingerprint}")
    assert saved_plans(sandbox, env, run_id) == []   # deleted once applied

