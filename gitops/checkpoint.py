"""What a deploy writes before it suspends for approval, so that whichever worker resumes it goes
on with exactly the plan that was asked about (no Prefect here; the flow stores it as a flow run
input under :func:`Checkpoint.key`, create-only).

A suspended run is re-run from the top when it resumes. It finds its newest checkpoint, checks
out the same commit, reads the saved plan back from the plan store (gitops.planstore) checked
against the fingerprint recorded here, and takes the answer of the round it waited in; nothing
before the suspension is planned again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from gitops.models import PlanFingerprint, StateIdentity
from gitops.planstore import StoredPlan

CHECKPOINT_KEY_PREFIX = "gitops-approval-wait-"


@dataclass(frozen=True)
class Checkpoint:
    environment: str
    commit: str
    attempt: int
    """Which plan of the stage (a state that moved re-plans: 0, 1, 2)."""
    round: int
    """Which wait of this plan's approval (one per answer that did not settle it)."""
    plan_sha256: str
    state_lineage: str
    state_serial: int
    deadline: str
    """ISO 8601, UTC: when the approval's time is up, fixed by the first wait."""
    description_sha256: str
    """The sha256 of the approval form's text of this round, as the run wrote it."""
    bucket: str
    object_key: str

    @property
    def key(self) -> str:
        return f"{CHECKPOINT_KEY_PREFIX}{self.plan_sha256[:12]}-{self.attempt}-{self.round}"

    @property
    def fingerprint(self) -> PlanFingerprint:
        return PlanFingerprint(self.plan_sha256, StateIdentity(self.state_lineage,
                                                               self.state_serial), self.commit)

    @property
    def stored(self) -> StoredPlan:
        return StoredPlan(self.bucket, self.object_key, self.plan_sha256)

    @property
    def deadline_at(self) -> datetime:
        return datetime.fromisoformat(self.deadline)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Checkpoint:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in value.items() if k in fields})


def newest(checkpoints: list[Checkpoint]) -> Checkpoint | None:
    """The checkpoint the run waited at last: its newest plan's latest round."""
    return max(checkpoints, key=lambda c: (c.attempt, c.round), default=None)
