"""The approval rule applied to an answer (pure)."""

from __future__ import annotations

import pytest

from gitops.approval import ApprovalInput, judge_approval
from gitops.config import ApprovalSettings

AUTHOR = {"author_name": "Carol Committer", "author_email": "carol@example.com"}


def answer(approve: bool = True, approver: str = "bob", reason: str = "ok") -> ApprovalInput:
    return ApprovalInput(approve=approve, approver=approver, reason=reason)


def test_an_approval_by_someone_else_is_approved() -> None:
    decision = judge_approval(answer(), ApprovalSettings(required=True), **AUTHOR)
    assert decision.approved and decision.approver == "bob" and decision.refusal == ""


def test_a_rejection_is_not_approved() -> None:
    decision = judge_approval(answer(approve=False), ApprovalSettings(required=True), **AUTHOR)
    assert not decision.approved
    assert decision.refusal == "rejected by the approver"


@pytest.mark.parametrize("approver", ["Carol Committer", "carol@example.com", "carol", " CAROL "])
def test_the_author_may_not_approve_their_own_change(approver: str) -> None:
    decision = judge_approval(answer(approver=approver), ApprovalSettings(required=True), **AUTHOR)
    assert not decision.approved
    assert "author" in decision.refusal


def test_the_author_may_approve_where_the_environment_allows_it() -> None:
    rule = ApprovalSettings(required=True, allow_author=True)
    assert judge_approval(answer(approver="carol"), rule, **AUTHOR).approved


def test_an_approval_must_name_the_approver() -> None:
    decision = judge_approval(answer(approver="  "), ApprovalSettings(required=True), **AUTHOR)
    assert not decision.approved and "name the approver" in decision.refusal


def test_only_listed_approvers_count_when_a_list_is_set() -> None:
    rule = ApprovalSettings(required=True, approvers=("alice",))
    assert not judge_approval(answer(approver="bob"), rule, **AUTHOR).approved
    assert judge_approval(answer(approver="alice"), rule, **AUTHOR).approved
