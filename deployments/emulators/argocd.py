"""An Argo CD API emulator for the tests and the local sandbox, held to Argo CD's Swagger contract.

It serves exactly the operations of `tests/contracts/argocd/swagger-subset.json` plus
`POST /api/v1/applications`, with Argo CD's JSON shapes (`v1alpha1Application`, `runtimeError`...):

    POST   /api/v1/session                                      username/password -> token
    GET    /api/v1/applications                                 ?selector=k=v,...&name=&project=
    POST   /api/v1/applications                                 create (?upsert=true)
    GET    /api/v1/applications/{name}                          ?refresh= accepted
    POST   /api/v1/applications/{name}/sync                     starts an operation
    POST   /api/v1/applications/{name}/rollback                 by history id; 400 with auto-sync
    DELETE /api/v1/applications/{name}/operation                terminate; 400 if none running
    GET    /api/v1/applications/{applicationName}/resource-tree

Behaviour: a sync (or rollback) makes the operation Running and health Progressing; once
`sync_seconds` have passed on the emulator's clock (checked lazily, on the next request that reads
the app) it is Succeeded, Synced at the requested revision, Healthy, with a history entry appended
(auto-increment int id). Errors are `runtimeError` bodies with gRPC codes, like grpc-gateway's.

Faults, as methods or over the control API (never behind auth or outages):

    POST /_emulator/faults/unavailable              {"count": N, "status": 503}
    POST /_emulator/applications/{name}/degrade-next-sync   {"message": "..."}
    POST /_emulator/applications/{name}/fail-next-sync      {"message": "..."}
    PUT  /_emulator/sync-seconds                    {"seconds": X}
    POST /_emulator/applications/{name}/finish-operation    the running operation ends now
    PUT  /_emulator/auth                            {"required": true|false}
    POST /_emulator/reset                           clears faults
    GET  /_emulator/state

Run it for the sandbox with `python -m deployments.emulators.argocd --port N --token T`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.argocd import ApplicationSpec, application_body
from deployments.emulators.server import LOOPBACK, BackgroundServer, bind_socket

# gRPC status codes, as grpc-gateway puts them in `runtimeError.code`, and their HTTP status.
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION = 3, 5, 6, 9
UNAVAILABLE, UNAUTHENTICATED, INTERNAL = 14, 16, 13
_HTTP_FOR_CODE = {INVALID_ARGUMENT: 400, NOT_FOUND: 404, ALREADY_EXISTS: 409,
                  FAILED_PRECONDITION: 400, UNAVAILABLE: 503, UNAUTHENTICATED: 401,
                  INTERNAL: 500, 12: 501, 7: 403}

APP_NAMESPACE = "argocd"
HISTORY_LIMIT = 10
DEFAULT_DEGRADED_MESSAGE = "Deployment has timed out progressing."
DEFAULT_FAILED_MESSAGE = "one or more objects failed to apply (emulated failure)"
RUNNING_MESSAGE = "one or more tasks are running"
SUCCEEDED_MESSAGE = "successfully synced (all tasks run)"
TERMINATED_MESSAGE = "Operation terminated"


class ApiError(Exception):
    """An Argo CD API error: answered as a `runtimeError` body."""

    def __init__(self, code: int, message: str, http_status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status or _HTTP_FOR_CODE.get(code, 500)
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        """The `runtimeError` JSON object."""
        return {"error": self.message, "code": self.code, "message": self.message, "details": []}


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Operation:
    revision: str
    prune: bool
    initiated_by: dict[str, Any]
    started_at: float
    done_at: float
    phase: str = "Running"
    message: str = RUNNING_MESSAGE
    finished_at: float | None = None
    health_before: tuple[str, str] = ("Missing", "")

    def operation_json(self) -> dict[str, Any]:
        return {"sync": {"revision": self.revision, "prune": self.prune},
                "initiatedBy": dict(self.initiated_by), "retry": {}}


@dataclass
class _App:
    name: str
    uid: str
    created_at: float
    spec: dict[str, Any]
    labels: dict[str, str]
    resource_version: int = 1
    sync_status: str = "OutOfSync"
    sync_revision: str = ""
    health_status: str = "Missing"
    health_message: str = ""
    operation: _Operation | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    next_history_id: int = 0

    @property
    def source(self) -> dict[str, Any]:
        source = self.spec.get("source")
        if isinstance(source, dict):
            return source
        sources = self.spec.get("sources") or [{}]
        return sources[0]

    @property
    def auto_sync(self) -> bool:
        automated = (self.spec.get("syncPolicy") or {}).get("automated")
        return isinstance(automated, dict) and automated.get("enabled") is not False

    @property
    def running(self) -> bool:
        return self.operation is not None and self.operation.phase == "Running"


class ArgoCDEmulator:
    """In-memory Argo CD: applications, operations and history, with injectable faults.

    Thread-safe: the HTTP server runs in another thread than the test that injects faults.
    `clock` returns epoch seconds; it drives both operation progress and the timestamps.
    """

    def __init__(self, *, token: str | None = None, username: str = "admin",
                 password: str | None = None, clock: Callable[[], float] = time.time,
                 sync_seconds: float = 0.0, require_auth: bool = True) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.username = username
        self.password = password or secrets.token_urlsafe(16)
        self.clock = clock
        self._lock = threading.RLock()
        self._apps: dict[str, _App] = {}
        self._tokens: set[str] = {self.token}
        self._sync_seconds = float(sync_seconds)
        self._require_auth = require_auth
        self._unavailable: list[int] = []
        self._next_outcome: dict[str, tuple[str, str]] = {}

    # ---- faults and settings ------------------------------------------------------------------

    def fail_next_requests(self, count: int, status: int = 503) -> None:
        """The next `count` API requests (any path under /api) answer `status` (5xx)."""
        if not 500 <= status <= 599:
            raise ValueError("an outage answers 5xx")
        with self._lock:
            self._unavailable.extend([status] * count)

    def degrade_after_next_sync(self, name: str, message: str = DEFAULT_DEGRADED_MESSAGE) -> None:
        """The next sync of `name` succeeds but leaves the app Degraded with `message`."""
        with self._lock:
            self._next_outcome[name] = ("Degraded", message)

    def fail_next_sync(self, name: str, message: str = DEFAULT_FAILED_MESSAGE) -> None:
        """The next sync of `name` ends with operation phase Failed and `message`."""
        with self._lock:
            self._next_outcome[name] = ("Failed", message)

    def set_sync_seconds(self, seconds: float) -> None:
        """How long operations started from now stay Running (Progressing) on the clock."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._sync_seconds = float(seconds)

    def finish_operation(self, name: str) -> None:
        """The running operation of `name` (if any) is due now: the next read settles it."""
        with self._lock:
            app = self._get(name)
            if app.running:
                assert app.operation is not None
                app.operation.done_at = self.clock()

    def set_auth_required(self, required: bool) -> None:
        """Whether /api requests (bar the session) need a valid Bearer token."""
        with self._lock:
            self._require_auth = required

    def reset_faults(self) -> None:
        """Drop pending outages and sync outcomes."""
        with self._lock:
            self._unavailable.clear()
            self._next_outcome.clear()

    def state(self) -> dict[str, Any]:
        """A JSON snapshot of the settings and pending faults (never the token)."""
        with self._lock:
            return {"applications": sorted(self._apps),
                    "unavailable_pending": len(self._unavailable),
                    "sync_seconds": self._sync_seconds, "auth_required": self._require_auth,
                    "next_sync_outcomes": {k: v[0] for k, v in self._next_outcome.items()}}

    # ---- direct state access for seeding and assertions ----------------------------------------

    def add_application(self, spec: ApplicationSpec) -> dict[str, Any]:
        """Create an application as if through the API; returns its `v1alpha1Application` JSON."""
        return self.create(application_body(spec))

    def application(self, name: str) -> dict[str, Any]:
        """The `v1alpha1Application` JSON of `name` (ApiError NOT_FOUND if unknown)."""
        with self._lock:
            return self._render(self._get(name))

    # ---- the API, as plain methods returning JSON (raising ApiError) ---------------------------

    def check_request(self, path: str, authorization: str | None) -> None:
        """Apply an injected outage, then auth, to one request; raises ApiError to refuse it."""
        with self._lock:
            if self._unavailable:
                status = self._unavailable.pop(0)
                raise ApiError(UNAVAILABLE, "emulated outage: service unavailable", status)
            if not self._require_auth or path == "/api/v1/session":
                return
            if not authorization:
                raise ApiError(UNAUTHENTICATED, "no session information")
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or token.strip() not in self._tokens:
                raise ApiError(UNAUTHENTICATED, "invalid session: token signature is invalid")

    def create_session(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`sessionSessionResponse` for correct username/password."""
        username, password = body.get("username"), body.get("password")
        if not (isinstance(username, str) and isinstance(password, str)) or not (
                secrets.compare_digest(username, self.username)
                and secrets.compare_digest(password, self.password)):
            raise ApiError(UNAUTHENTICATED, "Invalid username or password")
        token = "emu." + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens.add(token)
        return {"token": token}

    def list_applications(self, *, selector: str = "", name: str = "",
                          projects: tuple[str, ...] = ()) -> dict[str, Any]:
        """`v1alpha1ApplicationList` filtered by label selector, name and projects."""
        wanted = _parse_selector(selector)
        with self._lock:
            items = [
                self._render(self._settle(app))
                for app in sorted(self._apps.values(), key=lambda a: a.name)
                if (not name or app.name == name)
                and (not projects or app.spec.get("project") in projects)
                and all(app.labels.get(k) == v if v is not None else k in app.labels
                        for k, v in wanted.items())
            ]
            return {"metadata": {"resourceVersion": str(self._version())}, "items": items}

    def get(self, name: str) -> dict[str, Any]:
        """`v1alpha1Application` of `name`."""
        return self.application(name)

    def create(self, body: Mapping[str, Any], *, upsert: bool = False) -> dict[str, Any]:
        """Create from a `v1alpha1Application` body; same spec again is a no-op."""
        metadata = body.get("metadata")
        spec = body.get("spec")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) \
                or not metadata["name"]:
            raise ApiError(INVALID_ARGUMENT, "application metadata.name is required")
        if not isinstance(spec, dict):
            raise ApiError(INVALID_ARGUMENT, "application spec is required")
        if not spec.get("project"):
            raise ApiError(INVALID_ARGUMENT, "application spec.project is required")
        source = spec.get("source") or (spec.get("sources") or [None])[0]
        if not isinstance(source, dict) or not source.get("repoURL"):
            raise ApiError(INVALID_ARGUMENT, "application repo URL is required")
        destination = spec.get("destination")
        if not isinstance(destination, dict) or not (destination.get("server")
                                                     or destination.get("name")):
            raise ApiError(INVALID_ARGUMENT, "application destination server or name is required")
        name = metadata["name"]
        labels = metadata.get("labels") or {}
        with self._lock:
            existing = self._apps.get(name)
            if existing is not None:
                if existing.spec == spec:
                    return self._render(self._settle(existing))
                if not upsert:
                    raise ApiError(INVALID_ARGUMENT, "existing application spec is different, "
                                                     "use upsert flag to force update")
                existing.spec = copy.deepcopy(spec)
                existing.labels = dict(labels)
                existing.resource_version += 1
                return self._render(existing)
            app = _App(name=name, uid=secrets.token_hex(16), created_at=self.clock(),
                       spec=copy.deepcopy(spec), labels=dict(labels))
            self._apps[name] = app
            if app.auto_sync:
                self._start_operation(app, str(app.source.get("targetRevision") or "HEAD"),
                                      prune=False, initiated_by={"automated": True})
            return self._render(app)

    def sync(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Start a sync operation from an `applicationApplicationSyncRequest` body."""
        with self._lock:
            app = self._settle(self._get(name))
            if body.get("dryRun"):
                raise ApiError(INVALID_ARGUMENT, "emulator: dryRun syncs are not supported")
            if app.running:
                raise ApiError(FAILED_PRECONDITION, "another operation is already in progress")
            revision = body.get("revision") or app.source.get("targetRevision") or "HEAD"
            self._start_operation(app, str(revision), prune=bool(body.get("prune")),
                                  initiated_by={"username": self.username})
            return self._render(app)

    def rollback(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Re-deploy the revision of history entry `body.id`; refused while auto-sync is on."""
        history_id = body.get("id")
        if isinstance(history_id, str) and history_id.lstrip("-").isdigit():
            history_id = int(history_id)  # proto3 JSON allows int64 as a string
        if isinstance(history_id, bool) or not isinstance(history_id, int):
            raise ApiError(INVALID_ARGUMENT, "rollback id must be an integer")
        with self._lock:
            app = self._settle(self._get(name))
            if app.auto_sync:
                raise ApiError(INVALID_ARGUMENT,
                               "rollback cannot be initiated when auto-sync is enabled")
            entry = next((h for h in app.history if h["id"] == history_id), None)
            if entry is None:
                raise ApiError(INVALID_ARGUMENT,
                               f"application {name} does not have deployment with id {history_id}")
            if app.running:
                raise ApiError(FAILED_PRECONDITION, "another operation is already in progress")
            self._start_operation(app, entry["revision"], prune=bool(body.get("prune")),
                                  initiated_by={"username": self.username})
            return self._render(app)

    def terminate_operation(self, name: str) -> dict[str, Any]:
        """Stop the running operation: phase Failed, "Operation terminated"."""
        with self._lock:
            app = self._settle(self._get(name))
            if not app.running:
                raise ApiError(INVALID_ARGUMENT,
                               "Unable to terminate operation. No operation is in progress")
            assert app.operation is not None
            app.operation.phase = "Failed"
            app.operation.message = TERMINATED_MESSAGE
            app.operation.finished_at = self.clock()
            app.health_status, app.health_message = app.operation.health_before
            app.resource_version += 1
            return {}

    def resource_tree(self, name: str) -> dict[str, Any]:
        """`v1alpha1ApplicationTree`: a Deployment, its ReplicaSet and a Service once deployed."""
        with self._lock:
            app = self._settle(self._get(name))
            if not app.history:
                return {"nodes": []}
            namespace = str((app.spec.get("destination") or {}).get("namespace") or "default")
            created = _rfc3339(app.created_at)
            health = {"status": app.health_status}
            if app.health_message:
                health["message"] = app.health_message
            deployment = {"group": "apps", "version": "v1", "kind": "Deployment",
                          "namespace": namespace, "name": app.name, "uid": app.uid[:8] + "-dep",
                          "resourceVersion": str(app.resource_version), "health": health,
                          "createdAt": created}
            replica_set = {"group": "apps", "version": "v1", "kind": "ReplicaSet",
                           "namespace": namespace, "name": f"{app.name}-{app.sync_revision[:8]}",
                           "uid": app.uid[:8] + "-rs", "resourceVersion": str(app.resource_version),
                           "health": dict(health), "createdAt": created,
                           "info": [{"name": "Revision", "value": f"Rev:{len(app.history)}"}],
                           "parentRefs": [{"group": "apps", "kind": "Deployment",
                                           "namespace": namespace, "name": app.name,
                                           "uid": deployment["uid"]}]}
            service = {"version": "v1", "kind": "Service", "namespace": namespace,
                       "name": app.name, "uid": app.uid[:8] + "-svc", "createdAt": created,
                       "resourceVersion": str(app.resource_version),
                       "health": {"status": "Healthy"}}
            return {"nodes": [deployment, replica_set, service]}

    # ---- internals ----------------------------------------------------------------------------

    def _version(self) -> int:
        return sum(app.resource_version for app in self._apps.values())

    def _get(self, name: str) -> _App:
        app = self._apps.get(name)
        if app is None:
            raise ApiError(NOT_FOUND, f'applications.argoproj.io "{name}" not found')
        return self._settle(app)

    def _start_operation(self, app: _App, revision: str, *, prune: bool,
                         initiated_by: dict[str, Any]) -> None:
        now = self.clock()
        app.operation = _Operation(revision=revision, prune=prune, initiated_by=initiated_by,
                                   started_at=now, done_at=now + self._sync_seconds,
                                   health_before=(app.health_status, app.health_message))
        app.health_status, app.health_message = "Progressing", ""
        app.sync_status = "OutOfSync" if app.sync_revision != revision else app.sync_status
        app.resource_version += 1

    def _settle(self, app: _App) -> _App:
        """Finish the running operation if its time has come on the clock."""
        op = app.operation
        if op is None or op.phase != "Running" or self.clock() < op.done_at:
            return app
        outcome, message = self._next_outcome.pop(app.name, ("Healthy", ""))
        op.finished_at = op.done_at
        app.resource_version += 1
        if outcome == "Failed":
            op.phase, op.message = "Failed", message
            app.health_status, app.health_message = op.health_before
            return app
        op.phase, op.message = "Succeeded", SUCCEEDED_MESSAGE
        app.sync_status, app.sync_revision = "Synced", op.revision
        app.health_status, app.health_message = outcome, message
        app.history.append({
            "id": app.next_history_id, "revision": op.revision,
            "deployStartedAt": _rfc3339(op.started_at), "deployedAt": _rfc3339(op.done_at),
            "source": copy.deepcopy(app.source), "initiatedBy": dict(op.initiated_by),
        })
        app.next_history_id += 1
        limit = app.spec.get("revisionHistoryLimit") or HISTORY_LIMIT
        del app.history[:-int(limit)]
        return app

    def _render(self, app: _App) -> dict[str, Any]:
        """The `v1alpha1Application` JSON of an app."""
        metadata: dict[str, Any] = {
            "name": app.name, "namespace": APP_NAMESPACE, "uid": app.uid,
            "resourceVersion": str(app.resource_version), "generation": app.resource_version,
            "creationTimestamp": _rfc3339(app.created_at),
        }
        if app.labels:
            metadata["labels"] = dict(app.labels)
        sync: dict[str, Any] = {"status": app.sync_status, "comparedTo": {
            "source": copy.deepcopy(app.source),
            "destination": copy.deepcopy(app.spec.get("destination") or {})}}
        if app.sync_revision:
            sync["revision"] = app.sync_revision
        health: dict[str, Any] = {"status": app.health_status}
        if app.health_message:
            health["message"] = app.health_message
        status: dict[str, Any] = {
            "sync": sync, "health": health, "sourceType": "Directory", "summary": {},
            "reconciledAt": _rfc3339(self.clock()), "controllerNamespace": APP_NAMESPACE,
        }
        if app.history:
            status["history"] = copy.deepcopy(app.history)
        doc: dict[str, Any] = {"metadata": metadata, "spec": copy.deepcopy(app.spec),
                               "status": status}
        op = app.operation
        if op is not None:
            state: dict[str, Any] = {"operation": op.operation_json(), "phase": op.phase,
                                     "message": op.message, "startedAt": _rfc3339(op.started_at)}
            if op.finished_at is not None:
                state["finishedAt"] = _rfc3339(op.finished_at)
                if op.phase == "Succeeded":
                    state["syncResult"] = {
                        "revision": op.revision, "source": copy.deepcopy(app.source),
                        "resources": [{"group": "apps", "version": "v1", "kind": "Deployment",
                                       "namespace": str((app.spec.get("destination") or {})
                                                        .get("namespace") or "default"),
                                       "name": app.name, "status": "Synced",
                                       "message": "deployment.apps/" + app.name + " configured",
                                       "syncPhase": "Sync"}]}
            status["operationState"] = state
            if op.phase == "Running":
                doc["operation"] = op.operation_json()
        return doc

    # ---- serving ------------------------------------------------------------------------------

    def asgi_app(self) -> Starlette:
        """The Starlette app serving this emulator."""
        return build_app(self)

    def serve(self, host: str = LOOPBACK, port: int = 0) -> BackgroundServer:
        """Start serving in a background thread; the handle has `.url` and `.stop()`."""
        return BackgroundServer(build_app(self), host=host, port=port).start()


def _parse_selector(selector: str) -> dict[str, str | None]:
    """Equality-based label selector `k=v,k2==v2,k3` -> {k: v, k3: None (exists)}."""
    wanted: dict[str, str | None] = {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term or " in " in term or "notin" in term or term.startswith("!"):
            raise ApiError(INVALID_ARGUMENT, f"emulator: unsupported selector term {term!r}")
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        wanted[key.strip()] = value.strip() if sep else None
    return wanted


# ---- HTTP ---------------------------------------------------------------------------------------

def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.http_status)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as ex:
        raise ApiError(INVALID_ARGUMENT, f"invalid JSON body: {ex.msg}") from ex
    if not isinstance(body, dict):
        raise ApiError(INVALID_ARGUMENT, "request body must be a JSON object")
    return body


def build_app(emulator: ArgoCDEmulator) -> Starlette:
    """A Starlette app for `emulator`: Argo CD's REST paths, plus the /_emulator control API."""

    def api(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                emulator.check_request(request.url.path, request.headers.get("authorization"))
                return JSONResponse(await handler(request))
            except ApiError as error:
                return _error_response(error)
        return endpoint

    async def session(request: Request) -> Any:
        return emulator.create_session(await _json_body(request))

    async def list_or_create(request: Request) -> Any:
        if request.method == "POST":
            upsert = request.query_params.get("upsert", "").lower() == "true"
            return emulator.create(await _json_body(request), upsert=upsert)
        query = request.query_params
        projects = tuple(query.getlist("projects") + query.getlist("project"))
        return emulator.list_applications(selector=query.get("selector", ""),
                                          name=query.get("name", ""), projects=projects)

    async def get(request: Request) -> Any:
        return emulator.get(request.path_params["name"])

    async def sync(request: Request) -> Any:
        return emulator.sync(request.path_params["name"], await _json_body(request))

    async def rollback(request: Request) -> Any:
        return emulator.rollback(request.path_params["name"], await _json_body(request))

    async def terminate(request: Request) -> Any:
        return emulator.terminate_operation(request.path_params["name"])

    async def tree(request: Request) -> Any:
        return emulator.resource_tree(request.path_params["applicationName"])

    def control(handler: Callable[[Request, dict[str, Any]], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await _json_body(request)
                handler(request, body)
            except (ApiError, ValueError, TypeError, KeyError) as error:
                return JSONResponse({"error": str(error)}, status_code=400)
            return JSONResponse(emulator.state())
        return endpoint

    async def state(request: Request) -> Response:
        return JSONResponse(emulator.state())

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        code = NOT_FOUND if status == 404 else 12  # grpc-gateway: Unimplemented for bad method
        message = "Not Found" if status == 404 else "Method Not Allowed"
        return JSONResponse(ApiError(code, message, status).body(), status_code=status)

    routes = [
        Route("/api/v1/session", api(session), methods=["POST"]),
        Route("/api/v1/applications", api(list_or_create), methods=["GET", "POST"]),
        Route("/api/v1/applications/{name}", api(get), methods=["GET"]),
        Route("/api/v1/applications/{name}/sync", api(sync), methods=["POST"]),
        Route("/api/v1/applications/{name}/rollback", api(rollback), methods=["POST"]),
        Route("/api/v1/applications/{name}/operation", api(terminate), methods=["DELETE"]),
        Route("/api/v1/applications/{applicationName}/resource-tree", api(tree), methods=["GET"]),
        Route("/_emulator/state", state, methods=["GET"]),
        Route("/_emulator/faults/unavailable", control(
            lambda r, b: emulator.fail_next_requests(int(b["count"]), int(b.get("status", 503)))),
            methods=["POST"]),
        Route("/_emulator/applications/{name}/degrade-next-sync", control(
            lambda r, b: emulator.degrade_after_next_sync(
                r.path_params["name"], str(b.get("message") or DEFAULT_DEGRADED_MESSAGE))),
            methods=["POST"]),
        Route("/_emulator/applications/{name}/fail-next-sync", control(
            lambda r, b: emulator.fail_next_sync(
                r.path_params["name"], str(b.get("message") or DEFAULT_FAILED_MESSAGE))),
            methods=["POST"]),
        Route("/_emulator/applications/{name}/finish-operation", control(
            lambda r, b: emulator.finish_operation(r.path_params["name"])), methods=["POST"]),
        Route("/_emulator/sync-seconds", control(
            lambda r, b: emulator.set_sync_seconds(float(b["seconds"]))), methods=["PUT"]),
        Route("/_emulator/auth", control(
            lambda r, b: emulator.set_auth_required(bool(b["required"]))), methods=["PUT"]),
        Route("/_emulator/reset", control(lambda r, b: emulator.reset_faults()), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def main(argv: list[str] | None = None) -> int:
    """CLI: serve the emulator on loopback until killed."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m deployments.emulators.argocd",
                                     description="Argo CD API emulator on loopback.")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--token", default=os.environ.get("ARGOCD_EMULATOR_TOKEN"),
                        help="accepted Bearer token (default: $ARGOCD_EMULATOR_TOKEN, else random)")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default=os.environ.get("ARGOCD_EMULATOR_PASSWORD"),
                        help="default: $ARGOCD_EMULATOR_PASSWORD, else random")
    parser.add_argument("--sync-seconds", type=float, default=2.0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    emulator = ArgoCDEmulator(token=args.token, username=args.username, password=args.password,
                              sync_seconds=args.sync_seconds)
    sock = bind_socket(args.host, args.port)
    sock.listen(2048)  # accept (queue) connections from the moment the URL is printed
    port = sock.getsockname()[1]
    print(f"argocd emulator listening on http://{args.host}:{port}", flush=True)
    server = uvicorn.Server(uvicorn.Config(build_app(emulator), log_level=args.log_level,
                                           lifespan="off"))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
