"""The checkpoint a suspended deploy writes: it round-trips through a flow run input's JSON, and
the newest one is the latest round of the newest plan."""

from __future__ import annotations

import json

from gitops.checkpoint import CHECKPOINT_KEY_PREFIX, Checkpoint, newest
from gitops.models import PlanFingerprint, StateIdentity


def point(attempt: int, round_: int, sha: str = "a" * 64) -> Checkpoint:
    return Checkpoint("prod", "c" * 40, attempt, round_, sha, "lineage-1", 7,
                      "2026-12-02T10:00:00+00:00", "d" * 64, "gitops-tfstate",
                      f"gitops-plans/prod/run/{sha}.tfplan.enc")


def test_it_round_trips_through_json_and_names_what_was_approved():
    original = point(1, 2)
    back = Checkpoint.from_json(json.loads(json.dumps(original.to_json())))
    assert back == original
    assert back.fingerprint == PlanFingerprint("a" * 64, StateIdentity("lineage-1", 7), "c" * 40)
    assert back.stored.key == original.object_key and back.stored.plan_sha256 == "a" * 64
    assert back.deadline_at.isoformat() == "2026-12-02T10:00:00+00:00"
    assert back.key == f"{CHECKPOINT_KEY_PREFIX}{'a' * 12}-1-2"
    # Fields a newer version adds are ignored by an older reader, not an error.
    assert Checkpoint.from_json({**original.to_json(), "later": 1}) == original


def test_the_newest_is_the_latest_round_of_the_latest_plan():
    assert newest([]) is None
    found = [point(0, 0), point(0, 3), point(1, 0, "b" * 64), point(0, 5)]
    assert newest(found) == point(1, 0, "b" * 64)
    assert newest([point(0, 0), point(0, 1)]) == point(0, 1)


def test_saved_plans_that_cannot_be_deleted_never_change_the_stage_s_outcome(prefect_api, capsys,
                                                                             caplog, monkeypatch):
    """An S3 outage after apply must not turn an applied deploy into a failed one (nor hide the
    failure a stage already has): it is a warning, and the next wait's sweep deletes them."""
    from types import SimpleNamespace

    from prefect import flow

    import flows.stage as stage
    from gitops.planstore import PlanStoreError

    def outage(ws, run_id):
        raise PlanStoreError("s3 is down")

    monkeypatch.setattr(stage, "waits_durably", lambda settings: True)
    monkeypatch.setattr(stage, "forget_plans", outage)
    ws = SimpleNamespace(name="prod", settings=None)

    @flow
    def end_of_stage() -> str:
        stage._forget_saved(ws, stage._Waits(asked=True))
        return "applied"

    assert end_of_stage() == "applied"
    logged = capsys.readouterr().err + caplog.text  # wherever Prefect's logging sends it
    assert "saved plans could not be deleted" in logged and "s3 is down" in logged
