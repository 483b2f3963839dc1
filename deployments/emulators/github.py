"""A GitHub REST emulator for tests and the local sandbox.

It answers like GitHub for exactly the routes `gitops.github.GitHubClient` uses (see
`tests/contracts/github/README.md` and `tests/contracts/github-rest/README.md`):

    POST  /repos/{owner}/{repo}/issues/{issue_number}/comments
    GET   /repos/{owner}/{repo}/issues/{issue_number}/comments   (per_page/page, Link header)
    GET   /repos/{owner}/{repo}/issues/comments/{comment_id}
    PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}      the comment's author only
    POST  /repos/{owner}/{repo}/statuses/{sha}
    POST  /repos/{owner}/{repo}/issues
    PATCH /repos/{owner}/{repo}/issues/{issue_number}
    GET   /repos/{owner}/{repo}/issues                             (state, labels, per_page, page)
    GET   /repos/{owner}/{repo}/commits/{commit_sha}/comments      (paginated)
    POST  /repos/{owner}/{repo}/commits/{commit_sha}/comments
    GET   /repos/{owner}/{repo}/commits/{commit_sha}/pulls         head or merge commit is the sha
    GET   /repos/{owner}/{repo}/commits/{ref}                      read from an attached git repo
    GET   /repos/{owner}/{repo}/pulls/{pull_number}
    GET   /repos/{owner}/{repo}/pulls/{pull_number}/reviews        (paginated)
    POST  /repos/{owner}/{repo}/pulls/{pull_number}/reviews  event APPROVE|REQUEST_CHANGES|COMMENT
    GET   /repos/{owner}/{repo}/collaborators/{username}/permission
    GET   /orgs/{org}/teams/{team_slug}/memberships/{username}
    GET   /user

and, for operators and tests reading what a run reported (the client never lists statuses),

    GET   /repos/{owner}/{repo}/commits/{ref}/statuses             newest first, per_page/page

Several users: the constructor's token is the bot's; `add_user` maps more tokens to logins (and
e-mails, which link commit authors to accounts). Comments record who posted them, with
`created_at`/`updated_at` from the emulator's clock. It answers 401 without a known token, 422 for
a comment body over 65,536 characters (GitHub's own error text), and can be told to answer 5xx to
the next N requests (`fail_next`).

Seeding, as methods or over the control API (bot token only; never recorded or faulted):

    POST /_emulator/users        {"login", "token", "email"?}
    POST /_emulator/permissions  {"repo", "login", "permission": admin|write|read|none}
    POST /_emulator/teams        {"org", "team_slug", "login", "state"?: active|pending}
    POST /_emulator/pulls        {"repo", "number", "author_login", "head_sha",
                                  "merge_commit_sha"?, "merged"?, "state"?}
    POST /_emulator/reviews      {"repo", "number", "login", "state", "body"?, "commit_id"?}
    POST /_emulator/git          {"repo", "git_dir"}

`EmulatorControl` is a typed client for it. Run it alone:
`python -m deployments.emulators.github --port 8765 --token test-token`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.codehost import Comment, CommitStatus, Issue, PullRequest, Review
from gitops.github import MAX_COMMENT_CHARS, MAX_STATUS_DESCRIPTION_CHARS

_DOCS = "https://docs.github.com/rest"
_STATES = ("error", "failure", "pending", "success")
_PERMISSIONS = ("admin", "write", "read", "none")
_REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")
_REVIEW_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED",
                  "COMMENT": "COMMENTED"}
_OWN_PULL_REFUSALS = {"APPROVED": "Can not approve your own pull request",
                      "CHANGES_REQUESTED": "Can not request changes on your own pull request"}
_GIT_FORMAT = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"

Handler = Callable[[Request, str], Awaitable[Response]]


@dataclass
class _Repo:
    comments: dict[int, list[int]] = field(default_factory=dict)  # issue number -> comment ids
    commit_comments: dict[str, list[int]] = field(default_factory=dict)  # sha -> comment ids
    statuses: dict[str, list[CommitStatus]] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    pulls: dict[int, PullRequest] = field(default_factory=dict)
    reviews: dict[int, list[Review]] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)  # login (lower) -> permission
    git_dir: Path | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received (method, path, query string); headers are not kept."""

    method: str
    path: str
    query: str = ""


