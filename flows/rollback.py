"""The rollback subflow: DNS back, Argo CD back, infrastructure back to the last good commit.

Run by the deploy flow after a failure at or after apply (it already holds the environment's
slot), and by hand as `gitops-flows rollback ENV [--to SHA]` (the `rollback` flow takes the slot).
Each part runs even if an earlier one failed; a rollback that fails says what is left where.
The target, wherever it comes from (``--to``, or the last-good Prefect Variable, which any API
caller can write), must be in the default branch's history like any deploy (``open_workspace``
refuses it before anything is touched).
"""

from __future__ import annotations

from prefect import flow
from prefect.logging import get_run_logger

from pathlib import Path

from gitops.git import GitRepository
from gitops.errors import GitopsError, RollbackFailed
from gitops.settings import load_settings
from flows.common import (
    DISCARD_RUN_FILES,
    flow_run_id,
    open_workspace,
)
from flows.stage import StageOutcome, plan_approve_apply
from tasks.slots import environment_slot
from tasks.argocd import rollback_application
from tasks.dns import DnsChange, point_dns, record_value, restore_dns
from tasks.records import last_good_backend, previous_good_commit, record_last_good
from tasks.terraform import read_outputs, validate_stack


class RollbackStopped(Exception):
    """The rollback's stage ended without applying (not approved, locked, blocked by a check)."""


@flow(name="rollback-subflow", flow_run_name="rollback-{environment}", **DISCARD_RUN_FILES)
def rollback_environment(environment: str, to_sha: str | None, reason: str = "manual",
                         dns_change: DnsChange | None = None) -> list[str]:
    """Roll ``environment`` back to ``to_sha``; return what was rolled back, part by part.

    ``dns_change`` is what the failed deploy did to DNS, if anything: the record goes back to how
    it was before (or away, if it did not exist). Without it the record is pointed at what the
    rolled-back stack outputs.
    """
    logger = get_run_logger()
    settings = load_settings()
    done: list[str] = []
    failed: list[str] = []
    if to_sha is None:
        raise RollbackFailed(f"{environment}: no last good commit is recorded, so there is nothing "
                             f"to roll back to; the environment is left as the failed deploy "
                             f"left it ({reason})")
    logger.warning("%s: rolling back to %s because %s", environment, to_sha[:12], reason)
    ws, commit = open_workspace(settings, environment, to_sha, label="rollback")

    # 1. DNS first: it is what users hit.
    if dns_change is not None:
        try:
            done.append("DNS: " + restore_dns(ws, dns_change))
        except GitopsError as exc:
            failed.append(f"DNS: NOT restored ({exc})")

    # 2. Argo CD back to the last good revision.
    try:
        done.append("Argo CD: " + rollback_application(ws, commit.sha))
    except GitopsError as exc:
        failed.append(f"Argo CD: NOT rolled back ({exc})")

    # 3. Infrastructure: the last good commit through the same stage as a deploy (every check,
    #    approval where required, the stale-plan re-plan).
    try:
        validate_stack(ws)
        stage = plan_approve_apply(ws, commit)
        if stage.outcome is StageOutcome.APPLIED:
            done.append(f"infrastructure: re-applied {commit.sha[:12]} ({stage.changes})")
        elif stage.outcome is StageOutcome.NOTHING_TO_APPLY:
            done.append(f"infrastructure: already matches {commit.sha[:12]}")
        else:
            raise RollbackStopped(f"{stage.outcome.value}: {stage.message}")
        if dns_change is None and ws.environment.dns is not None:
            change = point_dns(ws, record_value(ws.environment.dns, read_outputs(ws)))
            done.append(f"DNS: {change.current.name} -> {change.current.values[0]}")
    except (GitopsError, RollbackStopped) as exc:
        failed.append(f"infrastructure: NOT rolled back to {commit.sha[:12]} ({exc})")

    for line in done:
        logger.info("%s: rolled back %s", environment, line)
    if failed:
        raise RollbackFailed(f"{environment}: rollback to {commit.sha[:12]} incomplete. "
                             + " | ".join(failed) + (" | done: " + " | ".join(done) if done else ""))
    return done


@flow(name="rollback", flow_run_name="rollback-{environment}")
def rollback(environment: str, to: str | None = None) -> list[str]:
    """Roll ``environment`` back by hand to ``to``.

    Default: the good commit before the one deployed now (rolling back to what is deployed
    would change nothing).
    """
    settings = load_settings()
    with environment_slot(environment):
        target = to or previous_good_commit(environment)
        if target is not None:
            target = GitRepository(settings.repository_url, Path(settings.workdir)).resolve(target)
        done = rollback_environment(environment, target, reason="manual rollback")
        record_last_good(environment, target, flow_run_id(), last_good_backend(environment))
        return done
