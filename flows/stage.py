"""The one plan → check → approve → apply stage, used by every path that changes infrastructure:
deploy, the rollback subflow (and rollback by hand), drift remediation (a deploy).

    plan_approve_apply(ws, commit, why=...) -> StageResult

It plans, refuses a held lock, publishes the plan, runs every check, asks for approval when the
environment's rule wants one, when something beyond the rule does (``why``: a state that moves) or
when a soft-mandatory check needs a policy owner's override, and applies exactly the approved plan.
A state that moved between plan and apply re-plans and asks again (up to ``MAX_REPLANS`` times).

Expected outcomes are values (:class:`StageOutcome`); a failure of apply itself raises
:class:`ApplyFailed` (the caller rolls back), any failure before apply raises what failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from prefect.exceptions import Pause
from prefect.logging import get_run_logger

from gitops.approval import ApprovalRecord
from gitops.checkpoint import Checkpoint
from gitops.checks import needs_override
from gitops.errors import (
    ApplyFailed,
    ApprovalTimedOut,
    GitopsError,
    PolicyViolation,
    StalePlan,
    StateLocked,
)
from gitops.git import Commit
from gitops.workspace import EnvWorkspace
from flows.common import flow_run_id, plan_and_check, request_approval, waits_durably
from tasks.approvals import find_venue
from tasks.plans import forget_plans
from tasks.terraform import StagedPlan, apply_staged_plan

MAX_REPLANS = 2


class StageOutcome(StrEnum):
    """How the stage ended."""

    APPLIED = "applied"
    NOTHING_TO_APPLY = "nothing-to-apply"
    NOT_APPROVED = "not-approved"
    TIMED_OUT = "timed-out"
    LOCKED = "locked"
    BLOCKED = "blocked"
    """A check blocks the plan and nobody may override it (or it could not be evaluated)."""


@dataclass(frozen=True)
class StageResult:
    """What the stage did: its outcome, the plan it ended with, every answer that counted."""

    outcome: StageOutcome
    staged: StagedPlan | None
    approvals: tuple[ApprovalRecord, ...] = field(default_factory=tuple)
    message: str = ""

    @property
    def applied(self) -> bool:
        return self.outcome is StageOutcome.APPLIED

    @property
    def changes(self) -> str:
        """``"1 add, 0 change, 0 destroy, 0 replace"`` for the plan it ended with."""
        counts = self.staged.plan.counts if self.staged and self.staged.plan else None
        return (f"{counts.add} add, {counts.change} change, {counts.destroy} destroy, "
                f"{counts.replace} replace" if counts else "")

    @property
    def approvers(self) -> str:
        """The accounts that approved the plan that was applied (comma-separated)."""
        fingerprint = self.staged.fingerprint.short if self.staged and \
            self.staged.fingerprint else None
        return ", ".join(a.login for a in self.approvals
                         if a.decision == "approved" and a.fingerprint == fingerprint)


def plan_approve_apply(ws: EnvWorkspace, commit: Commit, *, why: str = "",
                       resume: Checkpoint | None = None) -> StageResult:
    """Plan ``ws``, check, ask where needed, apply; see the module docstring.

    ``resume`` is the checkpoint a suspended run wrote (flows.common.resumed_checkpoint): the
    stage goes on at its attempt with the plan read back from the state bucket, not a new one.
    Saved plans of a run that suspended are deleted when the stage ends, whatever its end.
    """
    waits = _Waits(asked=resume is not None)
    try:
        result = _stage(ws, commit, why, resume, waits)
    except Pause:
        raise  # suspended: the saved plan waits in the state bucket for the answer
    except BaseException:
        _forget_saved(ws, waits)
        raise
    _forget_saved(ws, waits)
    return result


@dataclass
class _Waits:
    """Whether the stage asked for approval: a durable wait may have saved plans."""

    asked: bool = False


def _forget_saved(ws: EnvWorkspace, waits: _Waits) -> None:
    """Delete the run's saved plans. A failure never decides the stage's outcome (an apply that
    happened stays reported, a failure keeps its own message): it is logged, and the
    environment's next wait deletes the plans of runs that are over (tasks.plans.sweep_plans)."""
    if not (waits.asked and waits_durably(ws.settings)):
        return
    try:
        forget_plans(ws, flow_run_id())
    except Exception as exc:  # noqa: BLE001 - see the docstring
        get_run_logger().warning(
            "%s: this run's saved plans could not be deleted from the state bucket (%s: %s); "
            "the environment's next approval wait deletes them", ws.name,
            type(exc).__name__, exc)


def _stage(ws: EnvWorkspace, commit: Commit, why: str, resume: Checkpoint | None,
           waits: _Waits) -> StageResult:
    # A resumed run asks again where it asked before: looked up while its plan is restored.
    venue = find_venue.submit(ws.settings, ws.settings.repository, commit.sha) \
        if resume is not None else None
    try:
        return _attempts(ws, commit, why, resume, waits, venue)
    finally:
        if venue is not None:
            venue.wait()


def _attempts(ws: EnvWorkspace, commit: Commit, why: str, resume: Checkpoint | None,
              waits: _Waits, venue: Any) -> StageResult:
    logger = get_run_logger()
    approvals: tuple[ApprovalRecord, ...] = ()
    start = resume.attempt if resume else 0
    for attempt in range(start, MAX_REPLANS + 1):
        try:
            staged = plan_and_check(
                ws, saved=resume if resume is not None and attempt == resume.attempt else None)
        except StateLocked as exc:
            return StageResult(StageOutcome.LOCKED, None, approvals, f"{ws.name}: {exc}")
        except PolicyViolation as exc:
            return StageResult(StageOutcome.BLOCKED, None, approvals, str(exc))
        if not staged.has_changes:
            logger.info("%s: no infrastructure changes at %s; nothing to apply, no approval "
                        "needed", ws.name, commit.sha[:12])
            return StageResult(StageOutcome.NOTHING_TO_APPLY, staged, approvals,
                               f"{ws.name}: nothing to apply at {commit.sha[:12]}")
        overrides = tuple(r.key for r in needs_override(staged.checks))
        if ws.environment.approval.required or why or overrides:
            waits.asked = True
            try:
                decision = request_approval(ws, staged, commit, why=why, overrides=overrides,
                                            attempt=attempt, resume=resume, venue=venue)
            except ApprovalTimedOut as exc:
                # Prefect's pause expiry already failed the run ("paused and never resumed");
                # the log line says what it means here.
                logger.error("%s", exc)
                return StageResult(StageOutcome.TIMED_OUT, staged, approvals, str(exc))
            approvals += decision.records
            if decision.verdict != "approved":
                return StageResult(StageOutcome.NOT_APPROVED, staged, approvals,
                                   f"{ws.name}: not applied: {decision.message}")
        try:
            apply_staged_plan(ws, staged)
        except StalePlan as exc:
            if attempt == MAX_REPLANS:
                raise
            logger.warning("%s; planning again", exc)
            continue
        except StateLocked as exc:  # nothing was applied; a held lock is never broken here
            return StageResult(StageOutcome.LOCKED, staged, approvals, f"{ws.name}: {exc}")
        except GitopsError as exc:
            raise ApplyFailed(f"apply failed: {exc}") from exc
        result = StageResult(StageOutcome.APPLIED, staged, approvals)
        return replace(result, message=f"{ws.name}: applied {commit.sha[:12]} ({result.changes})")
    raise AssertionError("unreachable: the last attempt returns or raises")
