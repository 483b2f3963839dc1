"""Approvals: the Prefect UI form, the `/gitops approve` command, and whose word counts (pure).

An approval counts only when an identity that someone authenticated gave it. The code host
authenticates: GitHub signs who wrote a comment or a review and answers who has write access and
who is in which team. A name typed in the Prefect form is a *claim* (anyone who reaches the
Prefect API can resume a run with any input), so the form counts only where the environment's
trusted rule says ``allow_declared``, and is recorded as declared, never verified.

    Statement   a comment or review as the code host returned it (author, time, body, edits)
    ApprovalRequest  what is being approved: environment, plan fingerprint, when it was announced,
                the commit's and pull request's authors (by account)
    tally()     every statement judged against the rule -> Tally (verified approvals, the
                rejection if any, and what was refused and why)
    judge_form()   the form's answer, given the tally -> a declared approval, a rejection, or a
                refusal
    Tally.verdict  approved | rejected | waiting

The command, on the first non-empty line of a pull request comment, a review or a commit comment:

    /gitops approve <environment> <fingerprint>
    /gitops reject <environment> [reason]

This is the one module in gitops/ that imports Prefect: the form *is* a RunInput.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Literal, Protocol

from prefect.input import RunInput
from pydantic import Field

from gitops.commands import (
    Command,
    approve_command,
    parse_command,
    reject_command,
)
from gitops.config import ApprovalSettings

REQUEST_KEY_PREFIX = "gitops-request-"
ANSWER_KEY_PREFIX = "gitops-answer-"
"""Flow run inputs a waiting run writes: what it asks approval for (one per plan) and what it made
of each answer (one per resume), so `gitops-flows approve` reports the run's verdict. The run never
reads them back: they are notes for the operator, not evidence."""

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


class ApprovalInput(RunInput):
    """Shown in the Prefect UI when a deploy waits for approval."""

    approve: bool = Field(default=False, description="Apply this exact plan?")
    approver: str = Field(default="", description="Your name or GitHub login")
    reason: str = Field(default="", description="Why (kept with the run)")
    check_github: bool = Field(
        default=False, description="Only look at the approvals given on GitHub (what the webhook "
                                   "and `gitops-flows approve` send)")


class Channel(str, Enum):
    """Where an answer came from."""

    GITHUB_COMMENT = "github-comment"
    GITHUB_REVIEW = "github-review"
    GITHUB_COMMIT_COMMENT = "github-commit-comment"
    PREFECT_FORM = "prefect-form"


@dataclass(frozen=True)
class Statement:
    """A comment or a review, as the code host returned it (never as a webhook payload said)."""

    channel: Channel
    id: int
    login: str
    body: str
    created_at: datetime | None
    updated_at: datetime | None = None
    review_state: str = ""
    """A review's state (APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING)."""
    url: str = ""


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approval is for: one plan of one environment, announced at one time."""

    environment: str
    fingerprint: str
    announced_at: datetime
    commit_author: str | None = None
    """The commit's author as a code-host account (None: the e-mail is linked to none)."""
    pr_author: str | None = None
    approvals_needed: int | None = None
    """Distinct approvals this request needs (None: the rule's ``min_approvals``; 0 when only
    overrides are asked for)."""
    overrides_needed: tuple[str, ...] = ()
    """Keys of the soft-mandatory checks that block this plan until a policy owner overrides."""


@dataclass(frozen=True)
class ApprovalRecord:
    """One answer that counts: who, what, when, through which channel, verified or declared."""

    login: str
    decision: Literal["approved", "rejected", "overridden"]
    channel: Channel
    verified: bool
    at: datetime | None
    fingerprint: str
    reason: str = ""
    source: str = ""
    check: str = ""
    """An override: the key of the check overridden."""

    def describe(self) -> str:
        how = "verified" if self.verified else "declared, unverified"
        who = f"@{self.login}" if self.verified else repr(self.login)
        what = f"{self.check} overridden" if self.decision == "overridden" else self.decision
        return (f"{what} by {who} ({how}, {self.channel.value}"
                + (f" {self.source}" if self.source else "") + ")")

    def as_event(self) -> dict[str, str | bool]:
        return {"login": self.login, "decision": self.decision, "channel": self.channel.value,
                "verified": self.verified, "at": self.at.isoformat() if self.at else "",
                "fingerprint": self.fingerprint, "reason": self.reason, "source": self.source,
                "check": self.check}


@dataclass(frozen=True)
class Refusal:
    """An answer that does not count, and why (logged; a forged or stale answer lands here)."""

    login: str
    channel: Channel
    why: str
    source: str = ""

    def describe(self) -> str:
        return f"{self.channel.value} {self.source or ''} by {self.login or '(nobody)'}: {self.why}"


