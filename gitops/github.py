"""GitHub REST adapter, GitHub's `gitops.codehost.CodeHost`: PR comments (one marked comment per
PR, edited in place), commit statuses, the issues drift detection opens, and what approvals are
checked against: comments on PRs and commits (author, created/updated time), commits and their
authors, the pulls that brought a commit, reviews, repository permissions, team memberships.

The value types live in `gitops.codehost` and are re-exported here for older imports.

Only the routes listed in `tests/contracts/github/README.md` and
`tests/contracts/github-rest/README.md` are used. The `httpx.Client` is passed in
(`GitHubClient.from_token` builds one); nothing is created at import time.

Failures are exceptions from `gitops.errors`:

    GitHubError            4xx (status code + GitHub's `message`), bad response, refused input
    └── GitHubUnavailable  connection error, timeout, 5xx, rate limit: transient, retry is safe

The token never appears in a message: messages name the method and path only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from gitops.codehost import (
    CodeHost,
    Comment,
    CommitInfo,
    CommitStatus,
    Issue,
    IssueState,
    PullRequest,
    Review,
    StatusState,
)
from gitops.errors import GitHubError, GitHubUnavailable
from gitops.scrub import scrub, scrub_obj  # scrub before trimming: a cut secret is unmasked

DEFAULT_BASE_URL = "https://api.github.com"
MAX_COMMENT_CHARS = 65_536
"""GitHub's limit on an issue/PR comment body (the API answers 422 above it)."""
MAX_STATUS_DESCRIPTION_CHARS = 140
"""GitHub's limit on a commit status description."""
PER_PAGE = 100
MAX_PAGES = 100
"""Stop following `Link: rel="next"` after this many pages (10,000 items at 100 a page)."""

_STATUS_STATES: frozenset[str] = frozenset({"error", "failure", "pending", "success"})
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_SHA_RE = re.compile(r"[0-9a-fA-F]{7,64}")
_REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}")
_LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(\[bot\])?")
_SLUG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

__all__ = ["CodeHost", "Comment", "CommitInfo", "CommitStatus", "GitHubClient", "Issue",
           "IssueState", "MAX_COMMENT_CHARS", "MAX_STATUS_DESCRIPTION_CHARS", "PullRequest",
           "Review", "StatusState"]


