"""Frozen models passed between pipeline stages (the plan's own model lives in gitops.plan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class LockInfo:
    """Who holds a Terraform state lock, as Terraform reports it."""

    id: str = ""
    path: str = ""
    operation: str = ""
    who: str = ""
    version: str = ""
    created: str = ""
    info: str = ""


class PlanStatus(str, Enum):
    """What `terraform plan -detailed-exitcode` said, as a value."""

    NO_CHANGES = "no_changes"
    CHANGES = "changes"
    LOCKED = "locked"


class UnlockOutcome(str, Enum):
    """What a force-unlock did, as a value."""

    RELEASED = "released"
    NOT_LOCKED = "not-locked"


@dataclass(frozen=True)
class StateIdentity:
    """Which state snapshot a plan was made against (lineage + serial)."""

    lineage: str = ""
    serial: int = -1

    @property
    def exists(self) -> bool:
        return bool(self.lineage)


@dataclass(frozen=True)
class PlanFingerprint:
    """What an approval is about: the exact plan file, state snapshot and commit.

    Apply refuses to run unless all three still match.
    """

    plan_sha256: str
    state: StateIdentity
    commit: str

    @property
    def short(self) -> str:
        return f"{self.plan_sha256[:12]}@{self.commit[:8]}#{self.state.serial}"


@dataclass(frozen=True)
class RunnerPlan:
    """A saved plan on disk and what terraform said about it."""

    status: PlanStatus
    plan_file: str = ""
    plan_json: dict = field(default_factory=dict, compare=False, repr=False)
    state: StateIdentity = StateIdentity()
    plan_sha256: str = ""
    lock: LockInfo | None = None
    stderr: str = field(default="", repr=False)


@dataclass(frozen=True)
class ApplyResult:
    """A finished apply: new state identity and the stack outputs (sensitive ones masked)."""

    state: StateIdentity
    outputs: dict = field(default_factory=dict)
