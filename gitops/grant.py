"""The platform grant: what each environment may use, decided outside the repository. PURE.

The repository says what an environment *wants* (its ``environment.toml``: a state backend, secret
variables). The platform grant says what it *may have*, and it lives where no pull request can
write: a TOML file on the workers (``GITOPS_GRANT_FILE``), reviewed by the platform team. Like
Atlantis's server-side repo config, the repository can narrow what it gets, never widen it.

A grant is a rule, so a new environment needs no platform-side step unless it needs more than its
own. ``{env}`` in a value stands for the environment's name; every value expands to exact names,
never globs, so ``gitops-aws-{env}-apply`` gives ``dev`` exactly ``gitops-aws-dev-apply`` and
can never match another environment's block::

    [default]                                  # every environment, new ones included
    plan_credentials            = "gitops-aws-{env}-plan"    # AwsCredentials block for plans
    apply_credentials           = "gitops-aws-{env}-apply"   # ... for applies (and DNS)
    new_environment_credentials = "gitops-aws-plan"          # a proposed environment's plan
    state_buckets = ["gitops-tfstate"]
    state_keys    = ["expense/{env}/terraform.tfstate"]
    lock_tables   = ["gitops-tflocks"]

    [default.secrets]       # Secret blocks [secret_variables] may name, per phase
    deploy   = ["gitops-db-password-{env}"]
    drift    = ["gitops-db-password-{env}"]
    proposed = []           # pull-request plans get no secret

    [environments.dev.secrets]                 # adds to the default, for one environment
    proposed = ["gitops-db-password-dev"]

An environment's own table adds to the lists of ``[default]`` and replaces its credential names.

Phases (:class:`Phase`): ``proposed`` is a pull request's plan (untrusted code: plan credentials,
the secrets granted to ``proposed``, none by default); ``drift`` is the scheduled read-only plan of
the default branch (plan credentials); ``deploy`` is deploy, rollback and remediation (the plan is
made with plan credentials and the ``deploy`` secrets, the saved plan applied with apply
credentials).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gitops.errors import ConfigError, GrantRefused

__all__ = ["EnvironmentGrant", "Phase", "PlatformGrant", "SecretGrant", "load_grant"]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class Phase(StrEnum):
    """Why terraform runs, which decides the credentials and secrets it gets."""

    PROPOSED = "proposed"
    DRIFT = "drift"
    DEPLOY = "deploy"


def _check_template(value: str) -> str:
    for name in _PLACEHOLDER.findall(value):
        if name != "env":
            raise ValueError(f"{value!r}: only {{env}} may be substituted, not {{{name}}}")
    if "*" in value or "?" in value:
        raise ValueError(f"{value!r}: a grant names exact values, not patterns")
    return value


class GrantRule(BaseModel):
    """One table of the grant file: ``[default]`` or ``[environments.<name>]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan_credentials: str | None = None
    apply_credentials: str | None = None
    new_environment_credentials: str | None = None
    state_buckets: tuple[str, ...] = ()
    state_keys: tuple[str, ...] = ()
    lock_tables: tuple[str, ...] = ()
    secrets: dict[Phase, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("plan_credentials", "apply_credentials", "new_environment_credentials")
    @classmethod
    def _one(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value)

    @field_validator("state_buckets", "state_keys", "lock_tables")
    @classmethod
    def _many(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_template(v) for v in values)

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, values: dict[Phase, tuple[str, ...]]) -> dict[Phase, tuple[str, ...]]:
        return {phase: tuple(_check_template(v) for v in names) for phase, names in values.items()}


def _expand(template: str, env: str) -> str:
    return template.replace("{env}", env)


@dataclass(frozen=True)
class SecretGrant:
    """Which of an environment's secret variables one phase receives."""

    granted: Mapping[str, str]
    """Terraform variable name -> Secret block name: read and passed as ``TF_VAR_*``."""
    withheld: tuple[str, ...]
    """Variables this phase may not have: terraform gets a placeholder value instead."""


