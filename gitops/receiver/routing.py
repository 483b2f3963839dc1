"""Routing: what a parsed delivery starts, as a `Decision`.

A delivery becomes "run" a deployment (with parameters and an idempotency key so that
redeliveries and duplicate events start one run) or "ignore" it with a reason; a repository
not on the allowlist is refused with WebhookError(..., 403). Starting the run is the
`Launcher`'s job (the Prefect one lives with the flows, in deployments/webhook_server.py).

Routing rules (the choices that GitHub's documentation leaves to us are marked *):

* A pull request comes from a fork when its head repository is not its base repository (ids
  compared, then full names); a deleted head repository counts as a fork. (`head.repo.fork` only
  says the repository is itself a fork of another one: PRs inside such a repository are ordinary.)
* opened, synchronize, reopened plan the head commit. *ready_for_review plans too, with the same
  idempotency key: drafts are planned like any PR, so it starts a run only if that head was never
  planned. *edited plans again only when the base branch changed (`changes.base`); title and body
  edits do not. *converted_to_draft, labeled, assigned, review requests... do not change the code
  or its target and are ignored with that reason.
* A push that deletes a branch never deploys. *A force-push to the default branch deploys its new
  head like any push (the branch is the desired state; the deploy plans and asks approval as
  usual), and its idempotency key names the commit it replaced, so force-pushing back to a commit
  deployed before deploys it again instead of finding the old run.
* A new comment whose first non-empty line is `/gitops approve <env> <fingerprint>` or
  `/gitops reject <env> [reason]` "wake"s the runs waiting for approval of `<env>` (an
  environment name as `gitops.config.check_environment_name` allows it). The comment is never
  trusted: waking only tells the run to verify the approvals on GitHub itself. *Comments on
  plain issues wake too (an approval may be given on a commit's pull request or elsewhere; the
  flow decides what counts), so the receiver does not look up which PR brought the commit.
  *Edited and deleted comments never wake (an edited comment never counts as an approval);
  other comments are ignored with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gitops.commands import parse_command
from gitops.errors import WebhookError
from gitops.receiver.events import (
    CommitCommentEvent,
    IssueCommentEvent,
    PingEvent,
    PullRequestEvent,
    PushEvent,
    UnhandledEvent,
    WebhookEvent,
)

PR_PLAN_DEPLOYMENT = "pr-plan/pr-plan"
PR_CLOSED_DEPLOYMENT = "pr-closed/pr-closed"
DEPLOY_MAIN_DEPLOYMENT = "deploy-main/deploy-main"

PR_TAG_PREFIX = "pr:"


def pr_tag(repository: str, pr_number: int) -> str:
    """The run tag shared by every pr-plan run of one pull request (newer runs supersede older)."""
    return f"{PR_TAG_PREFIX}{repository.lower()}#{pr_number}"


_PLAN_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
_ZERO_SHA = re.compile(r"^0+$")


@dataclass(frozen=True)
class Decision:
    """What to do with a delivery: run a deployment, wake the runs waiting for an approval of
    `parameters["environment"]`, or ignore it (with the reason)."""

    decision: Literal["run", "wake", "ignore"]
    reason: str
    deployment: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    delivery_id: str = ""


class Launcher(Protocol):
    """Starts the run a "run" decision asks for; wakes the runs a "wake" decision names."""

    def launch(self, decision: Decision) -> str:
        """Start (or find, by `decision.idempotency_key`) the run; return its id."""
        ...

    def wake(self, decision: Decision) -> list[str]:
        """Resume the runs paused for an approval of `decision.parameters["environment"]`, each
        told to check GitHub; return the ids of those resumed (none: nothing waits)."""
        ...


def route(event: WebhookEvent, *, delivery_id: str, allowlist: frozenset[str],
          default_branch_only: bool = True, allow_forks: bool = False) -> Decision:
    """Decide what a parsed delivery starts.

    Raises WebhookError(..., 403) when the repository is not on `allowlist` (compared without
    case, like GitHub). `default_branch_only` applies to pushes; `allow_forks` to pull requests.
    """
    if isinstance(event, PingEvent):
        return Decision("ignore", "pong", delivery_id=delivery_id)
    if isinstance(event, UnhandledEvent) and event.repository is None:
        return Decision("ignore", f"event {event.event!r} (no repository) is not handled",
                        delivery_id=delivery_id)
    repository = event.repository
    if repository is None or repository.lower() not in {r.lower() for r in allowlist}:
        raise WebhookError(f"repository {repository or '(none)'} is not on the allowlist", 403)

    def ignore(reason: str) -> Decision:
        return Decision("ignore", reason, delivery_id=delivery_id)

    if isinstance(event, PullRequestEvent):
        if event.from_fork and not allow_forks:
            return ignore(f"pull request #{event.number} comes from a fork "
                          f"({event.head_repository or 'deleted repository'}); forks do not run")
        plan_key = (f"{PR_PLAN_DEPLOYMENT}:{repository.lower()}"
                    f"#{event.number}@{event.head_sha}")
        if event.action == "edited":
            if not event.base_changed:
                return ignore(f"pull request #{event.number} edited (title or body): the code "
                              "and its base did not change")
            # the same head against another base: a new plan, one per base change
            plan_key += f":base-edited:{delivery_id}"
        elif event.action not in _PLAN_ACTIONS:
            if event.action == "closed":
                return _closed(event, repository, delivery_id)
            if event.action == "converted_to_draft":
                return ignore(f"pull request #{event.number} converted to draft: drafts keep "
                              "their plan, and pushes to them are planned")
            return ignore(f"pull request action {event.action!r} does not change the code or "
                          "its base: no plan")
        what = ("base branch changed" if event.action == "edited"
                else "ready for review" if event.action == "ready_for_review" else event.action)
        return Decision(
            "run", f"pull request #{event.number} {what}",
            deployment=PR_PLAN_DEPLOYMENT,
            parameters={"repository": repository, "pr_number": event.number,
                        "head_sha": event.head_sha, "base_ref": event.base_ref},
            idempotency_key=plan_key, delivery_id=delivery_id)

    if isinstance(event, PushEvent):
        if event.ref.startswith("refs/tags/"):
            return ignore(f"tag push ({event.ref}) does not start a run")
        if not event.ref.startswith("refs/heads/"):
            return ignore(f"push to {event.ref} (not a branch) does not start a run")
        if event.deleted or _ZERO_SHA.fullmatch(event.after):
            return ignore(f"branch deleted ({event.ref})")
        branch = event.ref[len("refs/heads/"):]
        if default_branch_only and branch != event.default_branch:
            return ignore(f"push to {branch}, not the default branch {event.default_branch}")
        key = f"{DEPLOY_MAIN_DEPLOYMENT}:{repository.lower()}@{event.after}"
        reason = f"push to {branch}"
        if event.forced:
            # history rewritten: the new head may be a commit deployed before, so the key names
            # the commit it replaced (a redelivery of this push still finds the same run)
            key += f":forced-from:{event.before}"
            reason = f"force-push to {branch} (replacing {event.before[:12]})"
        return Decision(
            "run", reason,
            deployment=DEPLOY_MAIN_DEPLOYMENT,
            parameters={"repository": repository, "sha": event.after, "ref": event.ref},
            idempotency_key=key, delivery_id=delivery_id)

    if isinstance(event, (IssueCommentEvent, CommitCommentEvent)):
        return _comment(event, repository, delivery_id)

    return ignore(f"event {event.event!r} is not handled")


def _closed(event: PullRequestEvent, repository: str, delivery_id: str) -> Decision:
    if event.merged:
        return Decision("ignore", f"pull request #{event.number} merged: the push to the default "
                        "branch starts the deploy", delivery_id=delivery_id)
    return Decision(
        "run", f"pull request #{event.number} closed without merge",
        deployment=PR_CLOSED_DEPLOYMENT,
        parameters={"repository": repository, "pr_number": event.number},
        idempotency_key=f"{PR_CLOSED_DEPLOYMENT}:{repository.lower()}"
                        f"#{event.number}@{event.head_sha}",
        delivery_id=delivery_id)


def _comment(event: IssueCommentEvent | CommitCommentEvent, repository: str,
             delivery_id: str) -> Decision:
    if isinstance(event, CommitCommentEvent):
        where, on = f"commit {event.commit_id[:12]}", {"commit": event.commit_id}
    else:
        where = f"{'pull request' if event.on_pull_request else 'issue'} #{event.issue_number}"
        on = {"issue_number": event.issue_number}
    command = parse_command(event.body)
    if command is None:
        return Decision("ignore", f"comment on {where} has no /gitops approve|reject <env> "
                        "command on its first line: comments do not start runs",
                        delivery_id=delivery_id)
    if event.action != "created":
        return Decision("ignore", f"comment on {where} {event.action}: only a new comment "
                        "wakes a waiting run (an edited comment never counts as an approval)",
                        delivery_id=delivery_id)
    verb, environment = command.verb, command.environment
    return Decision(
        "wake", f"/gitops {verb} {environment} (comment {event.comment_id} on {where}): wake "
                f"the runs waiting for {environment}",
        parameters={"repository": repository, "environment": environment, **on,
                    "comment_id": event.comment_id, "command": verb},
        delivery_id=delivery_id)
