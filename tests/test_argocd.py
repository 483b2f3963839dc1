"""ArgoCDClient against the Argo CD emulator over HTTP on loopback, held to the Swagger contract.

Every request and answer the client exchanges goes through `ContractCheckingTransport`, which fails
the test on anything `tests/contracts/argocd/swagger-subset.json` does not allow. Operations take
simulated seconds on a fake clock shared by the emulator and `wait_until_synced`, so nothing sleeps.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gitops.argocd import (
    Application,
    ApplicationSpec,
    ArgoCDClient,
    application_body,
    create_session_token,
    parse_application,
)
from deployments.emulators.argocd import ArgoCDEmulator
from deployments.emulators.server import BackgroundServer
from gitops.errors import ArgoCDError, ArgoCDSyncFailed, ArgoCDUnavailable
from argocd_contract import (  # tests/ is on sys.path (pytest rootdir-relative import)
    SPEC_PATH,
    ArgoCDContract,
    ContractCheckingTransport,
    ContractViolation,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_SPEC = REPO_ROOT.parent / "shared" / "contracts" / "argocd" / "swagger-subset.json"

TOKEN = "tok-3d1f9a-never-print-me"
PASSWORD = "pw-8c2e71-never-print-me"
SYNC_SECONDS = 30.0
REV1 = "1111111111111111111111111111111111111111"
REV2 = "2222222222222222222222222222222222222222"
WEB = ApplicationSpec(name="web", project="default",
                      repo_url="https://git.example.test/acme/deploy.git", path="apps/web",
                      target_revision="main", dest_server="https://kubernetes.default.svc",
                      dest_namespace="web")


class FakeClock:
    """Epoch seconds that move only when `sleep` is called; shared with the emulator's thread."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self.slept.append(seconds)


@pytest.fixture(scope="module")
def contract() -> ArgoCDContract:
    return ArgoCDContract.load()


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emulator(clock: FakeClock) -> ArgoCDEmulator:
    return ArgoCDEmulator(token=TOKEN, password=PASSWORD, clock=clock, sync_seconds=SYNC_SECONDS)


@pytest.fixture()
def server(emulator: ArgoCDEmulator) -> Iterator[BackgroundServer]:
    with emulator.serve() as running:
        yield running


@pytest.fixture()
def wire(contract: ArgoCDContract) -> Iterator[ContractCheckingTransport]:
    transport = ContractCheckingTransport(httpx.HTTPTransport(), contract)
    yield transport
    assert not transport.violations


@pytest.fixture()
def http(server: BackgroundServer, wire: ContractCheckingTransport) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, transport=wire, timeout=5.0) as client:
        yield client


@pytest.fixture()
def argocd(http: httpx.Client) -> ArgoCDClient:
    return ArgoCDClient(http, TOKEN)


def wait(argocd: ArgoCDClient, clock: FakeClock, revision: str, timeout: float = 120.0
         ) -> Application:
    return argocd.wait_until_synced("web", revision=revision, timeout=timeout, poll_interval=5.0,
                                    clock=clock, sleep=clock.sleep)


# ---- the contract itself ------------------------------------------------------------------------

def test_contract_copy_is_identical_to_shared() -> None:
    if not SHARED_SPEC.parent.parent.exists():
        pytest.skip("../shared/contracts is not beside the repository")
    assert SPEC_PATH.read_bytes() == SHARED_SPEC.read_bytes()


def test_contract_lists_the_documented_operations(contract: ArgoCDContract) -> None:
    assert {(op.method, op.path) for op in contract.operations} == {
        ("POST", "/api/v1/session"), ("GET", "/api/v1/applications"),
        ("POST", "/api/v1/applications"), ("GET", "/api/v1/applications/{name}"),
        ("POST", "/api/v1/applications/{name}/sync"),
        ("POST", "/api/v1/applications/{name}/rollback"),
        ("DELETE", "/api/v1/applications/{name}/operation"),
        ("GET", "/api/v1/applications/{applicationName}/resource-tree"),
    }


@pytest.mark.parametrize(("definition", "instance"), [
    ("v1alpha1Application", {"spec": {"source": {"repoUrl": "x"}}}),  # misspelt key
    ("applicationApplicationRollbackRequest", {"id": "abc"}),
    ("applicationApplicationRollbackRequest", {"id": True}),
    ("v1alpha1RevisionHistory", {"id": 1, "deployedAt": "yesterday"}),
    ("runtimeError", {"code": 2**31}),
])
def test_contract_rejects_what_the_spec_does_not_allow(contract: ArgoCDContract, definition: str,
                                                       instance: object) -> None:
    with pytest.raises(ContractViolation):
        contract.validate(definition, instance)


