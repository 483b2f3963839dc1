"""The drift flows: plan every environment read-only on a schedule; tell people only what is new.

Orchestration only. ``drift`` resolves the default branch head once; then every environment is
checked by :func:`check_environment`, in one of two places:

* **spread over the pool** (``drift`` run from its deployment, as the schedule runs it): one
  ``drift-environment/drift-environment`` run per environment at that commit, picked up by any
  worker of the pool; ``drift`` waits for them and publishes the combined table;
* **in this process** (``drift`` called directly: the CLI, tests): threads of this run, on one
  shared checkout.

Checking one environment: plan it twice (``-refresh-only`` and normal); an environment whose
deploy slot or state lock is held is *skipped*, never waited for or unlocked. Then compare with
the fingerprint notified last time: open/update the GitHub issue and emit
``gitops.drift.detected`` for new or changed drift, close it and emit ``gitops.drift.resolved``
when it is gone, say nothing otherwise. The fingerprint is stored only after the notification
went out, so a failed notification is retried by the next run; compare, notify and store hold
the environment's notify lock, so two checks that overlap tell once.

Nothing is applied, except: an environment with ``remediate = true`` gets the ``deploy/deploy``
deployment started for its last good commit when new or changed drift is found.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.context import get_run_context
from prefect.logging import get_run_logger

from gitops.config import Environment, check_environment_name, list_environments, load_configured
from gitops.drift import DriftReport, NoticeKind, errored, notification, render_drift_table
from gitops.errors import GitopsError, UnknownEnvironment, UnreviewedCommit
from gitops.git import GitRepository
from gitops.grant import Phase
from gitops.settings import GitopsSettings, load_settings
from gitops.workspace import EnvWorkspace
from flows.common import DISCARD_RUN_FILES, run_dir, run_url, workspace
from tasks.slots import slot_name
from tasks.drift import (
    close_issue,
    emit_drift_event,
    load_notified,
    notify_lock,
    open_or_update_issue,
    plan_drift,
    publish_drift_table,
    start_remediation,
    store_notified,
)
from tasks.git import checkout_commit
from tasks.records import last_good_commit

DRIFT_LOCK_TIMEOUT_SECONDS = 5
"""How long a drift plan waits for a held state lock before reporting the environment skipped."""
ENVIRONMENT_DEPLOYMENT = "drift-environment/drift-environment"
"""The deployment ``drift`` starts once per environment when it runs from its own deployment."""
FAN_OUT_TIMEOUT_SECONDS = 3300.0
"""How long ``drift`` waits for its environment runs (under the hour between scheduled runs)."""
FAN_OUT_POLL_SECONDS = 2.0


@flow(name="drift", flow_run_name="drift", **DISCARD_RUN_FILES)
def drift(environments: list[str] | None = None, max_concurrency: int = 4,
          fan_out: bool | None = None,
          timeout_seconds: float = FAN_OUT_TIMEOUT_SECONDS) -> list[DriftReport]:
    """Check ``environments`` (default: every configured one) for drift at the default branch head.

    ``fan_out``: one ``drift-environment`` run per environment (spread over the pool's workers),
    or threads of this run (``max_concurrency`` at a time); default: fan out when this run comes
    from a deployment. Environment runs not finished after ``timeout_seconds`` are reported as
    errors here (they go on, and notify on their own).
    """
    logger = get_run_logger()
    settings = load_settings()
    base = run_dir(settings)
    checkout = base / "checkout"
    commit = checkout_commit(settings.repository_url, Path(settings.workdir),
                             settings.default_branch, checkout)
    names = list(environments or list_environments(checkout, settings.environments_dir))
    spread = fan_out if fan_out is not None else _from_deployment()
    logger.info("drift check of %s at %s (%s), %s", ", ".join(names) or "(no environments)",
                commit.sha[:12], commit.subject,
                f"one {ENVIRONMENT_DEPLOYMENT} run each" if spread else "in this run")

    configs, reports = _configured(settings, checkout, names, commit.sha)
    if spread:
        reports.update(_fan_out(list(configs), commit.sha, timeout_seconds))
    else:
        reports.update(_in_process(settings, configs, checkout, commit.sha, base / "drift-envs",
                                   max_concurrency))
    results = [reports[name] for name in names]

    publish_drift_table(render_drift_table(results), commit.sha)
    for report in results:
        if report.status.checked:
            logger.info("%s: %s, notice %s", report.environment, report.status, report.notice)
        else:
            logger.warning("%s: %s: %s", report.environment, report.status, report.reason)
    return results


@flow(name="drift-environment", flow_run_name="drift-{environment}", persist_result=True,
      **DISCARD_RUN_FILES)
def drift_environment(environment: str, sha: str | None = None) -> DriftReport:
    """Check one environment at ``sha`` (default: the default branch head), a commit of the
    default branch's history; a commit outside it is refused (an error report)."""
    check_environment_name(environment)
    settings = load_settings()
    base = run_dir(settings)
    checkout = base / "checkout"
    commit = checkout_commit(settings.repository_url, Path(settings.workdir),
                             sha or settings.default_branch, checkout)
    if sha:
        repo = GitRepository(settings.repository_url, Path(settings.workdir))
        head = repo.resolve(settings.default_branch)
        if commit.sha != head and not repo.is_ancestor(commit.sha, head):
            return errored(environment, commit.sha, str(UnreviewedCommit(
                environment, commit.sha, settings.default_branch, head)))
    configs, reports = _configured(settings, checkout, [environment], commit.sha)
    if environment in reports:
        return reports[environment]
    return check_environment(settings, configs[environment], checkout, commit.sha,
                             base / "drift-envs", run_url(settings))


def check_environment(settings: GitopsSettings, env: Environment, checkout: Path, sha: str,
                      envs_dir: Path, url: str | None) -> DriftReport:
    """Plan one environment twice, tell what is new, remediate if it says so; its report.

    The one per-environment step, wherever it runs (an environment run or a thread of ``drift``).
    """
    logger = get_run_logger()
    try:
        ws = _workspace(settings, env, checkout, sha, envs_dir)
    except GitopsError as exc:
        return notify(settings, errored(env.name, sha, str(exc)), url)
    try:
        report = plan_drift(ws, slot_name(env.name))
    except Exception as exc:  # noqa: BLE001 - one environment's failure is its report
        logger.error("%s: drift check failed: %s", env.name, exc)
        report = errored(env.name, sha, f"{type(exc).__name__}: {exc}")
    report = notify(settings, report, url)
    if env.remediate and report.notice in (NoticeKind.NEW, NoticeKind.CHANGED):
        remediate(report)
    return report


def _configured(settings: GitopsSettings, checkout: Path, names: list[str],
                sha: str) -> tuple[dict[str, Environment], dict[str, DriftReport]]:
    """The configurations of ``names`` at ``checkout``; error reports for the unknown or broken."""
    loaded, broken = load_configured(checkout, settings.environments_dir)
    configs: dict[str, Environment] = {}
    reports: dict[str, DriftReport] = {}
    for name in names:
        if name in loaded:
            configs[name] = loaded[name]
        else:
            reports[name] = errored(name, sha, broken.get(name) or str(
                UnknownEnvironment(name, sorted(loaded))))
    return configs, reports


def _in_process(settings: GitopsSettings, configs: dict[str, Environment], checkout: Path,
                sha: str, envs_dir: Path, max_concurrency: int) -> dict[str, DriftReport]:
    """Every environment checked by a thread of this run (their task runs belong to it)."""
    url = run_url(settings)
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency),
                            thread_name_prefix="drift") as pool:
        futures = {name: pool.submit(contextvars.copy_context().run, check_environment,
                                     settings, env, checkout, sha, envs_dir, url)
                   for name, env in configs.items()}
        return {name: future.result() for name, future in futures.items()}