class GitHubEmulator:
    """In-memory GitHub for the routes gitops-flows uses; `app` is the Starlette application."""

    def __init__(self, token: str = "test-token", *, login: str = "gitops-flows[bot]",
                 clock: Callable[[], datetime] | None = None) -> None:
        """Accept `Authorization: Bearer <token>` (or `token <token>`) as the bot `login`;
        `clock` (default: now, UTC) stamps comments and reviews."""
        if not token:
            raise ValueError("the emulator needs a token to check")
        self.token = token
        self.login = login
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._tokens: dict[str, str] = {token: login}  # token -> login
        self._emails: dict[str, str] = {}  # e-mail (lower) -> login
        self._teams: dict[tuple[str, str, str], str] = {}  # (org, slug, login) lower -> state
        self._comments: dict[int, tuple[str, int, Comment]] = {}  # id -> (repo, issue, comment)
        self._commit_comments: dict[int, tuple[str, str, Comment]] = {}  # id -> (repo, sha, c.)
        self._next_id = 1
        self._next_status_id = 1
        self._faults: list[int] = []
        self._requests: list[RecordedRequest] = []
        self.app = self._build_app()

    # -- accessors and controls for tests -----------------------------------------------------

    def comments(self, repo: str, issue_number: int) -> list[Comment]:
        """Comments on an issue/PR, oldest first."""
        with self._lock:
            ids = self._repo(repo).comments.get(issue_number, [])
            return [self._comments[i][2] for i in ids]

    def commit_comments(self, repo: str, sha: str) -> list[Comment]:
        """Comments on a commit, oldest first."""
        with self._lock:
            ids = self._repo(repo).commit_comments.get(sha.lower(), [])
            return [self._commit_comments[i][2] for i in ids]

    def statuses(self, repo: str, sha: str) -> list[CommitStatus]:
        """Statuses set on a commit, oldest first."""
        with self._lock:
            return list(self._repo(repo).statuses.get(sha.lower(), []))

    def issues(self, repo: str) -> list[Issue]:
        """Issues in a repository, by number."""
        with self._lock:
            found = self._repo(repo).issues
            return [found[n] for n in sorted(found)]

    def reviews(self, repo: str, number: int) -> list[Review]:
        """Reviews of a pull request, oldest first."""
        with self._lock:
            return list(self._repo(repo).reviews.get(number, []))

    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (including refused ones)."""
        with self._lock:
            return list(self._requests)

    def seed_comment(self, repo: str, issue_number: int, body: str,
                     login: str = "someone-else") -> Comment:
        """Add a comment as if another user had written it."""
        with self._lock:
            return self._add_comment(repo, issue_number, body, login)

    def fail_next(self, count: int, status_code: int = 502) -> None:
        """Answer the next `count` requests with `status_code` (a 5xx) before doing anything."""
        if not 500 <= status_code <= 599:
            raise ValueError("fault injection answers 5xx only")
        with self._lock:
            self._faults.extend([status_code] * count)

    def add_user(self, login: str, token: str, email: str | None = None) -> None:
        """A user whose requests carry `token`; commits by `email` are linked to `login`."""
        if not login or not token:
            raise ValueError("a user needs a login and a token")
        with self._lock:
            if self._tokens.get(token, login) != login:
                raise ValueError("that token belongs to another user")
            if email and self._emails.get(email.lower(), login) != login:
                raise ValueError("that e-mail belongs to another user")
            self._tokens[token] = login
            if email:
                self._emails[email.lower()] = login

    def set_permission(self, repo: str, login: str, permission: str) -> None:
        """`login`'s base permission on `repo` (admin, write, read, none; the default is none)."""
        if permission not in _PERMISSIONS:
            raise ValueError(f"permission must be one of {_PERMISSIONS}, not {permission!r}")
        with self._lock:
            self._repo(repo).permissions[login.lower()] = permission

    def add_team_member(self, org: str, team_slug: str, login: str,
                        state: str = "active") -> None:
        """Make `login` a member of `org/team_slug` (state active, or pending: invited)."""
        if state not in ("active", "pending"):
            raise ValueError(f"membership state must be active or pending, not {state!r}")
        with self._lock:
            self._teams[(org.lower(), team_slug.lower(), login.lower())] = state

    def add_pull(self, repo: str, number: int, author_login: str, head_sha: str,
                 merge_commit_sha: str | None = None, merged: bool = False,
                 state: str | None = None) -> PullRequest:
        """Add (or replace) pull request `number`; state defaults to closed if merged, else open."""
        state = state or ("closed" if merged else "open")
        if state not in ("open", "closed") or (merged and state != "closed"):
            raise ValueError(f"a pull request is open or closed (closed if merged), not {state!r}")
        if number <= 0 or not author_login or not head_sha:
            raise ValueError("a pull request needs a positive number, an author and a head sha")
        pull = PullRequest(number=number, author_login=author_login, head_sha=head_sha.lower(),
                           merge_commit_sha=merge_commit_sha.lower() if merge_commit_sha else None,
                           state=state, merged=merged,
                           html_url=f"https://github.com/{repo}/pull/{number}")
        with self._lock:
            self._repo(repo).pulls[number] = pull
        return pull

    def add_review(self, repo: str, number: int, login: str, state: str, body: str = "",
                   commit_id: str | None = None) -> Review:
        """Record a review of pull request `number` by `login` (commit_id: the PR's head)."""
        if state not in _REVIEW_STATES:
            raise ValueError(f"review state must be one of {_REVIEW_STATES}, not {state!r}")
        with self._lock:
            pull = self._repo(repo).pulls.get(number)
            if pull is None:
                raise ValueError(f"no pull request {repo}#{number}")
            return self._add_review(repo, pull, login, state, body, commit_id)

    def attach_git(self, repo: str, git_dir: str | os.PathLike[str]) -> None:
        """Answer `GET /repos/{repo}/commits/{ref}` from the git repository at `git_dir`."""
        path = Path(git_dir)
        if not path.exists():
            raise ValueError(f"no git repository at {path}")
        with self._lock:
            self._repo(repo).git_dir = path

    # -- state changes (hold the lock) --------------------------------------------------------

    def _repo(self, repo: str) -> _Repo:
        return self._repos.setdefault(repo.lower(), _Repo())

    def _new_id(self) -> int:
        new_id = self._next_id
        self._next_id += 1
        return new_id

    def _new_comment(self, body: str, login: str, page_url: str, anchor: str) -> Comment:
        """A comment by `login`, stamped now, linked as `<page_url>#<anchor>-<id>`."""
        comment_id, now = self._new_id(), self._clock()
        return Comment(id=comment_id, body=body, user_login=login, created_at=now,
                       updated_at=now, html_url=f"{page_url}#{anchor}-{comment_id}")

    def _add_comment(self, repo: str, issue_number: int, body: str, login: str) -> Comment:
        comment = self._new_comment(body, login, f"https://github.com/{repo}/issues/{issue_number}",
                                    "issuecomment")
        self._comments[comment.id] = (repo, issue_number, comment)
        self._repo(repo).comments.setdefault(issue_number, []).append(comment.id)
        return comment

    def _add_commit_comment(self, repo: str, sha: str, body: str, login: str) -> Comment:
        comment = self._new_comment(body, login, f"https://github.com/{repo}/commit/{sha}",
                                    "commitcomment")
        self._commit_comments[comment.id] = (repo, sha, comment)
        self._repo(repo).commit_comments.setdefault(sha, []).append(comment.id)
        return comment

    def _add_review(self, repo: str, pull: PullRequest, login: str, state: str, body: str,
                    commit_id: str | None) -> Review:
        review_id = self._new_id()
        review = Review(id=review_id, user_login=login, state=state, body=body,
                        submitted_at=None if state == "PENDING" else self._clock(),
                        commit_id=(commit_id or pull.head_sha).lower(),
                        html_url=f"{pull.html_url}#pullrequestreview-{review_id}")
        self._repo(repo).reviews.setdefault(pull.number, []).append(review)
        return review

    # -- HTTP -----------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        base = "/repos/{owner}/{name}"
        api = self._api
        control = self._control
        return Starlette(routes=[
            Route(base + "/issues/comments/{comment_id:int}", api(self._comment_route),
                  methods=["GET", "PATCH"]),
            Route(base + "/issues/{number:int}/comments", api(self._comments_route),
                  methods=["GET", "POST"]),
            Route(base + "/issues/{number:int}", api(self._update_issue), methods=["PATCH"]),
            Route(base + "/issues", api(self._issues_route), methods=["GET", "POST"]),
            Route(base + "/statuses/{sha}", api(self._create_status), methods=["POST"]),
            Route(base + "/commits/{ref}/statuses", api(self._list_statuses), methods=["GET"]),
            Route(base + "/commits/{sha}/comments", api(self._commit_comments_route),
                  methods=["GET", "POST"]),
            Route(base + "/commits/{sha}/pulls", api(self._pulls_for_commit), methods=["GET"]),
            Route(base + "/commits/{ref:path}", api(self._get_commit), methods=["GET"]),
            Route(base + "/pulls/{number:int}", api(self._get_pull), methods=["GET"]),
            Route(base + "/pulls/{number:int}/reviews", api(self._reviews_route),
                  methods=["GET", "POST"]),
            Route(base + "/collaborators/{username}/permission", api(self._permission),
                  methods=["GET"]),
            Route("/orgs/{org}/teams/{team_slug}/memberships/{username}",
                  api(self._team_membership), methods=["GET"]),
            Route("/user", api(self._user), methods=["GET"]),
            Route("/_emulator/users", control(lambda b: self.add_user(
                _text(b, "login"), _text(b, "token"), b.get("email"))), methods=["POST"]),
            Route("/_emulator/permissions", control(lambda b: self.set_permission(
                _text(b, "repo"), _text(b, "login"), _text(b, "permission"))), methods=["POST"]),
            Route("/_emulator/teams", control(lambda b: self.add_team_member(
                _text(b, "org"), _text(b, "team_slug"), _text(b, "login"),
                b.get("state", "active"))), methods=["POST"]),
            Route("/_emulator/pulls", control(self._seed_pull), methods=["POST"]),
            Route("/_emulator/reviews", control(self._seed_review), methods=["POST"]),
            Route("/_emulator/git", control(lambda b: self.attach_git(
                _text(b, "repo"), _text(b, "git_dir"))), methods=["POST"]),
        ])

    def _seed_pull(self, data: Mapping[str, Any]) -> dict[str, Any]:
        repo = _text(data, "repo")
        pull = self.add_pull(repo, int(data["number"]), _text(data, "author_login"),
                             _text(data, "head_sha"), data.get("merge_commit_sha"),
                             bool(data.get("merged", False)), data.get("state"))
        return self._pull_json(repo, pull)

    def _seed_review(self, data: Mapping[str, Any]) -> dict[str, Any]:
        repo, number = _text(data, "repo"), int(data["number"])
        review = self.add_review(repo, number, _text(data, "login"), _text(data, "state"),
                                 str(data.get("body", "")), data.get("commit_id"))
        return self._review_json(review, repo, number)

    def _authenticated(self, request: Request) -> str | Response:
        """The login of the request's token, or GitHub's 401."""
        auth = request.headers.get("authorization")
        if not auth:
            return _error(401, "Requires authentication")
        scheme, _, value = auth.partition(" ")
        login = self._tokens.get(value.strip()) if scheme.lower() in ("bearer", "token") else None
        return login if login is not None else _error(401, "Bad credentials")

    def _api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Record the request, apply fault injection and authentication, then call `handler`
        with the caller's login."""
        async def endpoint(request: Request) -> Response:
            with self._lock:
                self._requests.append(RecordedRequest(request.method, request.url.path,
                                                      request.url.query))
                fault = self._faults.pop(0) if self._faults else None
            if fault is not None:
                return JSONResponse({"message": "Server Error"}, status_code=fault)
            login = self._authenticated(request)
            if isinstance(login, Response):
                return login
            return await handler(request, login)
        return endpoint

    def _control(self, change: Callable[[dict[str, Any]], Any]
                 ) -> Callable[[Request], Awaitable[Response]]:
        """A control route: bot token only, a JSON object in, 201 with what was made (or {})."""
        async def endpoint(request: Request) -> Response:
            login = self._authenticated(request)
            if isinstance(login, Response):
                return login
            if login != self.login:
                return _error(403, "the control API takes the bot's token")
            data = await self._body(request)
            if isinstance(data, Response):
                return data
            try:
                made = change(data)
            except (KeyError, TypeError, ValueError) as ex:
                return _error(400, f"bad control request: {ex}")
            return JSONResponse(made if made is not None else {}, status_code=201)
        return endpoint

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            data = json.loads(await request.body())
        except ValueError:
            return _error(400, "Problems parsing JSON")
        if not isinstance(data, dict):
            return _error(400, "Body should be a JSON object")
        return data

    # -- issue and PR comments

    async def _comments_route(self, request: Request, login: str) -> Response:
        repo = _repo_name(request)
        number: int = request.path_params["number"]
        if request.method == "GET":
            with self._lock:
                ids = list(self._repo(repo).comments.get(number, []))
                items = [self._comment_json(self._comments[i][2], repo, number) for i in ids]
            return _page(request, items)
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        if (invalid := _check_comment(data, "IssueComment")) is not None:
            return invalid
        with self._lock:
            comment = self._add_comment(repo, number, data["body"], login)
            return JSONResponse(self._comment_json(comment, repo, number), status_code=201)

    async def _comment_route(self, request: Request, login: str) -> Response:
        repo = _repo_name(request)
        comment_id: int = request.path_params["comment_id"]
        with self._lock:
            found = self._comments.get(comment_id)
        if found is None or found[0].lower() != repo.lower():
            return _error(404, "Not Found")
        owner_repo, number, old = found
        if request.method == "GET":
            return JSONResponse(self._comment_json(old, owner_repo, number))
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        if old.user_login.lower() != login.lower():
            return _error(403, "Forbidden")
        if (invalid := _check_comment(data, "IssueComment")) is not None:
            return invalid
        with self._lock:
            comment = replace(old, body=data["body"], updated_at=self._clock())
            self._comments[comment_id] = (owner_repo, number, comment)
        return JSONResponse(self._comment_json(comment, owner_repo, number))

    def _comment_json(self, comment: Comment, repo: str, number: int) -> dict[str, Any]:
        return {**_comment_fields(comment),
                "url": f"https://api.github.com/repos/{repo}/issues/comments/{comment.id}",
                "issue_url": f"https://api.github.com/repos/{repo}/issues/{number}"}

    # -- commit comments, commits, pulls, reviews

    async def _commit_comments_route(self, request: Request, login: str) -> Response:
        repo, sha = _repo_name(request), request.path_params["sha"].lower()
        if request.method == "GET":
            return _page(request, [self._commit_comment_json(c, repo, sha)
                                   for c in self.commit_comments(repo, sha)])
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        if (invalid := _check_comment(data, "CommitComment")) is not None:
            return invalid
        with self._lock:
            comment = self._add_commit_comment(repo, sha, data["body"], login)
        return JSONResponse(self._commit_comment_json(comment, repo, sha), status_code=201)

    def _commit_comment_json(self, comment: Comment, repo: str, sha: str) -> dict[str, Any]:
        return {**_comment_fields(comment), "commit_id": sha, "path": None, "position": None,
                "line": None,
                "url": f"https://api.github.com/repos/{repo}/comments/{comment.id}"}

    async def _get_commit(self, request: Request, login: str) -> Response:
        repo, ref = _repo_name(request), request.path_params["ref"]
        with self._lock:
            git_dir = self._repo(repo).git_dir
        if git_dir is None:
            return _error(404, "Not Found")
        found = None if ref.startswith("-") else _git_commit(git_dir, ref)
        if found is None:
            return _invalid_simple(f"No commit found for SHA: {ref}")
        sha, parents, authored, committed, message = found
        with self._lock:
            author = self._emails.get(authored["email"].lower())
            committer = self._emails.get(committed["email"].lower())
        return JSONResponse({
            "sha": sha, "node_id": f"C_{sha}",
            "url": f"https://api.github.com/repos/{repo}/commits/{sha}",
            "html_url": f"https://github.com/{repo}/commit/{sha}",
            "commit": {"author": authored, "committer": committed, "message": message},
            "author": _user_json(author) if author else None,
            "committer": _user_json(committer) if committer else None,
            "parents": [{"sha": p, "url": f"https://api.github.com/repos/{repo}/commits/{p}"}
                        for p in parents]})

    async def _pulls_for_commit(self, request: Request, login: str) -> Response:
        repo, sha = _repo_name(request), request.path_params["sha"].lower()
        with self._lock:
            pulls = [p for _, p in sorted(self._repo(repo).pulls.items())
                     if sha in (p.head_sha, p.merge_commit_sha)]
        return _page(request, [self._pull_json(repo, p, full=False) for p in pulls])

    async def _get_pull(self, request: Request, login: str) -> Response:
        repo = _repo_name(request)
        with self._lock:
            pull = self._repo(repo).pulls.get(request.path_params["number"])
        if pull is None:
            return _error(404, "Not Found")
        return JSONResponse(self._pull_json(repo, pull))

    def _pull_json(self, repo: str, pull: PullRequest, full: bool = True) -> dict[str, Any]:
        """A `pull-request` (full) or the `pull-request-simple` of list routes (no `merged`)."""
        data: dict[str, Any] = {
            "url": f"https://api.github.com/repos/{repo}/pulls/{pull.number}",
            "id": pull.number, "number": pull.number, "state": pull.state,
            "html_url": pull.html_url, "user": _user_json(pull.author_login),
            "head": {"sha": pull.head_sha, "ref": f"pr-{pull.number}"},
            "base": {"ref": "main"}, "merge_commit_sha": pull.merge_commit_sha,
            "merged_at": _iso(self._clock()) if pull.merged else None}
        if full:
            data["merged"] = pull.merged
        return data

    async def _reviews_route(self, request: Request, login: str) -> Response:
        repo, number = _repo_name(request), request.path_params["number"]
        with self._lock:
            pull = self._repo(repo).pulls.get(number)
        if pull is None:
            return _error(404, "Not Found")
        if request.method == "GET":
            return _page(request, [self._review_json(r, repo, number)
                                   for r in self.reviews(repo, number)])
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        event, body, commit_id = data.get("event"), data.get("body") or "", data.get("commit_id")
        if event is not None and event not in _REVIEW_EVENTS:
            return _invalid("PullRequestReview", "event", "event is not included in the list")
        if not isinstance(body, str) or not (commit_id is None or isinstance(commit_id, str)):
            return _invalid("PullRequestReview", "body", "body or commit_id is not a string")
        state = _REVIEW_EVENTS[event] if event else "PENDING"
        if state in ("CHANGES_REQUESTED", "COMMENTED") and not body:
            return _invalid("PullRequestReview", "body", f"body is required for {event}")
        if pull.author_login.lower() == login.lower() and state in _OWN_PULL_REFUSALS:
            return _invalid_simple(_OWN_PULL_REFUSALS[state])
        with self._lock:
            review = self._add_review(repo, pull, login, state, body, commit_id)
        return JSONResponse(self._review_json(review, repo, number))

    def _review_json(self, review: Review, repo: str, number: int) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": review.id, "node_id": f"PRR_{review.id}", "user": _user_json(review.user_login),
            "body": review.body, "state": review.state, "html_url": review.html_url,
            "pull_request_url": f"https://api.github.com/repos/{repo}/pulls/{number}",
            "commit_id": review.commit_id, "author_association": "NONE"}
        if review.submitted_at is not None:
            data["submitted_at"] = _iso(review.submitted_at)
        return data

    # -- accounts, permissions, teams

    async def _permission(self, request: Request, login: str) -> Response:
        repo, username = _repo_name(request), request.path_params["username"]
        with self._lock:
            granted = self._repo(repo).permissions.get(username.lower())
            known = granted is not None or username.lower() in {
                user.lower() for user in self._tokens.values()}
        if not known:
            return _error(404, "Not Found")
        permission = granted or "none"
        return JSONResponse({"permission": permission, "role_name": permission,
                             "user": _user_json(username)})

    async def _team_membership(self, request: Request, login: str) -> Response:
        org, slug, username = (request.path_params[k] for k in ("org", "team_slug", "username"))
        with self._lock:
            state = self._teams.get((org.lower(), slug.lower(), username.lower()))
        if state is None:
            return _error(404, "Not Found")
        return JSONResponse({"url": f"https://api.github.com/organizations/{org}/team/{slug}"
                                    f"/memberships/{username}",
                             "role": "member", "state": state})

    async def _user(self, request: Request, login: str) -> Response:
        return JSONResponse(_user_json(login))

    # -- statuses and issues

    async def _create_status(self, request: Request, login: str) -> Response:
        repo = _repo_name(request)
        sha: str = request.path_params["sha"]
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        state = data.get("state")
        if state not in _STATES:
            return _invalid("Status", "state", "state is not included in the list")
        description = data.get("description") or ""
        if not isinstance(description, str) or len(description) > MAX_STATUS_DESCRIPTION_CHARS:
            return _invalid("Status", "description",
                            f"description is too long (maximum is "
                            f"{MAX_STATUS_DESCRIPTION_CHARS} characters)")
        context = data.get("context") or "default"
        target_url = data.get("target_url")
        if not isinstance(context, str) or not (target_url is None or isinstance(target_url, str)):
            return _invalid("Status", "context", "context or target_url is not a string")
        with self._lock:
            status = CommitStatus(id=self._next_status_id, state=state, context=context,
                                  description=description, target_url=target_url)
            self._next_status_id += 1
            self._repo(repo).statuses.setdefault(sha.lower(), []).append(status)
        return JSONResponse(self._status_json(status, repo, sha), status_code=201)

    async def _list_statuses(self, request: Request, login: str) -> Response:
        """GitHub's "list commit statuses for a reference": newest first, paginated."""
        repo, sha = _repo_name(request), request.path_params["ref"]
        found = self.statuses(repo, sha)
        return _page(request, [self._status_json(s, repo, sha) for s in reversed(found)])

    def _status_json(self, status: CommitStatus, repo: str, sha: str) -> dict[str, Any]:
        return {"id": status.id, "state": status.state, "context": status.context,
                "description": status.description, "target_url": status.target_url,
                "url": f"https://api.github.com/repos/{repo}/statuses/{sha}",
                "creator": _user_json(self.login)}

    async def _issues_route(self, request: Request, login: str) -> Response:
        repo = _repo_name(request)
        if request.method == "GET":
            state = request.query_params.get("state", "open")
            wanted = {label for label in request.query_params.get("labels", "").split(",")
                      if label}
            with self._lock:
                found = self._repo(repo).issues
                items = [_issue_json(found[n], repo) for n in sorted(found, reverse=True)
                         if state in ("all", found[n].state)
                         and wanted <= set(found[n].labels)]
            return _page(request, items)
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        title, body, labels = data.get("title"), data.get("body") or "", data.get("labels") or []
        if not isinstance(title, str) or not title:
            return _invalid("Issue", "title", "title wasn't supplied")
        if not isinstance(body, str) or not isinstance(labels, list) or not all(
                isinstance(label, str) for label in labels):
            return _invalid("Issue", "body", "body or labels have the wrong type")
        with self._lock:
            known = self._repo(repo)
            number = 1 + max([0, *known.issues, *known.comments, *known.pulls])
            issue = Issue(number=number, title=title, body=body, state="open",
                          labels=tuple(labels),
                          html_url=f"https://github.com/{repo}/issues/{number}")
            known.issues[number] = issue
        return JSONResponse(_issue_json(issue, repo), status_code=201)

    async def _update_issue(self, request: Request, login: str) -> Response:
        repo = _repo_name(request)
        number: int = request.path_params["number"]
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        with self._lock:
            issue = self._repo(repo).issues.get(number)
        if issue is None:
            return _error(404, "Not Found")
        changes: dict[str, Any] = {}
        if "body" in data:
            if not isinstance(data["body"], str):
                return _invalid("Issue", "body", "body is not a string")
            changes["body"] = data["body"]
        if "state" in data:
            if data["state"] not in ("open", "closed"):
                return _invalid("Issue", "state", "state is not included in the list")
            changes["state"] = data["state"]
        with self._lock:
            updated = replace(self._repo(repo).issues[number], **changes)
            self._repo(repo).issues[number] = updated
        return JSONResponse(_issue_json(updated, repo))

