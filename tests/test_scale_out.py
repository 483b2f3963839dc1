"""The pipeline scaled out on Prefect's own machinery: a Prefect server on PostgreSQL, two process
workers (`w1`, `w2`, `--limit 1` each) on the `gitops` pool, the deployments from
`prefect deploy --all` (tests/scaleout.py starts all of it, once for the module).

- deploys of two environments run at the same time, on different workers;
- two deploys of one environment, on different workers, take turns on the environment's deploy
  slot (the global concurrency limit gitops-deploy-<env>);
- a signed push to the webhook receiver starts deploy-main, which a worker runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from deployments.emulators.server import BackgroundServer
from deployments.sandbox.launcher import SandboxState
from gitops.receiver import signature_for
from scaleout import RunRecord, ScaleOut, scale_out_fixture
from test_deploy_flow import dns_value

pytestmark = pytest.mark.slow
CONTRACTS = Path(__file__).resolve().parent / "contracts" / "github"
REPOSITORY = "acme/infrastructure"
SECRET = "scale-out-webhook-secret"

scale_out = scale_out_fixture(environments=("sc-a", "sc-b"), workers={"w1": 1, "w2": 1})


def deploy_together(scale: ScaleOut, *environments: str, sha: str) -> list[RunRecord]:
    """Start one deploy run per entry of ``environments`` at once; their records once finished."""
    ids = [scale.run_deployment("deploy/deploy", environment=env, sha=sha) for env in environments]
    return [scale.record(run_id) for run_id in ids]


def explain(scale: ScaleOut, *runs: RunRecord) -> str:
    lines = [f"{r.name} {r.state} on {r.worker} {r.running[0]:%T.%f}-{r.running[1]:%T.%f}"
             for r in runs]
    return "\n".join(lines) + "\n" + scale.worker_logs()


def test_two_environments_deploy_at_once_on_different_workers(scale_out: ScaleOut) -> None:
    sha = scale_out.repo.push("Add sc-a and sc-b")

    a, b = deploy_together(scale_out, "sc-a", "sc-b", sha=sha)

    assert (a.state, b.state) == ("COMPLETED", "COMPLETED"), explain(scale_out, a, b)
    assert {a.worker, b.worker} == {"w1", "w2"}, explain(scale_out, a, b)
    assert a.overlaps(b), explain(scale_out, a, b)
    assert a.log_time("waiting: another deploy") is None  # no slot is shared between them
    assert b.log_time("waiting: another deploy") is None


def test_two_deploys_of_one_environment_take_turns_on_its_slot(scale_out: ScaleOut) -> None:
    scale_out.repo.set_var("sc-a", "replicas", "3")
    sha = scale_out.repo.push("sc-a: 3 replicas")

    first, second = deploy_together(scale_out, "sc-a", "sc-a", sha=sha)

    runs = (first, second)
    assert (first.state, second.state) == ("COMPLETED", "COMPLETED"), explain(scale_out, *runs)
    assert {first.worker, second.worker} == {"w1", "w2"}, explain(scale_out, *runs)
    assert first.overlaps(second), explain(scale_out, *runs)  # both running: the slot, not a worker
    waited = [r for r in runs if r.log_time("waiting: another deploy of sc-a holds its slot")]
    assert len(waited) == 1, explain(scale_out, *runs)
    waiter = waited[0]
    holder = second if waiter is first else first
    got = waiter.log_time("got the deploy slot of sc-a")
    assert got is not None, explain(scale_out, *runs)
    # Everything the holder logged while it ran was logged before the waiter got the slot, and
    # the waiter did its work (checkout, plan, apply...) only after.
    holder_work = [at for at, _ in holder.logs if at <= holder.running[1]]
    assert max(holder_work) <= got, explain(scale_out, *runs)
    assert waiter.log_time("deploying sc-a at") > got  # type: ignore[operator]
    assert holder.log_time("deploying sc-a at") < got  # type: ignore[operator]


def push_payload(sha: str) -> bytes:
    doc = json.loads((CONTRACTS / "push.default-branch.2.json").read_text())
    doc["ref"] = "refs/heads/main"
    doc["after"] = sha
    doc["repository"]["full_name"] = REPOSITORY
    doc["repository"]["default_branch"] = "main"
    return json.dumps(doc).encode()


def test_a_signed_push_starts_deploy_main_which_a_worker_runs(scale_out: ScaleOut) -> None:
    from deployments.webhook_server import build_app
    from prefect.variables import Variable

    scale_out.repo.set_var("sc-b", "replicas", "4")
    sha = scale_out.repo.push("sc-b: 4 replicas")
    app = build_app(environ={"GITOPS_REPOSITORIES": REPOSITORY, "GITHUB_WEBHOOK_SECRET": SECRET},
                    load_block=lambda name: None)
    body = push_payload(sha)
    with BackgroundServer(app) as server:
        response = httpx.post(f"{server.url}/webhooks/github", content=body, timeout=30, headers={
            "X-GitHub-Event": "push", "X-GitHub-Delivery": "scale-out-1",
            "X-Hub-Signature-256": signature_for(SECRET.encode(), body),
            "Content-Type": "application/json"})
    assert response.status_code == 202, response.text

    run = scale_out.record(response.json()["run_id"])

    assert run.state == "COMPLETED", explain(scale_out, run)
    assert run.worker in {"w1", "w2"}, explain(scale_out, run)
    assert run.log_time("sc-b: deploying") is not None, explain(scale_out, run)
    assert Variable.get("gitops-last-good-sc-b")["sha"] == sha
    assert dns_value(scale_out.sandbox, "app.sc-b.sandbox.internal") is not None
    state = SandboxState.load(scale_out.sandbox.state_file)
    app_doc = httpx.get(f"{state.services['argocd'].url}/api/v1/applications/expense-sc-b",
                        headers={"Authorization": f"Bearer {state.tokens['argocd']}"}).json()
    assert app_doc["status"]["sync"]["revision"] == sha
