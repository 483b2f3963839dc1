"""`gitops-flows sandbox up|down|status`: a local stand-in for the cloud, on loopback only.

What ``up`` starts (each a real server bound to 127.0.0.1, recorded in ``.sandbox/state.json``):

- moto: S3 (versioned state bucket), DynamoDB (lock table), Route53 (hosted zone);
- the Argo CD emulator and the GitHub emulator (real HTTP, held to the upstream contracts);
- a Prefect server (UI, pause/resume, deployments), unless Prefect is provided by the caller.

and what it prepares: the Python provider in a filesystem mirror with its Terraform CLI config, a
local Git repository holding the infrastructure code (``terraform/`` and ``overlays/``), Prefect
blocks for every credential, and ``.sandbox/env.json`` with the settings that point at all of it.

``up`` is idempotent (a service that answers is left alone); ``down`` stops only what ``up``
started, by the process ids it recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gitops.errors import SandboxError
from deployments.sandbox.provider_install import MIRRORED_NAMESPACE
from deployments.sandbox.aws import (
    LOOPBACK,
    StateBackend,
    ensure_hosted_zone,
    ensure_state_backend,
    free_port,
    sandbox_client,
    wait_for_port,
)

SANDBOX_BACKEND = StateBackend(bucket="gitops-tfstate", lock_table="gitops-tflocks")
SANDBOX_ZONE = "sandbox.internal"
SANDBOX_GRANT = Path(__file__).with_name("grant.toml")
"""The platform grant of the sandbox's environments (a file beside this one, not in the infra repo)."""
SERVICES = ("moto", "argocd", "github", "prefect")


@dataclass
class Service:
    """A process the sandbox started."""

    name: str
    pid: int
    port: int
    log: str

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        if not _is_ours(self):
            return False
        try:
            wait_for_port(LOOPBACK, self.port, timeout=1.0)
        except SandboxError:
            return False
        return True


@dataclass
class SandboxState:
    """What `.sandbox/state.json` records."""

    services: dict[str, Service] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> SandboxState:
        if not path.is_file():
            return cls()
        raw = json.loads(path.read_text())
        return cls(services={k: Service(**v) for k, v in raw.get("services", {}).items()},
                   tokens=dict(raw.get("tokens", {})))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"services": {k: asdict(v) for k, v in self.services.items()},
                                   "tokens": self.tokens}, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def project_root() -> Path:
    """The gitops-flows checkout this code runs from (holds terraform/ and deployments/)."""
    return Path(__file__).resolve().parents[2]


