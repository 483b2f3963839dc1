"""gitops.policy: the cost-tag policy on effective tags (tags_all, else tags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.plan import Plan, load_plan
from gitops.policy import (
    REQUIRED_TAGS, PolicyReport, TagViolation, check_resource_tags, check_tags,
)

PLANS = Path(__file__).resolve().parent / "fixtures" / "plans"


def plan(name: str) -> Plan:
    return load_plan(PLANS / name)


@pytest.mark.parametrize("name", ["create.json", "update.json", "replace.json", "scaled.json",
                                  "sensitive.json", "drift.json"])
def test_tagged_plans_pass(name: str) -> None:
    report = check_tags(plan(name))
    assert report.passed and report.violations == ()
    assert report.summary().startswith("passed")


def test_provider_default_tags_count() -> None:
    # the network has no resource tags at all: every required key comes from default_tags
    p = plan("create.json")
    network = next(c for c in p.changes if c.type == "sandbox_network")
    assert check_resource_tags(network) is None


def test_untagged_plan_fails_on_every_resource() -> None:
    report = check_tags(plan("untagged.json"))
    assert not report.passed and report.checked == 4
    assert [v.missing for v in report.violations] == [("Owner",)] * 4
    assert report.violations[0] == TagViolation("module.db.sandbox_database.this",
                                                missing=("Owner",))
    assert "4 resources" in report.summary()


def test_deletes_and_no_changes_are_not_checked() -> None:
    assert check_tags(plan("delete.json")) == PolicyReport(passed=True, checked=0)
    assert check_tags(plan("no_changes.json")).passed


def test_edge_cases_from_mixed_plan() -> None:
    report = check_tags(load_plan(PLANS / "edge" / "mixed.json"))
    # front: Owner is "" (blank); unk: Owner unknown until apply but present (allowed);
    # old: a delete (skipped); suffix: no tags attribute (skipped); shared: a data source
    # (skipped); web[0], main, api, net: complete
    assert report.violations == (TagViolation("sandbox_load_balancer.front", empty=("Owner",)),)
    assert report.checked == 6


def test_tag_maps_edge_cases() -> None:
    report = check_tags(load_plan(PLANS / "edge" / "tags_edge.json"))
    violations = {v.address: v for v in report.violations}
    assert set(violations) == {"sandbox_service.all_unknown", "sandbox_service.no_tags",
                               "sandbox_service.blank"}
    unknown = violations["sandbox_service.all_unknown"]
    assert unknown.tags_unknown and unknown.missing == REQUIRED_TAGS  # fail closed
    assert violations["sandbox_service.no_tags"].missing == REQUIRED_TAGS
    assert violations["sandbox_service.blank"].empty == ("Application",)
    assert "empty Application" in violations["sandbox_service.blank"].describe()


def test_custom_required_tags() -> None:
    p = load_plan(PLANS / "edge" / "tags_edge.json")
    report = check_tags(p, required=("CostCenter",))
    assert [v.address for v in report.violations if not v.tags_unknown] == [
        "sandbox_service.defaults_only", "sandbox_service.fallback", "sandbox_service.no_tags"]
    assert report.required == ("CostCenter",)


def test_forget_and_future_actions() -> None:
    report = check_tags(load_plan(PLANS / "edge" / "format_1_2.json"))
    # forget and delete+teleport are skipped; create+forget (a replace) is checked
    assert [v.address for v in report.violations] == ["sandbox_network.imported"]
