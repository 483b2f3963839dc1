"""The GitHub webhook receiver as a process: the Prefect launcher, its secret, its allowlist.

    gitops-flows webhook serve [--host 127.0.0.1] [--port 8080]
    gitops-flows webhook route --event pull_request [--delivery ID] payload.json   (dry run)

`gitops.receiver` decides what a delivery starts; here a "run" decision becomes a flow run of the
Prefect deployment it names (``run_deployment(..., timeout=0, idempotency_key=...)``), so a
redelivered or duplicated event starts one run. Prefect Cloud has incoming webhooks of its own; a
self-hosted Prefect server needs this receiver in front of it. A "wake" decision (a `/gitops
approve|reject <env>` comment) resumes the runs paused for that environment's approval with
``check_github=True`` and nothing else: the run verifies the approvals on GitHub itself.

In front of the app sits `UnverifiedBodyGuard`: it reads each delivery's body against a total
deadline (408 for a client that stalls or trickles), refuses a body over the size limit while it
streams in (413), and holds at most a fixed number of unverified bodies at once: beyond it, a
delivery is answered 503 with ``Retry-After`` before any of its body is read.

Configuration:
    webhook secret   Prefect Secret block ``GITOPS_WEBHOOK_SECRET_BLOCK`` (default
                     ``gitops-webhook-secret``), else env ``GITHUB_WEBHOOK_SECRET``; neither:
                     the server refuses to start (it never accepts unsigned deliveries)
    allowlist        ``GITOPS_REPOSITORIES`` (comma-separated ``owner/name``), else
                     ``GITOPS_REPOSITORY``; neither: refuses to start
    body deadline    ``GITOPS_WEBHOOK_BODY_TIMEOUT_SECONDS`` (default 10)
    unverified cap   ``GITOPS_WEBHOOK_MAX_UNVERIFIED`` (default 64)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.errors import ConfigError, WebhookError
from gitops.settings import GitopsSettings, load_settings
from gitops.receiver import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_PATH,
    Decision,
    Launcher,
    create_app,
    parse_event,
    pr_tag,
    route,
    verify_signature,
)

log = logging.getLogger(__name__)

SECRET_ENV = "GITHUB_WEBHOOK_SECRET"
ALLOWLIST_ENV = "GITOPS_REPOSITORIES"
REPOSITORY_ENV = "GITOPS_REPOSITORY"
BODY_TIMEOUT_ENV = "GITOPS_WEBHOOK_BODY_TIMEOUT_SECONDS"
MAX_UNVERIFIED_ENV = "GITOPS_WEBHOOK_MAX_UNVERIFIED"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_MAX_UNVERIFIED = 64
RETRY_AFTER_SECONDS = 5
RUN_TAGS = ("gitops", "webhook")

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_DELIVERY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

SecretLoader = Callable[[str], str]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PrefectLauncher:
    """A `gitops.receiver.Launcher` that creates a flow run of the decision's deployment, and
    resumes the runs paused for an environment's approval.

    Does not wait for the run (``timeout=0``); the idempotency key makes a repeated decision
    return the run already created. Thread-safe: every call uses its own Prefect client.
    """

    def __init__(self, *, tags: tuple[str, ...] = RUN_TAGS) -> None:
        """Tag every run with ``tags`` (and the delivery id) so webhook runs are easy to find."""
        self.tags = tags

    def launch(self, decision: Decision) -> str:
        """Create (or find, by idempotency key) the flow run; return its id."""
        if decision.decision != "run" or not decision.deployment:
            raise ValueError(f"nothing to launch for a {decision.decision!r} decision")
        from prefect.deployments import run_deployment

        tags = [*self.tags]
        if decision.delivery_id:
            tags.append(f"delivery:{decision.delivery_id}")
        params = decision.parameters
        if "pr_number" in params and "repository" in params:
            tags.append(pr_tag(str(params["repository"]), int(params["pr_number"])))
        run = run_deployment(name=decision.deployment, parameters=dict(decision.parameters),
                             timeout=0, idempotency_key=decision.idempotency_key,
                             as_subflow=False, tags=tags, _sync=True)
        return str(run.id)

    def wake(self, decision: Decision) -> list[str]:
        """Resume every run paused (or suspended) for an approval of the decision's environment
        with ``check_github=True``; return the ids resumed. A resume Prefect refuses (the run is
        no longer paused, or the input does not fit its form) is logged and skipped."""
        if decision.decision != "wake":
            raise ValueError(f"nothing to wake for a {decision.decision!r} decision")
        from prefect.exceptions import PrefectException
        from prefect.flow_runs import resume_flow_run

        from deployments.approvals import paused_approvals

        params = decision.parameters
        answer = {"check_github": True, "approve": False, "approver": "",
                  "reason": f"GitHub comment {params['comment_id']} on "
                            + (f"#{params['issue_number']}" if "issue_number" in params
                               else f"commit {str(params.get('commit', ''))[:12]}")}
        woken = []
        for paused in paused_approvals(str(params["environment"])):
            try:
                resume_flow_run(uuid.UUID(paused.run_id), run_input=answer)
            except (PrefectException, RuntimeError) as exc:
                log.warning("delivery %s: did not wake run %s of %s: %s",
                            _safe(decision.delivery_id), paused.run_id, paused.environment, exc)
                continue
            woken.append(paused.run_id)
        return woken


def load_webhook_secret(settings: GitopsSettings, *, environ: Mapping[str, str] | None = None,
                        load_block: SecretLoader | None = None) -> bytes:
    """The webhook secret: the Secret block ``settings.webhook_secret_block``, else the env var
    ``GITHUB_WEBHOOK_SECRET``. Raises ConfigError when neither has a non-empty value.

    ``environ`` and ``load_block`` default to ``os.environ`` and `tasks.credentials.load_secret`.
    """
    env = os.environ if environ is None else environ
    if load_block is None:
        from tasks.credentials import load_secret as load_block
    block_problem = ""
    try:
        value = load_block(settings.webhook_secret_block)
    except ConfigError as exc:
        value, block_problem = "", str(exc)
    except Exception as exc:  # noqa: BLE001 - Prefect API unreachable: the env var may still do
        value, block_problem = "", f"could not read Secret block " \
                                   f"{settings.webhook_secret_block!r} ({type(exc).__name__})"
    if value and value.strip():
        return value.strip().encode("utf-8")
    from_env = env.get(SECRET_ENV, "")
    if from_env.strip():
        return from_env.strip().encode("utf-8")
    why = block_problem or f"Secret block {settings.webhook_secret_block!r} is empty"
    raise ConfigError(
        f"refusing to start the webhook receiver: no webhook secret ({why}; and "
        f"{SECRET_ENV} is not set). Create the Secret block {settings.webhook_secret_block!r} "
        f"with the secret configured on the GitHub webhook, or set {SECRET_ENV}.")


def load_allowlist(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Repositories whose deliveries are accepted: ``GITOPS_REPOSITORIES`` (comma-separated),
    else ``GITOPS_REPOSITORY``. Raises ConfigError when empty or malformed."""
    env = os.environ if environ is None else environ
    source = ALLOWLIST_ENV if env.get(ALLOWLIST_ENV, "").strip() else REPOSITORY_ENV
    names = [name.strip() for name in env.get(source, "").split(",") if name.strip()]
    if not names:
        raise ConfigError(f"refusing to start the webhook receiver: no repository allowlist; "
                          f"set {ALLOWLIST_ENV}=owner/name[,owner/name...]")
    bad = [name for name in names if not _REPO_RE.fullmatch(name)]
    if bad:
        raise ConfigError(f"{source}: not 'owner/name': {', '.join(map(repr, bad))}")
    return frozenset(names)


