"""The receiver process: where its secret and allowlist come from, the dry-run routing, the CLI
commands, and the Prefect launcher against the real test Prefect server (over real HTTP)."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.webhook_server import (
    PrefectLauncher,
    add_webhook_commands,
    build_app,
    load_allowlist,
    load_webhook_secret,
    route_file,
)
from deployments.emulators.server import BackgroundServer
from gitops.errors import ConfigError
from gitops.settings import GitopsSettings
from gitops.webhook import Decision, signature_for

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
