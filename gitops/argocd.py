"""Argo CD REST client: applications, sync, rollback and waiting for a healthy rollout.

A thin adapter over Argo CD's HTTP API (the operations in
`tests/contracts/argocd/swagger-subset.json` plus `POST /api/v1/applications`). The caller builds
the `httpx.Client` (base URL, timeouts, transport); this module sends
`Authorization: Bearer <token>` on each request and parses answers into frozen models. It never
retries: retry policy lives in the Prefect tasks.

Failures (see `gitops.errors`):
    ArgoCDUnavailable   connection error, timeout, or a 5xx answer: safe to retry
    ArgoCDError         any other 4xx, or a body we cannot read (carries `status_code`, `body`)
    ArgoCDSyncFailed    `wait_until_synced` saw Failed/Error, Degraded health, or ran out of time

The token never appears in an exception message, an error body or the client's repr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

import httpx

from gitops.errors import ArgoCDError, ArgoCDSyncFailed, ArgoCDUnavailable

# Status values come from Argo CD's Go source; the spec types them as plain strings.
SYNC_SYNCED: Final = "Synced"
SYNC_OUT_OF_SYNC: Final = "OutOfSync"
HEALTH_HEALTHY: Final = "Healthy"
HEALTH_PROGRESSING: Final = "Progressing"
HEALTH_DEGRADED: Final = "Degraded"
PHASE_RUNNING: Final = "Running"
PHASE_SUCCEEDED: Final = "Succeeded"
PHASE_FAILED: Final = "Failed"
PHASE_ERROR: Final = "Error"

REFRESH_MODES: Final = frozenset({"normal", "hard"})
_BODY_LIMIT = 2000
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
              httpx.ProxyError)


@dataclass(frozen=True)
class HistoryEntry:
    """One deployed revision in `status.history`; `id` is what rollback takes."""

    id: int
    revision: str
    deployed_at: datetime | None


@dataclass(frozen=True)
class Application:
    """An Argo CD Application as the pipeline reads it."""

    name: str
    project: str
    repo_url: str
    path: str
    target_revision: str
    sync_status: str
    sync_revision: str
    health_status: str
    health_message: str
    operation_phase: str | None
    operation_message: str
    history: tuple[HistoryEntry, ...]
    auto_sync: bool
    operation_revision: str = ""
    """The revision the last (or current) operation asked for; "" when there never was one."""

    @property
    def message(self) -> str:
        """What Argo CD says about the app right now, for error messages and logs."""
        parts = [
            f"operation {self.operation_phase or 'none'}"
            + (f": {self.operation_message}" if self.operation_message else ""),
            f"sync {self.sync_status}"
            + (f" at {self.sync_revision}" if self.sync_revision else ""),
            f"health {self.health_status}"
            + (f": {self.health_message}" if self.health_message else ""),
        ]
        return "; ".join(parts)

    def history_entry(self, history_id: int) -> HistoryEntry | None:
        """The history entry with that id, or None."""
        return next((entry for entry in self.history if entry.id == history_id), None)


@dataclass(frozen=True)
class ApplicationSpec:
    """What the pipeline wants an Application to be: one Git source, one destination."""

    name: str
    project: str
    repo_url: str
    path: str
    target_revision: str
    dest_server: str
    dest_namespace: str
    auto_sync: bool = False


def application_body(spec: ApplicationSpec) -> dict[str, Any]:
    """The `v1alpha1Application` JSON body that creates `spec`."""
    body_spec: dict[str, Any] = {
        "project": spec.project,
        "source": {"repoURL": spec.repo_url, "path": spec.path,
                   "targetRevision": spec.target_revision},
        "destination": {"server": spec.dest_server, "namespace": spec.dest_namespace},
    }
    if spec.auto_sync:
        body_spec["syncPolicy"] = {"automated": {"prune": False, "selfHeal": False}}
    return {"metadata": {"name": spec.name}, "spec": body_spec}


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ArgoCDError(f"Argo CD answer has {where} of type {type(value).__name__}, not object")
    return value


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ArgoCDError(f"Argo CD answer has {where} of type {type(value).__name__}, not string")
    return value


def _time(value: Any, where: str) -> datetime | None:
    text = _str(value, where)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as ex:
        raise ArgoCDError(f"Argo CD answer has {where} {text!r}, not an RFC 3339 time") from ex


def _history_id(value: Any) -> int:
    # int64 is a JSON number in Argo CD's answers; accept the proto3-JSON string form too.
    if isinstance(value, bool):
        raise ArgoCDError("Argo CD answer has a boolean history id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise ArgoCDError(f"Argo CD answer has history id {value!r}, not an integer")


def parse_application(doc: Mapping[str, Any]) -> Application:
    """Read a `v1alpha1Application` JSON object into an Application; ArgoCDError if malformed."""
    doc = _obj(doc, "application")
    metadata = _obj(doc.get("metadata"), "metadata")
    name = _str(metadata.get("name"), "metadata.name")
    if not name:
        raise ArgoCDError("Argo CD answer has an application without metadata.name")
    spec = _obj(doc.get("spec"), "spec")
    source = _obj(spec.get("source"), "spec.source")
    if not source and isinstance(spec.get("sources"), list) and spec["sources"]:
        source = _obj(spec["sources"][0], "spec.sources[0]")
    automated = _obj(spec.get("syncPolicy"), "spec.syncPolicy").get("automated")
    auto_sync = automated is not None and \
        _obj(automated, "spec.syncPolicy.automated").get("enabled") is not False

    status = _obj(doc.get("status"), "status")
    sync = _obj(status.get("sync"), "status.sync")
    health = _obj(status.get("health"), "status.health")
    op_state = _obj(status.get("operationState"), "status.operationState")
    op_sync = _obj(_obj(op_state.get("operation"), "status.operationState.operation").get("sync"),
                   "status.operationState.operation.sync")
    sync_result = _obj(op_state.get("syncResult"), "status.operationState.syncResult")
    raw_history = status.get("history") or []
    if not isinstance(raw_history, list):
        raise ArgoCDError("Argo CD answer has status.history that is not a list")
    history = tuple(
        HistoryEntry(
            id=_history_id(_obj(item, "status.history[]").get("id")),
            revision=_str(item.get("revision"), "status.history[].revision"),
            deployed_at=_time(item.get("deployedAt"), "status.history[].deployedAt"),
        )
        for item in raw_history
    )
    phase = _str(op_state.get("phase"), "status.operationState.phase")
    return Application(
        name=name,
        project=_str(spec.get("project"), "spec.project"),
        repo_url=_str(source.get("repoURL"), "spec.source.repoURL"),
        path=_str(source.get("path"), "spec.source.path"),
        target_revision=_str(source.get("targetRevision"), "spec.source.targetRevision"),
        sync_status=_str(sync.get("status"), "status.sync.status") or "Unknown",
        sync_revision=_str(sync.get("revision"), "status.sync.revision"),
        health_status=_str(health.get("status"), "status.health.status") or "Unknown",
        health_message=_str(health.get("message"), "status.health.message"),
        operation_phase=phase or None,
        operation_message=_str(op_state.get("message"), "status.operationState.message"),
        history=history,
        auto_sync=auto_sync,
        operation_revision=_str(op_sync.get("revision"), "operation.sync.revision")
        or _str(sync_result.get("revision"), "syncResult.revision"),
    )


def _app_path(name: str, suffix: str = "") -> str:
    return f"/api/v1/applications/{quote(name, safe='')}{suffix}"


class _Api:
    """Sends one request and maps transport errors and error statuses to ArgoCDError subclasses."""

    def __init__(self, client: httpx.Client, secrets: tuple[str, ...]) -> None:
        self._client = client
        self._secrets = tuple(s for s in secrets if s)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def call(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
             params: Mapping[str, str] | None = None, body: Any = None,
             not_found_ok: bool = False) -> Any:
        what = f"Argo CD {method} {path}"
        try:
            response = self._client.request(
                method, path, headers=dict(headers or {}), params=dict(params or {}), json=body,
            )
        except _TRANSIENT as ex:
            raise ArgoCDUnavailable(
                self.redact(f"{what} failed: {type(ex).__name__}: {ex}")) from ex
        except httpx.HTTPError as ex:
            raise ArgoCDError(self.redact(f"{what} failed: {type(ex).__name__}: {ex}")) from ex
        text = self.redact(response.text)
        if response.status_code == 404 and not_found_ok:
            return None
        if response.status_code >= 400:
            message = _error_message(text) or response.reason_phrase
            error_cls = ArgoCDUnavailable if response.status_code >= 500 else ArgoCDError
            raise error_cls(f"{what}: {response.status_code} {message}",
                            status_code=response.status_code, body=text[:_BODY_LIMIT])
        try:
            return response.json()
        except ValueError as ex:
            raise ArgoCDError(f"{what}: {response.status_code} answer is not JSON",
                              status_code=response.status_code, body=text[:_BODY_LIMIT]) from ex


def _error_message(text: str) -> str:
    """`runtimeError.message` (or `.error`) from an error body, or "" if there is none."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(doc, Mapping):
        for key in ("message", "error"):
            if isinstance(doc.get(key), str) and doc[key]:
                return doc[key]
    return ""


