"""A GitHub REST emulator for tests and the local sandbox.

It answers like GitHub for exactly the routes `gitops.github.GitHubClient` uses (see
`tests/contracts/github/README.md`):

    POST  /repos/{owner}/{repo}/issues/{issue_number}/comments
    GET   /repos/{owner}/{repo}/issues/{issue_number}/comments   (per_page/page, Link header)
    PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}
    POST  /repos/{owner}/{repo}/statuses/{sha}
    POST  /repos/{owner}/{repo}/issues
    PATCH /repos/{owner}/{repo}/issues/{issue_number}
    GET   /repos/{owner}/{repo}/issues                             (state, labels, per_page, page)

and, for operators and tests reading what a run reported (the client never lists statuses),

    GET   /repos/{owner}/{repo}/commits/{ref}/statuses             newest first, per_page/page

It records comments, statuses and issues per repository, answers 401 without the right token,
422 for a comment body over 65,536 characters (GitHub's own error text), and can be told to
answer 5xx to the next N requests (`fail_next`).

Run it alone: `python -m deployments.emulators.github --port 8765 --token test-token`.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.github import (
    MAX_COMMENT_CHARS,
    MAX_STATUS_DESCRIPTION_CHARS,
    Comment,
    CommitStatus,
    Issue,
)

_DOCS = "https://docs.github.com/rest"
_STATES = ("error", "failure", "pending", "success")


@dataclass
class _Repo:
    comments: dict[int, list[int]] = field(default_factory=dict)  # issue number -> comment ids
    statuses: dict[str, list[CommitStatus]] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received (method, path, query string); headers are not kept."""

    method: str
    path: str
    query: str = ""


