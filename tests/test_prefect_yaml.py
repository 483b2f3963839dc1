"""`prefect deploy --all` of the project's prefect.yaml against the real test Prefect server: every
flow the webhook and the scheduler start is deployed under the name they use, on the work pool."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops.receiver import DEPLOY_MAIN_DEPLOYMENT, PR_CLOSED_DEPLOYMENT, PR_PLAN_DEPLOYMENT
from flows.drift import ENVIRONMENT_DEPLOYMENT
from tasks.drift import REMEDIATION_DEPLOYMENT

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO_ROOT / "prefect.yaml"
WORK_POOL = "gitops"
PREFECT = str(Path(sys.executable).with_name("prefect"))

EXPECTED = {
    "pr-plan/pr-plan": "flows/pr_plan.py:pr_plan",
    "pr-closed/pr-closed": "flows/pr_plan.py:pr_closed",
    "deploy-main/deploy-main": "flows/deploy_main.py:deploy_main",
    "deploy/deploy": "flows/deploy.py:deploy",
    "rollback/rollback": "flows/rollback.py:rollback",
    "unlock/unlock": "flows/unlock.py:unlock",
    "drift/drift": "flows/drift.py:drift",
    "drift-environment/drift-environment": "flows/drift.py:drift_environment",
}


def prefect_cli(args: list[str], api_url: str) -> subprocess.CompletedProcess[str]:
    """Run the prefect CLI against ``api_url``, never prompting."""
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_CLI_PROMPT": "false",
           "GITOPS_FLOWS_HOME": str(REPO_ROOT), "GITOPS_REPOSITORY_URL": "file:///srv/infra.git",
           "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([PREFECT, "--no-prompt", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def deployments(prefect_api: None) -> Iterator[dict[str, Any]]:
    """Deploy everything in the prefect file; the deployments read back, by 'flow/deployment'."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value())
    pool = prefect_cli(["work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"],
                       api_url)
    assert pool.returncode == 0, pool.stdout + pool.stderr
    done = prefect_cli(["deploy", "--all", "--prefect-file", str(PREFECT_FILE)], api_url)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    with get_client(sync_client=True) as client:
        found = {}
        for deployment in client.read_deployments():
            flow = client.read_flow(deployment.flow_id)
            found[f"{flow.name}/{deployment.name}"] = deployment
    yield found


def test_the_prefect_file_is_valid_yaml_with_unique_names():
    doc = yaml.safe_load(PREFECT_FILE.read_text())
    names = [d["name"] for d in doc["deployments"]]
    assert len(names) == len(set(names))
    assert all(d["work_pool"]["name"] == WORK_POOL for d in doc["deployments"])


@pytest.mark.parametrize("name, entrypoint", sorted(EXPECTED.items()))
def test_every_flow_the_pipeline_starts_is_deployed(deployments, name, entrypoint):
    assert name in deployments, sorted(deployments)
    deployment = deployments[name]
    assert deployment.entrypoint == entrypoint
    assert deployment.work_pool_name == WORK_POOL


def test_only_drift_runs_on_a_schedule(deployments):
    drift = deployments["drift/drift"]
    assert len(drift.schedules) == 1
    schedule = drift.schedules[0]
    assert schedule.active
    assert schedule.schedule.cron == "0 * * * *"
    assert schedule.schedule.timezone == "UTC"
    for name in ("pr-plan/pr-plan", "pr-closed/pr-closed", "deploy-main/deploy-main",
                 "deploy/deploy", ENVIRONMENT_DEPLOYMENT):
        assert deployments[name].schedules == []


def test_pr_plan_parameters_are_what_the_webhook_sends(deployments):
    schema = deployments["pr-plan/pr-plan"].parameter_openapi_schema
    assert set(schema["properties"]) == {"repository", "pr_number", "head_sha", "base_ref"}
    assert set(schema["required"]) == {"repository", "pr_number", "head_sha"}
    closed = deployments["pr-closed/pr-closed"].parameter_openapi_schema
    assert set(closed["required"]) == {"repository", "pr_number"}


# The webhook (gitops/receiver/routing.py), drift's fan-out and drift remediation must agree with the deployments
# on names and parameters, or a delivery answers 503 forever.
WEBHOOK_ROUTES = {
    PR_PLAN_DEPLOYMENT: {"repository", "pr_number", "head_sha", "base_ref"},
    PR_CLOSED_DEPLOYMENT: {"repository", "pr_number"},
    DEPLOY_MAIN_DEPLOYMENT: {"repository", "sha", "ref"},
    REMEDIATION_DEPLOYMENT: {"environment", "sha"},
    ENVIRONMENT_DEPLOYMENT: {"environment", "sha"},
}


@pytest.mark.parametrize("name", sorted(WEBHOOK_ROUTES))
def test_the_webhook_routes_to_deployed_flows_with_their_parameters(deployments, name):
    assert name in deployments, f"{name} is not deployed: {sorted(deployments)}"
    schema = deployments[name].parameter_openapi_schema
    sent = WEBHOOK_ROUTES[name]
    assert sent <= set(schema["properties"]), (sent, schema["properties"])
    assert set(schema.get("required", [])) <= sent


def test_deployments_carry_no_secrets(deployments):
    for deployment in deployments.values():
        env = (deployment.job_variables or {}).get("env", {})
        assert not any("TOKEN" in k or "SECRET" in k or "PASSWORD" in k for k in env), env
