"""The approval form (a Prefect RunInput) and the rules an answer must meet.

This is the one model in gitops/ that imports Prefect: the form *is* a RunInput.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect.input import RunInput
from pydantic import Field

from gitops.config import ApprovalSettings


class ApprovalInput(RunInput):
    """Shown in the Prefect UI when a deploy waits for approval."""

    approve: bool = Field(default=False, description="Apply this exact plan?")
    approver: str = Field(default="", description="Your name or GitHub login")
    reason: str = Field(default="", description="Why (kept with the run)")
    check_github: bool = Field(
        default=False,
        description="Only look at the approvals given on GitHub "
                    "(what the webhook and `gitops-flows approve` send)")


@dataclass(frozen=True)
class ApprovalDecision:
    """What an answer amounts to: approved, or refused and why."""

    approved: bool
    approver: str
    reason: str
    refusal: str = ""


def judge_approval(answer: ApprovalInput, rule: ApprovalSettings, *, author_name: str,
                   author_email: str) -> ApprovalDecision:
    """Apply the environment's rule to an answer (pure)."""
    approver = answer.approver.strip()
    if not answer.approve:
        return ApprovalDecision(False, approver, answer.reason, "rejected by the approver")
    if not approver:
        return ApprovalDecision(False, approver, answer.reason, "an approval must name the approver")
    if rule.approvers and approver not in rule.approvers:
        return ApprovalDecision(False, approver, answer.reason,
                                f"{approver!r} is not an allowed approver for this environment")
    email = author_email.strip().lower()
    # The author as a name, an e-mail, or the e-mail's user part (often the GitHub login).
    who = {author_name.strip().lower(), email, email.split("@", 1)[0]} - {""}
    if not rule.allow_author and approver.lower() in who:
        return ApprovalDecision(False, approver, answer.reason,
                                "the commit's author may not approve its own change here")
    return ApprovalDecision(True, approver, answer.reason)
