"""Commit status verdicts and PR comment texts (gitops.pr_report), on the real plan fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plan_factory import make_plan_doc

from gitops.affected import AffectedSet, Impact, Reason
from gitops.plan import Plan, load_plan, parse_plan
from gitops.policy import tag_check
from gitops.pr_report import (
    MARKER,
    closed_comment,
    no_environments_comment,
    plan_comment,
    verdict,
)
from gitops.render import EnvReport

PLANS = Path(__file__).resolve().parent / "fixtures" / "plans"
SHA = "0123456789abcdef0123456789abcdef01234567"


def fixture_plan(name: str) -> Plan:
    return parse_plan(json.loads((PLANS / name).read_text()))


def report(env: str, plan: Plan | None = None, **kwargs: object) -> EnvReport:
    checks = (tag_check(plan),) if plan is not None else ()
    return EnvReport(env, plan=plan, checks=checks, **kwargs)  # type: ignore[arg-type]


def test_a_clean_plan_with_changes_succeeds_with_its_counts():
    result = verdict(report("dev", fixture_plan("create.json")))
    assert result.state == "success"
    assert "to add" in result.description and len(result.description) <= 140


def test_no_changes_succeeds():
    result = verdict(report("dev", fixture_plan("no_changes.json")))
    assert (result.state, result.description) == ("success", "no changes")


def test_a_policy_violation_fails():
    result = verdict(report("dev", parse_plan(make_plan_doc(3, owner=None))))
    assert result.state == "failure"
    assert result.description.startswith("tag policy: 3 resources without the required tags")


@pytest.mark.parametrize("error", [
    "plan failed: TerraformPlanFailed: terraform plan failed\nError: boom",
    "state is locked by alice; not planned",
    "configuration does not load: bad toml " + "x" * 300,
])
def test_an_error_fails_with_a_short_first_line(error):
    result = verdict(report("dev", error=error))
    assert result.state == "failure"
    assert result.description.startswith("not planned: ")
    assert "\n" not in result.description and len(result.description) <= 140


def test_an_error_description_is_redacted():
    # (redact_text misses "failed: password=x": the pair regex takes "failed" as the name.)
    result = verdict(report("dev", error="plan failed, password=hunter2-secret-value"))
    assert "hunter2" not in result.description


def test_the_plan_comment_has_the_marker_the_table_and_why():
    affected = AffectedSet((Impact("dev", "terraform/environments/dev/dev.tfvars",
                                   Reason.ENVIRONMENT),
                            Impact("prod", "terraform/modules/x/main.tf", Reason.MODULE)))
    body = plan_comment([report("dev", fixture_plan("create.json"), artifact_url="http://a/1"),
                         report("prod", error="state is locked")],
                        affected, head_sha=SHA, pr_number=12, base_ref="main",
                        run_url="http://ui/runs/flow-run/1")
    assert body.startswith(MARKER + "\n")
    assert f"`{SHA[:12]}`" in body and "Pull request #12 into `main`" in body
    assert "| Environment |" in body
    assert "`dev`: its folder changed" in body
    assert "`prod`: a module its stack uses changed" in body
    assert "**Full plans** (Prefect artifacts): [`dev`](http://a/1)" in body
    assert "nothing is applied from a pull request" in body
    assert len(body) <= 65536


def test_the_plan_comment_keeps_to_the_size_limit():
    big = parse_plan(make_plan_doc(3000, ("create", "update", "delete")))
    affected = AffectedSet(tuple(Impact(e, f"terraform/environments/{e}/x", Reason.ENVIRONMENT)
                                 for e in ("a", "b")))
    body = plan_comment([report("a", big), report("b", big)], affected, head_sha=SHA,
                        pr_number=1, base_ref="main")
    assert len(body) <= 65536 and body.startswith(MARKER)


def test_a_pr_changing_no_environment_says_so():
    body = no_environments_comment([f"docs/{i}.md" for i in range(25)], head_sha=SHA,
                                   pr_number=3, base_ref="main")
    assert body.startswith(MARKER + "\n")
    assert "No environment is affected" in body and "None of the 25 changed files" in body
    assert "`docs/0.md`" in body and "… and 5 more" in body


def test_the_closed_comment():
    body = closed_comment(9)
    assert body.startswith(MARKER + "\n")
    assert "closed without merging" in body and "discarded" in body


UPSTREAM = Path(__file__).resolve().parent / "fixtures" / "plans" / "upstream"


def test_a_move_only_plan_is_not_reported_as_no_changes() -> None:
    result = verdict(EnvReport("dev", load_plan(UPSTREAM / "terraform_moved_simple.json")))
    assert (result.state, result.description) == (
        "success", "0 to add, 0 to change, 0 to destroy, 0 to replace, 1 to move")
    checks = verdict(EnvReport("dev", load_plan(UPSTREAM / "terraform-1.8_checks.json")))
    assert checks.state == "success" and checks.description.endswith("; 2 checks failed")
