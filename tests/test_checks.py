"""gitops.checks: check reports as data; an unevaluated check always blocks."""

from __future__ import annotations

import pytest

from gitops.checks import (
    OVERRIDE_NEEDED, CheckLevel, CheckReport, Finding, blocking, compare_checks,
    describe_blocking,
)
from gitops.plan import load_plan
from gitops.policy import TAG_CHECK, tag_check
from plan_factory import make_plan_doc
from gitops.plan import parse_plan

FINDING = Finding("bad", address="aws_s3_bucket.logs", policy="policies/x.rego", rule="deny",
                  line=7)


@pytest.mark.parametrize("level", list(CheckLevel))
def test_an_error_blocks_at_every_level(level: CheckLevel) -> None:
    report = CheckReport("x", level, error="policies/x.rego:3: boom")
    assert report.blocks and not report.passed and report.status == "error"
    assert blocking([report]) == (report,)


def test_findings_block_unless_advisory() -> None:
    hard = CheckReport("h", CheckLevel.HARD_MANDATORY, (FINDING,))
    soft = CheckReport("s", CheckLevel.SOFT_MANDATORY, (FINDING,))
    advice = CheckReport("a", CheckLevel.ADVISORY, (FINDING,))
    clean = CheckReport("c", CheckLevel.HARD_MANDATORY)
    assert blocking([hard, soft, advice, clean]) == (hard, soft)
    assert advice.status == "advisory" and clean.status == "passed" and clean.passed
    assert OVERRIDE_NEEDED in soft.summary()
    text = describe_blocking([hard, soft, advice])
    assert "aws_s3_bucket.logs: bad" in text and "a [advisory]" not in text


def test_level_names_parse() -> None:
    assert CheckLevel.parse("Soft_Mandatory") is CheckLevel.SOFT_MANDATORY
    with pytest.raises(ValueError, match="one of: advisory"):
        CheckLevel.parse("mandatory")


def test_finding_source_and_description() -> None:
    assert FINDING.source == "policies/x.rego:7 deny"
    assert FINDING.describe() == "aws_s3_bucket.logs: bad"
    assert Finding("plan-wide").describe() == "plan-wide"


def test_the_tag_policy_is_a_hard_mandatory_check_report() -> None:
    report = tag_check(parse_plan(make_plan_doc(3, owner=None)))
    assert report.name == TAG_CHECK and report.level is CheckLevel.HARD_MANDATORY
    assert report.blocks and len(report.findings) == 3
    assert report.findings[0].message == "missing Owner" and report.findings[0].address
    assert report.summary().startswith("3 resources without the required tags")


def test_a_tagged_plan_passes_the_tag_check() -> None:
    from pathlib import Path
    p = load_plan(Path(__file__).parent / "fixtures" / "plans" / "create.json")
    report = tag_check(p)
    assert report.passed and report.summary() == "passed (4 resources checked)"


# -- the same plan under the default branch's policies and a pull request's -------------------

HARD, SOFT, ADVISORY = CheckLevel.HARD_MANDATORY, CheckLevel.SOFT_MANDATORY, CheckLevel.ADVISORY
OPEN = Finding("open to the world", address="aws_security_group.web")
WRONG_TAG = Finding("tag Environment is \"dev\"", address="aws_s3_bucket.logs")


def test_the_same_reports_make_no_difference() -> None:
    reports = (CheckReport("policy a.rego", HARD, (OPEN,)), CheckReport("policy b.rego", SOFT))
    diff = compare_checks("dev", reports, reports)
    assert diff.same and diff.blocked and diff.would_block and diff.stops_blocking == ()


def test_a_level_loosened_to_advisory_stops_blocking_its_findings() -> None:
    old = CheckReport("policy stateful.rego", SOFT, (OPEN, WRONG_TAG))
    new = CheckReport("policy stateful.rego", ADVISORY, (OPEN, WRONG_TAG))
    diff = compare_checks("prod", (old,), (new,))
    assert diff.relevelled == ((old, new),)
    assert diff.appeared == diff.disappeared == ()  # the level change says it all
    assert diff.blocked and not diff.would_block
    assert diff.stops_blocking == ((old, OPEN), (old, WRONG_TAG))


def test_a_deleted_policy_is_removed_and_stops_blocking() -> None:
    kept = CheckReport("policy tags.rego", HARD)
    gone = CheckReport("policy env/prod/no_public_ingress.rego", HARD, (OPEN,))
    diff = compare_checks("prod", (kept, gone), (kept,))
    assert diff.removed == (gone,) and diff.added == ()
    assert diff.disappeared == ((gone, OPEN),)
    assert diff.stops_blocking == ((gone, OPEN),)


def test_a_policy_that_errors_under_the_new_set_is_an_error_that_still_blocks() -> None:
    old = CheckReport("policy a.rego", HARD, (OPEN,))
    new = CheckReport("policy a.rego", HARD, error="policies/a.rego:3: undefined function")
    diff = compare_checks("dev", (old,), (new,))
    assert diff.errors == (new,) and not diff.same
    assert diff.disappeared == ()  # not "no longer reported": it was not evaluated
    assert diff.would_block and diff.stops_blocking == ()


def test_a_stricter_new_policy_reports_findings_only_under_the_new_set() -> None:
    new = CheckReport("policy min_replicas.rego", HARD, (OPEN,))
    diff = compare_checks("dev", (), (new,))
    assert diff.added == (new,) and diff.appeared == ((new, OPEN),)
    assert not diff.blocked and diff.would_block and diff.stops_blocking == ()


def test_findings_are_compared_by_address_and_message() -> None:
    moved = Finding(OPEN.message, address="aws_security_group.api")
    old = CheckReport("policy a.rego", HARD, (OPEN, WRONG_TAG))
    new = CheckReport("policy a.rego", HARD, (WRONG_TAG, moved))
    diff = compare_checks("dev", (old,), (new,))
    assert diff.appeared == ((new, moved),) and diff.disappeared == ((old, OPEN),)
    assert diff.stops_blocking == ((old, OPEN),)


def test_a_renamed_policy_that_still_blocks_the_same_finding_does_not_stop_blocking() -> None:
    old = CheckReport("policy ingress.rego", HARD, (OPEN,))
    new = CheckReport("policy network/ingress.rego", SOFT, (OPEN,))
    diff = compare_checks("prod", (old,), (new,))
    assert diff.removed == (old,) and diff.added == (new,)
    assert diff.stops_blocking == ()


def test_an_error_fixed_by_the_new_set_is_repaired_and_no_longer_blocks() -> None:
    old = CheckReport("policy a.rego", HARD, error="policies/a.rego:1: parse error")
    new = CheckReport("policy a.rego", HARD)
    diff = compare_checks("dev", (old,), (new,))
    assert diff.repaired == (old,) and diff.stops_blocking == ((old, None),)


def test_a_set_that_could_not_be_evaluated_at_all_compares_nothing() -> None:
    old = CheckReport("policy a.rego", HARD, (OPEN,))
    failed = CheckReport("policies policies/", HARD, error="took longer than 60s",
                         replaces_set=True)
    diff = compare_checks("dev", (old,), (failed,))
    assert diff.failed is failed and not diff.same
    assert diff.removed == () and diff.stops_blocking == () and diff.would_block