class Sandbox:
    """The local sandbox rooted at ``root`` (default ``<project>/.sandbox``)."""

    def __init__(self, root: Path | None = None, *, source: Path | None = None) -> None:
        self.source = source or project_root()
        self.root = (root or self.source / ".sandbox").resolve()
        self.state_file = self.root / "state.json"
        self.env_file = self.root / "env.json"
        self.cloud_dir = self.root / "cloud"
        self.mirror_dir = self.root / "providers"
        self.cli_config = self.root / "terraform.rc"
        self.repo_dir = self.root / "repos" / "infrastructure.git"
        self.workdir = self.root / "work"
        self.logs = self.root / "logs"
        self.reset_world = False

    # ---- lifecycle -------------------------------------------------------------------------

    def up(self, *, services: tuple[str, ...] = SERVICES, register_blocks: bool = True) -> dict:
        """Start what is not running, prepare everything, return the settings env."""
        for folder in (self.root, self.cloud_dir, self.workdir, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        state = SandboxState.load(self.state_file)
        state.tokens.setdefault("argocd", secrets.token_urlsafe(24))
        state.tokens.setdefault("github", secrets.token_urlsafe(24))
        state.tokens.setdefault("webhook", secrets.token_urlsafe(24))
        for env in ("dev", "staging", "prod"):
            state.tokens.setdefault(f"db-{env}", secrets.token_hex(12))
        started: list[str] = []
        for name in services:
            current = state.services.get(name)
            if current is not None and current.alive():
                continue
            state.services[name] = self._start(name, state)
            started.append(name)
            state.save(self.state_file)
        state.save(self.state_file)
        # moto keeps AWS in memory: a new moto means no state files and no locks, so whatever
        # the sandbox cloud still holds is orphaned. Start the whole world fresh, consistently.
        self.reset_world = "moto" in started and any(self.cloud_dir.iterdir())
        if self.reset_world:
            shutil.rmtree(self.cloud_dir)
            self.cloud_dir.mkdir()

        moto = state.services["moto"].url
        ensure_state_backend(sandbox_client("s3", moto), sandbox_client("dynamodb", moto),
                             SANDBOX_BACKEND)
        ensure_hosted_zone(sandbox_client("route53", moto), SANDBOX_ZONE)
        self._install_provider()
        self._ensure_repository()
        env = self.settings_env(state)
        self.env_file.write_text(json.dumps(env, indent=2))
        if register_blocks and "prefect" in state.services:
            self.register_blocks(state, env["PREFECT_API_URL"])
            if self.reset_world:
                from deployments.blocks import forget_deploy_records

                forget_deploy_records(env["PREFECT_API_URL"])
        return env

    def down(self) -> list[str]:
        """Stop the processes `up` started (and nothing else); return their names."""
        state = SandboxState.load(self.state_file)
        stopped = []
        for name, svc in list(state.services.items()):
            if _is_ours(svc):
                try:
                    os.killpg(svc.pid, signal.SIGTERM)
                    stopped.append(name)
                except OSError:
                    pass
                deadline = time.monotonic() + 10
                while not _gone(svc.pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not _gone(svc.pid):
                    try:
                        os.killpg(svc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    _gone(svc.pid)
            del state.services[name]
        if self.root.exists():
            state.save(self.state_file)
        return stopped

    def status(self) -> list[tuple[str, str, str]]:
        """(service, running|stopped, url) for every service the sandbox knows."""
        state = SandboxState.load(self.state_file)
        rows = []
        for name in SERVICES:
            svc = state.services.get(name)
            if svc is None:
                rows.append((name, "not started", "-"))
            else:
                rows.append((name, "running" if svc.alive() else "stopped", svc.url))
        return rows

    # ---- pieces ----------------------------------------------------------------------------

    def _command(self, name: str, port: int) -> list[str]:
        py = sys.executable
        if name == "moto":
            from deployments.sandbox.aws import _moto_command

            return [*_moto_command(), "-H", LOOPBACK, "-p", str(port)]
        if name == "argocd":
            return [py, "-m", "deployments.emulators.argocd", "--host", LOOPBACK, "--port", str(port)]
        if name == "github":
            return [py, "-m", "deployments.emulators.github", "--host", LOOPBACK, "--port", str(port)]
        if name == "prefect":
            return [str(Path(py).with_name("prefect")), "server", "start", "--host", LOOPBACK,
                    "--port", str(port)]
        raise SandboxError(f"unknown sandbox service {name!r}")

    def _start(self, name: str, state: SandboxState) -> Service:
        port = free_port()
        log = self.logs / f"{name}.log"
        env = dict(os.environ)
        # Tokens reach the emulators through the environment, never the command line.
        env[f"{name.upper()}_EMULATOR_TOKEN"] = state.tokens.get(name, "")
        if name == "prefect":
            env["PREFECT_HOME"] = str(self.root / "prefect")
            env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
            env["PREFECT_UI_API_URL"] = f"http://{LOOPBACK}:{port}/api"
        with open(log, "ab") as out:
            proc = subprocess.Popen(self._command(name, port), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                    cwd=self.root)
        timeout = 90.0 if name == "prefect" else 30.0
        try:
            wait_for_port(LOOPBACK, port, timeout, proc)
        except SandboxError as exc:
            proc.kill()
            raise SandboxError(f"sandbox service {name} did not start: {exc}; see {log}") from exc
        if name == "prefect":
            self._wait_prefect_ready(f"http://{LOOPBACK}:{port}/api", log)
        return Service(name=name, pid=proc.pid, port=port, log=str(log))

    @staticmethod
    def _wait_prefect_ready(api_url: str, log: Path, timeout: float = 90.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SandboxError(f"Prefect server at {api_url} not healthy; see {log}")

    def _install_provider(self) -> None:
        from deployments.sandbox.provider_install import install_provider, write_cli_config

        install_provider(self.mirror_dir)
        write_cli_config(self.cli_config, self.mirror_dir)

    def _ensure_repository(self) -> None:
        """A local Git repository holding the infrastructure code, as a team's would."""
        from gitops.git import seed_repository

        if (self.repo_dir / "HEAD").exists():
            return
        seed_repository(self.repo_dir, self.source, self.root / "seed")

    def settings_env(self, state: SandboxState) -> dict[str, str]:
        """The GITOPS_* / PREFECT_* environment that points every stage at the sandbox."""
        moto = state.services["moto"].url
        env = {
            "GITOPS_REPOSITORY_URL": self.repo_dir.as_uri(),
            "GITOPS_REPOSITORY": "acme/infrastructure",
            "GITOPS_WORKDIR": str(self.workdir),
            "GITOPS_TERRAFORM_BINARY": str(Path(sys.executable).with_name("terraform")),
            "GITOPS_PROVIDER_MIRROR": str(self.mirror_dir),
            "GITOPS_PROVIDER_MIRROR_INCLUDE": json.dumps([MIRRORED_NAMESPACE]),
            "GITOPS_GRANT_FILE": str(SANDBOX_GRANT),
            "GITOPS_BACKEND_OVERRIDES": json.dumps(backend_overrides(moto)),
            "GITOPS_EXTRA_TERRAFORM_ENV": json.dumps({"SANDBOX_CLOUD_DIR": str(self.cloud_dir)}),
        }
        if "argocd" in state.services:
            env["GITOPS_ARGOCD_URL"] = state.services["argocd"].url
        if "github" in state.services:
            env["GITOPS_GITHUB_API_URL"] = state.services["github"].url
        if "prefect" in state.services:
            env["PREFECT_API_URL"] = state.services["prefect"].url + "/api"
            env["GITOPS_PREFECT_UI_URL"] = state.services["prefect"].url
        return env

    def register_blocks(self, state: SandboxState, api_url: str) -> None:
        """Store every sandbox credential in Prefect blocks (the only place secrets live)."""
        from deployments.blocks import register_sandbox_blocks

        register_sandbox_blocks(api_url, moto_endpoint=state.services["moto"].url,
                                tokens=state.tokens)

    def clean(self) -> None:
        """Remove the sandbox folder (after `down`)."""
        shutil.rmtree(self.root, ignore_errors=True)


def _is_ours(svc: Service) -> bool:
    """Whether ``svc.pid`` is still the process `up` started (not a reused pid): it leads its own
    process group and its command line names the port it was given."""
    try:
        cmdline = Path(f"/proc/{svc.pid}/cmdline").read_bytes().split(b"\0")
        return os.getpgid(svc.pid) == svc.pid and str(svc.port).encode() in cmdline
    except OSError:
        return False


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaping it when it is our own child)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:
        pass  # not our child: the CLI that started it has exited
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    return False


def backend_overrides(moto_endpoint: str) -> dict[str, str]:
    """-backend-config pairs that point Terraform's S3 backend at the moto server."""
    return {
        "endpoint": moto_endpoint,
        "dynamodb_endpoint": moto_endpoint,
        "force_path_style": "true",
        "skip_credentials_validation": "true",
        "skip_metadata_api_check": "true",
        "skip_region_validation": "true",
    }
