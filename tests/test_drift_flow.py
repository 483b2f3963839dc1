"""End to end on the sandbox: the drift flow with real terraform, moto, the GitHub emulator and a
real Prefect server. Each test adds its own environment to the infra repo, so tests never share
state; the out-of-band change is made in the sandbox cloud, as a console click would."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.sandbox.launcher import SandboxState
from gitops.drift import EnvDriftStatus, NoticeKind, drift_marker
from deployments.sandbox.cloud import SandboxCloud
from tests.infra_repo import InfraRepo

pytestmark = pytest.mark.slow

REPO = "acme/infrastructure"


@pytest.fixture()
def infra(sandbox: Any, tmp_path: Path) -> InfraRepo:
    return InfraRepo(os.environ["GITOPS_REPOSITORY_URL"], tmp_path / "infra")


@pytest.fixture()
def github(sandbox: Any) -> httpx.Client:
    """The GitHub emulator's REST API, with the sandbox token."""
    state = SandboxState.load(sandbox.state_file)
    with httpx.Client(base_url=state.services["github"].url, timeout=10,
                      headers={"Authorization": f"Bearer {state.tokens['github']}"}) as client:
        yield client


def drift_issues(github: httpx.Client, env: str) -> list[dict[str, Any]]:
    resp = github.get(f"/repos/{REPO}/issues", params={"state": "all", "per_page": "100"})
    resp.raise_for_status()
    return [i for i in resp.json() if drift_marker(env) in (i.get("body") or "")]


def drift_events(env: str, name: str) -> int:
    """How many ``name`` events the Prefect server stored for the environment."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    with get_client(sync_client=True) as client:
        page = client.read_events(filter=EventFilter(
            event=EventNameFilter(name=[name]),
            resource=EventResourceFilter(id=[f"gitops.environment.{env}"])), limit=50)
    return len(page.events)


def wait_events(env: str, name: str, expected: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    count = drift_events(env, name)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        count = drift_events(env, name)
    return count


def run_drift(env: str) -> Any:
    from flows.drift import drift

    reports = drift([env])
    assert [r.environment for r in reports] == [env]
    return reports[0]


def test_drift_is_reported_once_updated_when_it_changes_and_closed_when_gone(
        sandbox: Any, infra: InfraRepo, github: httpx.Client) -> None:
    from flows.deploy import deploy

    env = "drift-a"
    infra.add_environment(env)
    sha = infra.push(f"Add the {env} environment")
    state = deploy(env, sha=sha, return_state=True)
    assert state.is_completed(), state.message

    cloud = SandboxCloud(sandbox.cloud_dir)
    web = next(s for s in cloud.list("service") if s["name"] == f"expense-{env}-web")
    original = {"replicas": web["replicas"], "tags": web["tags"]}

    # 1. Out-of-band change: reported with the attribute, an issue, one event.
    cloud.tamper("service", web["id"], {"replicas": 5})
    first = run_drift(env)
    assert first.status is EnvDriftStatus.DRIFTED, first
    assert first.notice is NoticeKind.NEW
    attrs = {a.path: (a.old, a.new) for d in first.drifted for a in d.attributes}
    assert attrs["replicas"] == (str(original["replicas"]), "5")
    issues = drift_issues(github, env)
    assert len(issues) == 1 and issues[0]["state"] == "open"
    assert "<code>5</code>" in issues[0]["body"]
    assert wait_events(env, "gitops.drift.detected", 1) == 1

    # 2. Same drift again: nothing new (no second issue, no second event).
    second = run_drift(env)
    assert second.status is EnvDriftStatus.DRIFTED and second.notice is NoticeKind.UNCHANGED
    assert [i["number"] for i in drift_issues(github, env)] == [issues[0]["number"]]
    time.sleep(1.0)
    assert drift_events(env, "gitops.drift.detected") == 1

    # 3. A further change: re-reported, the same issue updated.
    cloud.tamper("service", web["id"], {"replicas": 7})
    third = run_drift(env)
    assert third.notice is NoticeKind.CHANGED
    updated = drift_issues(github, env)
    assert [i["number"] for i in updated] == [issues[0]["number"]]
    assert "<code>7</code>" in updated[0]["body"] and updated[0]["state"] == "open"
    assert wait_events(env, "gitops.drift.detected", 2) == 2

    # 4. Reverted by hand: resolved, the issue closed, a resolved event.
    cloud.tamper("service", web["id"], original)
    fourth = run_drift(env)
    assert fourth.status is EnvDriftStatus.IN_SYNC and fourth.notice is NoticeKind.RESOLVED
    closed = drift_issues(github, env)
    assert [(i["number"], i["state"]) for i in closed] == [(issues[0]["number"], "closed")]
    assert wait_events(env, "gitops.drift.resolved", 1) == 1

    # Nothing was applied by the drift runs: the cloud object is as the test left it.
    assert cloud.get("service", web["id"])["replicas"] == original["replicas"]


def test_environment_being_deployed_is_skipped(sandbox: Any, infra: InfraRepo) -> None:
    from prefect.concurrency.sync import concurrency

    from tasks.slots import ensure_slot, slot_name

    env = "drift-b"
    infra.add_environment(env)
    infra.push(f"Add the {env} environment")
    ensure_slot(env)

    with concurrency(slot_name(env), occupy=1, strict=True):
        report = run_drift(env)

    assert report.status is EnvDriftStatus.SKIPPED
    assert "deploy" in report.reason and report.notice is NoticeKind.NONE


def test_remediation_starts_one_deploy_of_the_last_good_commit(sandbox: Any, infra: InfraRepo,
                                                               github: httpx.Client) -> None:
    """`remediate = true`: new drift starts the deploy deployment for the last good commit, once
    per drift (the same drift an hour later starts nothing more)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter
    from prefect.exceptions import ObjectNotFound

    from flows.deploy import deploy
    from tasks.drift import REMEDIATION_DEPLOYMENT

    env = "drift-rem"
    infra.add_environment(env)
    toml = infra.path / f"terraform/environments/{env}/environment.toml"
    toml.write_text("remediate = true\n" + toml.read_text())
    good = infra.push(f"Add {env}, which drift remediates")
    assert deploy(env, sha=good, return_state=True).is_completed()
    infra.set_var(env, "replicas", "3")
    infra.push(f"Scale {env}: on main, not deployed (remediation must not pick it)")

    with get_client(sync_client=True) as client:
        try:
            deployment_id, created = client.read_deployment_by_name(REMEDIATION_DEPLOYMENT).id, False
        except ObjectNotFound:  # registered without a work pool: its runs wait, none executes
            deployment_id, created = deploy.to_deployment(name="deploy").apply(), True

    def remediation_runs() -> list[Any]:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment_id])), flow_run_filter=FlowRunFilter())
        return [r for r in runs if r.parameters.get("environment") == env]

    try:
        cloud = SandboxCloud(sandbox.cloud_dir)
        web = next(s for s in cloud.list("service") if s["name"] == f"expense-{env}-web")
        cloud.tamper("service", web["id"], {"replicas": 6})

        assert run_drift(env).notice is NoticeKind.NEW
        runs = remediation_runs()
        assert len(runs) == 1
        assert runs[0].parameters == {"environment": env, "sha": good}

        assert run_drift(env).notice is NoticeKind.UNCHANGED
        assert [r.id for r in remediation_runs()] == [runs[0].id]
    finally:
        with get_client(sync_client=True) as client:
            for run in remediation_runs():  # never left for a worker of a later test
                client.delete_flow_run(run.id)
            if created:
                client.delete_deployment(deployment_id)


