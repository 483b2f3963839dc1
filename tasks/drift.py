"""Drift detection stages as Prefect tasks: read-only plans, the notified fingerprint, the GitHub
issue, events, remediation.

Nothing here applies anything. Plans never pass ``-lock=false`` and never force-unlock: a held
state lock is a *skipped* report. Retry policy: the plans do not retry (see tasks/terraform.py);
GitHub calls retry on transient failures only (tasks/retry.py); the Variable read/write retries
(it is idempotent).

Notifying is compare → tell → remember; :func:`notify_lock` (a global concurrency limit per
environment) makes that one step, so two checks of one environment that overlap (the schedule
and a manual run, on two workers) never both tell, and the later observation is what stays
remembered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.logging import get_run_logger
from prefect.variables import Variable

from gitops.config import check_environment_name

from gitops.drift import (
    ISSUE_LABEL,
    DriftReport,
    NoticeKind,
    classify,
    drift_marker,
    fingerprint,
    render_drift_issue,
    render_drift_resolved,
    skipped,
)

from gitops.models import LockInfo, PlanStatus
from gitops.settings import GitopsSettings
from gitops.workspace import EnvWorkspace
from tasks.github import code_host
from tasks.publish import emit, publish_table
from tasks.retry import BACKOFF, transient_only
from tasks.deploys import DEPLOY_DEPLOYMENT
from tasks.slots import ensure_limit, slot_in_use
from tasks.terraform import stage_plan

REMEDIATION_DEPLOYMENT = DEPLOY_DEPLOYMENT
DETECTED_EVENT = "gitops.drift.detected"
RESOLVED_EVENT = "gitops.drift.resolved"
NOTIFY_LOCK_LEASE_SECONDS = 60
"""Lease of the notify lock: renewed while held; a holder that dies frees it after this (the
API's minimum)."""
NOTIFY_LOCK_WAIT_SECONDS = 300
"""How long a check waits for another check of the environment to finish notifying."""


# -- read-only plans ------------------------------------------------------------------------------


def _lock_reason(lock: LockInfo | None) -> str:
    if lock is None:
        return "state is locked"
    return (f"state is locked by {lock.who or 'unknown'} (operation {lock.operation or 'unknown'}, "
            f"since {lock.created or 'unknown'}, lock ID {lock.id or 'unknown'}); not broken")


@task(name="drift-plan", task_run_name="drift-plan-{ws.environment.name}", cache_policy=NO_CACHE)
def plan_drift(ws: EnvWorkspace, slot: str) -> DriftReport:
    """A ``-refresh-only`` plan and a normal plan of one environment, classified.

    Skipped (not an error) when a deploy holds ``slot`` or the state lock is held.
    """
    logger = get_run_logger()
    if slot_in_use(slot):
        logger.info("%s: a deploy holds %s; skipped", ws.name, slot)
        return skipped(ws.name, ws.commit, f"a deploy of {ws.name} is running (slot {slot} held)")
    refresh = stage_plan(ws, refresh_only=True, label="drift-refresh")
    # After the refresh ended: two plans of one environment hold its state lock in turn, so the
    # later end is the later observation.
    observed_at = datetime.now(timezone.utc).isoformat()
    if refresh.status is PlanStatus.LOCKED:
        logger.info("%s: %s", ws.name, _lock_reason(refresh.lock))
        return skipped(ws.name, ws.commit, _lock_reason(refresh.lock), refresh.lock)
    normal = stage_plan(ws, label="drift-plan")
    if normal.status is PlanStatus.LOCKED:
        logger.info("%s: %s", ws.name, _lock_reason(normal.lock))
        return skipped(ws.name, ws.commit, _lock_reason(normal.lock), normal.lock)
    report = replace(classify(refresh.plan, normal.plan, environment=ws.name, commit=ws.commit),
                     observed_at=observed_at)
    logger.info("%s: %s (%d drifted resource(s), pending: %s)", ws.name, report.status,
                len(report.drifted), report.pending.summary())
    return report


# -- the notified fingerprint ---------------------------------------------------------------------


def variable_name(environment: str) -> str:
    """The Prefect Variable that remembers what was last notified for ``environment``."""
    return f"gitops-drift-{environment}"


def notify_lock_name(environment: str) -> str:
    """The global concurrency limit (one slot) that serializes notifying about ``environment``;
    a name that is not a plain environment name is refused (ConfigError)."""
    return f"gitops-drift-{check_environment_name(environment)}"


@contextmanager
def notify_lock(environment: str) -> Iterator[None]:
    """Hold the environment's notify lock (created on first use); TimeoutError after
    :data:`NOTIFY_LOCK_WAIT_SECONDS`."""
    name = notify_lock_name(environment)
    ensure_limit(name)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=NOTIFY_LOCK_WAIT_SECONDS,
                     lease_duration=NOTIFY_LOCK_LEASE_SECONDS):
        yield


@dataclass(frozen=True)
class Notified:
    """What the Variable remembers: the fingerprint last notified (None: no open drift), when
    the check that recorded it observed the environment, and the drift issue's number."""

    fingerprint: str | None = None
    observed_at: str = ""
    issue: int | None = None


