"""End to end the way a team runs it past one machine: `prefect deploy --all` from prefect.yaml, a
Prefect worker on the `gitops` process pool, and a signed GitHub push delivered to the webhook
receiver, which starts the deploy-main deployment that the worker runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.sandbox.launcher import SandboxState
from deployments.emulators.server import BackgroundServer
from gitops.receiver import signature_for
from infra_repo import InfraRepo
from test_deploy_flow import dns_value

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = Path(__file__).resolve().parent / "contracts" / "github"
PREFECT = str(Path(sys.executable).with_name("prefect"))
REPOSITORY = "acme/infrastructure"
SECRET = "worker-test-webhook-secret"


@pytest.fixture()
def own_repo(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InfraRepo:
    repo = InfraRepo.isolated(tmp_path, ("wk-a",))
    monkeypatch.setenv("GITOPS_REPOSITORY_URL", repo.url)
    return repo


def prefect_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_CLI_PROMPT": "false", "GITOPS_FLOWS_HOME": str(REPO_ROOT),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture()
def worker(own_repo: InfraRepo, tmp_path: Path) -> Iterator[subprocess.Popen]:
    env = prefect_env()
    for args in (["work-pool", "create", "gitops", "--type", "process", "--overwrite"],
                 ["deploy", "--all", "--prefect-file", str(REPO_ROOT / "prefect.yaml")]):
        done = subprocess.run([PREFECT, "--no-prompt", *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([PREFECT, "worker", "start", "--pool", "gitops", "--type", "process"],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def push_payload(sha: str) -> bytes:
    doc = json.loads((CONTRACTS / "push.default-branch.2.json").read_text())
    doc["ref"] = "refs/heads/main"
    doc["after"] = sha
    doc["repository"]["full_name"] = REPOSITORY
    doc["repository"]["default_branch"] = "main"
    return json.dumps(doc).encode()


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


def test_a_signed_push_runs_deploy_main_on_a_worker(sandbox, own_repo, worker, tmp_path):
    from deployments.webhook_server import build_app

    sha = own_repo.push("Add wk-a")
    app = build_app(environ={"GITOPS_REPOSITORIES": REPOSITORY, "GITHUB_WEBHOOK_SECRET": SECRET},
                    load_block=lambda name: None)
    body = push_payload(sha)
    with BackgroundServer(app) as server:
        response = httpx.post(f"{server.url}/webhooks/github", content=body, timeout=30, headers={
            "X-GitHub-Event": "push", "X-GitHub-Delivery": "worker-e2e-1",
            "X-Hub-Signature-256": signature_for(SECRET.encode(), body),
            "Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    run = wait_final(response.json()["run_id"])

    assert run.state.is_completed(), (run.state.message,
                                      (tmp_path / "worker.log").read_text()[-3000:])
    assert dns_value(sandbox, "app.wk-a.sandbox.internal") is not None
    token = SandboxState.load(sandbox.state_file).tokens["argocd"]
    argocd = SandboxState.load(sandbox.state_file).services["argocd"].url
    app_doc = httpx.get(f"{argocd}/api/v1/applications/expense-wk-a",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert app_doc["status"]["sync"]["revision"] == sha