def test_two_checks_of_one_environment_at_once_tell_once_and_keep_the_later_observation(
        sandbox: Any, github: httpx.Client) -> None:
    """A scheduled and a manual check of one environment notify at the same moment: one issue,
    one event; then a check that observed earlier (a slow overlapping one) tells nothing and the
    later fingerprint stays remembered."""
    import contextvars
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timedelta, timezone

    from prefect import flow

    from flows.drift import notify
    from gitops.drift import DriftedAttribute, DriftReport, ResourceDrift, fingerprint
    from gitops.settings import load_settings
    from tasks.drift import load_notified

    env = "drift-twice"
    now = datetime.now(timezone.utc)

    def drifted(replicas: str, at: datetime) -> DriftReport:
        return DriftReport(environment=env, status=EnvDriftStatus.DRIFTED, commit="a" * 40,
                           drifted=(ResourceDrift("module.web.sandbox_service.this", "update", (
                               DriftedAttribute("replicas", "2", replicas),)),),
                           observed_at=at.isoformat())

    report = drifted("5", now)
    start = threading.Barrier(2)

    @flow(name="drift-notify-overlap")
    def overlap() -> list[NoticeKind]:
        settings = load_settings()

        def check() -> NoticeKind:
            start.wait(timeout=30)
            return notify(settings, report, None).notice

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(contextvars.copy_context().run, check) for _ in range(2)]
            told = sorted(f.result() for f in futures)
        older = notify(settings, drifted("9", now - timedelta(seconds=30)), None)
        return [*told, older.notice]

    assert overlap() == [NoticeKind.NEW, NoticeKind.UNCHANGED, NoticeKind.SUPERSEDED]
    assert len(drift_issues(github, env)) == 1
    assert wait_events(env, "gitops.drift.detected", 1) == 1
    time.sleep(1.0)
    assert drift_events(env, "gitops.drift.detected") == 1
    remembered = load_notified.fn(env)
    assert remembered.fingerprint == fingerprint(report)
    assert remembered.observed_at == report.observed_at