def _from_deployment() -> bool:
    return get_run_context().flow_run.deployment_id is not None


def _fan_out(names: list[str], sha: str, timeout_seconds: float) -> dict[str, DriftReport]:
    """One environment run per name at ``sha``; their reports once they end (or time out)."""
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    parent = get_run_context().flow_run.id
    started = {}
    for name in names:
        # The same key for a retried run of this drift check: its environment runs, not new ones.
        started[name] = run_deployment(ENVIRONMENT_DEPLOYMENT,
                                       parameters={"environment": name, "sha": sha},
                                       timeout=0, as_subflow=True,
                                       idempotency_key=f"{parent}-{name}").id
    logger.info("started %d %s run(s); waiting up to %.0f s", len(started),
                ENVIRONMENT_DEPLOYMENT, timeout_seconds)
    final = _wait_final(list(started.values()), timeout_seconds)
    reports = {}
    for name, run_id in started.items():
        run = final.get(run_id)
        reports[name] = _report_of(name, sha, run_id, run)
    return reports


def _wait_final(run_ids: list[Any], timeout_seconds: float) -> dict[Any, Any]:
    """The flow runs among ``run_ids`` in a final state, polled until all are or time is up."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_seconds
    final: dict[Any, Any] = {}
    with get_client(sync_client=True) as client:
        while True:
            waiting = [i for i in run_ids if i not in final]
            for start in range(0, len(waiting), 100):
                chunk = waiting[start:start + 100]
                for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(
                        id=FlowRunFilterId(any_=chunk)), limit=len(chunk)):
                    if run.state is not None and run.state.is_final():
                        final[run.id] = run
            if len(final) == len(run_ids) or time.monotonic() >= deadline:
                return final
            time.sleep(FAN_OUT_POLL_SECONDS)


def _report_of(name: str, sha: str, run_id: Any, run: Any | None) -> DriftReport:
    """The report an environment run returned, or an error report saying why there is none."""
    logger = get_run_logger()
    if run is None:
        logger.error("%s: its drift run %s did not finish in time", name, run_id)
        return errored(name, sha, f"drift run {run_id} did not finish in time (it goes on)")
    if not run.state.is_completed():
        return errored(name, sha, f"drift run {run_id} ended {run.state.name}: "
                                  f"{run.state.message or ''}".strip())
    try:
        report = run.state.result(raise_on_failure=True)
    except Exception as exc:  # noqa: BLE001 - the run checked it; only the result is missing
        logger.error("%s: the result of drift run %s cannot be read here (%s); results must be "
                     "in storage every worker reaches", name, run_id, exc)
        return errored(name, sha, f"drift run {run_id} completed, but its result cannot be "
                                  f"read: {type(exc).__name__}: {exc}")
    if not isinstance(report, DriftReport):
        return errored(name, sha, f"drift run {run_id} returned {type(report).__name__}")
    return report


def _workspace(settings: GitopsSettings, env: Environment, checkout: Path, sha: str,
               envs_dir: Path) -> EnvWorkspace:
    """The environment's workspace in the shared checkout; a short wait for a held state lock."""
    short = min(env.lock_timeout_seconds, DRIFT_LOCK_TIMEOUT_SECONDS)
    return workspace(settings, env.model_copy(update={"lock_timeout_seconds": short}),
                     checkout, sha, envs_dir, Phase.DRIFT)