class GitHubEmulator:
    """In-memory GitHub for the routes gitops-flows uses; `app` is the Starlette application."""

    def __init__(self, token: str = "test-token", *, login: str = "gitops-flows[bot]") -> None:
        """Accept `Authorization: Bearer <token>` (or `token <token>`); comments are by `login`."""
        if not token:
            raise ValueError("the emulator needs a token to check")
        self.token = token
        self.login = login
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._comments: dict[int, tuple[str, int, Comment]] = {}  # id -> (repo, issue, comment)
        self._next_comment_id = 1
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

    def statuses(self, repo: str, sha: str) -> list[CommitStatus]:
        """Statuses set on a commit, oldest first."""
        with self._lock:
            return list(self._repo(repo).statuses.get(sha.lower(), []))

    def issues(self, repo: str) -> list[Issue]:
        """Issues in a repository, by number."""
        with self._lock:
            found = self._repo(repo).issues
            return [found[n] for n in sorted(found)]

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

    # -- state changes (hold the lock) --------------------------------------------------------

    def _repo(self, repo: str) -> _Repo:
        return self._repos.setdefault(repo.lower(), _Repo())

    def _add_comment(self, repo: str, issue_number: int, body: str, login: str) -> Comment:
        comment_id = self._next_comment_id
        self._next_comment_id += 1
        comment = Comment(id=comment_id, body=body, user_login=login,
                          html_url=f"https://github.com/{repo}/issues/{issue_number}"
                                   f"#issuecomment-{comment_id}")
        self._comments[comment_id] = (repo, issue_number, comment)
        self._repo(repo).comments.setdefault(issue_number, []).append(comment_id)
        return comment

    # -- HTTP -----------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        base = "/repos/{owner}/{name}"
        return Starlette(routes=[
            Route(base + "/issues/comments/{comment_id:int}", self._update_comment,
                  methods=["PATCH"]),
            Route(base + "/issues/{number:int}/comments", self._comments_route,
                  methods=["GET", "POST"]),
            Route(base + "/issues/{number:int}", self._update_issue, methods=["PATCH"]),
            Route(base + "/issues", self._issues_route, methods=["GET", "POST"]),
            Route(base + "/statuses/{sha}", self._create_status, methods=["POST"]),
            Route(base + "/commits/{ref}/statuses", self._list_statuses, methods=["GET"]),
        ])

    def _gate(self, request: Request) -> Response | None:
        """Record the request, then apply fault injection and authentication."""
        with self._lock:
            self._requests.append(RecordedRequest(request.method, request.url.path,
                                                  request.url.query))
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            return JSONResponse({"message": "Server Error"}, status_code=fault)
        auth = request.headers.get("authorization")
        if not auth:
            return _error(401, "Requires authentication")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or value.strip() != self.token:
            return _error(401, "Bad credentials")
        return None

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            data = json.loads(await request.body())
        except ValueError:
            return _error(400, "Problems parsing JSON")
        if not isinstance(data, dict):
            return _error(400, "Body should be a JSON object")
        return data

    async def _comments_route(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
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
        if (invalid := _check_comment(data)) is not None:
            return invalid
        with self._lock:
            comment = self._add_comment(repo, number, data["body"], self.login)
            return JSONResponse(self._comment_json(comment, repo, number), status_code=201)

    async def _update_comment(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
        repo = _repo_name(request)
        comment_id: int = request.path_params["comment_id"]
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        with self._lock:
            found = self._comments.get(comment_id)
            if found is None or found[0].lower() != repo.lower():
                return _error(404, "Not Found")
        if (invalid := _check_comment(data)) is not None:
            return invalid
        with self._lock:
            owner_repo, number, old = self._comments[comment_id]
            comment = replace(old, body=data["body"])
            self._comments[comment_id] = (owner_repo, number, comment)
            return JSONResponse(self._comment_json(comment, owner_repo, number))

    async def _create_status(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
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

    async def _list_statuses(self, request: Request) -> Response:
        """GitHub's "list commit statuses for a reference": newest first, paginated."""
        if (refused := self._gate(request)) is not None:
            return refused
        repo, sha = _repo_name(request), request.path_params["ref"]
        found = self.statuses(repo, sha)
        return _page(request, [self._status_json(s, repo, sha) for s in reversed(found)])

    def _status_json(self, status: CommitStatus, repo: str, sha: str) -> dict[str, Any]:
        return {"id": status.id, "state": status.state, "context": status.context,
                "description": status.description, "target_url": status.target_url,
                "url": f"https://api.github.com/repos/{repo}/statuses/{sha}",
                "creator": {"login": self.login}}

    async def _issues_route(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
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
            number = 1 + max([0, *known.issues, *known.comments])
            issue = Issue(number=number, title=title, body=body, state="open",
                          labels=tuple(labels),
                          html_url=f"https://github.com/{repo}/issues/{number}")
            known.issues[number] = issue
        return JSONResponse(_issue_json(issue, repo), status_code=201)

    async def _update_issue(self, request: Request) -> Response:
        if (refused := self._gate(request)) is not None:
            return refused
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

    def _comment_json(self, comment: Comment, repo: str, number: int) -> dict[str, Any]:
        return {"id": comment.id, "node_id": f"IC_{comment.id}",
                "url": f"https://api.github.com/repos/{repo}/issues/comments/{comment.id}",
                "html_url": comment.html_url, "body": comment.body,
                "user": {"login": comment.user_login, "type": "Bot"},
                "issue_url": f"https://api.github.com/repos/{repo}/issues/{number}"}


def _repo_name(request: Request) -> str:
    return f"{request.path_params['owner']}/{request.path_params['name']}"


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": _DOCS}, status_code=status_code)


def _invalid(resource: str, field_name: str, message: str) -> JSONResponse:
    return JSONResponse({"message": "Validation Failed",
                         "errors": [{"resource": resource, "code": "custom", "field": field_name,
                                     "message": message}],
                         "documentation_url": _DOCS}, status_code=422)


def _check_comment(data: dict[str, Any]) -> JSONResponse | None:
    body = data.get("body")
    if not isinstance(body, str) or not body:
        return _invalid("IssueComment", "body", "body wasn't supplied")
    if len(body) > MAX_COMMENT_CHARS:
        return _invalid("IssueComment", "body",
                        f"body is too long (maximum is {MAX_COMMENT_CHARS} characters)")
    return None


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
