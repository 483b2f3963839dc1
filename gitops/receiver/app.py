"""The receiver as a Starlette ASGI app: `POST /webhooks/github` and `GET /healthz`.

A delivery goes through the steps in order (see `gitops.receiver`), then a "run" decision is
handed to the `Launcher`. Nothing here imports Prefect.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.errors import WebhookError
from gitops.receiver.events import PingEvent, parse_event
from gitops.receiver.routing import Decision, Launcher, route
from gitops.receiver.signature import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    verify_signature,
)

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/github"

_DELIVERY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def create_app(*, secret: bytes, launcher: Launcher, allowlist: Iterable[str],
               max_body_bytes: int = 1_000_000, allow_forks: bool = False,
               default_branch_only: bool = True) -> Starlette:
    """The receiver: `POST /webhooks/github` and `GET /healthz`.

    Answers 202 with the run id ("run"), the ids of the runs woken ("wake") or the reason
    ("ignore"); 200 to a ping and to a "wake" that found nothing waiting; 401/400/403/413 for
    refused deliveries, and 503 when the launcher fails (GitHub can redeliver).
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
        if decision.decision == "wake":
            return await _wake(launcher, decision)
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


async def _wake(launcher: Launcher, decision: Decision) -> Response:
    """Hand a "wake" decision to the launcher; 202 with the runs woken, 200 when none waits."""
    delivery, environment = _safe(decision.delivery_id), decision.parameters["environment"]
    try:
        woken = await run_in_threadpool(launcher.wake, decision)
    except Exception:
        log.exception("could not wake the runs waiting for %s (delivery %s)", environment,
                      delivery)
        return JSONResponse({"error": "could not wake the waiting runs; try the delivery "
                                      "again"}, status_code=503)
    if not woken:
        log.info("delivery %s: nothing waits for %s", delivery, environment)
        return JSONResponse({"decision": "wake", "reason": f"nothing waits for {environment}",
                             "environment": environment, "run_ids": []}, status_code=200)
    log.info("delivery %s woke %s run(s) %s", delivery, environment, ", ".join(woken))
    return JSONResponse({"decision": "wake", "reason": decision.reason,
                         "environment": environment, "run_ids": woken}, status_code=202)


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
