"""The deploy flow: checkout → validate → plan → approval → apply → DNS → Argo CD → record.

Orchestration only: every stage is a task in tasks/. A failure at or after apply runs the
rollback subflow and the run ends Failed saying what was rolled back to what.
"""

from __future__ import annotations

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import Cancelled, Completed, Failed, State

from gitops.errors import ApplyFailed, DeployStopped, GitopsError
from gitops.reports import DeployOutcome, DeployReport
from gitops.settings import load_settings
from gitops.workspace import EnvWorkspace
from flows.common import (
    DISCARD_RUN_FILES,
    discard_run_files_of,
    flow_run_id,
    open_workspace,
    resumed_checkpoint,
)
from flows.stage import StageOutcome, plan_approve_apply
from tasks.slots import environment_slot
from tasks.argocd import ensure_application, sync_application
from tasks.dns import DnsChange, point_dns, record_value
from tasks.records import last_good_backend, last_good_commit, record_last_good
from tasks.terraform import read_outputs, validate_stack

STOPPED = {StageOutcome.NOT_APPROVED: DeployOutcome.REJECTED,
           StageOutcome.TIMED_OUT: DeployOutcome.TIMED_OUT,
           StageOutcome.LOCKED: DeployOutcome.LOCKED,
           StageOutcome.BLOCKED: DeployOutcome.BLOCKED}
"""The deploy outcome of each stage outcome that ends it before DNS and Argo CD."""


@flow(name="deploy", flow_run_name="deploy-{environment}", **DISCARD_RUN_FILES)
def deploy(environment: str, sha: str | None = None, repository_url: str | None = None) -> State:
    """Deploy ``environment`` at ``sha`` (default: head of the default branch).

    ``sha`` must be in the default branch's history, read now; see ``open_workspace``.
    """
    settings = load_settings()
    with environment_slot(environment):
        state = run_deploy(settings, environment, sha or settings.default_branch, repository_url)
    if state.is_cancelled():  # rejected: no state hook runs for a returned Cancelled state
        discard_run_files_of(settings, flow_run_id())
    return state


def run_deploy(settings, environment: str, ref: str, repository_url: str | None) -> State:
    logger = get_run_logger()
    resume = resumed_checkpoint(settings, environment)  # a suspended run, resumed: same commit
    ws, commit = open_workspace(settings, environment, resume.commit if resume else ref,
                                repo_url=repository_url)
    repo_url = repository_url or settings.repository_url
    logger.info("deploying %s at %s (%s)", environment, commit.sha[:12], commit.subject)
    if resume is None:
        validate_stack(ws)
    # else: this commit was validated before the run suspended; what is applied is the sealed
    # plan file made from it, checked against the approved fingerprint (tasks/plans).

    backend = ws.environment.backend.address if ws.environment.backend else None
    previous_backend = last_good_backend(environment)
    moved = (f"the state moves from {previous_backend} to {backend}"
             if previous_backend and backend and previous_backend != backend else "")
    if moved:
        logger.warning("%s: %s: this deploy needs the environment's approval", environment, moved)
    try:
        stage = plan_approve_apply(ws, commit, why=moved, resume=resume)
    except ApplyFailed as exc:
        return fail_and_roll_back(ws, commit.sha, str(exc), None)
    if stage.outcome not in (StageOutcome.APPLIED, StageOutcome.NOTHING_TO_APPLY):
        report = DeployReport(environment, commit.sha, STOPPED[stage.outcome],
                              approver=stage.approvers, approvals=stage.approvals,
                              message=stage.message)
        stopped = DeployStopped(stage.message, report)
        if stage.outcome is StageOutcome.NOT_APPROVED:
            return Cancelled(message=stage.message, data=stopped)
        return Failed(message=stage.message, data=stopped)
    approvals = stage.approvals

    dns_change: DnsChange | None = None
    try:
        outputs = read_outputs(ws)
        if ws.environment.dns is not None:
            dns_change = point_dns(ws, record_value(ws.environment.dns, outputs))
        ensure_application(ws, repo_url)
        sync_application(ws, commit.sha)
    except GitopsError as exc:
        return fail_and_roll_back(ws, commit.sha, f"{type(exc).__name__}: {exc}", dns_change)

    record_last_good(environment, commit.sha, flow_run_id(), backend)
    outcome = DeployOutcome.DEPLOYED if stage.applied else DeployOutcome.NO_CHANGES
    report = DeployReport(
        environment, commit.sha, outcome, applied=stage.applied, approver=stage.approvers,
        approvals=approvals,
        dns=(f"{dns_change.current.name} -> {dns_change.current.values[0]}" if dns_change else ""),
        argocd=(f"{ws.environment.argocd.application} Synced at {commit.sha[:12]}"
                if ws.environment.argocd else ""),
        message=f"{environment} is at {commit.sha[:12]}"
                + (f" (UNMERGED: not in {settings.default_branch}'s history; allow_unmerged)"
                   if ws.unmerged else ""),
        unmerged=ws.unmerged)
    return Completed(message=report.message, data=report)


def fail_and_roll_back(ws: EnvWorkspace, sha: str, reason: str,
                       dns_change: DnsChange | None) -> State:
    """Run the rollback subflow after a failure at or after apply; end the run Failed."""
    from flows.rollback import rollback_environment  # imported when needed: a run's start pays

    logger = get_run_logger()
    target = last_good_commit(ws.name)
    logger.error("%s: %s; rolling back to %s", ws.name, reason, target or "(no last good commit)")
    result = rollback_environment(ws.name, to_sha=target, reason=reason, dns_change=dns_change,
                                  return_state=True)
    steps = result.result(raise_on_failure=False) if result.is_completed() else None
    if result.is_completed():
        done = tuple(steps or ())
        msg = f"{ws.name}: deploy of {sha[:12]} failed ({reason}); rolled back: " + "; ".join(done)
    else:
        done = ()
        msg = f"{ws.name}: deploy of {sha[:12]} failed ({reason}); ROLLBACK FAILED: {result.message}"
    return Failed(message=msg, data=DeployStopped(msg, DeployReport(
        ws.name, sha, DeployOutcome.ROLLED_BACK, rollback=done, message=msg)))
