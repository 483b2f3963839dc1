"""The pipeline past one machine, for tests: PostgreSQL, a Prefect server on it, workers, deployments.

Everything here is started by the tests themselves, as CI (a fresh Debian 12 clone, as root)
needs it:

    PostgresServer      Debian's `postgresql` binaries (apt-get installs them when missing; the
                        server runs as the `postgres` user when we are root), a throw-away cluster
                        on a free loopback port.
    PrefectServer       `prefect server start` on that database, with its own PREFECT_HOME and
                        the filesystem lease storage (global concurrency leases survive a
                        restart); `restart()` keeps the port and the database.
    Worker              `prefect worker start --pool gitops --name N --limit L` in its own
                        process group and PREFECT_HOME (a machine of its own); `kill()` is SIGKILL.
    ScaleOut            all of it for one test module, the sandbox's blocks saved on this server,
                        `prefect deploy --all`, and the in-test Prefect client pointed here
                        (`use_api`), with readers for what Prefect recorded about a run.

`scale_out_fixture(environments=..., workers={"w1": 1, "w2": 1})` makes the module-scoped fixture
(tests/test_scale_out.py: `scale_out = scale_out_fixture(...)`): one of each per module, so cases
that need the same set-up belong in the same module (a second module pays ~40-60 s more).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.sandbox.aws import LOOPBACK, free_port, wait_for_port
from infra_repo import InfraRepo

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "gitops"
LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"
SLOT_WAIT_SECONDS = 2
"""How long the server tells a deploy waiting for a busy slot to wait before asking again
(Prefect's default is up to 30 s; the tests would spend it idle)."""


class ScaleOutError(AssertionError):
    """A piece of the scale-out set-up did not start or stop."""


# ---- PostgreSQL ------------------------------------------------------------------------------

def postgres_bin_dir() -> Path:
    """The directory holding PostgreSQL's initdb and pg_ctl; installs Debian's `postgresql` with
    apt-get when it is missing and we may (root, apt-get present)."""
    found = _find_postgres()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ScaleOutError(f"apt-get install postgresql failed: {done.stderr[-2000:]}")
        found = _find_postgres()
    if found is None:
        raise ScaleOutError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return found


def _find_postgres() -> Path | None:
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                    key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if debian:
        return debian[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (password auth), removed on `stop()`.

    As root it runs as the `postgres` user (PostgreSQL refuses root), in a directory of its own
    under the system temp dir (a pytest tmp dir is not readable by another user).
    """

    USER = "prefect"
    DATABASE = "prefect"

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="gitops-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.password = os.urandom(12).hex()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Prefect's server takes (PREFECT_API_DATABASE_CONNECTION_URL)."""
        return (f"postgresql+asyncpg://{self.USER}:{self.password}@{LOOPBACK}:{self.port}/"
                f"{self.DATABASE}")

    def start(self) -> PostgresServer:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.USER,
                  f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale",
                  "--no-sync")
        pwfile.unlink()
        # Durability off: a test database, thrown away after the module.
        options = (f"-p {self.port} -c listen_addresses={LOOPBACK} -k {self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", "60", "-o", options, "start")
        done = subprocess.run(
            [str(self.bin / "createdb"), "-h", LOOPBACK, "-p", str(self.port), "-U", self.USER,
             self.DATABASE], env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ScaleOutError(f"createdb failed: {done.stderr}")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *argv: str, check: bool = True) -> None:
        done = subprocess.run([*self._as_postgres, *argv], cwd=self.root, capture_output=True,
                              text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ScaleOutError(f"{Path(argv[0]).name} failed: {done.stdout}{done.stderr}{log}")


# ---- processes -------------------------------------------------------------------------------

def _stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Signal ``proc``'s process group (it leads one) and wait; SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # children (a flow run's process) may outlive their parent: the group goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


class PrefectServer:
    """`prefect server start` on ``database_url`` with its own home, on a port kept across
    `restart()`."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.database_url = database_url
        self.port = free_port()
        self.log = home / "server.log"
        self.proc: subprocess.Popen | None = None
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASE_STORAGE,
            "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS":
                str(SLOT_WAIT_SECONDS),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            # prefect.yaml's drift cron would put a drift run on a worker at the top of the hour
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        }
        self.env.pop("PREFECT_API_URL", None)

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api"

    @property
    def lease_dir(self) -> Path:
        """Where the filesystem lease storage keeps the global concurrency leases."""
        return self.home / "concurrency_leases"

    def start(self, timeout: float = 120.0) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [PREFECT, "server", "start", "--host", LOOPBACK, "--port", str(self.port)],
                env=self.env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ScaleOutError(f"prefect server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise ScaleOutError(f"prefect server not healthy in {timeout}s: "
                            f"{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc)
            self.proc = None

    def restart(self) -> PrefectServer:
        """Stop and start again on the same port, database and home; returns once healthy."""
        self.stop()
        wait_free(self.port)
        return self.start()


def wait_free(port: int, timeout: float = 30.0) -> None:
    """Until nothing listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            wait_for_port(LOOPBACK, port, timeout=0.2)
        except Exception:  # SandboxError: nobody answers
            return
        time.sleep(0.2)
    raise ScaleOutError(f"port {port} still in use after {timeout}s")


@dataclass
class Worker:
    """A `prefect worker start` process; its flow runs are children in its process group."""

    name: str
    limit: int
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker and every flow run process it started (a machine lost)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop it the polite way (SIGTERM), then whatever remains."""
        _stop_group(self.proc)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# ---- the whole set-up ------------------------------------------------------------------------

@contextmanager
def use_api(api_url: str) -> Iterator[None]:
    """Point this process's Prefect client at ``api_url`` (as prefect_test_harness does for its
    server: the settings context, and the process-global one threads fall back to, e.g. the
    receiver's in BackgroundServer). Restores the previous server on exit."""
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        with prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()):
            yield


