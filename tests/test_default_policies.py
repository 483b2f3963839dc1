"""The default policies shipped to the infrastructure repository (deployments/infra-repo/policies),
on plan fixtures: each one passes a clean plan and catches what it is for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.checks import CheckLevel
from gitops.rego import PolicySet, run_policy_tests
from plan_factory import make_change, make_plan_doc, plan_doc_of

SHIPPED = Path(__file__).resolve().parent.parent / "deployments" / "infra-repo" / "policies"
PLANS = Path(__file__).resolve().parent / "fixtures" / "plans"


def reports(doc: dict, env: str) -> dict[str, object]:
    return {r.name: r for r in PolicySet.load(SHIPPED, env).evaluate(json.dumps(doc))}


@pytest.mark.parametrize("fixture", ["create.json", "update.json", "scaled.json",
                                     "no_changes.json"])
def test_real_plans_of_the_sandbox_pass_every_policy(fixture: str) -> None:
    doc = json.loads((PLANS / fixture).read_text())
    env = next((c["change"]["after"]["tags_all"]["Environment"]
                for c in doc.get("resource_changes", ())
                if (c["change"].get("after") or {}).get("tags_all")), "dev")
    for name, report in reports(doc, env).items():
        assert report.passed, (name, report.findings, report.error)


def test_cost_tags_environment_must_name_the_environment() -> None:
    doc = make_plan_doc(4)  # tagged Environment = dev
    assert reports(doc, "dev")["policy cost_tags.rego"].passed
    report = reports(doc, "staging")["policy cost_tags.rego"]
    assert report.level is CheckLevel.HARD_MANDATORY and len(report.findings) == 4
    assert 'tag Environment is "dev", but this is environment "staging"' in report.findings[0].message


def test_stateful_resources_destroy_or_replace_is_soft_mandatory() -> None:
    doc = make_plan_doc(12, ("update", "delete", "replace"))
    report = reports(doc, "dev")["policy stateful_resources.rego"]
    assert report.level is CheckLevel.SOFT_MANDATORY and report.blocks
    assert {f.address for f in report.findings} == {"module.m0.sandbox_database.r[7]",
                                                    "module.m0.sandbox_database.r[11]"}
    assert {f.message.split()[0] for f in report.findings} == {"destroys", "replaces"}
    assert reports(make_plan_doc(12, ("update",)), "dev")["policy stateful_resources.rego"].passed


OPEN_SG = make_change("aws_security_group", "web", ["create"], {
    "ingress": [{"cidr_blocks": ["10.0.0.0/8"], "ipv6_cidr_blocks": None},
                {"cidr_blocks": None, "ipv6_cidr_blocks": ["::/0"]}]})
OPEN_RULE = make_change("aws_vpc_security_group_ingress_rule", "any", ["update"],
                        {"cidr_ipv4": "0.0.0.0/0"})


def test_no_public_ingress_in_prod_only() -> None:
    doc = plan_doc_of([OPEN_SG, OPEN_RULE])
    report = reports(doc, "prod")["policy env/prod/no_public_ingress.rego"]
    assert report.level is CheckLevel.HARD_MANDATORY
    assert sorted(f.describe() for f in report.findings) == [
        "aws_security_group.web: ingress open to ::/0 in prod",
        "aws_vpc_security_group_ingress_rule.any: ingress open to 0.0.0.0/0 in prod"]
    assert "policy env/prod/no_public_ingress.rego" not in reports(doc, "dev")
    closed = make_change("aws_security_group", "db", ["create"],
                         {"ingress": [{"cidr_blocks": ["10.0.0.0/8"]}]})
    assert reports(plan_doc_of([closed]), "prod")["policy env/prod/no_public_ingress.rego"].passed


def test_public_data_and_deletion_protection_advice() -> None:
    doc = plan_doc_of([
        make_change("aws_s3_bucket", "logs", ["create"], {"acl": "public-read"}),
        make_change("aws_db_instance", "main", ["create"], {"publicly_accessible": True}),
        make_change("aws_db_instance", "safe", ["create"], {"publicly_accessible": False,
                                                            "deletion_protection": True})])
    found = reports(doc, "dev")
    assert {f.address for f in found["policy public_data.rego"].findings} == {
        "aws_s3_bucket.logs", "aws_db_instance.main"}
    warn = found["policy public_data.rego (warn)"]
    assert warn.level is CheckLevel.ADVISORY and not warn.blocks
    assert [f.address for f in warn.findings] == ["aws_db_instance.main"]


def test_the_shipped_policies_own_tests_pass() -> None:
    results = run_policy_tests(SHIPPED)
    assert results and all(r.outcome == "passed" for r in results), results