def test_contract_rejects_unknown_paths_and_query_parameters(contract: ArgoCDContract) -> None:
    with pytest.raises(ContractViolation):
        contract.operation("PUT", "/api/v1/applications/web/rollback")
    with pytest.raises(ContractViolation):
        contract.check_request(httpx.Request("GET", "http://x/api/v1/applications/web?bogus=1"))


# ---- the client against the emulator ------------------------------------------------------------

def test_create_sync_and_wait_until_synced_and_healthy(
        argocd: ArgoCDClient, clock: FakeClock, wire: ContractCheckingTransport) -> None:
    app, created = argocd.ensure_application(WEB)
    assert created and app.sync_status == "OutOfSync" and app.history == ()
    assert argocd.ensure_application(WEB) == (argocd.get_application("web"), False)

    started = argocd.sync("web", revision=REV1)
    assert (started.operation_phase, started.health_status) == ("Running", "Progressing")
    assert started.operation_revision == REV1

    done = wait(argocd, clock, REV1)
    assert (done.operation_phase, done.sync_status, done.sync_revision, done.health_status) == (
        "Succeeded", "Synced", REV1, "Healthy")
    assert [(h.id, h.revision) for h in done.history] == [(0, REV1)]
    assert done.history[0].deployed_at is not None
    assert sum(clock.slept) >= SYNC_SECONDS
    assert {"ApplicationService_Create", "ApplicationService_Get",
            "ApplicationService_Sync"} <= wire.operation_ids()


def test_degraded_after_sync_raises_sync_failed(argocd: ArgoCDClient, emulator: ArgoCDEmulator,
                                                clock: FakeClock) -> None:
    argocd.create_application(WEB)
    emulator.degrade_after_next_sync("web", "Deployment \"web\" exceeded its progress deadline")
    argocd.sync("web", revision=REV1)
    with pytest.raises(ArgoCDSyncFailed, match="Degraded.*exceeded its progress deadline"):
        wait(argocd, clock, REV1)


def test_failed_operation_raises_sync_failed(argocd: ArgoCDClient, emulator: ArgoCDEmulator,
                                             clock: FakeClock) -> None:
    argocd.create_application(WEB)
    emulator.fail_next_sync("web", "admission webhook denied the request")
    argocd.sync("web", revision=REV1)
    with pytest.raises(ArgoCDSyncFailed, match="Failed: admission webhook denied"):
        wait(argocd, clock, REV1)


def test_timeout_while_progressing_raises_sync_failed(argocd: ArgoCDClient,
                                                      emulator: ArgoCDEmulator,
                                                      clock: FakeClock) -> None:
    argocd.create_application(WEB)
    emulator.set_sync_seconds(600)
    argocd.sync("web", revision=REV1)
    with pytest.raises(ArgoCDSyncFailed, match="within 30s.*Running.*Progressing"):
        wait(argocd, clock, REV1, timeout=30.0)
    assert sum(clock.slept) == pytest.approx(30.0)


def test_finish_operation_ends_a_long_sync_now(argocd: ArgoCDClient, emulator: ArgoCDEmulator,
                                               clock: FakeClock) -> None:
    argocd.create_application(WEB)
    emulator.set_sync_seconds(600)
    argocd.sync("web", revision=REV1)
    assert argocd.get_application("web").operation_phase == "Running"
    emulator.finish_operation("web")
    done = argocd.get_application("web")
    assert (done.operation_phase, done.sync_revision, done.health_status) == (
        "Succeeded", REV1, "Healthy")
    assert clock.slept == []  # no simulated time passed: the control ended it
    emulator.finish_operation("web")  # nothing running: a no-op, not an error
    assert argocd.get_application("web") == done


def test_unavailable_twice_then_success_with_a_retry_loop(
        argocd: ArgoCDClient, emulator: ArgoCDEmulator, wire: ContractCheckingTransport) -> None:
    argocd.create_application(WEB)
    emulator.fail_next_requests(2)
    failures: list[ArgoCDUnavailable] = []
    for _ in range(3):  # retries belong to the Prefect task; the client makes one call each time
        try:
            app = argocd.sync("web", revision=REV1)
            break
        except ArgoCDUnavailable as ex:
            failures.append(ex)
    assert [f.status_code for f in failures] == [503, 503]
    assert app.operation_revision == REV1
    assert [e.status_code for e in wire.exchanges if e.path.endswith("/sync")] == [503, 503, 200]


