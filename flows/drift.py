"""The drift flow: plan every environment read-only on a schedule; tell people only what is new.

Orchestration only. One checkout of the default branch head; every environment planned twice
(``-refresh-only`` and normal) with bounded concurrency; an environment whose deploy slot or
state lock is held is *skipped*, never waited for or unlocked. Then, per environment, compare
with the fingerprint notified last time: open/update the GitHub issue and emit
``gitops.drift.detected`` for new or changed drift, close it and emit ``gitops.drift.resolved``
when it is gone, say nothing otherwise. The fingerprint is stored only after the notification
went out, so a failed notification is retried by the next run.

Nothing is applied, except: an environment with ``remediate = true`` gets the ``deploy/deploy``
deployment started for its last good commit when new or changed drift is found.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import flow
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from gitops.config import Environment, list_environments, load_configured
from gitops.drift import DriftReport, NoticeKind, errored, notification, render_drift_table
from gitops.errors import GitopsError, UnknownEnvironment
from gitops.grant import Phase
from gitops.settings import GitopsSettings, load_settings
from gitops.workspace import EnvWorkspace
from flows.common import DISCARD_RUN_FILES, run_dir, run_url, workspace
from tasks.slots import slot_name
from tasks.drift import (
    close_issue,
    emit_drift_event,
    load_notified_fingerprint,
    open_or_update_issue,
    plan_drift,
    publish_drift_table,
    start_remediation,
    store_notified_fingerprint,
)
from tasks.git import checkout_commit
from tasks.records import last_good_commit

DRIFT_LOCK_TIMEOUT_SECONDS = 5
"""How long a drift plan waits for a held state lock before reporting the environment skipped."""


@flow(name="drift", flow_run_name="drift", **DISCARD_RUN_FILES)
def drift(environments: list[str] | None = None, max_concurrency: int = 4) -> list[DriftReport]:
    """Check ``environments`` (default: every configured one) for drift at the default branch head."""
    logger = get_run_logger()
    settings = load_settings()
    base = run_dir(settings)
    checkout = base / "checkout"
    commit = checkout_commit(settings.repository_url, Path(settings.workdir),
                             settings.default_branch, checkout)
    names = list(environments or list_environments(checkout, settings.environments_dir))
    logger.info("drift check of %s at %s (%s)", ", ".join(names) or "(no environments)",
                commit.sha[:12], commit.subject)

    configs: dict[str, Environment] = {}
    reports: dict[str, DriftReport] = {}
    loaded, broken = load_configured(checkout, settings.environments_dir)
    for name in names:
        if name in loaded:
            configs[name] = loaded[name]
        else:
            reports[name] = errored(name, commit.sha, broken.get(name) or str(
                UnknownEnvironment(name, sorted(loaded))))

    with ThreadPoolTaskRunner(max_workers=max(1, max_concurrency)) as runner:
        futures = {}
        for name, env in configs.items():
            try:
                ws = _workspace(settings, env, checkout, commit.sha, base / "drift-envs")
            except GitopsError as exc:
                reports[name] = errored(name, commit.sha, str(exc))
                continue
            futures[name] = runner.submit(plan_drift, {"ws": ws, "slot": slot_name(name)})
        for name, future in futures.items():
            future.wait()
            state = future.state
            if state.is_completed():
                reports[name] = state.result()
            else:
                exc = state.result(raise_on_failure=False)
                logger.error("%s: drift check failed: %s", name, exc)
                reports[name] = errored(name, commit.sha, f"{type(exc).__name__}: {exc}"
                                        if isinstance(exc, BaseException) else str(state.message))

    url = run_url(settings)
    results = []
    for name in names:
        report = notify(settings, reports[name], url)
        env = configs.get(name)
        if (env is not None and env.remediate and report.notice in (NoticeKind.NEW,
                                                                     NoticeKind.CHANGED)):
            remediate(report)
        results.append(report)

    publish_drift_table(render_drift_table(results), commit.sha)
    for report in results:
        if report.status.checked:
            logger.info("%s: %s, notice %s", report.environment, report.status, report.notice)
        else:
            logger.warning("%s: %s: %s", report.environment, report.status, report.reason)
    return results


def _workspace(settings: GitopsSettings, env: Environment, checkout: Path, sha: str,
               envs_dir: Path) -> EnvWorkspace:
    """The environment's workspace in the shared checkout; a short wait for a held state lock."""
    short = min(env.lock_timeout_seconds, DRIFT_LOCK_TIMEOUT_SECONDS)
    return workspace(settings, env.model_copy(update={"lock_timeout_seconds": short}),
                     checkout, sha, envs_dir, Phase.DRIFT)


def notify(settings: GitopsSettings, report: DriftReport, url: str | None) -> DriftReport:
    """Tell what is new about one environment; the report with its notice filled in."""
    logger = get_run_logger()
    previous = load_notified_fingerprint(report.environment)
    notice = notification(previous, report)
    report = replace(report, notice=notice.kind)
    if not notice.notify:
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
    store_notified_fingerprint(report, notice.remember, issue)
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
