"""Per-environment settings, validated.

An environment is one folder under the environments directory of the infrastructure repository
(``terraform/environments`` by default)::

    terraform/environments/<env>/
        environment.toml   what the pipeline needs to know (this model)
        <env>.tfvars       the stack's variables for this environment
        backend.hcl        the S3 backend settings (bucket, key, region, dynamodb_table)

A new environment is one new folder, raised as a PR: nothing else to register.

Names are checked *before* any path is built from them, so ``../prod`` or ``prod/..`` can never
reach the file system.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gitops.errors import ConfigError, UnknownEnvironment

ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
DEFAULT_ENVIRONMENTS_DIR = "terraform/environments"
CONFIG_FILE = "environment.toml"


def check_environment_name(name: str) -> str:
    """Return ``name`` if it is a plain identifier (lower case, digits, dashes), else raise."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid environment name {name!r}: use lower-case letters, digits and dashes, "
            "starting with a letter (at most 31 characters)"
        )
    return name


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DnsSettings(_Frozen):
    """The Route53 record the deploy points at the stack's output."""

    zone: str = Field(description="hosted zone name, e.g. example.internal")
    record: str = Field(description="fully qualified record name")
    type: Literal["CNAME", "A", "AAAA", "TXT"] = "CNAME"
    ttl: int = Field(default=60, ge=1, le=86400)
    output: str = Field(description="stack output holding the record's value")


class ArgoCDSettings(_Frozen):
    """The Argo CD Application that deploys this environment's workloads."""

    application: str
    project: str = "default"
    path: str = Field(description="source path in the Git repository, overlays/<env>")
    destination_namespace: str
    destination_server: str = "https://kubernetes.default.svc"
    auto_sync: bool = False


class ApprovalSettings(_Frozen):
    """Whether a human must approve the plan before apply."""

    required: bool = False
    timeout_seconds: int = Field(default=86400, ge=1)
    allow_author: bool = Field(default=False, description="may the commit author approve")
    approvers: tuple[str, ...] = Field(default=(), description="allowed approvers; empty = anyone")


class Environment(_Frozen):
    """Everything the pipeline knows about one environment."""

    name: str
    stack: str = Field(description="root module, relative to the repository root")
    var_file: str = Field(description="tfvars file, relative to the repository root")
    backend_config: str = Field(description="backend config file, relative to the repository root")
    aws_credentials_block: str = "gitops-aws"
    secret_variables: dict[str, str] = Field(
        default_factory=dict,
        description="Terraform variable name -> Prefect Secret block name (passed as TF_VAR_*)",
    )
    lock_timeout_seconds: int = Field(default=60, ge=0)
    remediate: bool = False
    dns: DnsSettings | None = None
    argocd: ArgoCDSettings | None = None
    approval: ApprovalSettings = ApprovalSettings()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return check_environment_name(value)

    @field_validator("stack", "var_file", "backend_config")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        path = Path(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{value!r} must be a path inside the repository")
        return value


def _environments_root(repo_root: Path, environments_dir: str) -> Path:
    return Path(repo_root) / environments_dir


def load_environment(repo_root: Path, name: str,
                     environments_dir: str = DEFAULT_ENVIRONMENTS_DIR) -> Environment:
    """Load and validate one environment; unknown or malformed names are refused."""
    check_environment_name(name)
    root = _environments_root(repo_root, environments_dir)
    folder = root / name
    config_file = folder / CONFIG_FILE
    if not config_file.is_file():
        raise UnknownEnvironment(name, list_environments(repo_root, environments_dir))
    try:
        raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_file.relative_to(repo_root)}: not valid TOML: {exc}") from exc
    env_rel = folder.relative_to(repo_root).as_posix()
    raw.setdefault("name", name)
    raw.setdefault("var_file", f"{env_rel}/{name}.tfvars")
    raw.setdefault("backend_config", f"{env_rel}/backend.hcl")
    if raw["name"] != name:
        raise ConfigError(f"{config_file.relative_to(repo_root)}: name {raw['name']!r} "
                          f"does not match its folder {name!r}")
    try:
        env = Environment.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{config_file.relative_to(repo_root)}: {exc}") from exc
    for rel in (env.stack, env.var_file, env.backend_config):
        if not (Path(repo_root) / rel).exists():
            raise ConfigError(f"environment {name!r}: {rel} does not exist in the repository")
    return env


def list_environments(repo_root: Path,
                      environments_dir: str = DEFAULT_ENVIRONMENTS_DIR) -> list[str]:
    """Names of the configured environments (folders holding an environment.toml), sorted."""
    root = _environments_root(repo_root, environments_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if (p / CONFIG_FILE).is_file() and ENV_NAME.fullmatch(p.name))


def load_environments(repo_root: Path,
                      environments_dir: str = DEFAULT_ENVIRONMENTS_DIR) -> dict[str, Environment]:
    """All configured environments, validated."""
    return {name: load_environment(repo_root, name, environments_dir)
            for name in list_environments(repo_root, environments_dir)}