def test_rollback_by_history_id_redeploys_that_revision(
        argocd: ArgoCDClient, clock: FakeClock, wire: ContractCheckingTransport) -> None:
    argocd.create_application(WEB)
    for revision in (REV1, REV2):
        argocd.sync("web", revision=revision)
        app = wait(argocd, clock, revision)
    assert [(h.id, h.revision) for h in app.history] == [(0, REV1), (1, REV2)]

    entry = app.history_entry(0)
    assert entry is not None
    argocd.rollback("web", history_id=entry.id)
    rolled = wait(argocd, clock, REV1)
    assert rolled.sync_revision == REV1
    assert [(h.id, h.revision) for h in rolled.history][-1] == (2, REV1)
    sent = [e.request_body for e in wire.exchanges if e.path.endswith("/rollback")]
    assert sent == [{"name": "web", "id": 0, "prune": False}]


def test_rollback_is_refused_with_auto_sync_or_unknown_id(argocd: ArgoCDClient,
                                                          clock: FakeClock) -> None:
    auto = ApplicationSpec(**{**WEB.__dict__, "name": "auto", "auto_sync": True})
    assert argocd.create_application(auto).auto_sync
    with pytest.raises(ArgoCDError, match="auto-sync is enabled") as refused:
        argocd.rollback("auto", history_id=0)
    assert refused.value.status_code == 400
    argocd.create_application(WEB)
    with pytest.raises(ArgoCDError, match="does not have deployment with id 7"):
        argocd.rollback("web", history_id=7)


@pytest.mark.parametrize("token", ["", "wrong-token-0f3c9e"], ids=["missing", "invalid"])
def test_missing_or_invalid_token_is_a_401_without_the_token(http: httpx.Client,
                                                            token: str) -> None:
    client = ArgoCDClient(http, token)
    with pytest.raises(ArgoCDError) as raised:
        client.get_application("web")
    assert raised.value.status_code == 401
    assert not isinstance(raised.value, ArgoCDUnavailable)
    for text in (str(raised.value), raised.value.body, repr(client)):
        assert TOKEN not in text and (not token or token not in text)


def test_login_with_username_and_password(http: httpx.Client, emulator: ArgoCDEmulator) -> None:
    client = ArgoCDClient.login(http, username="admin", password=PASSWORD)
    assert client.list_applications() == ()
    with pytest.raises(ArgoCDError) as refused:
        create_session_token(http, username="admin", password="not-" + PASSWORD)
    assert refused.value.status_code == 401
    assert PASSWORD not in str(refused.value) and PASSWORD not in refused.value.body


def test_unknown_application(argocd: ArgoCDClient) -> None:
    assert argocd.get_application("nope", refresh="hard") is None
    with pytest.raises(ArgoCDError, match='"nope" not found') as raised:
        argocd.sync("nope", revision=REV1)
    assert raised.value.status_code == 404


def test_terminate_operation(argocd: ArgoCDClient, clock: FakeClock) -> None:
    argocd.create_application(WEB)
    argocd.sync("web", revision=REV1)
    argocd.terminate_operation("web")
    with pytest.raises(ArgoCDSyncFailed, match="Operation terminated"):
        wait(argocd, clock, REV1)
    with pytest.raises(ArgoCDError, match="No operation is in progress") as raised:
        argocd.terminate_operation("web")
    assert raised.value.status_code == 400


def test_sync_while_running_is_refused(argocd: ArgoCDClient) -> None:
    argocd.create_application(WEB)
    argocd.sync("web", revision=REV1)
    with pytest.raises(ArgoCDError, match="already in progress") as raised:
        argocd.sync("web", revision=REV2)
    assert raised.value.status_code == 400


def test_create_with_a_different_spec_is_refused(argocd: ArgoCDClient) -> None:
    argocd.create_application(WEB)
    assert argocd.create_application(WEB).name == "web"  # same spec: no-op
    with pytest.raises(ArgoCDError, match="spec is different") as raised:
        argocd.create_application(ApplicationSpec(**{**WEB.__dict__, "path": "apps/other"}))
    assert raised.value.status_code == 400


def test_list_applications_by_label_selector(argocd: ArgoCDClient,
                                             emulator: ArgoCDEmulator) -> None:
    labelled = application_body(ApplicationSpec(**{**WEB.__dict__, "name": "api"}))
    labelled["metadata"]["labels"] = {"team": "payments"}
    emulator.create(labelled)
    emulator.add_application(WEB)
    assert [a.name for a in argocd.list_applications()] == ["api", "web"]
    assert [a.name for a in argocd.list_applications("team=payments")] == ["api"]
    assert argocd.list_applications("team=other") == ()


