"""gitops.checks: check reports as data; an unevaluated check always blocks."""

from __future__ import annotations

import pytest

from gitops.checks import (
    OVERRIDE_NEEDED, CheckLevel, CheckReport, Finding, blocking, describe_blocking,
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
