"""The GitHub webhook receiver: signature check, event parsing, routing to deployments.

A delivery goes through four steps, each refusing with a `WebhookError` carrying the status to
answer:

    size        body over the limit                          -> 413
    signature   X-Hub-Signature-256 missing or wrong          -> 401 (nothing else happens)
    parse       not JSON, wrong shape, missing headers        -> 400
    route       repository not on the allowlist               -> 403

What survives becomes a `Decision`: "run" a deployment (with parameters and an idempotency key so
that redeliveries and duplicate events start one run) or "ignore" it with a reason.

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
  deployed before deploys it again instead of finding the old run. `create_app`
wraps this in a Starlette app; starting the run is the `Launcher`'s job (the Prefect one lives
with the flows). Nothing here imports Prefect.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.errors import WebhookError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
WEBHOOK_PATH = "/webhooks/github"

PR_PLAN_DEPLOYMENT = "pr-plan/pr-plan"
PR_CLOSED_DEPLOYMENT = "pr-closed/pr-closed"
DEPLOY_MAIN_DEPLOYMENT = "deploy-main/deploy-main"

PR_TAG_PREFIX = "pr:"


def pr_tag(repository: str, pr_number: int) -> str:
    """The run tag shared by every pr-plan run of one pull request (newer runs supersede older)."""
    return f"{PR_TAG_PREFIX}{repository.lower()}#{pr_number}"


_PLAN_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
_SHA_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_EVENT_RE = re.compile(r"^[a-z_]{1,64}$")
_DELIVERY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ZERO_SHA = re.compile(r"^0+$")


# -- events ------------------------------------------------------------------------------------


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
class UnhandledEvent:
    """Any other event type; always ignored."""

    event: str
    repository: str | None


WebhookEvent = PullRequestEvent | PushEvent | PingEvent | IssueCommentEvent | UnhandledEvent


@dataclass(frozen=True)
class Decision:
    """What to do with a delivery: run a deployment, or ignore it (with the reason)."""

    decision: Literal["run", "ignore"]
    reason: str
    deployment: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    delivery_id: str = ""


class Launcher(Protocol):
    """Starts the run a "run" decision asks for."""

    def launch(self, decision: Decision) -> str:
        """Start (or find, by `decision.idempotency_key`) the run; return its id."""
        ...


# -- signature ---------------------------------------------------------------------------------


def signature_for(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Check `X-Hub-Signature-256` against the raw body; raise WebhookError(..., 401) if wrong."""
    if not secret:
        raise ValueError("webhook secret is empty")
    if header is None or not header.strip():
        raise WebhookError(f"missing {SIGNATURE_HEADER} header", 401)
    expected = signature_for(secret, body).encode("ascii")
    provided = header.strip()
    if not provided.startswith("sha256="):
        raise WebhookError(f"{SIGNATURE_HEADER} must start with 'sha256='", 401)
    candidate = ("sha256=" + provided[len("sha256="):].lower()).encode("utf-8", "replace")
    if not hmac.compare_digest(expected, candidate):
        raise WebhookError("signature does not match the body", 401)


# -- parsing -----------------------------------------------------------------------------------


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


# -- routing -----------------------------------------------------------------------------------


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

    if isinstance(event, IssueCommentEvent):
        where = "pull request" if event.on_pull_request else "issue"
        return ignore(f"comments ({where} #{event.issue_number}) do not start runs")

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


# -- the ASGI app ------------------------------------------------------------------------------


def create_app(*, secret: bytes, launcher: Launcher, allowlist: Iterable[str],
               max_body_bytes: int = 1_000_000, allow_forks: bool = False,
               default_branch_only: bool = True) -> Starlette:
    """The receiver: `POST /webhooks/github` and `GET /healthz`.

    Answers 202 with the run id ("run") or the reason ("ignore"), 200 to a ping, 401/400/403/413
    for refused deliveries, and 503 when the launcher fails (GitHub can redeliver).
    """
    if not secret:
        raise ValueError("the webhook secret is empty: refusing to accept unsigned deliveries")
    if isinstance(allowlist, str):
        raise TypeError("allowlist must be a collection of 'owner/name' strings, not one string")
    allowed = frozenset(name.strip().lower() for name in allowlist if name.strip())
    if not allowed:
        raise ValueError("the repository allowlist is empty: no delivery could ever be accepted")
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")

    async def receive(request: Request) -> Response:
        delivery = request.headers.get(DELIVERY_HEADER, "")
        try:
            body = await _read_body(request, max_body_bytes)
            verify_signature(secret, body, request.headers.get(SIGNATURE_HEADER))
            if not _DELIVERY_RE.fullmatch(delivery):
                raise WebhookError(f"missing or invalid {DELIVERY_HEADER} header", 400)
            event = parse_event(request.headers.get(EVENT_HEADER, ""), body)
            decision = route(event, delivery_id=delivery, allowlist=allowed,
                             default_branch_only=default_branch_only, allow_forks=allow_forks)
        except WebhookError as ex:
            log.info("refused delivery %s: %s (%d)", _safe(delivery), ex, ex.status_code)
            return JSONResponse({"error": str(ex)}, status_code=ex.status_code)
        if decision.decision == "ignore":
            log.info("ignored delivery %s: %s", _safe(delivery), decision.reason)
            status = 200 if isinstance(event, PingEvent) else 202
            return JSONResponse({"decision": "ignore", "reason": decision.reason},
                                status_code=status)
        try:
            run_id = await run_in_threadpool(launcher.launch, decision)
        except Exception:
            log.exception("could not start %s for delivery %s", decision.deployment,
                          _safe(delivery))
            return JSONResponse({"error": "could not start the run; try the delivery again"},
                                status_code=503)
        log.info("delivery %s started %s run %s", _safe(delivery), decision.deployment, run_id)
        return JSONResponse({"decision": "run", "reason": decision.reason,
                             "deployment": decision.deployment, "run_id": run_id,
                             "idempotency_key": decision.idempotency_key}, status_code=202)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route(WEBHOOK_PATH, receive, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])])


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise WebhookError("invalid Content-Length header", 400)
        if int(declared) > limit:
            raise WebhookError(f"body over {limit} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookError(f"body over {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _safe(value: str) -> str:
    return value if _DELIVERY_RE.fullmatch(value) else "(invalid delivery id)"