def _repo_name(request: Request) -> str:
    return f"{request.path_params['owner']}/{request.path_params['name']}"


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": _DOCS}, status_code=status_code)


def _invalid(resource: str, field_name: str, message: str) -> JSONResponse:
    return JSONResponse({"message": "Validation Failed",
                         "errors": [{"resource": resource, "code": "custom", "field": field_name,
                                     "message": message}],
                         "documentation_url": _DOCS}, status_code=422)


def _invalid_simple(message: str) -> JSONResponse:
    """GitHub's 422 whose `errors` are plain strings (or absent), e.g. a refused review."""
    return JSONResponse({"message": message if message.startswith("No commit") else
                         "Unprocessable Entity",
                         **({} if message.startswith("No commit") else {"errors": [message]}),
                         "documentation_url": _DOCS}, status_code=422)


def _check_comment(data: dict[str, Any], resource: str) -> JSONResponse | None:
    body = data.get("body")
    if not isinstance(body, str) or not body:
        return _invalid(resource, "body", "body wasn't supplied")
    if len(body) > MAX_COMMENT_CHARS:
        return _invalid(resource, "body",
                        f"body is too long (maximum is {MAX_COMMENT_CHARS} characters)")
    return None


def _iso(moment: datetime) -> str:
    """GitHub's timestamp format: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_json(login: str) -> dict[str, Any]:
    return {"login": login, "type": "Bot" if login.endswith("[bot]") else "User",
            "url": f"https://api.github.com/users/{login}",
            "html_url": f"https://github.com/{login}"}


def _comment_fields(comment: Comment) -> dict[str, Any]:
    """What issue and commit comments share."""
    assert comment.created_at is not None and comment.updated_at is not None
    return {"id": comment.id, "node_id": f"IC_{comment.id}", "html_url": comment.html_url,
            "body": comment.body, "user": _user_json(comment.user_login),
            "created_at": _iso(comment.created_at), "updated_at": _iso(comment.updated_at),
            "author_association": "NONE"}


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def _git_commit(git_dir: Path, ref: str) -> tuple[str, list[str], dict[str, str],
                                                 dict[str, str], str] | None:
    """(sha, parents, author, committer, message) of `ref` in `git_dir`; None if there is none."""
    try:
        result = subprocess.run(
            ["git", "-C", str(git_dir), "log", "-1", f"--format={_GIT_FORMAT}",
             "--end-of-options", ref, "--"],
            capture_output=True, text=True, timeout=10, check=False,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = result.stdout.split("\x00")
    if result.returncode != 0 or len(fields) != 9:
        return None
    sha, parents, a_name, a_email, a_date, c_name, c_email, c_date, message = fields

    def person(name: str, email: str, date: str) -> dict[str, str]:
        return {"name": name, "email": email, "date": _iso(datetime.fromisoformat(date))}

    return (sha, parents.split(), person(a_name, a_email, a_date),
            person(c_name, c_email, c_date), message.rstrip("\n"))


def _issue_json(issue: Issue, repo: str) -> dict[str, Any]:
    return {"number": issue.number, "title": issue.title, "body": issue.body,
            "state": issue.state, "labels": [{"name": label} for label in issue.labels],
            "html_url": issue.html_url,
            "url": f"https://api.github.com/repos/{repo}/issues/{issue.number}"}


def _page(request: Request, items: list[dict[str, Any]]) -> Response:
    """One page of `items`, with GitHub's `Link` header (first/prev/next/last)."""
    try:
        per_page = min(max(int(request.query_params.get("per_page", "30")), 1), 100)
        page = max(int(request.query_params.get("page", "1")), 1)
    except ValueError:
        return _error(400, "Invalid pagination parameters")
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page: page * per_page]
    links = []

    def link(to: int, rel: str) -> str:
        query = {**request.query_params, "per_page": str(per_page), "page": str(to)}
        return f'<{request.url.replace(query=urlencode(query))}>; rel="{rel}"'

    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    headers = {"Link": ", ".join(links)} if links else {}
    return JSONResponse(chunk, headers=headers)