@dataclass(frozen=True)
class ReceiverLimits:
    """How long a body may take to arrive, how many unverified bodies are held, how big one is."""

    body_timeout: float = DEFAULT_BODY_TIMEOUT
    """Seconds from the first read of a body to its last byte; then 408 and the connection
    closed."""
    max_unverified: int = DEFAULT_MAX_UNVERIFIED
    """Bodies being read or checked at once; a delivery beyond them gets 503 + Retry-After."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """A bigger body is refused (413) as soon as it is known to be bigger, never buffered."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.body_timeout) and self.body_timeout > 0):
            raise ConfigError(f"{BODY_TIMEOUT_ENV}: the body deadline must be a positive number "
                              f"of seconds, not {self.body_timeout!r}")
        if self.max_unverified < 1:
            raise ConfigError(f"{MAX_UNVERIFIED_ENV}: at least 1 unverified body must be "
                              f"allowed, not {self.max_unverified!r}")
        if self.max_body_bytes < 1:
            raise ConfigError(f"the body size limit must be positive, not {self.max_body_bytes}")


def load_limits(environ: Mapping[str, str] | None = None) -> ReceiverLimits:
    """`ReceiverLimits` from ``GITOPS_WEBHOOK_BODY_TIMEOUT_SECONDS`` and
    ``GITOPS_WEBHOOK_MAX_UNVERIFIED`` (defaults when unset); ConfigError when malformed."""
    env = os.environ if environ is None else environ
    timeout_text = env.get(BODY_TIMEOUT_ENV, "").strip()
    count_text = env.get(MAX_UNVERIFIED_ENV, "").strip()
    try:
        timeout = float(timeout_text) if timeout_text else DEFAULT_BODY_TIMEOUT
    except ValueError:
        raise ConfigError(f"{BODY_TIMEOUT_ENV}: not a number of seconds: {timeout_text!r}") \
            from None
    try:
        count = int(count_text) if count_text else DEFAULT_MAX_UNVERIFIED
    except ValueError:
        raise ConfigError(f"{MAX_UNVERIFIED_ENV}: not a whole number: {count_text!r}") from None
    return ReceiverLimits(body_timeout=timeout, max_unverified=count)


