"""Whose approval counts (pure): the command, the rule, the identities the code host vouches for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from gitops.commands import override_command
from gitops.approval import (
    ApprovalInput,
    ApprovalRequest,
    Channel,
    Statement,
    approve_command,
    judge_form,
    parse_command,
    reject_command,
    tally,
)
from gitops.config import ApprovalSettings

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
FP = "0123456789ab@deadbeef#3"
REQUEST = ApprovalRequest("prod", FP, announced_at=T0, commit_author="carol", pr_author="dave")


@dataclass
class FakeIdentities:
    """What GitHub would answer: permissions per login, team members per org/team."""

    permissions: dict[str, str] = field(default_factory=lambda: {
        "alice": "write", "bob": "admin", "carol": "write", "dave": "write", "erin": "maintain",
        "mallory": "read"})
    teams: dict[str, set[str]] = field(default_factory=lambda: {"acme/platform": {"alice", "erin"}})
    asked: list[str] = field(default_factory=list)

    def permission(self, login: str) -> str:
        self.asked.append(login)
        return self.permissions.get(login.lower(), "none")  # logins ignore case

    def is_team_member(self, org: str, team: str, login: str) -> bool:
        return login in self.teams.get(f"{org}/{team}", set())


def said(login: str, body: str, *, minutes: int = 1, edited: bool = False, n: int = 0,
         channel: Channel = Channel.GITHUB_COMMENT, review_state: str = "") -> Statement:
    at = T0 + timedelta(minutes=minutes)
    return Statement(channel, 100 + minutes + n, login, body, at,
                     at + timedelta(seconds=30) if edited else at, review_state)


APPROVE = approve_command("prod", FP)
RULE = ApprovalSettings(required=True)


@pytest.mark.parametrize("body, expected", [
    ("/gitops approve prod abc", ("approve", "prod", "abc")),
    ("\n\n  /gitops approve prod abc  \nlooks good", ("approve", "prod", "abc")),
    ("/gitops reject prod not today, the DB", ("reject", "prod", "not today, the DB")),
    ("/gitops reject prod", ("reject", "prod", "")),
    ("LGTM\n/gitops approve prod abc", None),  # not on the first line: a quote, not a command
    ("/gitops approve Prod abc", None),
    ("/gitops deploy prod", None),
    ("/gitopsapprove prod abc", None),
])
def test_the_command_is_the_first_non_empty_line(body, expected) -> None:
    command = parse_command(body)
    assert (None if command is None else (command.verb, command.environment, command.argument)
            ) == expected


def test_command_helpers_round_trip() -> None:
    assert parse_command(approve_command("prod", FP)).argument == FP
    assert parse_command(reject_command("prod", "why")).argument == "why"


def test_an_allowed_account_with_write_access_approves_the_announced_plan() -> None:
    result = tally(REQUEST, RULE, [said("alice", APPROVE)], FakeIdentities())
    assert result.verdict == "approved"
    (record,) = result.approvals
    assert record.login == "alice" and record.verified and record.fingerprint == FP


def test_the_author_is_refused_by_account_whatever_name_the_commit_carries() -> None:
    ids = FakeIdentities()
    for author in ("carol", "dave"):  # commit author, PR author
        result = tally(REQUEST, RULE, [said(author, APPROVE)], ids)
        assert result.verdict == "waiting"
        assert "wrote this change" in result.refused[0].why
    allowed = ApprovalSettings(required=True, allow_author=True)
    assert tally(REQUEST, allowed, [said("carol", APPROVE)], ids).verdict == "approved"


def test_without_write_access_or_outside_the_list_an_approval_does_not_count() -> None:
    ids = FakeIdentities()
    assert "not write" in tally(REQUEST, RULE, [said("mallory", APPROVE)], ids).refused[0].why
    assert "not write" in tally(REQUEST, RULE, [said("stranger", APPROVE)], ids).refused[0].why
    team_rule = ApprovalSettings(required=True, approvers=("acme/platform", "bob"))
    assert tally(REQUEST, team_rule, [said("erin", APPROVE)], ids).verdict == "approved"
    assert tally(REQUEST, team_rule, [said("BOB", APPROVE)], ids).verdict == "approved"
    refused = tally(REQUEST, team_rule, [said("carol", APPROVE)],
                    FakeIdentities()).refused[0].why
    assert "wrote this change" in refused
    outside = ApprovalRequest("prod", FP, T0)
    assert "not an allowed approver" in tally(outside, team_rule, [said("dave", APPROVE)],
                                              ids).refused[0].why


def test_min_approvals_needs_distinct_accounts() -> None:
    rule = ApprovalSettings(required=True, min_approvals=2)
    ids = FakeIdentities()
    twice = tally(REQUEST, rule, [said("alice", APPROVE), said("alice", APPROVE, minutes=2)], ids)
    assert twice.verdict == "waiting" and len(twice.approvals) == 1
    assert "1 of 2" in twice.progress()
    two = tally(REQUEST, rule, [said("alice", APPROVE), said("bob", APPROVE, minutes=2)], ids)
    assert two.verdict == "approved" and [a.login for a in two.approvals] == ["alice", "bob"]


def test_an_approval_for_another_plan_or_before_the_announcement_is_ignored() -> None:
    ids = FakeIdentities()
    old = tally(REQUEST, RULE, [said("alice", approve_command("prod", "ffffffffffff@1#1"))], ids)
    assert old.verdict == "waiting" and "another run, or a plan that went stale" in \
        old.refused[0].why
    assert tally(REQUEST, RULE, [said("alice", APPROVE, minutes=0)], ids).verdict == "approved"
    early = tally(REQUEST, RULE, [said("alice", APPROVE, minutes=-1)], ids)
    assert early.verdict == "waiting" and "before this plan was announced" in early.refused[0].why
    other_env = tally(REQUEST, RULE, [said("alice", approve_command("staging", FP))], ids)
    assert other_env.verdict == "waiting" and not other_env.refused  # not about this request


def test_an_edited_comment_never_counts() -> None:
    result = tally(REQUEST, RULE, [said("alice", APPROVE, edited=True)], FakeIdentities())
    assert result.verdict == "waiting" and "edited" in result.refused[0].why


def test_reviews_count_unless_dismissed_or_requesting_changes() -> None:
    ids = FakeIdentities()
    review = said("alice", APPROVE, channel=Channel.GITHUB_REVIEW, review_state="APPROVED")
    assert tally(REQUEST, RULE, [review], ids).verdict == "approved"
    for state in ("DISMISSED", "CHANGES_REQUESTED"):
        bad = said("alice", APPROVE, channel=Channel.GITHUB_REVIEW, review_state=state)
        assert tally(REQUEST, RULE, [bad], ids).verdict == "waiting"


def test_a_rejection_by_anyone_with_write_access_rejects_even_after_approvals() -> None:
    ids = FakeIdentities()
    result = tally(REQUEST, RULE, [said("alice", APPROVE),
                                   said("carol", reject_command("prod", "wrong DB"), minutes=2)],
                   ids)
    assert result.verdict == "rejected"
    assert result.rejection.login == "carol" and result.rejection.reason == "wrong DB"
    readonly = tally(REQUEST, RULE, [said("mallory", reject_command("prod"))], ids)
    assert readonly.verdict == "waiting" and readonly.refused


def test_the_form_is_a_claim_refused_unless_declared_approvals_are_allowed() -> None:
    author = {"author_name": "Carol Committer", "author_email": "carol@example.com"}
    form = ApprovalInput(approve=True, approver="bob", reason="ok")
    record, refusal = judge_form(form, RULE, REQUEST, **author)
    assert record is None and "unverified claim" in refusal.why and APPROVE in refusal.why
    declared = ApprovalSettings(required=True, allow_declared=True)
    record, refusal = judge_form(form, declared, REQUEST, **author)
    assert refusal is None and record.login == "bob" and not record.verified
    assert "declared" in record.describe()
    for name in ("Carol Committer", "carol", "carol@example.com", "dave"):
        _, refusal = judge_form(ApprovalInput(approve=True, approver=name), declared, REQUEST,
                                **author)
        assert refusal is not None and "author" in refusal.why
    _, refusal = judge_form(ApprovalInput(approve=True, approver=" "), declared, REQUEST, **author)
    assert "name the approver" in refusal.why


def test_the_form_rejects_for_anyone_and_a_wake_up_claims_nothing() -> None:
    author = {"author_name": "C", "author_email": "c@x"}
    record, _ = judge_form(ApprovalInput(approve=False, approver="ops", reason="no"), RULE,
                           REQUEST, **author)
    assert record.decision == "rejected" and not record.verified
    assert judge_form(ApprovalInput(check_github=True, approve=False), RULE, REQUEST,
                      **author) == (None, None)


def test_a_declared_and_a_verified_approval_make_two() -> None:
    rule = ApprovalSettings(required=True, allow_declared=True, min_approvals=2)
    result = tally(REQUEST, rule, [said("alice", APPROVE)], FakeIdentities())
    record, refusal = judge_form(ApprovalInput(approve=True, approver="bob"), rule, REQUEST,
                                 author_name="C", author_email="c@x")
    assert result.with_answer(record, refusal).verdict == "approved"
    again, _ = judge_form(ApprovalInput(approve=True, approver="Alice"), rule, REQUEST,
                          author_name="C", author_email="c@x")
    assert result.with_answer(again, None).verdict == "waiting"  # the same account, twice


OVERRIDE_RULE = ApprovalSettings(required=True, policy_owners=("acme/security",))
SOFT = ApprovalRequest("prod", FP, T0, commit_author="carol", pr_author="dave",
                       approvals_needed=0, overrides_needed=("stateful_resources.rego",))


def security() -> FakeIdentities:
    ids = FakeIdentities()
    ids.teams["acme/security"] = {"bob", "carol"}
    return ids


def test_override_command_names_the_check_and_the_plan() -> None:
    command = parse_command(override_command("prod", "stateful_resources.rego", FP, "planned"))
    assert (command.verb, command.check, command.argument, command.reason) == (
        "override", "stateful_resources.rego", FP, "planned")


def test_a_policy_owner_overrides_a_soft_mandatory_check_for_this_plan_only() -> None:
    ids = security()
    override = override_command("prod", "stateful_resources.rego", FP, "we mean it")
    result = tally(SOFT, OVERRIDE_RULE, [said("bob", override)], ids)
    assert result.verdict == "approved"
    (record,) = result.overrides
    assert (record.login, record.check, record.reason, record.verified) == (
        "bob", "stateful_resources.rego", "we mean it", True)
    assert "stateful_resources.rego overridden by @bob" in result.progress()


@pytest.mark.parametrize("login, body, why", [
    ("alice", override_command("prod", "stateful_resources.rego", FP), "not a policy owner"),
    ("carol", override_command("prod", "stateful_resources.rego", FP), "wrote this change"),
    ("bob", override_command("prod", "other.rego", FP), "no soft-mandatory check 'other.rego'"),
    ("bob", override_command("prod", "stateful_resources.rego", "0000@1#1"), "went stale"),
])
def test_an_override_that_does_not_count(login, body, why) -> None:
    result = tally(SOFT, OVERRIDE_RULE, [said(login, body)], security())
    assert result.verdict == "waiting" and why in result.refused[0].why
    assert "still needed for stateful_resources.rego" in result.progress()


def test_without_policy_owners_nobody_overrides() -> None:
    result = tally(SOFT, RULE, [said("bob", override_command(
        "prod", "stateful_resources.rego", FP))], security())
    assert result.verdict == "waiting" and "names no policy owners" in result.refused[0].why


def test_an_approval_does_not_override_and_an_override_does_not_approve() -> None:
    both = ApprovalRequest("prod", FP, T0, overrides_needed=("stateful_resources.rego",))
    ids = security()
    only_approval = tally(both, OVERRIDE_RULE, [said("alice", APPROVE)], ids)
    assert only_approval.verdict == "waiting"
    only_override = tally(both, OVERRIDE_RULE, [said("bob", override_command(
        "prod", "stateful_resources.rego", FP))], ids)
    assert only_override.verdict == "waiting"
    assert tally(both, OVERRIDE_RULE, [said("alice", APPROVE), said("bob", override_command(
        "prod", "stateful_resources.rego", FP), minutes=2)], ids).verdict == "approved"
