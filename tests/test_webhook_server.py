"""The receiver process: where its secret and allowlist come from, the dry-run routing, the CLI
commands, the Prefect launcher against the real test Prefect server (over real HTTP), and the
guard against slow or hostile clients (real uvicorn, raw sockets on loopback)."""

from __future__ import annotations

import argparse
import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect import flow
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput

from deployments.webhook_server import (
    PrefectLauncher,
    ReceiverLimits,
    UnverifiedBodyGuard,
    add_webhook_commands,
    build_app,
    load_allowlist,
    load_limits,
    load_webhook_secret,
    route_file,
)
from deployments.emulators.server import BackgroundServer
from gitops.approval import ApprovalInput
from gitops.errors import ConfigError
from gitops.settings import GitopsSettings
from gitops.receiver import Decision, signature_for
from webhook_fakes import FakeLauncher

CONTRACTS = Path(__file__).resolve().parent / "contracts" / "github"
REPO = "Codertocat/Hello-World"
SECRET = "whsec-test-not-a-real-secret"
SETTINGS = GitopsSettings(webhook_secret_block="test-webhook-secret")


class BlockStore:
    """A typed stand-in for `tasks.credentials.load_secret`: named values, or a failure."""

    def __init__(self, values: dict[str, str] | None = None,
                 error: Exception | None = None) -> None:
        self.values = values or {}
        self.error = error
        self.asked: list[str] = []

    def load(self, name: str) -> str:
        self.asked.append(name)
        if self.error is not None:
            raise self.error
        if name not in self.values:
            raise ConfigError(f"Secret block {name!r} not found")
        return self.values[name]


# -- the secret ----------------------------------------------------------------------------------


def test_the_secret_comes_from_the_block_first():
    store = BlockStore({"test-webhook-secret": f"  {SECRET}\n"})
    secret = load_webhook_secret(SETTINGS, environ={"GITHUB_WEBHOOK_SECRET": "from-env"},
                                 load_block=store.load)
    assert secret == SECRET.encode()
    assert store.asked == ["test-webhook-secret"]


@pytest.mark.parametrize("store", [BlockStore(), BlockStore(error=httpx.ConnectError("down"))],
                         ids=["no-block", "api-down"])
def test_the_env_var_is_the_fallback(store):
    assert load_webhook_secret(SETTINGS, environ={"GITHUB_WEBHOOK_SECRET": SECRET},
                               load_block=store.load) == SECRET.encode()


@pytest.mark.parametrize("store, environ", [
    (BlockStore(), {}),
    (BlockStore(), {"GITHUB_WEBHOOK_SECRET": "   "}),
    (BlockStore({"test-webhook-secret": " "}), {}),
    (BlockStore(error=httpx.ConnectError("down")), {}),
], ids=["nothing", "blank-env", "blank-block", "api-down"])
def test_no_secret_refuses_to_start_and_says_how_to_fix_it(store, environ):
    with pytest.raises(ConfigError) as caught:
        load_webhook_secret(SETTINGS, environ=environ, load_block=store.load)
    message = str(caught.value)
    assert "refusing to start" in message
    assert "test-webhook-secret" in message and "GITHUB_WEBHOOK_SECRET" in message


def test_build_app_refuses_to_start_without_a_secret():
    with pytest.raises(ConfigError):
        build_app(SETTINGS, environ={"GITOPS_REPOSITORIES": REPO}, load_block=BlockStore().load)


# -- the allowlist -------------------------------------------------------------------------------


@pytest.mark.parametrize("environ, expected", [
    ({"GITOPS_REPOSITORIES": "acme/infra, acme/other ,"}, {"acme/infra", "acme/other"}),
    ({"GITOPS_REPOSITORIES": "acme/infra", "GITOPS_REPOSITORY": "acme/x"}, {"acme/infra"}),
    ({"GITOPS_REPOSITORY": "acme/infrastructure"}, {"acme/infrastructure"}),
])
def test_allowlist(environ, expected):
    assert load_allowlist(environ) == expected


@pytest.mark.parametrize("environ", [{}, {"GITOPS_REPOSITORIES": " , "},
                                     {"GITOPS_REPOSITORIES": "acme/infra,not a repo"},
                                     {"GITOPS_REPOSITORIES": "https://github.com/acme/infra"}])