@dataclass(frozen=True)
class _Refusal:
    status: int
    reason: str
    close: bool = True
    """Close the connection after answering (the rest of the body was never read)."""


class UnverifiedBodyGuard:
    """ASGI middleware that reads and verifies each delivery before the receiver sees it.

    For ``POST /webhooks/github``: a slot is taken before the first byte of the body is read and
    given back once the signature is verified or the delivery refused, whatever happens (client
    disconnect, timeout, error). With every slot taken, the delivery is answered 503 with
    ``Retry-After`` at once, its body unread. The whole body must arrive within
    ``limits.body_timeout`` seconds (else 408); a declared or streamed size over
    ``limits.max_body_bytes`` is refused with 413 without reading further; a wrong or missing
    ``X-Hub-Signature-256`` gets 401. Answers whose body was not read in full close the
    connection. A verified delivery is replayed to ``app`` (which checks it again and routes).

    Every other request goes straight to ``app``. One event loop per instance (uvicorn's).
    """

    def __init__(self, app: ASGIApp, *, secret: bytes, limits: ReceiverLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not secret:
            raise ValueError("the webhook secret is empty: refusing to accept unsigned deliveries")
        self.app = app
        self.limits = limits or ReceiverLimits()
        self._secret = secret
        self._clock = clock
        self._held = 0

    @property
    def held(self) -> int:
        """Unverified bodies held right now (being read or checked)."""
        return self._held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" \
                or scope.get("path") != WEBHOOK_PATH:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        delivery = headers.get(DELIVERY_HEADER.lower(), "")
        if self._held >= self.limits.max_unverified:
            log.warning("refused delivery %s: %d unverified deliveries already held (503)",
                        _safe(delivery), self._held)
            await _answer(send, _Refusal(503, "too many deliveries in flight; try again later"),
                          retry_after=RETRY_AFTER_SECONDS)
            return
        self._held += 1  # no await since the check above: no other request can slip in between
        try:
            outcome = await self._read_and_verify(headers, receive)
        finally:
            self._held -= 1
        if outcome is None:  # the client went away mid-body: nobody to answer
            log.info("delivery %s: client disconnected before its body was read",
                     _safe(delivery))
            return
        if isinstance(outcome, _Refusal):
            log.info("refused delivery %s: %s (%d)", _safe(delivery), outcome.reason,
                     outcome.status)
            await _answer(send, outcome)
            return
        await self.app(scope, _replay(outcome, receive), send)

    async def _read_and_verify(self, headers: Mapping[str, str],
                               receive: Receive) -> bytes | _Refusal | None:
        limit = self.limits.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return _Refusal(400, "invalid Content-Length header")
            if int(declared) > limit:
                return _Refusal(413, f"body over {limit} bytes")
        deadline = self._clock() + self.limits.body_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - self._clock()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                return _Refusal(408, f"request body not received within "
                                     f"{self.limits.body_timeout:g} s")
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _Refusal(413, f"body over {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            verify_signature(self._secret, body, headers.get(SIGNATURE_HEADER.lower()))
        except WebhookError as ex:
            return _Refusal(ex.status_code, str(ex), close=False)
        return body


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones), decoded as latin-1."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands over ``body`` in one message, then defers to ``receive``."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, refusal: _Refusal, *, retry_after: int | None = None) -> None:
    body = json.dumps({"error": refusal.reason}).encode("utf-8")
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode("ascii"))]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode("ascii")))
    if refusal.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _safe(delivery: str) -> str:
    return delivery if _DELIVERY_RE.fullmatch(delivery) else "(invalid delivery id)"