class GitHubClient:
    """Thin client for the GitHub REST routes gitops-flows uses: GitHub's `CodeHost`."""

    def __init__(self, client: httpx.Client) -> None:
        """Wrap a configured `httpx.Client` (base URL and Authorization header already set)."""
        self._client = client
        self._own_login: str | None = None

    @classmethod
    def from_token(cls, token: str, base_url: str = DEFAULT_BASE_URL,
                   transport: httpx.BaseTransport | None = None,
                   timeout: float = 30.0) -> GitHubClient:
        """Build a client that authenticates with `Authorization: Bearer <token>`."""
        if not token or not token.strip():
            raise ValueError("GitHub token is empty")
        client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token.strip()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "gitops-flows",
            },
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
        )
        return cls(client)

    def close(self) -> None:
        """Close the underlying HTTP client."""
        self._client.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- comments -----------------------------------------------------------------------------

    def create_comment(self, repo: str, issue_number: int, body: str) -> Comment:
        """Post a new comment on an issue or pull request."""
        _check_comment_body(body)
        path = f"{_repo_path(repo)}/issues/{_positive(issue_number)}/comments"
        data = self._request("POST", path, json={"body": body})
        return _comment(data)

    def update_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        """Replace the body of an existing comment."""
        _check_comment_body(body)
        data = self._request("PATCH", f"{_repo_path(repo)}/issues/comments/{_positive(comment_id)}",
                             json={"body": body})
        return _comment(data)

    def list_comments(self, repo: str, issue_number: int) -> list[Comment]:
        """All comments on an issue or pull request, oldest first (follows pagination)."""
        path = f"{_repo_path(repo)}/issues/{_positive(issue_number)}/comments"
        return [_comment(item) for item in self._paginate(path, {})]

    def get_comment(self, repo: str, comment_id: int) -> Comment:
        """One issue/PR comment by id, with its author and timestamps."""
        return _comment(self._get(f"{_repo_path(repo)}/issues/comments/{_positive(comment_id)}"))

    def upsert_marked_comment(self, repo: str, issue_number: int, body: str,
                              marker: str) -> Comment:
        """Edit the first comment of ours containing `marker` in place, or post one if there is
        none.

        `marker` is a hidden string such as `<!-- gitops-flows:pr-plan -->`; it is prepended to
        `body` when the body does not already contain it, so the next upsert finds the comment.
        Only comments written by this client's own account count: anyone can copy a marker into a
        comment of theirs, and a bot with write access could otherwise edit it.
        """
        if not marker.strip():
            raise ValueError("marker is empty")
        if marker not in body:
            body = f"{marker}\n{body}"
        _check_comment_body(body)
        for existing in self.list_comments(repo, issue_number):
            if marker in existing.body and self.is_own(existing):
                if existing.body == body:
                    return existing
                return self.update_comment(repo, existing.id, body)
        return self.create_comment(repo, issue_number, body)

    # -- commit comments ----------------------------------------------------------------------

    def list_commit_comments(self, repo: str, sha: str) -> list[Comment]:
        """All comments on a commit, oldest first (follows pagination)."""
        path = f"{_repo_path(repo)}/commits/{_sha(sha)}/comments"
        return [_comment(item) for item in self._paginate(path, {})]

    def create_commit_comment(self, repo: str, sha: str, body: str) -> Comment:
        """Post a comment on a commit (for commits no pull request brought)."""
        _check_comment_body(body)
        path = f"{_repo_path(repo)}/commits/{_sha(sha)}/comments"
        return _comment(self._request("POST", path, json={"body": body}))

    # -- commits, pull requests, reviews ------------------------------------------------------

    def get_commit(self, repo: str, ref: str) -> CommitInfo:
        """The commit `ref` (a sha or branch) names, with the accounts GitHub links to its
        author and committer e-mails (None where no account is linked)."""
        if not _REF_RE.fullmatch(ref) or ".." in ref:
            raise ValueError(f"not a commit ref: {ref!r}")
        data = self._get(f"{_repo_path(repo)}/commits/{ref}")
        return CommitInfo(sha=_field(data, "sha", str), author_login=_login(data.get("author")),
                          committer_login=_login(data.get("committer")))

    def pulls_for_commit(self, repo: str, sha: str) -> list[PullRequest]:
        """The pull requests associated with `sha` (its head, or its merge commit once merged)."""
        path = f"{_repo_path(repo)}/commits/{_sha(sha)}/pulls"
        return [_pull(item) for item in self._paginate(path, {})]

    def get_pull(self, repo: str, number: int) -> PullRequest:
        """One pull request by number."""
        return _pull(self._get(f"{_repo_path(repo)}/pulls/{_positive(number)}"))

    def list_reviews(self, repo: str, number: int) -> list[Review]:
        """All reviews of a pull request, oldest first (follows pagination)."""
        path = f"{_repo_path(repo)}/pulls/{_positive(number)}/reviews"
        return [_review(item) for item in self._paginate(path, {})]

    # -- who may do what ----------------------------------------------------------------------

    def permission(self, repo: str, login: str) -> str:
        """`login`'s base permission on `repo` (admin, write, read, none); a 404 is "none"."""
        path = f"{_repo_path(repo)}/collaborators/{_login_part(login)}/permission"
        data = self._get_or_none(path)
        if data is None:
            return "none"
        permission = _field(data, "permission", str)
        if permission not in ("admin", "write", "read", "none"):
            raise GitHubError(f"unexpected response from GitHub: permission {permission!r}")
        return permission

    def is_team_member(self, org: str, team_slug: str, login: str) -> bool:
        """True only for an active membership of `org/team_slug`; pending or none (404) is False."""
        if not _SLUG_RE.fullmatch(team_slug):
            raise ValueError(f"not a team slug: {team_slug!r}")
        path = (f"/orgs/{_login_part(org)}/teams/{quote(team_slug, safe='')}"
                f"/memberships/{_login_part(login)}")
        data = self._get_or_none(path)
        return data is not None and _field(data, "state", str) == "active"

    def authenticated_login(self) -> str:
        """The login of the account this client's token belongs to."""
        return _field(self._get("/user"), "login", str)

    def is_own(self, comment: Comment) -> bool:
        """Whether ``comment`` was written by this client's account.

        A GitHub App's installation token may not read ``/user`` (403): then a comment is ours
        when its author is a bot account (``<app>[bot]``), which no person can post as.
        """
        if self._own_login is None:
            try:
                self._own_login = self.authenticated_login()
            except GitHubError as exc:
                if exc.status_code != 403:
                    raise
                self._own_login = ""
        if self._own_login:
            return comment.user_login.lower() == self._own_login.lower()
        return comment.user_login.endswith("[bot]")

    # -- commit statuses ----------------------------------------------------------------------

    def create_status(self, repo: str, sha: str, state: StatusState, context: str,
                      description: str = "", target_url: str | None = None) -> CommitStatus:
        """Set a commit status; `description` is cut to GitHub's 140-character limit."""
        if state not in _STATUS_STATES:
            raise ValueError(f"status state must be one of {sorted(_STATUS_STATES)}, not {state!r}")
        _sha(sha)
        payload: dict[str, Any] = {"state": state, "context": context,
                                   "description": _trim(scrub(description), MAX_STATUS_DESCRIPTION_CHARS)}
        if target_url:
            payload["target_url"] = target_url
        data = self._request("POST", f"{_repo_path(repo)}/statuses/{sha}", json=payload)
        return _status(data)

    # -- issues -------------------------------------------------------------------------------

    def create_issue(self, repo: str, title: str, body: str,
                     labels: Sequence[str] = ()) -> Issue:
        """Open an issue."""
        payload: dict[str, Any] = {"title": title, "body": body}
        if labels:
            payload["labels"] = list(labels)
        return _issue(self._request("POST", f"{_repo_path(repo)}/issues", json=payload))

    def update_issue(self, repo: str, number: int, body: str | None = None,
                     state: IssueState | None = None) -> Issue:
        """Change an issue's body and/or state (open, closed)."""
        payload: dict[str, Any] = {}
        if body is not None:
            payload["body"] = body
        if state is not None:
            if state not in ("open", "closed"):
                raise ValueError(f"issue state must be 'open' or 'closed', not {state!r}")
            payload["state"] = state
        return _issue(self._request("PATCH", f"{_repo_path(repo)}/issues/{_positive(number)}",
                                    json=payload))

    def find_open_issue(self, repo: str, marker_or_title: str,
                        labels: Sequence[str] = ()) -> Issue | None:
        """The first open issue (not pull request) whose body contains, or whose title equals,
        `marker_or_title`; only issues carrying all `labels` are listed."""
        params: dict[str, str] = {"state": "open"}
        if labels:
            params["labels"] = ",".join(labels)
        for item in self._paginate(f"{_repo_path(repo)}/issues", params):
            if not isinstance(item, Mapping) or "pull_request" in item:
                continue
            issue = _issue(item)
            if issue.title == marker_or_title or marker_or_title in issue.body:
                return issue
        return None

    # -- transport ----------------------------------------------------------------------------

    def _paginate(self, path: str, params: Mapping[str, str]) -> Iterator[Any]:
        url: str = path
        query: dict[str, str] | None = {**params, "per_page": str(PER_PAGE)}
        for _ in range(MAX_PAGES):
            response = self._send("GET", url, params=query)
            data = _json(response, "GET", path)
            if not isinstance(data, list):
                raise GitHubError(f"GET {path}: expected a JSON list from GitHub",
                                  status_code=response.status_code)
            yield from data
            next_url = _next_link(response.headers.get("link", ""))
            if next_url is None:
                return
            self._check_same_origin(next_url, path)
            url, query = next_url, None
        raise GitHubError(f"GET {path}: more than {MAX_PAGES} pages; stopped")

    def _check_same_origin(self, url: str, path: str) -> None:
        target = httpx.URL(url)
        base = self._client.base_url
        if target.is_absolute_url and (target.scheme, target.host, target.port) != (
                base.scheme, base.host, base.port):
            # Never send the token to another host because a Link header said so.
            raise GitHubError(f"GET {path}: pagination link points to another host")

    def _get(self, path: str) -> Any:
        return self._request("GET", path, json=None)

    def _get_or_none(self, path: str) -> Any:
        """GET `path`; None when GitHub answers 404 (an expected "no such grant")."""
        try:
            return self._get(path)
        except GitHubError as ex:
            if ex.status_code == 404 and not isinstance(ex, GitHubUnavailable):
                return None
            raise

    def _request(self, method: str, path: str, *, json: Any) -> Any:
        return _json(self._send(method, path, json=json), method, path)

    def _send(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
              json: Any = None) -> httpx.Response:
        what = f"{method} {httpx.URL(url).path}"
        if json is not None:  # every body GitHub gets (comments, statuses, issues) is scrubbed
            json = scrub_obj(json)
        try:
            response = self._client.request(method, url, params=params, json=json)
        except httpx.TimeoutException as ex:
            raise GitHubUnavailable(f"{what}: GitHub timed out ({type(ex).__name__})") from ex
        except httpx.TransportError as ex:
            raise GitHubUnavailable(f"{what}: could not reach GitHub ({type(ex).__name__})") from ex
        status = response.status_code
        if status < 400:
            return response
        message = _error_message(response)
        if status >= 500 or status == 429 or (
                status == 403 and response.headers.get("x-ratelimit-remaining") == "0"):
            raise GitHubUnavailable(f"{what}: GitHub answered {status}: {message}",
                                    status_code=status)
        raise GitHubError(f"{what}: GitHub answered {status}: {message}", status_code=status)