@dataclass(frozen=True)
class EnvironmentGrant:
    """What one environment may use: the grant's rule expanded for its name."""

    environment: str
    plan_credentials: str | None
    apply_credentials: str | None
    new_environment_credentials: str | None
    state_buckets: frozenset[str]
    state_keys: frozenset[str]
    lock_tables: frozenset[str]
    secrets: Mapping[Phase, frozenset[str]]

    def credentials(self, *, apply: bool, new_environment: bool = False) -> str:
        """The AwsCredentials block for a plan or an apply; refused when the grant names none."""
        if new_environment:
            name, what = self.new_environment_credentials, "new_environment_credentials"
        elif apply:
            name, what = self.apply_credentials, "apply_credentials"
        else:
            name, what = self.plan_credentials, "plan_credentials"
        if not name:
            raise GrantRefused(f"the platform grant names no {what} for environment "
                               f"{self.environment!r}")
        return name

    def check_backend(self, bucket: str, key: str, lock_table: str | None) -> None:
        """Refuse a state backend the grant does not give this environment."""
        problems = []
        if bucket not in self.state_buckets:
            problems.append(f"bucket {bucket!r} (granted: {_listing(self.state_buckets)})")
        if key not in self.state_keys:
            problems.append(f"state key {key!r} (granted: {_listing(self.state_keys)})")
        if lock_table is None:
            problems.append("no lock table (state locking is required)")
        elif lock_table not in self.lock_tables:
            problems.append(f"lock table {lock_table!r} (granted: {_listing(self.lock_tables)})")
        if problems:
            raise GrantRefused(f"the platform grant does not let environment "
                               f"{self.environment!r} use " + "; ".join(problems))

    def secret_grant(self, wanted: Mapping[str, str], phase: Phase) -> SecretGrant:
        """Split ``wanted`` (variable -> block) into what ``phase`` gets and what it does not.

        A block the grant gives this environment in *no* phase is refused outright: naming it is
        a configuration error, not something to quietly withhold.
        """
        anywhere = frozenset().union(*self.secrets.values()) if self.secrets else frozenset()
        foreign = sorted(block for block in wanted.values() if block not in anywhere)
        if foreign:
            raise GrantRefused(
                f"environment {self.environment!r} names Secret block(s) the platform grant "
                f"does not give it: {', '.join(foreign)}")
        mine = self.secrets.get(phase, frozenset())
        granted = {var: block for var, block in sorted(wanted.items()) if block in mine}
        withheld = tuple(sorted(var for var in wanted if var not in granted))
        return SecretGrant(granted, withheld)


def _listing(values: Iterable[str]) -> str:
    shown = sorted(values)
    return ", ".join(shown) if shown else "none"


class PlatformGrant(BaseModel):
    """The whole grant file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: GrantRule = GrantRule()
    environments: dict[str, GrantRule] = Field(default_factory=dict)

    def for_environment(self, name: str) -> EnvironmentGrant:
        """The grant of environment ``name`` (the default rule, plus its own table if any)."""
        base, own = self.default, self.environments.get(name, GrantRule())

        def many(field: str) -> frozenset[str]:
            return frozenset(_expand(v, name)
                             for v in (*getattr(base, field), *getattr(own, field)))

        def one(field: str) -> str | None:
            value = getattr(own, field) or getattr(base, field)
            return None if value is None else _expand(value, name)

        secrets = {phase: frozenset(_expand(v, name) for v in (*base.secrets.get(phase, ()),
                                                                *own.secrets.get(phase, ())))
                   for phase in Phase}
        return EnvironmentGrant(
            environment=name,
            plan_credentials=one("plan_credentials"),
            apply_credentials=one("apply_credentials"),
            new_environment_credentials=one("new_environment_credentials"),
            state_buckets=many("state_buckets"), state_keys=many("state_keys"),
            lock_tables=many("lock_tables"), secrets=secrets,
        )


def parse_grant(text: str, *, source: str = "grant") -> PlatformGrant:
    """A grant from the TOML text of a grant file."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return PlatformGrant.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_grant(path: str | Path | None) -> PlatformGrant:
    """The grant file at ``path``; without one nothing is granted, and every run says so."""
    if not path:
        raise ConfigError("no platform grant is configured: set GITOPS_GRANT_FILE on the "
                          "workers to the grant file (see the README, 'What a pull request can "
                          "and cannot do')")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the platform grant {file}: {exc}") from exc
    return parse_grant(text, source=str(file))
