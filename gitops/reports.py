"""What the delivery flows return: plain values in a module of their own.

Prefect persists a flow's result (prefect.yaml: to S3) by pickling it, which names the class by
its module. A flow file is loaded by Prefect under its file's name (``deploy``), so a class
defined there could not be read back anywhere else; defined here, ``state.result()`` works in
any process that has gitops-flows installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from gitops.approval import ApprovalRecord


class DeployOutcome(StrEnum):
    """How a deploy ended (a ``str``: ``outcome == "deployed"`` reads as it says)."""

    DEPLOYED = "deployed"
    NO_CHANGES = "no-changes"
    REJECTED = "rejected"
    TIMED_OUT = "timed-out"
    LOCKED = "locked"
    BLOCKED = "blocked"
    ROLLED_BACK = "rolled-back"


@dataclass(frozen=True)
class DeployReport:
    """What a deploy did: the flow's result when it deployed, and the ``report`` of the
    :class:`~gitops.errors.DeployStopped` its Failed or Cancelled state carries when it did not."""

    environment: str
    commit: str
    outcome: DeployOutcome
    applied: bool = False
    approver: str = ""
    """The approving accounts (or declared names), comma-separated."""
    approvals: tuple[ApprovalRecord, ...] = field(default_factory=tuple)
    """Who approved or rejected which plan, when, through which channel, verified or declared."""
    dns: str = ""
    argocd: str = ""
    rollback: tuple[str, ...] = field(default_factory=tuple)
    message: str = ""
    unmerged: str = ""
    """Set when the commit is not in the default branch's history (allow_unmerged): why it ran."""


@dataclass(frozen=True)
class MergeOutcome:
    """What happened to one environment for the pushed commit."""

    environment: str
    outcome: str  # deployed | no-changes | skipped | handed-off | failed | rejected | not-started
    message: str