def _json(response: httpx.Response, method: str, path: str) -> Any:
    try:
        return response.json()
    except ValueError as ex:
        raise GitHubError(f"{method} {path}: GitHub answered {response.status_code} "
                          "with a body that is not JSON", status_code=response.status_code) from ex


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or "(no message)"
    if not isinstance(data, Mapping):
        return "(no message)"
    message = str(data.get("message") or response.reason_phrase or "(no message)")
    details = [str(e.get("message") or e.get("code") or "")
               for e in data.get("errors") or [] if isinstance(e, Mapping)]
    details = [d for d in details if d]
    return f"{message} ({'; '.join(details)})" if details else message


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        match = _LINK_NEXT_RE.search(part)
        if match:
            return match.group(1).strip()
    return None


def _repo_path(repo: str) -> str:
    if not _REPO_RE.fullmatch(repo):
        raise ValueError(f"repository must be 'owner/name', not {repo!r}")
    owner, name = repo.split("/")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _positive(number: int) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise ValueError(f"expected a positive integer, not {number!r}")
    return number


def _sha(sha: str) -> str:
    if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
        raise ValueError(f"not a commit sha: {sha!r}")
    return sha


def _login_part(login: str) -> str:
    if not isinstance(login, str) or not _LOGIN_RE.fullmatch(login):
        raise ValueError(f"not a GitHub login: {login!r}")
    return quote(login, safe="")