def create_session_token(client: httpx.Client, *, username: str, password: str) -> str:
    """A JWT from `POST /api/v1/session` for username/password; ArgoCDError 401 if refused."""
    api = _Api(client, (password,))
    doc = api.call("POST", "/api/v1/session", body={"username": username, "password": password})
    token = _obj(doc, "session").get("token")
    if not isinstance(token, str) or not token:
        raise ArgoCDError("Argo CD POST /api/v1/session: answer has no token", status_code=200)
    return token


class ArgoCDClient:
    """Argo CD applications over HTTP; `client` carries the base URL, timeouts and transport."""

    def __init__(self, client: httpx.Client, token: str) -> None:
        self._api = _Api(client, (token,))
        self._headers = {"Accept": "application/json"}
        if token:  # no token: send no credentials at all (Argo CD answers 401)
            self._headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def login(cls, client: httpx.Client, *, username: str, password: str) -> ArgoCDClient:
        """A client holding a fresh session token for username/password."""
        return cls(client, create_session_token(client, username=username, password=password))

    def __repr__(self) -> str:
        return f"ArgoCDClient(base_url={str(self._api._client.base_url)!r}, token=***)"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._api.call(method, path, headers=self._headers, **kwargs)

    def get_application(self, name: str, *, refresh: str | None = None) -> Application | None:
        """The application, or None if Argo CD does not know it. `refresh`: "normal" or "hard"."""
        if refresh is not None and refresh not in REFRESH_MODES:
            raise ValueError(f"refresh must be one of {sorted(REFRESH_MODES)}, not {refresh!r}")
        doc = self._call("GET", _app_path(name), params={"refresh": refresh} if refresh else None,
                         not_found_ok=True)
        return None if doc is None else parse_application(doc)

    def list_applications(self, selector: str | None = None) -> tuple[Application, ...]:
        """All applications, or those matching a label selector."""
        doc = _obj(self._call("GET", "/api/v1/applications",
                              params={"selector": selector} if selector else None), "list")
        items = doc.get("items") or []  # Go's nil slice arrives as null
        if not isinstance(items, list):
            raise ArgoCDError("Argo CD answer has list items that are not a list")
        return tuple(parse_application(item) for item in items)

    def create_application(self, spec: ApplicationSpec) -> Application:
        """Create the application; ArgoCDError 400 if one with a different spec exists."""
        return parse_application(self._call("POST", "/api/v1/applications",
                                             body=application_body(spec)))

    def ensure_application(self, spec: ApplicationSpec) -> tuple[Application, bool]:
        """The application named `spec.name`, created from `spec` if missing; (app, created)."""
        existing = self.get_application(spec.name)
        if existing is not None:
            return existing, False
        return self.create_application(spec), True

    def sync(self, name: str, *, revision: str, prune: bool = False) -> Application:
        """Start a sync of `name` to `revision`; returns the app with the operation requested."""
        body = {"name": name, "revision": revision, "prune": prune}
        return parse_application(self._call("POST", _app_path(name, "/sync"), body=body))

    def rollback(self, name: str, *, history_id: int) -> Application:
        """Start re-deploying the revision of history entry `history_id` (auto-sync must be off)."""
        if isinstance(history_id, bool) or not isinstance(history_id, int):
            raise TypeError(f"history_id must be an int, not {type(history_id).__name__}")
        body = {"name": name, "id": history_id, "prune": False}
        return parse_application(self._call("POST", _app_path(name, "/rollback"), body=body))

    def terminate_operation(self, name: str) -> None:
        """Stop the running operation; ArgoCDError 400 if none is in progress."""
        self._call("DELETE", _app_path(name, "/operation"))

    def wait_until_synced(self, name: str, *, revision: str, timeout: float,
                          poll_interval: float = 2.0,
                          clock: Callable[[], float] = time.monotonic,
                          sleep: Callable[[float], None] = time.sleep) -> Application:
        """Poll until the sync to `revision` Succeeded and the app is Synced there and Healthy.

        Raises ArgoCDSyncFailed when that operation ends Failed/Error, when it succeeded but the
        app is Degraded, or when `timeout` seconds pass first. State left by an earlier operation
        (another revision) is not judged: it only means ours has not started yet. `revision`
        must be what Argo CD reports in `status.sync.revision` (a commit SHA, not a branch name).
        ArgoCDUnavailable from a poll propagates: the caller's retry policy decides.
        """
        deadline = clock() + timeout
        while True:
            app = self.get_application(name)
            if app is None:
                raise ArgoCDSyncFailed(f"application {name!r} disappeared while waiting for sync",
                                       status_code=404)
            ours = app.operation_revision == revision
            if ours and app.operation_phase in (PHASE_FAILED, PHASE_ERROR):
                raise ArgoCDSyncFailed(f"sync of {name!r} to {revision} failed: {app.message}")
            if ours and app.operation_phase == PHASE_SUCCEEDED:
                if app.health_status == HEALTH_DEGRADED:
                    raise ArgoCDSyncFailed(
                        f"sync of {name!r} to {revision} left it Degraded: {app.message}")
                if (app.sync_status == SYNC_SYNCED and app.sync_revision == revision
                        and app.health_status == HEALTH_HEALTHY):
                    return app
            remaining = deadline - clock()
            if remaining <= 0:
                raise ArgoCDSyncFailed(
                    f"sync of {name!r} to {revision} did not finish within {timeout:g}s: "
                    f"{app.message}")
            sleep(min(poll_interval, remaining))