@dataclass(frozen=True)
class Tally:
    """Every answer so far, judged."""

    needed: int
    approvals: tuple[ApprovalRecord, ...] = ()
    rejection: ApprovalRecord | None = None
    refused: tuple[Refusal, ...] = ()
    overrides_needed: tuple[str, ...] = ()
    overrides: tuple[ApprovalRecord, ...] = ()

    @property
    def missing_overrides(self) -> tuple[str, ...]:
        done = {o.check for o in self.overrides}
        return tuple(c for c in self.overrides_needed if c not in done)

    @property
    def verdict(self) -> Literal["approved", "rejected", "waiting"]:
        if self.rejection is not None:
            return "rejected"
        if len(self.approvals) >= self.needed and not self.missing_overrides:
            return "approved"
        return "waiting"

    @property
    def records(self) -> tuple[ApprovalRecord, ...]:
        """What counted: the rejection, or the approvals and overrides."""
        if self.rejection is not None:
            return (self.rejection,)
        return self.approvals + self.overrides

    def with_answer(self, record: ApprovalRecord | None, refusal: Refusal | None) -> Tally:
        """This tally with one more answer (a form answer) added."""
        tally = self
        if refusal is not None:
            tally = replace(tally, refused=tally.refused + (refusal,))
        if record is None:
            return tally
        if record.decision == "rejected":
            return replace(tally, rejection=tally.rejection or record)
        if record.decision == "overridden":
            if record.check in {o.check for o in tally.overrides}:
                return tally
            return replace(tally, overrides=tally.overrides + (record,))
        if record.login.lower() in {a.login.lower() for a in tally.approvals}:
            return tally
        return replace(tally, approvals=tally.approvals + (record,))

    def progress(self) -> str:
        if self.verdict == "rejected" and self.rejection is not None:
            return self.rejection.describe()
        parts = []
        if self.needed or self.approvals:
            done = ", ".join(a.describe() for a in self.approvals) or "none yet"
            parts.append(f"{len(self.approvals)} of {self.needed} approval(s): {done}")
        if self.overrides_needed:
            done = ", ".join(o.describe() for o in self.overrides)
            missing = ", ".join(self.missing_overrides)
            parts.append("overrides: " + "; ".join(
                p for p in (done, f"still needed for {missing}" if missing else "") if p))
        return "; ".join(parts)


class Identities(Protocol):
    """What the code host answers about accounts (GitHub's API behind it)."""

    def permission(self, login: str) -> str:
        """admin | maintain | write | read | none, on the repository."""
        ...

    def is_team_member(self, org: str, team: str, login: str) -> bool:
        ...


def tally(request: ApprovalRequest, rule: ApprovalSettings, statements: Iterable[Statement],
          identities: Identities) -> Tally:
    """Judge every statement about ``request`` against ``rule``, oldest first.

    A statement counts when it names this environment, came after the plan was announced (by the
    code host's clock), was never edited, and its author has write access; an approval must also
    name this plan's fingerprint, come from an allowed approver and not from the commit's or the
    pull request's author (unless ``allow_author``). ``min_approvals`` counts distinct accounts.
    Any counted rejection rejects.
    """
    needed = rule.min_approvals if request.approvals_needed is None else request.approvals_needed
    result = Tally(needed, overrides_needed=request.overrides_needed)
    ordered = sorted(statements, key=lambda s: (s.created_at is None, s.created_at or 0, s.id))
    for statement in ordered:
        command = parse_command(statement.body)
        if command is None or command.environment != request.environment:
            continue
        record, refusal = _judge_statement(request, rule, statement, command, identities)
        result = result.with_answer(record, refusal)
    return result


