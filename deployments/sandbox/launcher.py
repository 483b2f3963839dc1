"""`gitops-flows sandbox up|down|status`: a local stand-in for the cloud, on loopback only.

What ``up`` starts (each a real server bound to 127.0.0.1, recorded in ``.sandbox/state.json``):

- moto: S3 (versioned state bucket), DynamoDB (lock table), Route53 (hosted zone), enforcing IAM:
  an admin user, and a plan and an apply user per environment (``deployments.sandbox.iam``);
- the Argo CD emulator and the GitHub emulator (real HTTP, held to the upstream contracts);
- a Prefect server (UI, pause/resume, deployments), unless Prefect is provided by the caller.

and what it prepares: the Python provider in a filesystem mirror with its Terraform CLI config, a
local Git repository holding the infrastructure code (``terraform/`` and ``overlays/``), Prefect
blocks for every credential, and ``.sandbox/env.json`` with the settings that point at all of it.

``up`` is idempotent (a service that answers is left alone; a running moto is reused with the keys
recorded in ``state.json``, a new one is bootstrapped again with new keys); ``down`` stops only what
``up`` started, by the process ids it recorded.
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
from collections.abc import Mapping
from typing import Any

from gitops.planstore import new_plan_key_text
from gitops.errors import SandboxError
from deployments.sandbox import iam
from deployments.sandbox.provider_install import MIRRORED_NAMESPACE
from deployments.sandbox.aws import (
    LOOPBACK,
    AccessKey,
    StateBackend,
    ensure_hosted_zone,
    ensure_state_backend,
    free_port,
    moto_command,
    moto_environment,
    sandbox_client,
    wait_for_port,
)

SANDBOX_BACKEND = StateBackend(bucket="gitops-tfstate", lock_table="gitops-tflocks")
SANDBOX_ZONE = "sandbox.internal"
RESULTS_BUCKET = "gitops-prefect-results"
"""Where flow results are persisted (prefect.yaml: PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK), so the
API can read a deploy's or a drift check's report back, whichever worker ran it."""
SANDBOX_GRANT = Path(__file__).with_name("grant.toml")
"""The platform grant of the sandbox's environments (a file beside this one, not in the infra repo)."""
SERVICES = ("moto", "argocd", "github", "prefect", "worker")
"""What `sandbox up` runs. The worker comes last: it needs the blocks and the deployments."""
SERVER_SETTINGS = {
    # Concurrency leases (the deploy slots) on disk: a server restart keeps them.
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


@dataclass
class Service:
    """A process the sandbox started."""

    name: str
    pid: int
    port: int
    log: str
    mark: str = ""
    """For a background run (port 0): an argument its command line has, to know it is ours."""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        if not _is_ours(self):
            return False
        if not self.port:  # a background run, not a server
            return True
        try:
            wait_for_port(LOOPBACK, self.port, timeout=1.0)
        except SandboxError:
            return False
        return True


def deploy_to_pool(source: Path, env: Mapping[str, str]) -> None:
    """The `gitops` process work pool and prefect.yaml's deployments on it (`prefect deploy
    --all` from the project at ``source``), on the API that ``env`` names (PREFECT_API_URL);
    SandboxError saying which command failed and what it printed."""
    prefect = str(Path(sys.executable).with_name("prefect"))
    for args in (["work-pool", "create", "gitops", "--type", "process", "--overwrite"],
                 ["deploy", "--all", "--prefect-file", str(Path(source) / "prefect.yaml")]):
        done = subprocess.run([prefect, "--no-prompt", *args], cwd=source, env=dict(env),
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise SandboxError(f"`prefect {' '.join(args[:2])}` failed: "
                               f"{(done.stdout + done.stderr)[-2000:]}")


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


SANDBOX_REPOSITORY = "acme/infrastructure"
SANDBOX_GITHUB_USERS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # login, e-mail (commits with it are theirs), access to the repository, teams
    ("alice", "alice@acme.example", "write", ("acme/platform",)),
    ("erin", "erin@acme.example", "write", ("acme/platform",)),
    ("bob", "bob@acme.example", "write", ()),
    ("dev", "dev@example.com", "write", ()),  # the author of the tests' commits
    ("mallory", "mallory@acme.example", "read", ()),
)
"""The sandbox's GitHub accounts. prod's rule lets ``acme/platform`` approve."""


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
        state.tokens.setdefault("plan-key", new_plan_key_text())
        for env in ("dev", "staging", "prod"):
            state.tokens.setdefault(f"db-{env}", secrets.token_hex(12))
        started: list[str] = []
        for name in (n for n in services if n != "worker"):
            current = state.services.get(name)
            if current is not None and current.alive():
                if name != "moto" or iam.is_admin_key(current.url, self._admin_key(state)):
                    continue
                # Ours, but not enforcing IAM or not knowing our admin (started by an older
                # sandbox): replace it with one set up as below.
                self._stop(current)
            state.services[name] = self._start(name, state)
            started.append(name)
            if name == "moto":  # at once: until the admin exists, moto answers anyone
                admin = iam.bootstrap_admin(state.services[name].url)
                state.tokens.update(iam.keys_to_tokens({iam.ADMIN_BLOCK: admin}))
            state.save(self.state_file)
        state.save(self.state_file)
        # moto keeps AWS in memory: a new moto means no state files and no locks, so whatever
        # the sandbox cloud still holds is orphaned. Start the whole world fresh, consistently.
        self.reset_world = "moto" in started and any(self.cloud_dir.iterdir())
        if self.reset_world:
            shutil.rmtree(self.cloud_dir)
            self.cloud_dir.mkdir()

        self._ensure_aws(state)
        state.save(self.state_file)
        self._install_provider()
        self._ensure_repository()
        if "github" in state.services:
            self._seed_github(state)
            state.save(self.state_file)
        env = self.settings_env(state)
        self.env_file.write_text(json.dumps(env, indent=2))
        if register_blocks and "prefect" in state.services:
            self.register_blocks(state, env["PREFECT_API_URL"])
            if self.reset_world:
                from deployments.blocks import forget_deploy_records

                forget_deploy_records(env["PREFECT_API_URL"])
        if "worker" in services and "prefect" in state.services:
            state.services["worker"] = self._ensure_worker(state, env)
            state.save(self.state_file)
        return env

    def _ensure_worker(self, state: SandboxState, env: dict[str, str]) -> Service:
        """The `gitops` process pool, prefect.yaml's deployments (`prefect deploy --all`), the
        zombie automation, and one worker on the pool: deploys started from a deployment run
        there, so a prod approval suspends and any worker resumes it."""
        from deployments.automations import HEARTBEAT_SECONDS, ensure_zombie_automation

        prefect = str(Path(sys.executable).with_name("prefect"))
        run_env = {**os.environ, **env, "GITOPS_FLOWS_HOME": str(self.source),
                   "PREFECT_CLI_PROMPT": "false",
                   "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
        log = self.logs / "worker.log"
        deploy_to_pool(self.source, run_env)
        os.environ["PREFECT_API_URL"] = env["PREFECT_API_URL"]
        ensure_zombie_automation()
        current = state.services.get("worker")
        if current is not None and current.alive():
            return current
        mark = "gitops-sandbox-worker"
        with open(log, "ab") as out:
            proc = subprocess.Popen([prefect, "worker", "start", "--pool", "gitops", "--type",
                                     "process", "--limit", "4", "--name", mark],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=run_env, start_new_session=True, cwd=self.source)
        return Service(name="worker", pid=proc.pid, port=0, log=str(log), mark=mark)

    def down(self) -> list[str]:
        """Stop the processes `up` started (and nothing else); return their names."""
        state = SandboxState.load(self.state_file)
        stopped = []
        for name, svc in list(state.services.items()):
            if self._stop(svc):
                stopped.append(name)
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

    def aws_key(self, block: str = iam.ADMIN_BLOCK) -> AccessKey:
        """The access key that the AwsCredentials block ``block`` holds (default: the admin's)."""
        key = iam.key_from_tokens(SandboxState.load(self.state_file).tokens, block)
        if key is None:
            raise SandboxError(f"no access key for {block!r} in {self.state_file}: run `up`")
        return key

    def aws_client(self, service: str, block: str = iam.ADMIN_BLOCK) -> Any:
        """A boto3 client for ``service`` on the sandbox's moto, signed with ``block``'s key."""
        moto = SandboxState.load(self.state_file).services.get("moto")
        if moto is None:
            raise SandboxError("the sandbox's moto is not started: run `up`")
        return sandbox_client(service, moto.url, self.aws_key(block))

    # ---- pieces ----------------------------------------------------------------------------

    @staticmethod
    def _admin_key(state: SandboxState) -> AccessKey | None:
        return iam.key_from_tokens(state.tokens, iam.ADMIN_BLOCK)

    def _ensure_aws(self, state: SandboxState) -> None:
        """The state backend, the zone and every IAM user with its key, signed as the admin;
        the keys land in ``state.tokens`` (an owner-only file)."""
        moto = state.services["moto"].url
        admin = self._admin_key(state)
        if admin is None:
            raise SandboxError("no admin key recorded for the sandbox's moto: run `down`, `up`")
        ensure_state_backend(sandbox_client("s3", moto, admin),
                             sandbox_client("dynamodb", moto, admin), SANDBOX_BACKEND)
        zone_id = ensure_hosted_zone(sandbox_client("route53", moto, admin), SANDBOX_ZONE)
        s3 = sandbox_client("s3", moto, admin)
        if RESULTS_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=RESULTS_BUCKET)
        known = {block: key for block in iam.sandbox_blocks()
                 if (key := iam.key_from_tokens(state.tokens, block)) is not None}
        keys = iam.ensure_principals(moto, admin, iam.sandbox_principals(SANDBOX_BACKEND, zone_id),
                                     known)
        state.tokens.update(iam.keys_to_tokens(keys))

    @staticmethod
    def _stop(svc: Service) -> bool:
        """Stop ``svc`` if it is still the process `up` started; whether it was."""
        if not _is_ours(svc):
            return False
        signalled = True
        try:
            os.killpg(svc.pid, signal.SIGTERM)
        except OSError:
            signalled = False
        deadline = time.monotonic() + 10
        while not _gone(svc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _gone(svc.pid):
            try:
                os.killpg(svc.pid, signal.SIGKILL)
            except OSError:
                pass
            _gone(svc.pid)
        return signalled

    def _command(self, name: str, port: int) -> list[str]:
        py = sys.executable
        if name == "moto":
            return moto_command(LOOPBACK, port, enforce_iam=True)
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
        # moto answers iam.BOOTSTRAP_REQUESTS requests unauthenticated, then enforces IAM.
        env = moto_environment(iam.BOOTSTRAP_REQUESTS if name == "moto" else None)
        # Tokens reach the emulators through the environment, never the command line.
        env[f"{name.upper()}_EMULATOR_TOKEN"] = state.tokens.get(name, "")
        if name == "prefect":
            env["PREFECT_HOME"] = str(self.root / "prefect")
            env.update(SERVER_SETTINGS)
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

    def _seed_github(self, state: SandboxState) -> None:
        """The team on the emulator's GitHub: its accounts (each with a token of its own), who
        has write access and who is in ``acme/platform`` (prod's approvers), and the repository's
        commits read from the sandbox's own Git repository. Seeded on every ``up`` (the emulator
        keeps everything in memory)."""
        from deployments.emulators.github import EmulatorControl

        with EmulatorControl(state.services["github"].url, state.tokens["github"],
                             timeout=10.0) as github:
            for login, email, permission, teams in SANDBOX_GITHUB_USERS:
                token = state.tokens.setdefault(f"github-user-{login}",
                                                secrets.token_urlsafe(24))
                github.add_user(login, token, email)
                github.set_permission(SANDBOX_REPOSITORY, login, permission)
                for team in teams:
                    org, slug = team.split("/")
                    github.add_team_member(org, slug, login)
            github.attach_git(SANDBOX_REPOSITORY, self.repo_dir)

    def start_background(self, name: str, argv: list[str]) -> Service:
        """Run ``argv`` detached, logging to ``logs/<name>.log``, until it ends or `down` stops
        it (its last argument tells it from a reused pid)."""
        state = SandboxState.load(self.state_file)
        current = state.services.get(name)
        if current is not None and current.alive():
            return current
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=self.source)
        state.services[name] = Service(name=name, pid=proc.pid, port=0, log=str(log),
                                       mark=argv[-1])
        state.save(self.state_file)
        return state.services[name]

    def github_token(self, login: str) -> str:
        """The emulator token of the sandbox GitHub account ``login`` (see SANDBOX_GITHUB_USERS)."""
        token = SandboxState.load(self.state_file).tokens.get(f"github-user-{login}")
        if token is None:
            known = ", ".join(u[0] for u in SANDBOX_GITHUB_USERS)
            raise SandboxError(f"no sandbox GitHub account {login!r} (there are: {known}); "
                               "is the sandbox up?")
        return token

    def settings_env(self, state: SandboxState) -> dict[str, str]:
        """The GITOPS_* / PREFECT_* environment that points every stage at the sandbox."""
        moto = state.services["moto"].url
        env = {
            "GITOPS_REPOSITORY_URL": self.repo_dir.as_uri(),
            "GITOPS_REPOSITORY": SANDBOX_REPOSITORY,
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

    def provision_environment(self, name: str) -> tuple[str, str]:
        """The platform's step for an environment that needs credentials of its own: a plan and
        an apply IAM user scoped to its state key, their keys in ``state.json`` and in the
        blocks the grant names (``gitops-aws-<env>-plan`` / ``-apply``). Idempotent.

        Saved on the Prefect API of the current settings. Returns the two block names.
        """
        from prefect_aws import AwsCredentials
        from prefect_aws.client_parameters import AwsClientParameters

        from deployments.sandbox.aws import SANDBOX_REGION
        from gitops.config import check_environment_name

        check_environment_name(name)
        state = SandboxState.load(self.state_file)
        moto = state.services["moto"].url
        admin = self._admin_key(state)
        if admin is None:
            raise SandboxError("no admin key recorded for the sandbox's moto: run `up`")
        zone_id = ensure_hosted_zone(sandbox_client("route53", moto, admin), SANDBOX_ZONE)
        principals = [iam.Principal(iam.plan_block(name), iam.plan_policy(name, SANDBOX_BACKEND)),
                      iam.Principal(iam.apply_block(name),
                                    iam.apply_policy(name, SANDBOX_BACKEND, zone_id))]
        known = {p.block: key for p in principals
                 if (key := iam.key_from_tokens(state.tokens, p.block)) is not None}
        keys = iam.ensure_principals(moto, admin, principals, known)
        state.tokens.update(iam.keys_to_tokens(keys))
        state.save(self.state_file)
        for block, key in keys.items():
            if block == iam.ADMIN_BLOCK:
                continue
            AwsCredentials(aws_access_key_id=key.access_key_id,
                           aws_secret_access_key=key.secret_access_key,
                           region_name=SANDBOX_REGION,
                           aws_client_parameters=AwsClientParameters(endpoint_url=moto),
                           ).save(block, overwrite=True)
        return iam.plan_block(name), iam.apply_block(name)

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
        mark = str(svc.port).encode() if svc.port else svc.mark.encode()
        return os.getpgid(svc.pid) == svc.pid and mark in cmdline
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