def _check_comment_body(body: str) -> None:
    if len(scrub(body)) > MAX_COMMENT_CHARS:
        raise GitHubError(f"comment body is {len(body)} characters; GitHub's maximum is "
                          f"{MAX_COMMENT_CHARS}")


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(data: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(data, Mapping):
        raise GitHubError("unexpected response from GitHub: not a JSON object")
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GitHubError(f"unexpected response from GitHub: field {key!r} missing or wrong type")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _login(user: Any) -> str | None:
    """The `login` of a user object; None for a null (or malformed) one."""
    login = user.get("login") if isinstance(user, Mapping) else None
    return login if isinstance(login, str) and login else None


def _timestamp(data: Mapping[str, Any], key: str) -> datetime | None:
    """GitHub's ISO-8601 timestamp (`2011-04-14T16:00:49Z`) as an aware UTC datetime."""
    value = data.get(key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise GitHubError(f"unexpected response from GitHub: {key!r} is not a timestamp")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise GitHubError("unexpected response from GitHub: not a JSON object")
    return data


def _comment(data: Any) -> Comment:
    data = _object(data)
    return Comment(
        id=_field(data, "id", int),
        body=_optional_str(data, "body"),
        html_url=_optional_str(data, "html_url"),
        user_login=_login(data.get("user")) or "",
        created_at=_timestamp(data, "created_at"),
        updated_at=_timestamp(data, "updated_at"),
    )


def _pull(data: Any) -> PullRequest:
    """A full pull request, or the `pull-request-simple` of the commit's pulls list (which has
    `merged_at` but no `merged`)."""
    data = _object(data)
    head = data.get("head")
    merged = data.get("merged")
    if not isinstance(merged, bool):
        merged = data.get("merged_at") is not None
    merge_sha = data.get("merge_commit_sha")
    return PullRequest(number=_field(data, "number", int),
                       author_login=_login(data.get("user")) or "",
                       head_sha=_field(head, "sha", str),
                       merge_commit_sha=merge_sha if isinstance(merge_sha, str) else None,
                       state=_field(data, "state", str), merged=merged,
                       html_url=_optional_str(data, "html_url"))


def _review(data: Any) -> Review:
    data = _object(data)
    return Review(id=_field(data, "id", int), user_login=_login(data.get("user")) or "",
                  state=_field(data, "state", str), body=_optional_str(data, "body"),
                  submitted_at=_timestamp(data, "submitted_at"),
                  commit_id=_optional_str(data, "commit_id"),
                  html_url=_optional_str(data, "html_url"))


def _status(data: Any) -> CommitStatus:
    state = _field(data, "state", str)
    if state not in _STATUS_STATES:
        raise GitHubError(f"unexpected response from GitHub: status state {state!r}")
    target = data.get("target_url")
    return CommitStatus(id=_field(data, "id", int), state=state,
                        context=_optional_str(data, "context"),
                        description=_optional_str(data, "description"),
                        target_url=target if isinstance(target, str) else None)


def _issue(data: Any) -> Issue:
    state = _field(data, "state", str)
    if state not in ("open", "closed"):
        raise GitHubError(f"unexpected response from GitHub: issue state {state!r}")
    labels = tuple(label["name"] if isinstance(label, Mapping) else str(label)
                   for label in data.get("labels") or []
                   if isinstance(label, str) or (isinstance(label, Mapping)
                                                 and isinstance(label.get("name"), str)))
    return Issue(number=_field(data, "number", int), title=_optional_str(data, "title"),
                 body=_optional_str(data, "body"), state=state, labels=labels,
                 html_url=_optional_str(data, "html_url"))


_IMPLEMENTS: type[CodeHost] = GitHubClient  # a type checker proves GitHubClient is a CodeHost