def _judge_statement(request: ApprovalRequest, rule: ApprovalSettings, statement: Statement,
                     command: Command, identities: Identities
                     ) -> tuple[ApprovalRecord | None, Refusal | None]:
    login = statement.login
    source = statement.url or f"#{statement.id}"

    def refuse(why: str) -> tuple[None, Refusal]:
        return None, Refusal(login, statement.channel, why, source)

    if not login:
        return refuse("the code host names no author")
    if statement.review_state in ("DISMISSED", "PENDING"):
        return refuse(f"the review is {statement.review_state.lower()}")
    # The code host's clock has one-second steps: an answer in the announcement's own second
    # counts (it must still name this plan's fingerprint, which no earlier request showed).
    if statement.created_at is None or statement.created_at < request.announced_at:
        return refuse("given before this plan was announced (an answer to an earlier request)")
    if statement.updated_at is not None and statement.updated_at != statement.created_at:
        return refuse("edited after it was posted; an edited comment never counts (post a new one)")
    if command.verb in ("approve", "override"):
        if command.argument != request.fingerprint:
            return refuse(f"names plan {command.argument or '(none)'}, not {request.fingerprint} "
                          "(another run, or a plan that went stale)")
        if statement.review_state == "CHANGES_REQUESTED":
            return refuse("a review that requests changes does not approve")
    permission = identities.permission(login)
    if permission not in WRITE_PERMISSIONS:
        return refuse(f"@{login} has {permission!r} access to the repository, not write")
    if command.verb == "reject":
        return ApprovalRecord(login, "rejected", statement.channel, True, statement.created_at,
                              request.fingerprint, command.argument, source), None
    authors = {a.lower() for a in (request.commit_author, request.pr_author) if a}
    if not rule.allow_author and login.lower() in authors:
        return refuse(f"@{login} wrote this change (the commit or its pull request) and may not "
                      f"{command.verb} it here")
    if command.verb == "override":
        if command.check not in request.overrides_needed:
            return refuse(f"no soft-mandatory check {command.check!r} blocks this plan "
                          f"(those that do: {', '.join(request.overrides_needed) or 'none'})")
        if not rule.policy_owners:
            return refuse(f"{request.environment} names no policy owners: nobody may override")
        if not _allowed(login, rule.policy_owners, identities):
            return refuse(f"@{login} is not a policy owner ({', '.join(rule.policy_owners)})")
        return ApprovalRecord(login, "overridden", statement.channel, True, statement.created_at,
                              request.fingerprint, command.reason, source, command.check), None
    if not _allowed(login, rule.approvers, identities):
        return refuse(f"@{login} is not an allowed approver ({', '.join(rule.approvers)})")
    return ApprovalRecord(login, "approved", statement.channel, True, statement.created_at,
                          request.fingerprint, "", source), None


def _allowed(login: str, approvers: tuple[str, ...], identities: Identities) -> bool:
    if not approvers:
        return True
    for entry in approvers:
        if "/" in entry:
            org, team = entry.split("/", 1)
            if identities.is_team_member(org, team, login):
                return True
        elif entry.lower() == login.lower():
            return True
    return False


def judge_form(answer: ApprovalInput, rule: ApprovalSettings, request: ApprovalRequest, *,
               author_name: str, author_email: str, at: datetime | None = None
               ) -> tuple[ApprovalRecord | None, Refusal | None]:
    """What a Prefect form answer adds: a rejection from anyone; an approval only where the rule
    allows declared approvals (recorded as declared); else a refusal that says why.

    A ``check_github`` answer (the webhook's or the CLI's wake-up) claims nothing and adds nothing.
    """
    if answer.check_github:
        return None, None
    who = answer.approver.strip()
    channel = Channel.PREFECT_FORM
    if not answer.approve:
        return ApprovalRecord(who or "(unnamed)", "rejected", channel, False, at,
                              request.fingerprint, answer.reason), None
    if not rule.allow_declared:
        return None, Refusal(who, channel, (
            f"a Prefect form approval is an unverified claim and {request.environment} counts "
            "only approvals verified on GitHub; comment "
            f"`{approve_command(request.environment, request.fingerprint)}` instead"))
    if not who:
        return None, Refusal(who, channel, "an approval must name the approver")
    if rule.approvers and who not in rule.approvers:
        return None, Refusal(who, channel, f"{who!r} is not an allowed approver")
    email = author_email.strip().lower()
    # A typed name proves nothing, but the author's own name or e-mail is refused all the same.
    claimed = {author_name.strip().lower(), email, email.split("@", 1)[0],
               (request.commit_author or "").lower(), (request.pr_author or "").lower()} - {""}
    if not rule.allow_author and who.lower() in claimed:
        return None, Refusal(who, channel, "the change's author may not approve it here")
    return ApprovalRecord(who, "approved", channel, False, at, request.fingerprint,
                          answer.reason), None


@dataclass(frozen=True)
class ApprovalOutcome:
    """How the approval step ended, for the run's result and the audit trail."""

    verdict: Literal["approved", "rejected", "timed-out"]
    fingerprint: str
    records: tuple[ApprovalRecord, ...] = field(default_factory=tuple)
    refused: tuple[Refusal, ...] = field(default_factory=tuple)
    message: str = ""

    @property
    def approvers(self) -> str:
        return ", ".join(r.login for r in self.records if r.decision == "approved")

    @property
    def overrides(self) -> tuple[ApprovalRecord, ...]:
        return tuple(r for r in self.records if r.decision == "overridden")
