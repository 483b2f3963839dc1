"""Per-environment settings, validated.

An environment is one folder under the environments directory of the infrastructure repository
(``terraform/environments`` by default)::

    terraform/environments/<env>/
        environment.toml   what the pipeline needs to know (this model)
        <env>.tfvars       the stack's variables for this environment
        backend.hcl        the S3 backend settings (bucket, key, region, dynamodb_table)

A new environment is one new folder, raised as a PR: nothing else to register.

Names are checked *before* any path is built from them, so ``../prod`` or ``prod/..`` can never
reach the file system, and every path is resolved (symlinks included) and must stay inside the
checkout.

What the repository asks for is bounded by the platform grant (:mod:`gitops.grant`): the backend
file may set only the S3 backend's ``bucket``, ``key``, ``region``, ``dynamodb_table``,
``encrypt`` and ``kms_key_id`` (nothing that changes where credentials or requests go), and the
credentials an environment runs with are never named here.
"""

from __future__ import annotations

import re
import threading
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gitops.errors import BackendCollision, ConfigError, UnknownEnvironment, UnsafeCheckout

ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
APPROVER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9][A-Za-z0-9_.-]{0,99})?$")
"""A GitHub login (``alice``) or a team (``acme/platform``)."""
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
    """Whether a human must approve the plan before apply, and whose approval counts.

    A rule, read from the default branch head only (see ``RULE_FIELDS``). Approvals are verified
    on the code host: the approver's account must have write access to the repository and be
    listed in ``approvers`` (a GitHub login, or ``org/team-slug`` for every active member of
    that team); an empty list lets anyone with write access approve. ``allow_declared`` lets the
    Prefect UI form (a typed name, which nothing authenticates) count as an approval too; such an
    approval is recorded as declared, never as verified.
    """

    required: bool = False
    timeout_seconds: int = Field(default=86400, ge=1)
    allow_author: bool = Field(
        default=False, description="may the commit's or pull request's author approve")
    approvers: tuple[str, ...] = Field(
        default=(), description="GitHub logins and org/team entries; empty = anyone with write "
                                "access")
    min_approvals: int = Field(default=1, ge=1, le=10,
                               description="distinct accounts that must approve")
    allow_declared: bool = Field(
        default=False, description="count a Prefect UI form approval (a typed, unverified name)")
    policy_owners: tuple[str, ...] = Field(
        default=(), description="GitHub logins and org/team entries who may override a "
                                "soft-mandatory check; empty = nobody")

    @field_validator("approvers", "policy_owners")
    @classmethod
    def _approver_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if not APPROVER_RE.fullmatch(entry):
                raise ValueError(f"approver {entry!r} is neither a GitHub login nor org/team")
        return value


class BackendSettings(_Frozen):
    """The S3 backend an environment's state lives in (its ``backend.hcl``), nothing more.

    Endpoints, roles, profiles and credential files are not accepted: they would let the
    repository send the pipeline's credentials elsewhere or assume another identity.
    """

    bucket: str = Field(min_length=3)
    key: str = Field(min_length=1)
    region: str = Field(min_length=1)
    dynamodb_table: str | None = None
    encrypt: bool = True
    kms_key_id: str | None = None

    @property
    def address(self) -> str:
        """``s3://bucket/key``: the state's identity."""
        return f"s3://{self.bucket}/{self.key}"

    def as_backend_config(self) -> dict[str, str]:
        """The ``-backend-config`` pairs terraform init gets (the file itself is never passed)."""
        pairs = {"bucket": self.bucket, "key": self.key, "region": self.region,
                 "encrypt": "true" if self.encrypt else "false"}
        if self.dynamodb_table:
            pairs["dynamodb_table"] = self.dynamodb_table
        if self.kms_key_id:
            pairs["kms_key_id"] = self.kms_key_id
        return pairs


class Environment(_Frozen):
    """Everything the pipeline knows about one environment."""

    name: str
    stack: str = Field(description="root module, relative to the repository root")
    var_file: str = Field(description="tfvars file, relative to the repository root")
    backend_config: str = Field(description="backend config file, relative to the repository root")
    backend: BackendSettings | None = Field(default=None, description="read from backend_config")
    secret_variables: dict[str, str] = Field(
        default_factory=dict,
        description="Terraform variable name -> Prefect Secret block name (passed as TF_VAR_*)",
    )
    lock_timeout_seconds: int = Field(default=60, ge=0)
    remediate: bool = False
    allow_unmerged: bool = Field(
        default=False, description="may deploy commits outside the default branch's history "
                                   "(a scratch dev environment); a rule, read from that branch")
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


def inside_checkout(repo_root: Path, rel: str | Path) -> Path:
    """``repo_root / rel`` resolved (symlinks followed); refused unless it stays inside."""
    root = Path(repo_root).resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise UnsafeCheckout(f"{Path(rel).as_posix()} resolves outside the repository "
                             "(a symlink or path leaving the checkout); refused")
    return target


_BACKEND_KEYS = frozenset(BackendSettings.model_fields)


def prepare_hcl_parser() -> threading.Thread:
    """Build the HCL parser (its grammar, ~0.25 s of CPU, once per process) in a thread of its
    own, started before something that waits (a checkout): join it before the first parse.
    A failure there is the first parse's to report."""
    def build() -> None:
        try:
            import hcl2.parser

            hcl2.parser.parser()  # cached for the process
        except Exception:  # noqa: BLE001 - see the docstring
            pass

    thread = threading.Thread(target=build, name="hcl-parser", daemon=True)
    thread.start()
    return thread