@task(name="drift-last-notified", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def load_notified(environment: str) -> Notified:
    """What was last notified for ``environment`` (nothing recorded: an empty record)."""
    value = Variable.get(variable_name(environment), default=None, _sync=True)
    if not isinstance(value, dict):
        return Notified()
    found = value.get("fingerprint")
    observed = value.get("observed_at")
    issue = value.get("issue")
    return Notified(fingerprint=found if isinstance(found, str) and found else None,
                    observed_at=observed if isinstance(observed, str) else "",
                    issue=issue if isinstance(issue, int) else None)


@task(name="drift-remember", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def store_notified(report: DriftReport, value: str | None, issue: int | None = None) -> None:
    """Remember ``value`` as the fingerprint notified for the report's environment, observed
    when the report was."""
    Variable.set(variable_name(report.environment), {
        "fingerprint": value,
        "status": str(report.status),
        "commit": report.commit,
        "issue": issue,
        "observed_at": report.observed_at,
        "updated_at": datetime.now(timezone.utc).isoformat(),
    }, overwrite=True, _sync=True)


# -- GitHub ---------------------------------------------------------------------------------------


@task(name="drift-issue", retries=len(BACKOFF), retry_delay_seconds=BACKOFF,
      retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def open_or_update_issue(settings: GitopsSettings, report: DriftReport, kind: NoticeKind,
                         run_url: str | None = None) -> int:
    """Open the environment's drift issue, or update the open one; return its number."""
    title, body = render_drift_issue(report, run_url=run_url)
    with code_host(settings) as github:
        existing = github.find_open_issue(settings.repository, drift_marker(report.environment))
        if existing is None:
            issue = github.create_issue(settings.repository, title, body, labels=[ISSUE_LABEL])
            get_run_logger().info("%s: opened drift issue #%d", report.environment, issue.number)
            return issue.number
        if existing.body != body:
            github.update_issue(settings.repository, existing.number, body=body)
        if kind is NoticeKind.CHANGED:
            github.create_comment(settings.repository, existing.number,
                                  f"The drift changed (fingerprint `{fingerprint(report)}`, "
                                  f"commit `{report.commit[:12]}`); the description is updated.")
        get_run_logger().info("%s: updated drift issue #%d", report.environment, existing.number)
        return existing.number


@task(name="drift-issue-close", retries=len(BACKOFF), retry_delay_seconds=BACKOFF,
      retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def close_issue(settings: GitopsSettings, report: DriftReport,
                run_url: str | None = None) -> int | None:
    """Mark the environment's open drift issue resolved and close it; its number, if any."""
    with code_host(settings) as github:
        existing = github.find_open_issue(settings.repository, drift_marker(report.environment))
        if existing is None:
            return None
        github.create_comment(settings.repository, existing.number,
                              f"Resolved: no drift found at commit `{report.commit[:12]}`.")
        github.update_issue(settings.repository, existing.number,
                            body=render_drift_resolved(report, run_url=run_url), state="closed")
    get_run_logger().info("%s: closed drift issue #%d", report.environment, existing.number)
    return existing.number


# -- events and remediation -----------------------------------------------------------------------


def event_payload(report: DriftReport, kind: NoticeKind) -> dict[str, Any]:
    """What the event carries: names, paths and counts, never attribute values."""
    return {
        "environment": report.environment,
        "status": str(report.status),
        "notice": str(kind),
        "commit": report.commit,
        "fingerprint": fingerprint(report),
        "resources": [d.address for d in report.drifted],
        "attributes": [f"{d.address}.{a.path}" for d in report.drifted for a in d.attributes],
        "pending": report.pending.summary(),
    }


@task(name="drift-event", cache_policy=NO_CACHE)
def emit_drift_event(report: DriftReport, kind: NoticeKind) -> None:
    """Emit ``gitops.drift.detected`` (new, changed) or ``gitops.drift.resolved``."""
    name = RESOLVED_EVENT if kind is NoticeKind.RESOLVED else DETECTED_EVENT
    emit(name, report.environment, event_payload(report, kind))


@task(name="drift-remediate", cache_policy=NO_CACHE)
def start_remediation(report: DriftReport, sha: str) -> str | None:
    """Start the deploy of ``sha`` (the last good commit) without waiting; the flow run id.

    One run per environment and drift fingerprint (idempotency key). When the deployment does
    not exist, say that remediation needs it and start nothing.
    """
    from prefect.exceptions import ObjectNotFound

    from tasks.deploys import start_deploy_run

    logger = get_run_logger()
    try:
        run_id, _ = start_deploy_run(report.environment, sha,
                                     f"drift-remediate-{report.environment}-{fingerprint(report)}")
    except ObjectNotFound:
        logger.warning("%s: remediate = true, but remediation needs the deployment %s, which "
                       "does not exist; nothing started", report.environment,
                       REMEDIATION_DEPLOYMENT)
        return None
    logger.info("%s: started %s for the last good commit %s (flow run %s)", report.environment,
                REMEDIATION_DEPLOYMENT, sha[:12], run_id)
    return run_id


@task(name="drift-table", cache_policy=NO_CACHE)
def publish_drift_table(rows: list[dict[str, str]], commit: str) -> None:
    """The drift run's table artifact (key ``drift``)."""
    publish_table("drift", rows, f"drift check of every environment at {commit[:12]}")