def build_app(settings: GitopsSettings | None = None, *,
              environ: Mapping[str, str] | None = None,
              load_block: SecretLoader | None = None,
              launcher: Launcher | None = None,
              limits: ReceiverLimits | None = None) -> UnverifiedBodyGuard:
    """The receiver app with its secret, allowlist, the Prefect launcher, and the guard in front
    (``limits`` default to `load_limits` of ``environ``)."""
    settings = settings or load_settings()
    secret = load_webhook_secret(settings, environ=environ, load_block=load_block)
    limits = limits or load_limits(environ)
    app = create_app(secret=secret, launcher=launcher or PrefectLauncher(),
                     allowlist=load_allowlist(environ), max_body_bytes=limits.max_body_bytes)
    return UnverifiedBodyGuard(app, secret=secret, limits=limits)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          limits: ReceiverLimits | None = None) -> None:
    """Run the receiver with uvicorn until interrupted (secret, allowlist and limits checked
    first)."""
    import uvicorn

    app = build_app(limits=limits)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)


def route_file(event: str, payload_path: Path | str, delivery_id: str = "dry-run", *,
               allowlist: frozenset[str] | None = None) -> dict[str, Any]:
    """Dry run: what the receiver would do with ``payload_path`` as an ``event`` delivery.

    No signature check and nothing started. A refused delivery gives ``decision = "refuse"``
    with the HTTP status the receiver would answer.
    """
    body = Path(payload_path).read_bytes()
    allowed = load_allowlist() if allowlist is None else allowlist
    try:
        decision = route(parse_event(event, body), delivery_id=delivery_id,
                         allowlist=frozenset(a.lower() for a in allowed))
    except WebhookError as ex:
        return {"decision": "refuse", "reason": str(ex), "status": ex.status_code,
                "deployment": None, "parameters": {}, "idempotency_key": None}
    return {"decision": decision.decision, "reason": decision.reason,
            "deployment": decision.deployment, "parameters": dict(decision.parameters),
            "idempotency_key": decision.idempotency_key}


# -- command line ---------------------------------------------------------------------------------


def cmd_webhook_serve(args: argparse.Namespace) -> int:
    """`gitops-flows webhook serve`."""
    limits = load_limits()
    if args.body_timeout is not None or args.max_unverified is not None:
        limits = ReceiverLimits(
            body_timeout=limits.body_timeout if args.body_timeout is None else args.body_timeout,
            max_unverified=(limits.max_unverified if args.max_unverified is None
                            else args.max_unverified))
    serve(host=args.host, port=args.port, limits=limits)
    return 0


def cmd_webhook_route(args: argparse.Namespace) -> int:
    """`gitops-flows webhook route`: print the decision as JSON; exit 1 when refused."""
    result = route_file(args.event, args.payload, args.delivery)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 1 if result["decision"] == "refuse" else 0


def add_webhook_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``webhook serve`` and ``webhook route`` to the CLI's subparsers; return the parser."""
    wh = subparsers.add_parser("webhook", help="the GitHub webhook receiver")
    actions = wh.add_subparsers(dest="webhook_command", required=True)

    sv = actions.add_parser("serve", help="receive GitHub deliveries and start flow runs")
    sv.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    sv.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    sv.add_argument("--body-timeout", type=float, default=None, metavar="SECONDS",
                    help=f"deadline for a delivery's whole body (default {BODY_TIMEOUT_ENV} "
                         f"or {DEFAULT_BODY_TIMEOUT:g})")
    sv.add_argument("--max-unverified", type=int, default=None, metavar="N",
                    help=f"unverified bodies held at once, beyond them 503 (default "
                         f"{MAX_UNVERIFIED_ENV} or {DEFAULT_MAX_UNVERIFIED})")
    sv.set_defaults(func=cmd_webhook_serve)

    rt = actions.add_parser("route", help="dry run: what a payload file would start")
    rt.add_argument("--event", required=True, help="the X-GitHub-Event value, e.g. pull_request")
    rt.add_argument("--delivery", default="dry-run", help="the X-GitHub-Delivery id")
    rt.add_argument("payload", type=Path, help="the delivery body (JSON file)")
    rt.set_defaults(func=cmd_webhook_route)
    return wh