def notify(settings: GitopsSettings, report: DriftReport, url: str | None) -> DriftReport:
    """Tell what is new about one environment; the report with its notice filled in.

    Compare, tell and remember hold the environment's notify lock: a check that overlaps
    another of the same environment sees what that one remembered.
    """
    logger = get_run_logger()
    if not report.status.checked:  # skipped or failed: nothing to tell, nothing to remember
        return replace(report, notice=notification(None, report).kind)
    try:
        with notify_lock(report.environment):
            return _notify_locked(settings, report, url)
    except TimeoutError:
        logger.error("%s: another check held its notify lock too long; nothing told, the next "
                     "run tells", report.environment)
        return replace(report, notice=NoticeKind.NONE)


def _notify_locked(settings: GitopsSettings, report: DriftReport,
                   url: str | None) -> DriftReport:
    logger = get_run_logger()
    last = load_notified(report.environment)
    notice = notification(last.fingerprint, report, last_observed=last.observed_at)
    report = replace(report, notice=notice.kind)
    if notice.kind is NoticeKind.SUPERSEDED:
        logger.info("%s: a later check already recorded what it observed; nothing told",
                    report.environment)
        return report
    if not notice.notify:
        store_notified(report, notice.remember, last.issue)  # this is now the latest observation
        return report
    try:
        if notice.kind is NoticeKind.RESOLVED:
            issue = close_issue(settings, report, url)
        else:
            issue = open_or_update_issue(settings, report, notice.kind, url)
    except (GitopsError, ValueError) as exc:  # ValueError: no GitHub token block
        # Not remembered: the next run notifies again.
        logger.error("%s: could not update the drift issue (%s); will retry next run",
                     report.environment, exc)
        return report
    emit_drift_event(report, notice.kind)
    store_notified(report, notice.remember, issue)
    return report


def remediate(report: DriftReport) -> None:
    """Start the deploy of the environment's last good commit (remediate = true)."""
    logger = get_run_logger()
    sha = last_good_commit(report.environment)
    if sha is None:
        logger.warning("%s: remediate = true, but there is no last good commit; nothing started",
                       report.environment)
        return
    start_remediation(report, sha)
