"""GitHub deliveries parsed into frozen typed events: what routing reads, nothing more.

`parse_event` takes the `X-GitHub-Event` value and the raw body; a body that is not JSON, or a
field of the wrong shape, is refused with WebhookError(..., 400) naming the field. Events other
than pull_request, push, ping and issue_comment become an `UnhandledEvent`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gitops.errors import WebhookError
from gitops.receiver.signature import EVENT_HEADER

_SHA_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_EVENT_RE = re.compile(r"^[a-z_]{1,64}$")


@dataclass(frozen=True)
class PullRequestEvent:
    """A `pull_request` delivery, reduced to what routing needs."""

    action: str
    repository: str
    default_branch: str
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    head_repository: str | None
    """`owner/name` of the head repository; None when the fork was deleted."""
    merged: bool
    base_repository: str = ""
    """`owner/name` of the base repository (the webhook's repository when absent)."""
    head_repository_id: int | None = None
    base_repository_id: int | None = None
    """The base repository's id (the webhook's repository's when absent)."""
    base_changed: bool = False
    """An `edited` delivery that changed the base branch (`changes.base`)."""

    @property
    def from_fork(self) -> bool:
        """True when the head repository is not the base repository, or was deleted.

        Ids decide when both are known (a repository keeps its id when renamed; a new repository
        under an old name gets a new one); otherwise the full names, without case.
        """
        if self.head_repository is None:
            return True
        if self.head_repository_id is not None and self.base_repository_id is not None:
            return self.head_repository_id != self.base_repository_id
        base = self.base_repository or self.repository
        return self.head_repository.lower() != base.lower()


@dataclass(frozen=True)
class PushEvent:
    """A `push` delivery."""

    repository: str
    default_branch: str
    ref: str
    before: str
    after: str
    created: bool
    deleted: bool
    forced: bool


@dataclass(frozen=True)
class PingEvent:
    """A `ping` delivery (sent when the webhook is created)."""

    zen: str
    hook_id: int | None
    repository: str | None


@dataclass(frozen=True)
class IssueCommentEvent:
    """An `issue_comment` delivery."""

    action: str
    repository: str
    issue_number: int
    on_pull_request: bool
    comment_id: int
    body: str
    author: str


@dataclass(frozen=True)
class CommitCommentEvent:
    """A `commit_comment` delivery (a comment on a commit that no pull request brought)."""

    action: str
    repository: str
    commit_id: str
    comment_id: int
    body: str
    author: str


@dataclass(frozen=True)
class UnhandledEvent:
    """Any other event type; always ignored."""

    event: str
    repository: str | None


WebhookEvent = (PullRequestEvent | PushEvent | PingEvent | IssueCommentEvent | CommitCommentEvent
                | UnhandledEvent)


def parse_event(event: str, body: bytes) -> WebhookEvent:
    """Parse a delivery body into the typed event for `event` (the X-GitHub-Event value)."""
    if not _EVENT_RE.fullmatch(event or ""):
        raise WebhookError(f"missing or invalid {EVENT_HEADER} header", 400)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as ex:
        raise WebhookError("body is not JSON (the webhook content type must be "
                           "application/json)", 400) from ex
    if not isinstance(data, dict):
        raise WebhookError("body is not a JSON object", 400)
    payload = _Obj(data, "")
    if event == "pull_request":
        return _pull_request(payload)
    if event == "push":
        return _push(payload)
    if event == "ping":
        return _ping(payload)
    if event == "issue_comment":
        return _issue_comment(payload)
    if event == "commit_comment":
        return _commit_comment(payload)
    repo = payload.optional_obj("repository")
    name = repo.optional_str("full_name") if repo is not None else None
    return UnhandledEvent(event=event, repository=name)


class _Obj:
    """Typed reads from a JSON object; a wrong shape raises WebhookError(..., 400)."""

    def __init__(self, data: dict[str, Any], path: str) -> None:
        self._data = data
        self._path = path

    def _where(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _bad(self, key: str, what: str) -> WebhookError:
        return WebhookError(f"payload field {self._where(key)!r} must be {what}", 400)

    def obj(self, key: str) -> _Obj:
        value = self._data.get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return _Obj(value, self._where(key))

    def optional_obj(self, key: str) -> _Obj | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._bad(key, "an object or null")
        return _Obj(value, self._where(key))

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def text(self, key: str) -> str:
        value = self._data.get(key)
        if not isinstance(value, str) or not value:
            raise self._bad(key, "a non-empty string")
        return value

    def optional_str(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._bad(key, "a string or null")
        return value

    def number(self, key: str) -> int:
        value = self._data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
            raise self._bad(key, "a positive integer")
        return value

    def optional_int(self, key: str) -> int | None:
        return None if self._data.get(key) is None else self.number(key)

    def flag(self, key: str, default: bool | None = None) -> bool:
        value = self._data.get(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def sha(self, key: str) -> str:
        value = self.text(key).lower()
        if not _SHA_RE.fullmatch(value):
            raise self._bad(key, "a commit sha (40 or 64 hex digits)")
        return value

    def repo_name(self, key: str = "full_name") -> str:
        value = self.text(key)
        if not _REPO_RE.fullmatch(value):
            raise self._bad(key, "'owner/name'")
        return value

    def ref(self, key: str) -> str:
        value = self.text(key)
        if len(value) > 255 or any(c in value for c in "\x00\n\r ~^:?*[\\") or ".." in value:
            raise self._bad(key, "a git ref name")
        return value


def _repository(payload: _Obj) -> tuple[str, str]:
    repo = payload.obj("repository")
    branch = repo.optional_str("default_branch") or repo.optional_str("master_branch")
    if not branch:
        raise WebhookError("payload field 'repository.default_branch' is missing", 400)
    return repo.repo_name(), branch


def _pull_request(payload: _Obj) -> PullRequestEvent:
    repository, default_branch = _repository(payload)
    pr = payload.obj("pull_request")
    head, base = pr.obj("head"), pr.obj("base")
    head_repo, base_repo = head.optional_obj("repo"), base.optional_obj("repo")
    number = payload.optional_int("number") or pr.number("number")
    changes = payload.optional_obj("changes")
    return PullRequestEvent(
        action=payload.text("action"),
        repository=repository,
        default_branch=default_branch,
        number=number,
        head_sha=head.sha("sha"),
        head_ref=head.ref("ref"),
        base_ref=base.ref("ref"),
        head_repository=head_repo.repo_name() if head_repo is not None else None,
        merged=pr.flag("merged", default=False),
        base_repository=base_repo.repo_name() if base_repo is not None else "",
        head_repository_id=head_repo.optional_int("id") if head_repo is not None else None,
        base_repository_id=(base_repo or payload.obj("repository")).optional_int("id"),
        base_changed=changes is not None and changes.has("base"),
    )


def _push(payload: _Obj) -> PushEvent:
    repository, default_branch = _repository(payload)
    return PushEvent(
        repository=repository,
        default_branch=default_branch,
        ref=payload.ref("ref"),
        before=payload.sha("before"),
        after=payload.sha("after"),
        created=payload.flag("created", default=False),
        deleted=payload.flag("deleted", default=False),
        forced=payload.flag("forced", default=False),
    )


def _ping(payload: _Obj) -> PingEvent:
    repo = payload.optional_obj("repository")
    return PingEvent(zen=payload.optional_str("zen") or "",
                     hook_id=payload.optional_int("hook_id"),
                     repository=repo.optional_str("full_name") if repo is not None else None)


def _issue_comment(payload: _Obj) -> IssueCommentEvent:
    issue, comment = payload.obj("issue"), payload.obj("comment")
    user = comment.optional_obj("user")
    return IssueCommentEvent(
        action=payload.text("action"),
        repository=payload.obj("repository").repo_name(),
        issue_number=issue.number("number"),
        on_pull_request=issue.has("pull_request"),
        comment_id=comment.number("id"),
        body=comment.optional_str("body") or "",
        author=(user.optional_str("login") or "") if user is not None else "",
    )


def _commit_comment(payload: _Obj) -> CommitCommentEvent:
    comment = payload.obj("comment")
    user = comment.optional_obj("user")
    return CommitCommentEvent(
        action=payload.text("action"),
        repository=payload.obj("repository").repo_name(),
        commit_id=comment.sha("commit_id"),
        comment_id=comment.number("id"),
        body=comment.optional_str("body") or "",
        author=(user.optional_str("login") or "") if user is not None else "",
    )