class EmulatorControl(httpx.Client):
    """A typed client for the emulator's `/_emulator/` control API (the bot's token)."""

    def __init__(self, base_url: str, token: str, **kwargs: Any) -> None:
        super().__init__(base_url=base_url.rstrip("/"),
                         headers={"Authorization": f"Bearer {token}"}, **kwargs)

    def _seed(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.post(f"/_emulator/{path}",
                             json={k: v for k, v in body.items() if v is not None})
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def add_user(self, login: str, token: str, email: str | None = None) -> None:
        """See `GitHubEmulator.add_user`."""
        self._seed("users", {"login": login, "token": token, "email": email})

    def set_permission(self, repo: str, login: str, permission: str) -> None:
        """See `GitHubEmulator.set_permission`."""
        self._seed("permissions", {"repo": repo, "login": login, "permission": permission})

    def add_team_member(self, org: str, team_slug: str, login: str,
                        state: str = "active") -> None:
        """See `GitHubEmulator.add_team_member`."""
        self._seed("teams", {"org": org, "team_slug": team_slug, "login": login,
                             "state": state})

    def add_pull(self, repo: str, number: int, author_login: str, head_sha: str,
                 merge_commit_sha: str | None = None, merged: bool = False,
                 state: str | None = None) -> dict[str, Any]:
        """See `GitHubEmulator.add_pull`; returns the pull request as GitHub shows it."""
        return self._seed("pulls", {"repo": repo, "number": number,
                                    "author_login": author_login, "head_sha": head_sha,
                                    "merge_commit_sha": merge_commit_sha, "merged": merged,
                                    "state": state})

    def add_review(self, repo: str, number: int, login: str, state: str, body: str = "",
                   commit_id: str | None = None) -> dict[str, Any]:
        """See `GitHubEmulator.add_review`; returns the review as GitHub shows it."""
        return self._seed("reviews", {"repo": repo, "number": number, "login": login,
                                      "state": state, "body": body, "commit_id": commit_id})

    def attach_git(self, repo: str, git_dir: str | os.PathLike[str]) -> None:
        """See `GitHubEmulator.attach_git` (a path on the emulator's machine)."""
        self._seed("git", {"repo": repo, "git_dir": os.fspath(git_dir)})


def main(argv: Sequence[str] | None = None) -> None:
    """Run the emulator on 127.0.0.1 until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(description="GitHub REST emulator (loopback only)")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost"])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=os.environ.get("GITHUB_EMULATOR_TOKEN", "test-token"),
                        help="default: $GITHUB_EMULATOR_TOKEN (keeps it off the command line)")
    args = parser.parse_args(argv)
    emulator = GitHubEmulator(token=args.token)
    uvicorn.run(emulator.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
