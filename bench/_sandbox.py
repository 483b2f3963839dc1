"""The sandbox stack on a moto S3 backend, set up for benchmarks (like the real pipeline runs it).

    with SandboxStack(tmp) as stack:          # copies the stack, installs the provider, starts moto
        runner = stack.runner("env-01", worker_count=45)   # initialised on its own state key
        runner.plan(tmp / "plan.tfplan")

Each environment gets its own state key in the moto bucket, its own ``TF_DATA_DIR`` and its own
tfvars file; all share one copy of ``terraform/stacks/sandbox`` (init runs serially, in setup).
Nothing is left running or on disk after ``__exit__``.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from deployments.sandbox.launcher import backend_overrides
from deployments.sandbox.aws import (
    SANDBOX_ACCESS_KEY,
    SANDBOX_REGION,
    SANDBOX_SECRET_KEY,
    MotoServer,
    StateBackend,
    ensure_state_backend,
    sandbox_client,
)
from gitops.errors import TerraformError
from deployments.sandbox.provider_install import install_provider, write_cli_config
from gitops.terraform import TerraformRunner, TerraformSettings

REPO = Path(__file__).resolve().parent.parent
STACK = Path("terraform/stacks/sandbox")
MODULES = Path("terraform/sandbox/modules")
BACKEND = StateBackend(bucket="bench-tfstate", lock_table="bench-tflocks")
TERRAFORM = str(Path(sys.executable).with_name("terraform"))


def terraform_crash(exc: BaseException) -> str | None:
    """The first line of a terraform crash (a Go panic) behind ``exc``, or None for other errors.

    Seen here: terraform 1.0.3 sometimes panics inside ``floor(var.replicas)`` (the ``service``
    module's variable validation) when 46 module instances evaluate it concurrently; a benchmark
    pass hit by it is run again and the crash reported, rather than the whole run lost.
    """
    stderr = getattr(exc, "stderr", "") if isinstance(exc, TerraformError) else ""
    if not stderr or "panic" not in stderr:
        return None
    lines = [line.strip() for line in stderr.splitlines() if "panic" in line]
    return lines[0][:200] if lines else "panic"


@dataclass(frozen=True)
class Environment:
    """One benchmark environment: its runner and where its files live."""

    name: str
    runner: TerraformRunner
    var_file: Path
    plan_dir: Path


class SandboxStack:
    """A private copy of the sandbox stack, its provider mirror, cloud dir and a moto server."""

    def __init__(self, work: Path) -> None:
        self.work = Path(work)
        self.stack_dir = self.work / STACK
        self.cloud_dir = self.work / "cloud"
        self.moto = MotoServer(log_path=self.work / "moto.log")

    def __enter__(self) -> SandboxStack:
        ignore = shutil.ignore_patterns(".terraform*", "*.tfstate*")
        for rel in (STACK, MODULES):
            shutil.copytree(REPO / rel, self.work / rel, ignore=ignore)
        mirror = self.work / "mirror"
        install_provider(mirror, sys.executable)
        self.cli_config = write_cli_config(self.work / "terraform.rc", mirror)
        self.cloud_dir.mkdir(parents=True, exist_ok=True)
        self.moto.start()
        try:
            ensure_state_backend(sandbox_client("s3", self.moto.endpoint),
                                 sandbox_client("dynamodb", self.moto.endpoint), BACKEND)
        except BaseException:
            self.moto.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.moto.stop()

    @property
    def terraform_env(self) -> dict[str, str]:
        """What terraform (and the provider it launches) needs beyond the runner's forced vars."""
        return {
            "TF_CLI_CONFIG_FILE": str(self.cli_config),
            "SANDBOX_CLOUD_DIR": str(self.cloud_dir),
            "AWS_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET_KEY,
            "AWS_DEFAULT_REGION": SANDBOX_REGION,
        }

    def backend_config(self, name: str) -> dict[str, str]:
        """-backend-config pairs for environment ``name``: its own key in the moto bucket."""
        return {"bucket": BACKEND.bucket, "key": f"bench/{name}/terraform.tfstate",
                "region": BACKEND.region, "dynamodb_table": BACKEND.lock_table,
                **backend_overrides(self.moto.endpoint)}

    def environment(self, name: str, *, worker_count: int) -> Environment:
        """An initialised runner for environment ``name`` (not thread-safe: call it serially)."""
        env_dir = self.work / "envs" / name
        env_dir.mkdir(parents=True, exist_ok=True)
        var_file = env_dir / "bench.tfvars"
        var_file.write_text(
            f'environment  = "{name}"\n'
            'application  = "expense"\n'
            'owner        = "team-bench"\n'
            'image        = "registry.sandbox.internal/expense/api:1.0.0"\n'
            "replicas     = 2\n"
            'db_password  = "bench-password-1"\n'
            f"worker_count = {int(worker_count)}\n"
        )
        settings = TerraformSettings(binary=TERRAFORM, timeout_seconds=300,
                                     lock_timeout_seconds=30, env=self.terraform_env,
                                     cli_config=str(self.cli_config))
        runner = TerraformRunner(self.stack_dir, settings=settings, data_dir=env_dir / "data",
                                 var_files=[var_file])
        runner.init(backend_overrides=self.backend_config(name))
        return Environment(name, runner, var_file, env_dir / "plans")

    def apply(self, env: Environment, *, retries: int = 2) -> None:
        """Plan and apply ``env`` (setup: the state then holds its resources); a terraform
        crash is retried with a fresh plan, at most ``retries`` times."""
        for attempt in range(retries + 1):
            try:
                planned = env.runner.plan(env.plan_dir / "setup.tfplan")
                if planned.plan_file:
                    env.runner.apply(Path(planned.plan_file))
                return
            except TerraformError as exc:
                crash = terraform_crash(exc)
                if crash is None or attempt == retries:
                    raise
                print(f"  setup of {env.name}: terraform crashed ({crash}); again", flush=True)