def parse_backend_file(repo_root: Path, rel: str) -> BackendSettings:
    """Read an environment's ``backend.hcl`` into :class:`BackendSettings`; refuse anything else."""
    import hcl2
    from lark.exceptions import LarkError

    path = inside_checkout(repo_root, rel)
    try:
        raw = hcl2.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, LarkError) as exc:
        raise ConfigError(f"{rel}: cannot read the backend config: {exc}") from exc
    unknown = sorted(k for k in raw if not k.startswith("__") and k not in _BACKEND_KEYS)
    if unknown:
        raise UnsafeCheckout(
            f"{rel}: {', '.join(unknown)} may not be set in a backend config (allowed: "
            f"{', '.join(sorted(_BACKEND_KEYS))}); endpoints, roles and credentials come from "
            "the platform, not the repository")
    values = {}
    for key, value in raw.items():
        if key.startswith("__"):
            continue
        if isinstance(value, str):
            if not (len(value) >= 2 and value.startswith('"') and value.endswith('"')) \
                    or "${" in value:
                raise ConfigError(f"{rel}: {key} must be a literal string, not {value!r}")
            value = value[1:-1]
        values[key] = value
    try:
        return BackendSettings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"{rel}: {exc}") from exc


def load_environment(repo_root: Path, name: str,
                     environments_dir: str = DEFAULT_ENVIRONMENTS_DIR) -> Environment:
    """Load and validate one environment; unknown or malformed names are refused."""
    check_environment_name(name)
    root = _environments_root(repo_root, environments_dir)
    folder = root / name
    config_file = folder / CONFIG_FILE
    if not config_file.is_file():
        raise UnknownEnvironment(name, list_environments(repo_root, environments_dir))
    inside_checkout(repo_root, config_file.relative_to(repo_root))
    try:
        raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_file.relative_to(repo_root)}: not valid TOML: {exc}") from exc
    env_rel = folder.relative_to(repo_root).as_posix()
    raw.setdefault("name", name)
    raw.setdefault("var_file", f"{env_rel}/{name}.tfvars")
    raw.setdefault("backend_config", f"{env_rel}/backend.hcl")
    if "aws_credentials_block" in raw:
        raise ConfigError(f"{config_file.relative_to(repo_root)}: aws_credentials_block is not "
                          "read from the repository any more: an environment's credentials come "
                          "from the platform grant (GITOPS_GRANT_FILE); remove the line")
    if "backend" in raw:
        raise ConfigError(f"{config_file.relative_to(repo_root)}: the backend is read from "
                          "backend_config, not set here")
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
        inside_checkout(repo_root, rel)
    return env.model_copy(update={"backend": parse_backend_file(repo_root, env.backend_config)})


RULE_FIELDS = ("backend_config", "backend", "secret_variables", "approval", "lock_timeout_seconds",
               "remediate", "allow_unmerged")
"""The settings that are rules, not code: always taken from the default branch head (the trusted
configuration), whatever commit is planned or deployed. The others (stack, var file, DNS, Argo CD)
describe the code and come with the commit."""


def with_trusted_rules(env: Environment, trusted: Environment) -> Environment:
    """``env`` (as a commit configures it) with every rule replaced by ``trusted``'s."""
    return env.model_copy(update={field: getattr(trusted, field) for field in RULE_FIELDS})


def config_changes(trusted: Environment, proposed: Environment) -> list[str]:
    """What ``proposed`` changes in an environment's configuration, one line per setting."""
    before, after = _flat(trusted.model_dump(mode="json")), _flat(proposed.model_dump(mode="json"))
    lines = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, "(unset)"), after.get(key, "(unset)")
        if old != new:
            lines.append(f"{key}: {old} → {new}")
    return lines


def _flat(value: object, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}." if prefix or key else key))
        return out
    return {prefix.rstrip("."): str(value).lower() if isinstance(value, bool) else str(value)}


def list_environments(repo_root: Path,
                      environments_dir: str = DEFAULT_ENVIRONMENTS_DIR) -> list[str]:
    """Names of the configured environments (folders holding an environment.toml), sorted."""
    root = _environments_root(repo_root, environments_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if (p / CONFIG_FILE).is_file() and ENV_NAME.fullmatch(p.name))


def load_configured(repo_root: Path, environments_dir: str = DEFAULT_ENVIRONMENTS_DIR
                    ) -> tuple[dict[str, Environment], dict[str, str]]:
    """The environments at ``repo_root`` that load, and why the others do not.

    Two environments sharing one state are both refused (BackendCollision names them).
    """
    loaded: dict[str, Environment] = {}
    broken: dict[str, str] = {}
    for name in list_environments(repo_root, environments_dir):
        try:
            loaded[name] = load_environment(repo_root, name, environments_dir)
        except ConfigError as exc:
            broken[name] = str(exc)
    by_state: dict[tuple[str, str], list[str]] = {}
    for name, env in loaded.items():
        if env.backend is not None:
            by_state.setdefault((env.backend.bucket, env.backend.key), []).append(name)
    for (bucket, key), names in by_state.items():
        if len(names) > 1:
            for name in names:
                others = ", ".join(repr(n) for n in names if n != name)
                broken[name] = str(BackendCollision(
                    f"environment {name!r} uses the state s3://{bucket}/{key}, as {others} "
                    "does: every environment needs a state of its own"))
                del loaded[name]
    return loaded, broken


def load_environments(repo_root: Path,
                      environments_dir: str = DEFAULT_ENVIRONMENTS_DIR) -> dict[str, Environment]:
    """All configured environments, validated."""
    return {name: load_environment(repo_root, name, environments_dir)
            for name in list_environments(repo_root, environments_dir)}