def test_a_missing_or_malformed_allowlist_is_refused(environ):
    with pytest.raises(ConfigError):
        load_allowlist(environ)


# -- dry run -------------------------------------------------------------------------------------


def test_route_file_pull_request_opened():
    result = route_file("pull_request", CONTRACTS / "pull_request.opened.1.json", "d-1",
                        allowlist=frozenset({REPO}))
    assert result == {
        "decision": "run", "reason": "pull request #2 opened", "deployment": "pr-plan/pr-plan",
        "parameters": {"repository": REPO, "pr_number": 2,
                       "head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
                       "base_ref": "master"},
        "idempotency_key": "pr-plan/pr-plan:codertocat/hello-world"
                           "#2@ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    }


@pytest.mark.parametrize("event, name, decision, deployment", [
    ("push", "push.default-branch.1.json", "run", "deploy-main/deploy-main"),
    ("push", "push.tag.1.json", "ignore", None),
    ("pull_request", "pull_request.closed-merged.1.json", "ignore", None),
    ("ping", "ping.1.json", "ignore", None),
])
def test_route_file_other_events(event, name, decision, deployment):
    repository = json.loads((CONTRACTS / name).read_text())["repository"]["full_name"]
    result = route_file(event, CONTRACTS / name, allowlist=frozenset({repository.lower()}))
    assert (result["decision"], result["deployment"]) == (decision, deployment)
    assert set(result) == {"decision", "reason", "deployment", "parameters", "idempotency_key"}


def test_route_file_says_when_the_receiver_would_refuse():
    result = route_file("push", CONTRACTS / "push.default-branch.1.json",
                        allowlist=frozenset({"acme/infra"}))
    assert result["decision"] == "refuse" and result["status"] == 403
    assert "allowlist" in result["reason"]


# -- command line --------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="gitops-flows")
    add_webhook_commands(root.add_subparsers(dest="command", required=True))
    return root


def test_cli_webhook_serve_defaults_to_loopback():
    args = parser().parse_args(["webhook", "serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    args = parser().parse_args(["webhook", "serve", "--host", "127.0.0.2", "--port", "9001"])
    assert (args.host, args.port) == ("127.0.0.2", 9001)


def test_cli_webhook_route_prints_the_decision(capsys, monkeypatch):
    monkeypatch.setenv("GITOPS_REPOSITORIES", REPO)
    args = parser().parse_args(["webhook", "route", "--event", "push", "--delivery", "abc",
                                str(CONTRACTS / "push.default-branch.1.json")])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["deployment"] == "deploy-main/deploy-main"
    assert printed["parameters"]["ref"] == "refs/heads/master"

    monkeypatch.setenv("GITOPS_REPOSITORIES", "acme/infra")
    assert args.func(args) == 1
    assert json.loads(capsys.readouterr().out)["decision"] == "refuse"


# -- the Prefect launcher (real Prefect server) --------------------------------------------------


@pytest.fixture(scope="module")
def target_deployment(prefect_api: None) -> str:
    """A deployment the launcher can start: the real pr-plan flow, registered without a worker."""
    from flows.pr_plan import pr_plan

    pr_plan.to_deployment(name="pr-plan").apply()
    return "pr-plan/pr-plan"


def decision(key: str, sha: str = "a" * 40) -> Decision:
    return Decision("run", "test", deployment="pr-plan/pr-plan",
                    parameters={"repository": REPO, "pr_number": 7, "head_sha": sha,
                                "base_ref": "main"},
                    idempotency_key=key, delivery_id="delivery-1")


def read_run(run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(run_id))


def test_launcher_creates_one_run_per_idempotency_key(target_deployment):
    launcher = PrefectLauncher()
    key = f"test-{uuid.uuid4()}"
    first = launcher.launch(decision(key))
    assert launcher.launch(decision(key)) == first
    other = launcher.launch(decision(f"test-{uuid.uuid4()}", sha="b" * 40))
    assert other != first

    run = read_run(first)
    assert run.parameters["head_sha"] == "a" * 40 and run.parameters["pr_number"] == 7
    assert run.state is not None and run.state.is_scheduled()  # timeout=0: not waited for
    assert {"gitops", "webhook", "delivery:delivery-1"} <= set(run.tags)


def test_launcher_refuses_an_ignore_decision():
    with pytest.raises(ValueError):
        PrefectLauncher().launch(Decision("ignore", "pong"))


class NeedsAToken(RunInput):
    """A form the receiver's wake answer does not fit (a required field it never sends)."""

    token: str


@flow
def waits_for_approval(environment: str, form: str = "approval") -> Any:
    """Stands in for deploy/rollback: pauses for the approval form and returns the answer."""
    wait_for = ApprovalInput if form == "approval" else NeedsAToken
    return pause_flow_run(wait_for_input=wait_for, timeout=60, poll_interval=1)


@contextmanager
def paused_run(environment: str, form: str = "approval") -> Iterator[tuple[str, list[Any]]]:
    """Run `waits_for_approval` in a background thread until it is paused: (run id, answers)."""
    from deployments.approvals import paused_approvals

    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(
        waits_for_approval(environment, form)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (waiting := paused_approvals(environment)):
        assert time.monotonic() < deadline and thread.is_alive(), "the run never paused"
        time.sleep(0.2)
    yield waiting[0].run_id, answers
    thread.join(timeout=60)


def wake_decision(environment: str) -> Decision:
    return Decision("wake", "test", parameters={
        "repository": REPO, "environment": environment, "issue_number": 3, "comment_id": 11,
        "command": "approve"}, delivery_id="delivery-w")


def test_launcher_wakes_the_run_waiting_for_the_environment_and_only_that(prefect_api):
    launcher, environment = PrefectLauncher(), f"wake-{uuid.uuid4().hex[:8]}"
    assert launcher.wake(wake_decision(environment)) == []  # nothing paused for it
    with paused_run(environment) as (run_id, answers):
        assert launcher.wake(wake_decision(f"other-{uuid.uuid4().hex[:8]}")) == []
        assert read_run(run_id).state.is_paused()
        assert launcher.wake(wake_decision(environment)) == [run_id]
    [answer] = answers
    assert isinstance(answer, ApprovalInput)
    assert (answer.check_github, answer.approve, answer.approver, answer.reason) == (
        True, False, "", "GitHub comment 11 on #3")
    assert launcher.wake(wake_decision(environment)) == []  # resumed: no longer waits


def test_a_resume_prefect_refuses_is_skipped_not_an_error(prefect_api):
    launcher, environment = PrefectLauncher(), f"wake-{uuid.uuid4().hex[:8]}"
    with paused_run(environment, form="token") as (run_id, answers):
        assert launcher.wake(wake_decision(environment)) == []  # the input does not fit
        assert read_run(run_id).state.is_paused()
        resume_flow_run(uuid.UUID(run_id), run_input={"token": "t"})
    assert [a.token for a in answers] == ["t"]


def test_launcher_refuses_to_wake_for_a_run_decision():
    with pytest.raises(ValueError):
        PrefectLauncher().wake(decision("k"))


@pytest.fixture()
def receiver(target_deployment: str) -> Iterator[str]:
    store = BlockStore({"test-webhook-secret": SECRET})
    app = build_app(SETTINGS, environ={"GITOPS_REPOSITORIES": REPO}, load_block=store.load)
    with BackgroundServer(app) as server:
        yield server.url


def deliver(url: str, name: str, delivery: str, secret: str = SECRET) -> httpx.Response:
    body = (CONTRACTS / name).read_bytes()
    return httpx.post(f"{url}/webhooks/github", content=body, timeout=30, headers={
        "X-GitHub-Event": name.split(".")[0], "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature_for(secret.encode(), body),
        "Content-Type": "application/json"})


def test_a_signed_delivery_starts_one_flow_run_even_when_redelivered(receiver):
    first = deliver(receiver, "pull_request.opened.1.json", "d-1")
    assert first.status_code == 202, first.text
    again = deliver(receiver, "pull_request.opened.1.json", "d-2")  # GitHub redelivery
    assert again.status_code == 202
    assert again.json()["run_id"] == first.json()["run_id"]
    run = read_run(first.json()["run_id"])
    assert run.parameters == {"repository": REPO, "pr_number": 2, "base_ref": "master",
                              "head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821"}


def test_a_wrongly_signed_delivery_starts_nothing(receiver):
    response = deliver(receiver, "pull_request.opened.1.json", "d-3", secret="wrong")
    assert response.status_code == 401


def test_a_deployment_that_does_not_exist_answers_503_so_github_can_redeliver(receiver):
    # push.default-branch routes to deploy-main/deploy-main; make sure this server does not have
    # it (other tests in the session deploy prefect.yaml, and redeploy it themselves).
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.delete_deployment(client.read_deployment_by_name("deploy-main/deploy-main").id)
        except ObjectNotFound:
            pass
    response = deliver(receiver, "push.default-branch.1.json", "d-4")
    assert response.status_code == 503


# -- slow or hostile clients (real uvicorn on loopback, raw sockets) -----------------------------


class RawClient:
    """One HTTP/1.1 request written by hand over a loopback socket: headers now, body at will."""

    def __init__(self, port: int, *, content_length: int | None = 1000, chunked: bool = False,
                 extra: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = [b"POST /webhooks/github HTTP/1.1", b"Host: 127.0.0.1",
                b"Content-Type: application/json", b"X-GitHub-Event: ping",
                b"X-GitHub-Delivery: stalled-1", b"X-Hub-Signature-256: sha256=" + b"0" * 64]
        if content_length is not None:
            head.append(b"Content-Length: %d" % content_length)
        if chunked:
            head.append(b"Transfer-Encoding: chunked")
        self.sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + extra)

    def send(self, data: bytes) -> bool:
        """Send more of the body; False once the server has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def answered(self) -> bool:
        """Whether the server has written something (or closed) without waiting."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def response(self, timeout: float) -> tuple[int, dict[str, str], bool]:
        """(status, headers, closed): one whole response (bounded by ``timeout``), and whether
        the server then closed the connection."""
        self.sock.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv()
            assert chunk, f"connection closed before a response: {data[:200]!r}"
            data += chunk
        raw_head, body = data.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = self._recv()
            assert chunk, "connection closed in the middle of the response"
            body += chunk
        self.sock.settimeout(1.0)
        try:
            closed = self._recv() == b""
        except TimeoutError:
            closed = False
        return int(lines[0].split()[1]), headers, closed

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def close(self) -> None:
        self.sock.close()


class BodyCounter:
    """ASGI middleware that counts the body bytes the app under it took from the server."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.received = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@dataclass
class Guarded:
    server: BackgroundServer
    app: UnverifiedBodyGuard
    launcher: FakeLauncher
    counter: BodyCounter

    def wait_held(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.app.held == count:
                return True
            time.sleep(0.01)
        return self.app.held == count


@contextmanager
def guarded_receiver(**limits: Any) -> Iterator[Guarded]:
    launcher = FakeLauncher()
    app = build_app(SETTINGS, environ={"GITOPS_REPOSITORIES": REPO},
                    load_block=BlockStore({"test-webhook-secret": SECRET}).load,
                    launcher=launcher, limits=ReceiverLimits(**limits))
    counter = BodyCounter(app)
    with BackgroundServer(counter) as server:
        yield Guarded(server, app, launcher, counter)


def test_a_stalled_body_gets_408_at_the_deadline_and_the_connection_closed():
    with guarded_receiver(body_timeout=1.0) as rx:
        client = RawClient(rx.server.port, extra=b'{"zen": ')  # 8 of 1000 bytes, then nothing
        start = time.monotonic()
        status, headers, closed = client.response(timeout=6)
        elapsed = time.monotonic() - start
        client.close()
        assert status == 408 and headers["connection"] == "close" and closed
        assert 0.9 <= elapsed < 4, elapsed
        assert rx.wait_held(0)
        assert rx.launcher.calls == []


def test_a_trickling_body_gets_408_too_the_deadline_is_for_the_whole_body():
    with guarded_receiver(body_timeout=1.0) as rx:
        client = RawClient(rx.server.port)
        start = time.monotonic()
        for _ in range(40):  # one byte every 0.1 s: never idle, never done
            if client.answered() or not client.send(b" "):
                break
            time.sleep(0.1)
        status, _, closed = client.response(timeout=6)
        elapsed = time.monotonic() - start
        client.close()
        assert status == 408 and closed
        assert 0.9 <= elapsed < 4, elapsed


def test_beyond_the_cap_of_unverified_bodies_a_delivery_gets_503_at_once_and_no_slot_leaks():
    with guarded_receiver(body_timeout=2.0, max_unverified=3) as rx:
        stalled = [RawClient(rx.server.port) for _ in range(3)]
        assert rx.wait_held(3)
        extra = RawClient(rx.server.port)
        start = time.monotonic()
        status, headers, closed = extra.response(timeout=5)
        assert status == 503 and time.monotonic() - start < 1.0
        assert headers["retry-after"] == "5" and closed
        extra.close()
        for client in stalled:  # the held ones time out...
            assert client.response(timeout=6)[0] == 408
            client.close()
        assert rx.wait_held(0)  # ...and give their slots back
        response = deliver(rx.server.url, "pull_request.opened.1.json", "after-the-storm")
        assert response.status_code == 202, response.text
        assert len(rx.launcher.calls) == 1


def test_a_client_that_disconnects_mid_body_frees_its_slot_at_once():
    with guarded_receiver(body_timeout=60.0, max_unverified=1) as rx:
        client = RawClient(rx.server.port, extra=b'{"zen"')
        assert rx.wait_held(1)
        assert deliver(rx.server.url, "ping.1.json", "while-full").status_code == 503
        client.close()
        assert rx.wait_held(0, timeout=5)  # long before the 60 s deadline
        response = deliver(rx.server.url, "ping.1.json", "after-disconnect")
        assert response.status_code == 200, response.text


def test_an_oversized_body_is_refused_while_it_streams_in():
    with guarded_receiver(max_body_bytes=16_384, max_unverified=1) as rx:
        declared = RawClient(rx.server.port, content_length=10_000_000)
        assert declared.response(timeout=5)[0] == 413  # from Content-Length, nothing read
        declared.close()

        chunked = RawClient(rx.server.port, content_length=None, chunked=True)
        for _ in range(2000):  # at most 2 MB, in 1 KiB chunks, until the server answers
            if chunked.answered() or not chunked.send(b"400\r\n" + b"x" * 1024 + b"\r\n"):
                break
        status, _, closed = chunked.response(timeout=5)
        chunked.close()
        assert status == 413 and closed
        # The guard stopped reading at the limit: beyond it, at most what uvicorn had already
        # buffered for one receive (its flow control pauses reading at 64 KiB).
        assert rx.counter.received <= 16_384 + 2 * 65_536, rx.counter.received
        assert rx.wait_held(0)
        assert deliver(rx.server.url, "ping.1.json", "after-413").status_code == 200


def test_refusals_of_every_kind_leave_no_slot_held():
    with guarded_receiver(body_timeout=1.0, max_unverified=1) as rx:
        assert deliver(rx.server.url, "ping.1.json", "bad-sig", secret="wrong").status_code == 401
        empty = RawClient(rx.server.port, content_length=None)  # no length, not chunked: no body
        status, _, closed = empty.response(timeout=5)
        assert status == 401 and not closed  # the body was read: the connection can go on
        empty.close()
        assert rx.wait_held(0)
        response = httpx.get(f"{rx.server.url}/healthz", timeout=5)  # not guarded
        assert response.status_code == 200
        assert deliver(rx.server.url, "pull_request.opened.1.json", "ok").status_code == 202


@pytest.mark.parametrize("environ, expected", [
    ({}, ReceiverLimits(10.0, 64)),
    ({"GITOPS_WEBHOOK_BODY_TIMEOUT_SECONDS": "2.5", "GITOPS_WEBHOOK_MAX_UNVERIFIED": " 8 "},
     ReceiverLimits(2.5, 8)),
])
def test_limits_come_from_the_environment(environ, expected):
    assert load_limits(environ) == expected


@pytest.mark.parametrize("environ", [
    {"GITOPS_WEBHOOK_BODY_TIMEOUT_SECONDS": "soon"}, {"GITOPS_WEBHOOK_BODY_TIMEOUT_SECONDS": "0"},
    {"GITOPS_WEBHOOK_BODY_TIMEOUT_SECONDS": "inf"}, {"GITOPS_WEBHOOK_MAX_UNVERIFIED": "0"},
    {"GITOPS_WEBHOOK_MAX_UNVERIFIED": "many"},
])
def test_malformed_limits_refuse_to_start(environ):
    with pytest.raises(ConfigError):
        load_limits(environ)


def test_cli_webhook_serve_takes_the_limits():
    args = parser().parse_args(["webhook", "serve", "--body-timeout", "3", "--max-unverified", "9"])
    assert (args.body_timeout, args.max_unverified) == (3.0, 9)
    args = parser().parse_args(["webhook", "serve"])
    assert (args.body_timeout, args.max_unverified) == (None, None)
