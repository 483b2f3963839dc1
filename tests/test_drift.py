"""Pure drift logic on real Terraform 1.0.3 plans (tests/fixtures/drift/, see regenerate.py there)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gitops.drift import (
    DriftReport,
    EnvDriftStatus,
    NoticeKind,
    classify,
    drift_marker,
    errored,
    fingerprint,
    notification,
    render_drift_issue,
    render_drift_resolved,
    render_drift_table,
    skipped,
)
from gitops.models import LockInfo
from gitops.plan import load_plan

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "drift"
SHA = "0123456789abcdef0123456789abcdef01234567"
WEB = "module.web.sandbox_service.this"


def report(scenario: str, *, refresh: str | None = None, env: str = "dev",
           commit: str = SHA) -> DriftReport:
    return classify(load_plan(FIXTURES / f"{refresh or scenario}.refresh.json"),
                    load_plan(FIXTURES / f"{scenario}.plan.json"),
                    environment=env, commit=commit)


@pytest.mark.parametrize(("scenario", "status"), [
    ("in_sync", EnvDriftStatus.IN_SYNC),
    ("pending", EnvDriftStatus.PENDING_CHANGES),
    ("drift", EnvDriftStatus.DRIFTED),
    ("drift_and_pending", EnvDriftStatus.DRIFTED_AND_PENDING),
    ("deleted", EnvDriftStatus.DRIFTED),
    ("sensitive", EnvDriftStatus.DRIFTED),
    ("cidr", EnvDriftStatus.DRIFTED),
])
def test_classify_status(scenario: str, status: EnvDriftStatus) -> None:
    assert report(scenario).status is status


def test_drift_lists_attributes_old_and_new() -> None:
    r = report("drift")
    assert [d.address for d in r.drifted] == [WEB]
    attrs = {a.path: (a.old, a.new) for a in r.drifted[0].attributes}
    assert attrs["replicas"] == ("2", "5")
    assert attrs["tags.Hotfix"] == ("", '"INC-1234"')
    assert attrs["tags_all.Owner"] == ('"team-expense"', '"someone-in-the-console"')
    # The normal plan's update only undoes the drift: nothing pending.
    assert r.pending.total == 0 and r.pending_addresses == () and r.pending_outputs == ()


def test_pending_is_the_code_change_not_the_revert() -> None:
    r = report("drift_and_pending")
    assert r.pending_addresses == (WEB,)
    assert r.pending.change == 1
    assert r.pending_outputs == ("image",)
    pending_only = report("pending")
    assert pending_only.drifted == () and pending_only.pending_addresses == (WEB,)


def test_deleted_object_is_drift_and_its_recreation_is_not_pending() -> None:
    r = report("deleted")
    assert [(d.address, d.action) for d in r.drifted] == [("module.lb.sandbox_load_balancer.this",
                                                           "delete")]
    assert r.pending.total == 0 and r.pending_outputs == ()


def test_replacement_forced_by_drift_is_not_pending() -> None:
    r = report("cidr")
    assert [a.path for a in r.drifted[0].attributes] == ["cidr"]
    assert r.pending_addresses == () and r.pending_outputs == ()


def test_secret_values_are_masked_everywhere() -> None:
    r = report("sensitive")
    secret = "fixture-drift-secret-1"
    assert (FIXTURES / "sensitive.refresh.json").read_text().count(secret)  # it is in the input
    new_values = {a.new for a in r.drifted[0].attributes}
    assert new_values == {"(sensitive)"}
    title, body = render_drift_issue(r)
    texts = [repr(r), title, body, render_drift_resolved(r), repr(render_drift_table([r])),
             fingerprint(r) or ""]
    assert not any(secret in t for t in texts)


def test_fingerprint_is_stable_and_about_content_only() -> None:
    first = report("drift")
    again = report("drift", commit="f" * 40)
    assert fingerprint(first) == fingerprint(again)
    reordered = replace(first, drifted=tuple(reversed(first.drifted)))
    assert fingerprint(reordered) == fingerprint(first)
    assert fingerprint(report("drift", refresh="drift_more")) != fingerprint(first)
    assert fingerprint(report("drift", env="prod")) != fingerprint(first)
    assert fingerprint(report("in_sync")) is None
    # Pending code changes do not change the drift's fingerprint.
    assert fingerprint(report("drift_and_pending")) == fingerprint(first)


def test_notification_lifecycle() -> None:
    drifted = report("drift")
    fp = fingerprint(drifted)
    new = notification(None, drifted)
    assert new.kind is NoticeKind.NEW and new.notify and new.remember == fp
    same = notification(fp, drifted)
    assert same.kind is NoticeKind.UNCHANGED and not same.notify and same.remember == fp
    more = notification(fp, report("drift", refresh="drift_more"))
    assert more.kind is NoticeKind.CHANGED and more.notify and more.remember != fp
    resolved = notification(fp, report("in_sync"))
    assert resolved.kind is NoticeKind.RESOLVED and resolved.notify and resolved.remember is None
    quiet = notification(None, report("pending"))
    assert quiet.kind is NoticeKind.NONE and not quiet.notify and quiet.remember is None


def test_a_check_that_observed_earlier_than_the_one_recorded_is_superseded() -> None:
    """Two checks overlapped and the later observation was recorded first: the earlier one
    tells nothing (whatever it found) and keeps the newer record."""
    recorded = "2026-12-01T10:00:05+00:00"
    fp = fingerprint(report("drift"))
    for found in (report("drift", refresh="drift_more"), report("in_sync"), report("drift")):
        older = replace(found, observed_at="2026-12-01T10:00:01+00:00")
        notice = notification(fp, older, last_observed=recorded)
        assert notice.kind is NoticeKind.SUPERSEDED and not notice.notify
        assert notice.remember == fp
    later = replace(report("drift", refresh="drift_more"), observed_at="2026-12-01T10:00:09Z")
    assert notification(fp, later, last_observed=recorded).kind is NoticeKind.CHANGED
    # Nothing recorded yet, or a record from before observation times were kept: no order.
    assert notification(None, later).kind is NoticeKind.NEW
    assert notification(fp, replace(later, observed_at=""),
                        last_observed=recorded).kind is NoticeKind.CHANGED


@pytest.mark.parametrize("r", [
    skipped("dev", SHA, "state is locked by alice", LockInfo(id="1", who="alice")),
    errored("dev", SHA, "terraform plan failed"),
])
def test_unchecked_environments_never_resolve_or_forget(r: DriftReport) -> None:
    notice = notification("abc", r)
    assert notice.kind is NoticeKind.NONE and not notice.notify and notice.remember == "abc"


def test_skipped_and_error_reasons_are_redacted() -> None:
    r = errored("dev", SHA, "TF_VAR_db_password=hunter2-very-secret")
    assert "hunter2" not in r.reason
    assert skipped("dev", SHA, "locked").status is EnvDriftStatus.SKIPPED


def test_issue_has_marker_title_and_table() -> None:
    r = report("drift_and_pending", env="staging")
    title, body = render_drift_issue(r, run_url="http://127.0.0.1:4200/runs/flow-run/x")
    assert title == "Infrastructure drift in staging"
    assert body.startswith(drift_marker("staging"))
    assert drift_marker("staging") != drift_marker("staging-2")
    assert drift_marker("staging") not in drift_marker("staging-2")
    assert "<code>5</code>" in body and "<code>2</code>" in body
    assert "not yet applied" in body and SHA[:12] in body
    assert fingerprint(r) in body
    resolved = render_drift_resolved(report("in_sync", env="staging"))
    assert resolved.startswith(drift_marker("staging")) and "Resolved" in resolved


def test_issue_body_stays_within_budget() -> None:
    r = report("drift")
    big = replace(r, drifted=r.drifted * 500)
    _, body = render_drift_issue(big, limit=5000)
    assert len(body) <= 5000
    assert "more rows" in body and "### What to do" in body


def test_table_cell_cannot_break_the_row() -> None:
    r = report("drift")
    attrs = tuple(a._replace(new='"a|b`c"') for a in r.drifted[0].attributes)
    evil = replace(r, drifted=(replace(r.drifted[0], attributes=attrs),))
    _, body = render_drift_issue(evil)
    rows = [ln for ln in body.splitlines() if ln.startswith("| <code>module.")]
    assert rows and all(ln.count("|") == 6 for ln in rows)


def test_table_rows() -> None:
    reports = [replace(report("drift"), notice=NoticeKind.NEW),
               skipped("prod", SHA, "a deploy of prod is running"), report("in_sync", env="dev2")]
    rows = render_drift_table(reports)
    assert [row["environment"] for row in rows] == ["dev", "prod", "dev2"]
    assert rows[0]["status"] == "drifted" and rows[0]["notice"] == "new"
    assert "replicas: 2 → 5" in rows[0]["drift"]
    assert rows[1]["status"] == "skipped" and "deploy" in rows[1]["reason"]
    assert rows[2]["status"] == "in_sync" and rows[2]["drifted resources"] == "0"


UPSTREAM = Path(__file__).resolve().parent / "fixtures" / "plans" / "upstream"


def test_an_unapplied_move_is_pending_not_drift() -> None:
    """Terraform's own moved_with_refresh_only / moved_simple plans of one configuration: the
    refresh-only plan lists the move in resource_drift, the normal plan as a no-op move."""
    r = classify(load_plan(UPSTREAM / "terraform_moved_with_refresh_only.json"),
                 load_plan(UPSTREAM / "terraform_moved_simple.json"),
                 environment="dev", commit=SHA)
    assert r.status is EnvDriftStatus.PENDING_CHANGES and not r.has_drift
    assert r.pending_addresses == ("tfcoremock_simple_resource.second",)
    assert r.pending.moves == 1 and r.pending.total == 1
    assert "1 to move" in render_drift_table([r])[0]["pending"]

