"""Approval stage on the code host: where to ask, the announcement, and the answers it vouches for.

Each task builds its client inside (tasks/github.code_host) and reads only what the code host
returns: who wrote a comment, when, whether it was edited, who has write access and who is in a
team. A webhook payload or a Prefect run input is never taken as evidence, only as a reason to
look. Reads and the marked announcement are idempotent, so transient failures are retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from gitops.approval import ApprovalRequest, Channel, Statement, Tally, tally
from gitops.codehost import CodeHost, Comment, PullRequest, Review
from gitops.config import ApprovalSettings
from gitops.settings import GitopsSettings
from tasks.github import code_host
from tasks.retry import BACKOFF, transient_only

_RETRY = dict(retries=3, retry_delay_seconds=BACKOFF, retry_condition_fn=transient_only,
              cache_policy=NO_CACHE)


@dataclass(frozen=True)
class Venue:
    """Where a commit's approval is asked and answered: the pull request that brought it to the
    default branch, or the commit's own comments when no pull request did."""

    repository: str
    commit: str
    pr_number: int | None = None
    pr_author: str | None = None
    commit_author: str | None = None

    def describe(self) -> str:
        return (f"pull request #{self.pr_number}" if self.pr_number is not None
                else f"commit {self.commit[:12]}")


@dataclass(frozen=True)
class Announcement:
    """The comment that asked for approval (its body is checked again before apply)."""

    comment_id: int
    body: str
    created_at: datetime
    url: str = ""


@task(name="approval-venue", **_RETRY)
def find_venue(settings: GitopsSettings, repository: str, sha: str) -> Venue:
    """The pull request that brought ``sha`` (merged first), its author and the commit's."""
    with code_host(settings) as host:
        commit = host.get_commit(repository, sha)
        pull = _bringing_pull(host.pulls_for_commit(repository, sha), sha)
    venue = Venue(repository, sha, pull.number if pull else None,
                  pull.author_login if pull else None, commit.author_login)
    get_run_logger().info("%s: approvals are asked on %s (commit author: %s, PR author: %s)",
                          sha[:12], venue.describe(), venue.commit_author or "no GitHub account",
                          venue.pr_author or "-")
    return venue


def _bringing_pull(pulls: list[PullRequest], sha: str) -> PullRequest | None:
    merged = [p for p in pulls if p.merged and p.merge_commit_sha == sha]
    return (merged or [p for p in pulls if p.merged] or pulls or [None])[0]


@task(name="approval-announce", **_RETRY)
def announce(settings: GitopsSettings, venue: Venue, body: str, marker: str) -> Announcement:
    """Post the request for approval (one comment per request, found again by ``marker``)."""
    body = body if marker in body else f"{marker}\n{body}"
    with code_host(settings) as host:
        if venue.pr_number is not None:
            comment = host.upsert_marked_comment(venue.repository, venue.pr_number, body, marker)
        else:
            found = [c for c in host.list_commit_comments(venue.repository, venue.commit)
                     if marker in c.body and host.is_own(c)]
            comment = found[0] if found else host.create_commit_comment(
                venue.repository, venue.commit, body)
    return _announcement(comment)


@task(name="approval-announcement-update", **_RETRY)
def update_announcement(settings: GitopsSettings, venue: Venue, announcement: Announcement,
                        body: str) -> Announcement:
    """Edit the request in place (the outcome, the approvals so far)."""
    with code_host(settings) as host:
        if venue.pr_number is not None:
            comment = host.update_comment(venue.repository, announcement.comment_id, body)
        else:  # commit comments are not edited; the outcome is a reply
            comment = host.create_commit_comment(venue.repository, venue.commit, body)
            return Announcement(announcement.comment_id, announcement.body,
                                announcement.created_at, announcement.url)
    return Announcement(comment.id, comment.body, announcement.created_at, comment.html_url)


@task(name="approval-announcement-check", **_RETRY)
def announcement_unchanged(settings: GitopsSettings, venue: Venue,
                           announcement: Announcement) -> bool:
    """Whether the request on the code host still reads as posted (nobody edited what the
    approvers read)."""
    if venue.pr_number is None:
        return True  # commit comments are only ever posted, and their edits show in updated_at
    with code_host(settings) as host:
        comment = host.get_comment(venue.repository, announcement.comment_id)
        return comment.body == announcement.body and host.is_own(comment)


@dataclass
class HostIdentities:
    """gitops.approval.Identities on a code host, each answer asked once per tally."""

    host: CodeHost
    repository: str
    _permissions: dict[str, str] = field(default_factory=dict)
    _teams: dict[tuple[str, str, str], bool] = field(default_factory=dict)

    def permission(self, login: str) -> str:
        key = login.lower()
        if key not in self._permissions:
            self._permissions[key] = self.host.permission(self.repository, login)
        return self._permissions[key]

    def is_team_member(self, org: str, team: str, login: str) -> bool:
        key = (org.lower(), team.lower(), login.lower())
        if key not in self._teams:
            self._teams[key] = self.host.is_team_member(org, team, login)
        return self._teams[key]


@task(name="approval-tally", **_RETRY)
def tally_approvals(settings: GitopsSettings, venue: Venue, request: ApprovalRequest,
                    rule: ApprovalSettings) -> Tally:
    """Every answer on the code host to ``request``, judged (gitops.approval.tally)."""
    with code_host(settings) as host:
        statements = read_statements(host, venue)
        return tally(request, rule, statements, HostIdentities(host, venue.repository))


def read_statements(host: CodeHost, venue: Venue) -> list[Statement]:
    """The comments (and reviews) where ``venue``'s approvals are given, as the host has them."""
    if venue.pr_number is None:
        return [_from_comment(c, Channel.GITHUB_COMMIT_COMMENT)
                for c in host.list_commit_comments(venue.repository, venue.commit)]
    return ([_from_comment(c, Channel.GITHUB_COMMENT)
             for c in host.list_comments(venue.repository, venue.pr_number)]
            + [_from_review(r) for r in host.list_reviews(venue.repository, venue.pr_number)])


def _from_comment(comment: Comment, channel: Channel) -> Statement:
    return Statement(channel, comment.id, comment.user_login, comment.body, comment.created_at,
                     comment.updated_at, url=comment.html_url)


def _from_review(review: Review) -> Statement:
    # A review has no updated_at; its body is what its author submitted.
    return Statement(Channel.GITHUB_REVIEW, review.id, review.user_login, review.body,
                     review.submitted_at, review.submitted_at, review.state, review.html_url)


def _announcement(comment: Comment) -> Announcement:
    if comment.created_at is None:
        from gitops.errors import GitHubError

        raise GitHubError("the code host gave the approval request no creation time")
    return Announcement(comment.id, comment.body, comment.created_at, comment.html_url)