def test_resource_tree_and_errors_conform(http: httpx.Client, argocd: ArgoCDClient,
                                          clock: FakeClock,
                                          wire: ContractCheckingTransport) -> None:
    argocd.create_application(WEB)
    argocd.sync("web", revision=REV1)
    wait(argocd, clock, REV1)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    tree = http.get("/api/v1/applications/web/resource-tree", headers=headers)
    assert [n["kind"] for n in tree.json()["nodes"]] == ["Deployment", "ReplicaSet", "Service"]
    assert http.get("/api/v1/applications/nope/resource-tree", headers=headers).status_code == 404
    assert "ApplicationService_ResourceTree" in wire.operation_ids()


def test_control_api_injects_faults_over_http(server: BackgroundServer,
                                              argocd: ArgoCDClient) -> None:
    control = httpx.post(f"{server.url}/_emulator/faults/unavailable", json={"count": 1})
    assert control.json()["unavailable_pending"] == 1
    with pytest.raises(ArgoCDUnavailable):
        argocd.list_applications()
    assert argocd.list_applications() == ()
    argocd.create_application(WEB)
    httpx.put(f"{server.url}/_emulator/sync-seconds", json={"seconds": 600})
    assert argocd.sync("web", revision=REV1).operation_phase == "Running"
    assert httpx.post(f"{server.url}/_emulator/applications/web/finish-operation").status_code == 200
    assert argocd.get_application("web").operation_phase == "Succeeded"
    assert httpx.post(f"{server.url}/_emulator/applications/nope/finish-operation"
                      ).status_code == 400
    assert httpx.put(f"{server.url}/_emulator/auth", json={"required": False}).status_code == 200
    assert TOKEN not in httpx.get(f"{server.url}/_emulator/state").text


def test_connection_refused_is_unavailable(emulator: ArgoCDEmulator) -> None:
    server = emulator.serve()
    server.stop()
    with httpx.Client(base_url=server.url, timeout=2.0) as http:
        with pytest.raises(ArgoCDUnavailable) as raised:
            ArgoCDClient(http, TOKEN).get_application("web")
    assert raised.value.status_code is None and TOKEN not in str(raised.value)


# ---- error mapping off the contract (deliberately malformed answers) ----------------------------

def _answering(status: int, content: bytes, content_type: str = "application/json") -> ArgoCDClient:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(status, content=content,
                                       headers={"content-type": content_type}))
    return ArgoCDClient(httpx.Client(base_url="http://argocd.invalid", transport=transport), TOKEN)


def test_5xx_without_json_is_unavailable() -> None:
    with pytest.raises(ArgoCDUnavailable) as raised:
        _answering(502, b"<html>Bad Gateway</html>", "text/html").list_applications()
    assert raised.value.status_code == 502


@pytest.mark.parametrize("content", [b"not json", b'{"metadata": {}}', b'{"metadata": []}',
                                     b'{"metadata": {"name": "w"}, "status": {"history": '
                                     b'[{"id": "x"}]}}'])
def test_unreadable_answers_are_argocd_errors(content: bytes) -> None:
    with pytest.raises(ArgoCDError) as raised:
        _answering(200, content).get_application("w")
    assert not isinstance(raised.value, ArgoCDUnavailable)


def test_parse_application_reads_multi_source_and_auto_sync() -> None:
    doc = application_body(ApplicationSpec(**{**WEB.__dict__, "auto_sync": True}))
    doc["spec"]["sources"] = [doc["spec"].pop("source")]
    app = parse_application(doc)
    assert (app.repo_url, app.path, app.auto_sync, app.operation_phase) == (
        WEB.repo_url, WEB.path, True, None)


# ---- serving ------------------------------------------------------------------------------------

def test_background_server_refuses_non_loopback_hosts(emulator: ArgoCDEmulator) -> None:
    with pytest.raises(ValueError, match="loopback"):
        BackgroundServer(emulator.asgi_app(), host="0.0.0.0")


def test_cli_serves_until_killed(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "deployments.emulators.argocd", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert TOKEN not in line
        url = line.rsplit(" ", 1)[-1].strip()
        with httpx.Client(base_url=url, timeout=5.0) as http:
            assert ArgoCDClient(http, TOKEN).list_applications() == ()
    finally:
        process.terminate()
        process.wait(timeout=10)