@dataclass(frozen=True)
class RunRecord:
    """What Prefect recorded about one finished flow run."""

    id: str
    name: str
    state: str
    worker: str | None
    """The `prefect.worker.name` label the worker gave the run."""
    running: tuple[datetime, datetime]
    """From its first Running state to its final state."""
    logs: tuple[tuple[datetime, str], ...]

    def log_time(self, text: str) -> datetime | None:
        """When the run first logged a line containing ``text``."""
        return next((at for at, message in self.logs if text in message), None)

    def overlaps(self, other: RunRecord) -> bool:
        return self.running[0] < other.running[1] and other.running[0] < self.running[1]


class ScaleOut:
    """One PostgreSQL, one Prefect server on it, workers on the `gitops` process pool, the
    sandbox's blocks and `prefect deploy --all` on that server, and ``repo`` (the infra repo the
    deployments read; GITOPS_REPOSITORY_URL is set to it when deploying)."""

    def __init__(self, root: Path, sandbox: Any, repo_environments: tuple[str, ...]) -> None:
        self.root = root
        self.sandbox = sandbox
        self.repo_environments = repo_environments
        self.postgres = PostgresServer()
        self.server = PrefectServer(root / "server", self.postgres.url)
        self.workers: dict[str, Worker] = {}
        self.repo: InfraRepo | None = None

    def start(self) -> ScaleOut:
        self.postgres.start()
        self.server.start()
        return self

    def prepare(self) -> None:
        """Under `use_api`: blocks, the infra repo with its environments, the pool, deployments."""
        from deployments.blocks import register_sandbox_blocks
        from deployments.sandbox.launcher import SandboxState

        state = SandboxState.load(self.sandbox.state_file)
        register_sandbox_blocks(None, moto_endpoint=state.services["moto"].url,
                                tokens=state.tokens)
        self.repo = InfraRepo.isolated(self.root / "infra", self.repo_environments)
        create_pool()
        self.prefect("deploy", "--all", "--prefect-file", str(REPO_ROOT / "prefect.yaml"))

    def stop(self) -> None:
        for worker in self.workers.values():  # nothing of theirs is left to finish
            worker.kill()
        self.server.stop()
        self.postgres.stop()

    # -- processes ---------------------------------------------------------------------------

    def env(self, home: Path | None = None) -> dict[str, str]:
        """The environment of a CLI call on this server (`prefect deploy` reads
        GITOPS_REPOSITORY_URL and GITOPS_FLOWS_HOME into the deployments' job variables)."""
        env = {**os.environ, "PREFECT_API_URL": self.server.api_url, "PREFECT_CLI_PROMPT": "false",
               "GITOPS_FLOWS_HOME": str(REPO_ROOT), "PYTHONPATH": str(REPO_ROOT),
               "PREFECT_HOME": str(home or self.root / "cli")}
        if self.repo is not None:
            env["GITOPS_REPOSITORY_URL"] = self.repo.url
        return env

    def worker_env(self, home: Path) -> dict[str, str]:
        """A worker's environment: the machine's own settings (grant, provider mirror...), not the
        repository, which reaches its runs from the deployment's job variables only."""
        env = self.env(home)
        env.pop("GITOPS_REPOSITORY_URL", None)
        env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
        return env

    def prefect(self, *args: str, timeout: float = 300.0) -> str:
        """Run the `prefect` CLI against this server; its output (fails the test on an error)."""
        done = subprocess.run([PREFECT, "--no-prompt", *args], cwd=REPO_ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise ScaleOutError(f"prefect {' '.join(args)}: {done.stdout[-3000:]}"
                                f"{done.stderr[-3000:]}")
        return done.stdout

    def start_workers(self, workers: dict[str, int]) -> list[Worker]:
        """Start one worker per entry (name -> --limit) at once; returns once all are online."""
        started = [self.start_worker(name, limit, wait=False) for name, limit in workers.items()]
        for worker in started:
            self.wait_worker_online(worker)
        return started

    def start_worker(self, name: str, limit: int = 1, *, wait: bool = True) -> Worker:
        """`prefect worker start --pool gitops --name NAME --limit LIMIT`, in a home of its own;
        returns once the server lists it online (unless ``wait=False``)."""
        home = self.root / "workers" / name
        home.mkdir(parents=True, exist_ok=True)
        log = open(home / "worker.log", "ab")
        proc = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", POOL, "--type", "process", "--name", name,
             "--limit", str(limit)],
            cwd=REPO_ROOT, env=self.worker_env(home), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        worker = Worker(name, limit, proc, home / "worker.log")
        self.workers[name] = worker
        if wait:
            self.wait_worker_online(worker)
        return worker

    def wait_worker_online(self, worker: Worker, timeout: float = 90.0) -> None:
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                if not worker.alive():
                    raise ScaleOutError(f"worker {worker.name} exited: {worker.log_text()[-3000:]}")
                online = {w.name for w in client.read_workers_for_work_pool(POOL)
                          if w.status.value == "ONLINE"}
                if worker.name in online:
                    return
                time.sleep(0.5)
        raise ScaleOutError(f"worker {worker.name} not online in {timeout}s: "
                            f"{worker.log_text()[-3000:]}")

    # -- runs --------------------------------------------------------------------------------

    def run_deployment(self, name: str, **parameters: Any) -> str:
        """Create a run of deployment ``name`` (e.g. "deploy/deploy") without waiting; its id."""
        from prefect.deployments import run_deployment

        run = run_deployment(name, parameters=parameters, timeout=0)
        return str(run.id)

    def wait_final(self, run_id: str, timeout: float = 300.0) -> Any:
        """The flow run once its state is final (fails the test after ``timeout``)."""
        return self.wait_state(run_id, lambda state: state.is_final(), timeout, "final")

    def wait_state(self, run_id: str, reached: Callable[[Any], bool], timeout: float = 300.0,
                   what: str = "the awaited state") -> Any:
        """The flow run once ``reached(run.state)`` (e.g. ``lambda s: s.is_paused()``); fails the
        test after ``timeout`` with the workers' logs."""
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                run = client.read_flow_run(run_id)
                if run.state is not None and reached(run.state):
                    return run
                time.sleep(0.5)
        raise AssertionError(f"flow run {run_id} not {what} in {timeout}s (it is "
                             f"{run.state.name if run.state else None}); workers' logs:\n"
                             + self.worker_logs())

    def record(self, run_id: str, timeout: float = 300.0) -> RunRecord:
        """Wait for the run to finish, then read its worker, Running interval and logs."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        run = self.wait_final(run_id, timeout)
        with get_client(sync_client=True) as client:
            states = sorted(client.read_flow_run_states(run.id), key=lambda s: s.timestamp)
            # A run's logs reach the server after its final state: wait for the engine's last
            # line ("Finished in state ...", logged once the run's state is final), which a run
            # that crashed or was cancelled from outside never writes.
            ended_itself = run.state.type.value in ("COMPLETED", "FAILED")
            deadline = time.monotonic() + (20 if ended_itself else 0)
            while True:
                logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
                if time.monotonic() > deadline or any(
                        log.message.startswith("Finished in state") and log.task_run_id is None
                        and log.timestamp >= states[-1].timestamp for log in logs):
                    break
                time.sleep(0.5)
        started = next((s.timestamp for s in states if s.type.value == "RUNNING"), None)
        assert started is not None, f"{run.name} never ran: {[s.type for s in states]}"
        return RunRecord(
            id=str(run.id), name=run.name, state=run.state.type.value,
            worker=(run.labels or {}).get("prefect.worker.name"),
            running=(started, states[-1].timestamp),
            logs=tuple(sorted((log.timestamp, log.message) for log in logs)))

    def worker_logs(self, tail: int = 2000) -> str:
        return "\n".join(f"--- {w.name}\n{w.log_text()[-tail:]}" for w in self.workers.values())


def create_pool() -> None:
    """The `gitops` process pool, as `prefect work-pool create gitops --type process` makes it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    pool = WorkPoolCreate(name=POOL, type="process",
                          base_job_template=ProcessWorker.get_default_base_job_template())
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(pool)
        except ObjectAlreadyExists:
            pass


def scale_out_fixture(environments: tuple[str, ...], workers: dict[str, int]) -> Any:
    """A module-scoped fixture: ScaleOut with ``environments`` in its infra repo and one worker
    per ``workers`` entry (name -> --limit); the in-test client points at its server meanwhile."""

    @pytest.fixture(scope="module")
    def scale_out(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
        scale = ScaleOut(tmp_path_factory.mktemp("scale-out"), sandbox, environments)
        try:
            scale.start()
            with use_api(scale.server.api_url):
                scale.prepare()
                scale.start_workers(workers)
                yield scale
        finally:
            scale.stop()

    return scale_out
