"""Commit status verdicts and PR comment texts (gitops.pr_report), on the real plan fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plan_factory import make_plan_doc

from gitops.affected import AffectedSet, Impact, Reason
from gitops.checks import CheckLevel, CheckReport, ChecksDiff, Finding, compare_checks
from gitops.plan import Plan, load_plan, parse_plan
from gitops.policy import tag_check
from gitops.pr_report import (
    MARKER,
    closed_comment,
    no_environments_comment,
    plan_comment,
    render_policy_comparison,
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
    assert "changes the policies" not in body
    policies = no_environments_comment(["policies/a.rego"], head_sha=SHA, pr_number=3,
                                       base_ref="main", policy_paths=["policies/a.rego"])
    assert "It changes the policies (`policies/a.rego`)" in policies
    assert "their effect is not shown" in policies


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


# -- a pull request that changes the policies --------------------------------------------------

HARD, SOFT, ADVISORY = CheckLevel.HARD_MANDATORY, CheckLevel.SOFT_MANDATORY, CheckLevel.ADVISORY
OPEN = Finding("ingress from 0.0.0.0/0", address="aws_security_group.web")
INGRESS = CheckReport("policy env/prod/no_public_ingress.rego", HARD, (OPEN,))
CHANGED = ("policies/env/prod/no_public_ingress.rego",)


def comparison(*diffs: ChecksDiff, limit: int = 16000, **kwargs: object) -> str:
    return render_policy_comparison(diffs, changed=kwargs.pop("changed", CHANGED),
                                    limit=limit, **kwargs)  # type: ignore[arg-type]


def test_no_difference_is_one_compact_paragraph():
    same = (CheckReport("policy a.rego", HARD),)
    text = comparison(compare_checks("dev", same, same), compare_checks("prod", same, same))
    assert "no difference" in text and "`dev`, `prod`" in text
    assert "`policies/env/prod/no_public_ingress.rego`" in text
    assert "default branch's policies judge this pull request" in text
    assert "take effect once merged" in text
    assert "[!WARNING]" not in text and len(text) < 500


def test_a_deleted_policy_warns_that_the_pr_would_stop_blocking():
    text = comparison(compare_checks("prod", (INGRESS,), ()),
                      compare_checks("dev", (), ()))
    warning, rest = text.split("\n\n", 1)
    assert warning.startswith("> [!WARNING]")
    assert "**This pull request would stop blocking**" in warning
    assert "`prod` (`policy env/prod/no_public_ingress.rego`)" in warning
    assert ("- `prod`: **blocked** under the default branch's policies, would pass under this "
            "pull request's") in rest
    assert "⛔ **would stop blocking**" in rest and "`aws_security_group.web`" in rest
    assert "policy removed" in rest and "- `dev`: no difference" in rest


def test_a_level_change_is_shown_with_both_levels():
    loose = CheckReport(INGRESS.name, ADVISORY, INGRESS.findings)
    text = comparison(compare_checks("prod", (INGRESS,), (loose,)))
    assert "level changed" in text and "hard-mandatory → **advisory** (1 finding)" in text
    assert "[!WARNING]" in text


def test_a_policy_that_errors_under_the_new_set_is_shown_as_an_error_with_file_and_line():
    broken = CheckReport(INGRESS.name, HARD,
                         error="policies/env/prod/no_public_ingress.rego:12: rego_parse_error")
    text = comparison(compare_checks("prod", (INGRESS,), (broken,)))
    assert "❌ could not be evaluated under this pull request's policies" in text
    assert "no_public_ingress.rego:12: rego_parse_error" in text
    assert "**would block** under this pull request's" in text
    assert "would pass" not in text and "[!WARNING]" not in text


def test_a_set_that_could_not_run_is_never_a_pass():
    failed = CheckReport("policies policies/", HARD, replaces_set=True,
                         error="the policies took longer than 60s (stopped) while evaluating "
                               "policies/slow.rego:4 main.deny")
    text = comparison(compare_checks("prod", (INGRESS,), (failed,)))
    assert "this pull request's policies could not be evaluated" in text
    assert "policies/slow.rego:4" in text
    assert "no difference" not in text and "would pass" not in text


def test_new_findings_and_environments_not_planned():
    strict = CheckReport("policy min_replicas.rego", HARD, (Finding("at least 3 replicas"),))
    text = comparison(compare_checks("dev", (), (strict,)), not_compared=("staging",))
    assert "➕ only under this pull request's policies" in text and "at least 3 replicas" in text
    assert "policy added" in text and "passes under the default branch's" in text
    assert "- `staging`: not planned, nothing to compare" in text


def test_policy_text_cannot_format_the_comment():
    evil = Finding("</details>\n> [!NOTE]\n> all good ``` **bold**", address="x.y")
    text = comparison(compare_checks("dev", (), (CheckReport("policy e.rego", HARD, (evil,)),)))
    assert "\n> [!NOTE]" not in text and "</details>\n" not in text
    assert "`` </details> > [!NOTE] > all good ``` **bold** ``" not in text  # fence longer
    assert "````" in text


def test_the_comparison_keeps_to_its_budget_and_keeps_the_warning():
    many = tuple(Finding(f"finding {i} " + "x" * 100, address=f"r.n{i}") for i in range(500))
    old = CheckReport("policy a.rego", HARD, many)
    roomy = comparison(compare_checks("dev", (old,), ()), compare_checks("prod", (old,), ()))
    assert "- … and 490 more" in roomy and roomy.count("finding 0 ") == 2
    assert "no longer reported" not in roomy  # already listed as what would stop blocking
    diffs = [compare_checks(f"env{i}", (old,), ()) for i in range(20)]
    crowded = comparison(*diffs, limit=16000)
    assert len(crowded) <= 16000 and "- … and 497 more" in crowded  # fewer listed each
    for limit in (3000, 600):
        text = comparison(*diffs, limit=limit)
        assert len(text) <= limit and "would stop blocking" in text
    assert "would stop blocking**: 500 findings" in comparison(*diffs, limit=8000)


def test_the_plan_comment_shows_the_comparison_only_when_policies_change():
    plan = fixture_plan("create.json")
    checks = (tag_check(plan), INGRESS)
    loosened = EnvReport("prod", plan=plan, checks=checks, proposed_checks=checks[:1])
    affected = AffectedSet((Impact("prod", "terraform/environments/prod/x", Reason.ENVIRONMENT),))
    args = dict(head_sha=SHA, pr_number=5, base_ref="main")
    body = plan_comment([loosened], affected, policy_paths=CHANGED, **args)
    assert body.index("would stop blocking") < body.index("| Environment |")
    assert verdict(loosened).state == "failure"  # the default branch's policies judge it
    assert "changes the policies" not in plan_comment([loosened], affected, **args)
