"""The code host as the flows see it: value types and the one `CodeHost` interface.

`gitops.github.GitHubClient` implements `CodeHost` for GitHub; a second host (GitLab, Gitea...)
implements the same Protocol and the flows do not change. Values are parsed at the adapter's
boundary into the frozen types below; timestamps are timezone-aware UTC.

Failures are the adapter's exceptions (for GitHub, `gitops.errors.GitHubError` and its transient
subclass `GitHubUnavailable`); expected outcomes (no permission, not a team member) are values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

StatusState = Literal["error", "failure", "pending", "success"]
IssueState = Literal["open", "closed"]
Permission = Literal["admin", "write", "read", "none"]
ReviewState = Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"]


@dataclass(frozen=True)
class Comment:
    """A comment on an issue, a pull request or a commit."""

    id: int
    body: str
    html_url: str = ""
    user_login: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class CommitStatus:
    """A commit status as the code host recorded it."""

    id: int
    state: StatusState
    context: str
    description: str = ""
    target_url: str | None = None


@dataclass(frozen=True)
class Issue:
    """An issue (drift notifications are issues)."""

    number: int
    title: str
    body: str
    state: IssueState
    labels: tuple[str, ...] = ()
    html_url: str = ""


@dataclass(frozen=True)
class PullRequest:
    """A pull request: who opened it, its head commit and, once merged, its merge commit."""

    number: int
    author_login: str
    head_sha: str
    merge_commit_sha: str | None
    state: str  # open|closed
    merged: bool
    html_url: str = ""


@dataclass(frozen=True)
class Review:
    """A pull-request review; `commit_id` is the head commit the reviewer saw."""

    id: int
    user_login: str
    state: str  # APPROVED|CHANGES_REQUESTED|COMMENTED|DISMISSED|PENDING
    body: str
    submitted_at: datetime | None
    commit_id: str
    html_url: str = ""


@dataclass(frozen=True)
class CommitInfo:
    """A commit's author and committer accounts; None where the e-mail is linked to no account."""

    sha: str
    author_login: str | None
    committer_login: str | None


@runtime_checkable
class CodeHost(Protocol):
    """The one interface the flows use to reach the code host; a second host implements it."""

    # -- comments on issues and pull requests
    def create_comment(self, repo: str, issue_number: int, body: str) -> Comment:
        """Post a new comment on an issue or pull request."""
        ...

    def update_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        """Replace the body of an existing comment."""
        ...

    def get_comment(self, repo: str, comment_id: int) -> Comment:
        """One issue/PR comment by id, with its author and timestamps."""
        ...

    def list_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """All comments on an issue or pull request, oldest first."""
        ...

    def upsert_marked_comment(self, repo: str, issue_number: int, body: str,
                              marker: str) -> Comment:
        """Edit the first comment containing `marker` in place, or post one."""
        ...

    # -- comments on commits
    def list_commit_comments(self, repo: str, sha: str) -> list[Comment]:
        """All comments on a commit, oldest first."""
        ...

    def create_commit_comment(self, repo: str, sha: str, body: str) -> Comment:
        """Post a comment on a commit."""
        ...

    # -- commits and pull requests
    def get_commit(self, repo: str, ref: str) -> CommitInfo:
        """The commit `ref` names, with its author and committer accounts."""
        ...

    def pulls_for_commit(self, repo: str, sha: str) -> list[PullRequest]:
        """The pull requests that bring `sha` (as head or merge commit)."""
        ...

    def get_pull(self, repo: str, number: int) -> PullRequest:
        """One pull request by number."""
        ...

    def list_reviews(self, repo: str, number: int) -> list[Review]:
        """All reviews of a pull request, oldest first."""
        ...

    # -- who may do what
    def permission(self, repo: str, login: str) -> str:
        """`login`'s base permission on `repo`: admin, write, read or none."""
        ...

    def is_team_member(self, org: str, team_slug: str, login: str) -> bool:
        """Whether `login` is an active member of `org/team_slug`."""
        ...

    def authenticated_login(self) -> str:
        """The login of the account the client authenticates as."""
        ...

    def is_own(self, comment: Comment) -> bool:
        """Whether ``comment`` was written by the account the client authenticates as."""
        ...

    # -- commit statuses and issues
    def create_status(self, repo: str, sha: str, state: StatusState, context: str,
                      description: str = "", target_url: str | None = None) -> CommitStatus:
        """Set a commit status."""
        ...

    def create_issue(self, repo: str, title: str, body: str,
                     labels: Sequence[str] = ()) -> Issue:
        """Open an issue."""
        ...

    def update_issue(self, repo: str, number: int, body: str | None = None,
                     state: IssueState | None = None) -> Issue:
        """Change an issue's body and/or state."""
        ...

    def find_open_issue(self, repo: str, marker_or_title: str,
                        labels: Sequence[str] = ()) -> Issue | None:
        """The first open issue whose body contains, or whose title equals, `marker_or_title`."""
        ...
