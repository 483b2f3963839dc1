"""gitops.render: size-budgeted, well-formed, secret-free markdown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops.plan import Plan, load_plan, parse_plan
from gitops.policy import tag_check
from gitops.render import (
    DEFAULT_MARKER, EnvReport, render_plan_markdown, render_plan_summary, render_pr_comment,
)
from plan_factory import make_plan_doc

PLANS = Path(__file__).resolve().parent / "fixtures" / "plans"
LIMIT = 65536
SECRET = "Sup3r-Secret-Db-Passw0rd"  # planted as the (sensitive) database password
CREDENTIAL = "AKIA" + "IOSFODNN7EXAMPLE"  # planted in a NON-sensitive attribute
PLANTED = (SECRET, CREDENTIAL, "fixture-password-1", "fixture-password-2")


def plan(name: str) -> Plan:
    return load_plan(PLANS / name)


def report(env: str, p: Plan | None, **kw: object) -> EnvReport:
    return EnvReport(env, p, (tag_check(p),) if p is not None else (),
                     artifact_url=f"https://prefect.example/artifacts/{env}",
                     run_url=f"https://prefect.example/runs/{env}", **kw)  # type: ignore[arg-type]


def assert_well_formed(text: str) -> None:
    """Every <details> is closed before the next opens, and code fences are balanced."""
    depth = 0
    fences = 0
    for line in text.split("\n"):
        if line.startswith("<details>"):
            assert depth == 0, "nested <details>"
            depth += 1
        elif line == "</details>":
            assert depth == 1, "</details> without <details>"
            assert fences % 2 == 0, "</details> inside a code fence"
            depth -= 1
        elif line.startswith("```"):
            fences += 1
    assert depth == 0 and fences % 2 == 0


def assert_no_secrets(text: str) -> None:
    for secret in PLANTED:
        assert secret not in text


@pytest.fixture(scope="module")
def big_plan() -> Plan:
    doc = make_plan_doc(10_000, ("create", "update", "delete", "replace"), secret=SECRET,
                        credential=CREDENTIAL)
    return parse_plan(doc)


# --------------------------------------------------------------------------------------------
# PR comment


def test_pr_comment_layout_with_real_plans() -> None:
    reports = [report("dev", plan("create.json")), report("staging", plan("replace.json")),
               report("prod", plan("untagged.json")), report("qa", None, error="boom")]
    text = render_pr_comment(reports, header="## Terraform plan", footer="_footer_")
    assert text.startswith(DEFAULT_MARKER + "\n## Terraform plan\n")
    assert text.rstrip().endswith("_footer_")
    table = text.index("| Environment | Add | Change | Destroy | Replace | Checks | Status |")
    destructive = text.index("**⚠️ Destructive changes (2)**")
    details = text.index("<details>")
    assert table < destructive < details
    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", text, re.M)
    assert [r[0] for r in rows] == ["dev", "staging", "prod", "qa"]
    assert "| `dev` | 4 | 0 | 0 | 0 | ✅ passed |" in text
    assert "| `staging` | 0 | 1 | 0 | 2 | ✅ passed |" in text
    assert "| `prod` | 0 | 4 | 0 | 0 | ❌ tag policy: 4 violations |" in text
    assert "[❌ error](https://prefect.example/runs/qa)" in text
    assert text.count("<details>") == 4
    assert "missing Owner" in text and "**Error:**" in text
    assert "not shown" not in text  # everything fits
    assert_well_formed(text)


def test_destructive_changes_come_first() -> None:
    text = render_pr_comment([report("dev", plan("replace.json"))], header="h")
    details = text[text.index("<details>"):]
    replace = details.index("-/+ module.network.sandbox_network.this")
    update = details.index("~ module.lb.sandbox_load_balancer.this")
    assert replace < update
    summary = render_plan_summary(plan("replace.json"), (), None)
    assert summary.index("Destructive") < summary.index(
        "`module.network.sandbox_network.this`: replace")
    md = render_plan_markdown("dev", plan("replace.json"), ())
    assert md.index("-/+ module.web.sandbox_service.this") < md.index(
        "~ module.lb.sandbox_load_balancer.this")


def test_no_changes_and_drift_only() -> None:
    text = render_pr_comment([report("dev", plan("no_changes.json")),
                              report("prod", plan("drift_refresh_only.json"))], header="h")
    assert "[✅ no changes](https://prefect.example/runs/dev)" in text
    assert "drift: 1" in text and "**Drift:** 1 resource changed outside Terraform" in text
    assert text.count("<details>") == 1  # nothing to detail for dev
    assert_well_formed(text)


def test_ten_thousand_resources_fit_in_a_comment(big_plan: Plan) -> None:
    text = render_pr_comment([report("dev", big_plan)], header="## Terraform plan")
    assert len(text) <= LIMIT
    assert "| `dev` | 2500 | 2500 | 2500 | 2500 |" in text
    assert re.search(r"_\d+ resources not shown — full plan: https://prefect\.example/"
                     r"artifacts/dev_", text)
    assert "**⚠️ Destructive changes (5000)**" in text and "more (see details below)" in text
    details = text[text.index("<details>"):]
    assert "# destroy" in details and "# create" not in details  # destructive first
    assert_well_formed(text)
    assert_no_secrets(text)


def test_space_is_shared_fairly(big_plan: Plan) -> None:
    small = plan("update.json")
    reports = [report("big-a", big_plan), report("small", small), report("big-b", big_plan)]
    text = render_pr_comment(reports, header="h")
    assert len(text) <= LIMIT
    blocks = re.findall(r"<details>.*?</details>", text, re.S)
    assert len(blocks) == 3
    a, s, b = (len(x) for x in blocks)
    assert "not shown" not in blocks[1]  # the small environment is shown in full
    assert "image" in blocks[1]
    assert abs(a - b) < 0.1 * max(a, b)  # the two big ones split the rest
    assert_well_formed(text)


@pytest.mark.parametrize("limit", [65536, 20000, 5000, 2000, 1000, 600, 300])
def test_comment_never_exceeds_the_limit(big_plan: Plan, limit: int) -> None:
    reports = [report("dev", big_plan), report("prod", plan("replace.json")),
               report("qa", None, error="terraform failed\n" * 500)]
    text = render_pr_comment(reports, header="## Terraform plan", limit=limit,
                             footer="_Comment `/apply` to apply._")
    assert len(text) <= limit
    assert text.startswith(DEFAULT_MARKER)
    assert_well_formed(text)
    assert_no_secrets(text)
    if limit >= 1000:
        assert "| Environment |" in text


def test_degrades_through_the_levels() -> None:
    p = parse_plan(make_plan_doc(40, ("update",)))
    full = render_pr_comment([report("dev", p)], header="h")
    assert "not shown" not in full
    texts = {}
    for fraction in (0.9, 0.25):
        limit = int(len(full) * fraction)
        texts[fraction] = render_pr_comment([report("dev", p)], header="h", limit=limit)
        assert len(texts[fraction]) <= limit
        assert_well_formed(texts[fraction])
    # some attribute lists dropped, every address kept
    assert re.search(r"_Attribute changes of \d+ resources not shown", texts[0.9])
    assert "~     " in texts[0.9]  # ... but not all
    assert all(f"r[{i}]  #" in texts[0.9] for i in range(40))
    # only some addresses
    assert re.search(r"_\d+ resources not shown — full plan: https://", texts[0.25])
    assert "r[0]  #" in texts[0.25]
    # counts only
    for limit in (470, 400):  # the "Checks" column is 4 characters narrower than "Tag policy"
        tiny = render_pr_comment([report("dev", p)], header="h", limit=limit)
        assert len(tiny) <= limit and "| `dev` | 0 | 40 |" in tiny
        assert "_40 resources not shown" in tiny or "Details not shown" in tiny
        assert_well_formed(tiny)


def test_secrets_never_rendered(big_plan: Plan) -> None:
    small = parse_plan(make_plan_doc(8, ("create", "update"), secret=SECRET,
                                     credential=CREDENTIAL))
    sensitive = plan("sensitive.json")
    error = f"Error: auth failed for password={SECRET} with key {CREDENTIAL}"
    reports = [report("dev", small), report("prod", sensitive),
               report("qa", None, error=error)]
    outputs = [render_pr_comment(reports, header=f"token: {SECRET}", limit=limit)
               for limit in (LIMIT, 3000)]
    for p in (small, sensitive, big_plan):
        outputs.append(render_plan_markdown("dev", p, (tag_check(p),)))
        outputs.append(render_plan_summary(p, (tag_check(p),), "abc@def#1"))
    for text in outputs:
        assert_no_secrets(text)
    assert "(sensitive)" in outputs[0]


def test_hostile_text_cannot_break_the_markdown() -> None:
    p = load_plan(PLANS / "edge" / "hostile_text.json")
    text = render_pr_comment([report("dev", p)], header="h")
    assert_well_formed(text)
    assert text.count(DEFAULT_MARKER) == 1 or text.index(DEFAULT_MARKER) == 0
    for line in text.split("\n"):
        if line.startswith("| `dev`"):
            assert line.count(" | ") == 6
    md = render_plan_markdown("dev", p, ())
    assert_well_formed(md)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=4),
       limit=st.integers(min_value=250, max_value=70000))
def test_any_size_any_limit(sizes: list[int], limit: int) -> None:
    reports = [report(f"env{i}", parse_plan(make_plan_doc(n, ("delete", "create", "update"),
                                                          realistic=False)))
               for i, n in enumerate(sizes)]
    text = render_pr_comment(reports, header="## plan", limit=limit)
    assert len(text) <= limit
    assert text.startswith(DEFAULT_MARKER)
    assert_well_formed(text)


# --------------------------------------------------------------------------------------------
# approval summary and artifact


def test_plan_summary() -> None:
    p = plan("untagged.json")
    text = render_plan_summary(p, (tag_check(p),), "0123456789ab@deadbeef#7")
    assert "**Plan:** 0 to add, 4 to change, 0 to destroy, 0 to replace" in text
    assert "❌ 4 resources without the required tags" in text
    assert "`module.db.sandbox_database.this`: missing Owner" in text
    assert "`0123456789ab@deadbeef#7`" in text
    assert "**Plan:** no changes" in render_plan_summary(plan("no_changes.json"), (), None)


def test_plan_summary_is_bounded(big_plan: Plan) -> None:
    text = render_plan_summary(big_plan, (tag_check(big_plan),), "fp", limit=1500)
    assert len(text) <= 1500
    assert "**⚠️ Destructive changes (5000):**" in text and "more" in text


def test_plan_markdown_has_everything() -> None:
    p = plan("drift.json")
    md = render_plan_markdown("dev", p, (tag_check(p),))
    assert md.startswith("# Terraform plan: `dev`")
    assert "## Drift: changed outside Terraform" in md
    assert "changed outside Terraform" in md and "~     replicas = 2 -> 5" in md
    assert "~     replicas = 5 -> 2" in md
    assert_well_formed(md)
    big = parse_plan(make_plan_doc(300, ("create",), realistic=False))
    big_md = render_plan_markdown("dev", big, ())
    assert all(f"r[{i}]" in big_md for i in range(300))


def test_approval_summary_lists_what_changes_with_old_and_new_values() -> None:
    plan = load_plan(PLANS / "update.json")
    text = render_plan_summary(plan, (tag_check(plan),), "abc@def#1")
    assert "**Other changes (4):**" in text
    assert "replicas: 2 → 3" in text
    assert "api:1.0.0\" → " in text and "api:1.1.0\"" in text  # the version end survives


def test_approval_summary_never_shows_a_sensitive_value() -> None:
    plan = load_plan(PLANS / "sensitive.json")
    text = render_plan_summary(plan, (tag_check(plan),), None)
    assert "password: (sensitive) → (sensitive)" in text
    assert "fixture-password" not in text


def test_error_paths_are_shown_relative_to_the_checkout() -> None:
    from gitops.render import relative_to_checkout

    text = ("Error: Invalid multi-line string\n  on /srv/work/runs/42/head/terraform/environments/"
            "dev/dev.tfvars line 6:\nalso /srv/work/runs/42/headless/x")
    shown = relative_to_checkout(text, "/srv/work/runs/42/head/")
    assert "on terraform/environments/dev/dev.tfvars line 6" in shown
    assert "/srv/work/runs/42/headless/x" in shown  # only the checkout itself is cut
    assert relative_to_checkout(text, "/") == text


# --------------------------------------------------------------------------------------------
# plans nobody here wrote (tests/fixtures/plans/upstream/SOURCES.md), in Terraform's words

UPSTREAM = PLANS / "upstream"


def texts(p: Plan) -> tuple[str, str, str]:
    """(PR comment, approval summary, artifact) of one plan."""
    comment = render_pr_comment([report("dev", p)], header="h")
    assert_well_formed(comment)
    return comment, render_plan_summary(p, (), "fp"), render_plan_markdown("dev", p, ())


def test_a_move_only_plan_is_shown_as_a_move_not_as_no_changes() -> None:
    comment, summary, artifact = texts(load_plan(UPSTREAM / "terraform_moved_simple.json"))
    move = ("tfcoremock_simple_resource.second  # moved from "
            "tfcoremock_simple_resource.first")
    assert move in comment and move in artifact
    assert "no changes" not in comment.lower() and "no changes" not in artifact.lower()
    assert summary.startswith("**Plan:** 0 to add, 0 to change, 0 to destroy, 0 to replace, "
                              "1 to move")
    assert "`tfcoremock_simple_resource.second`: moved from tfcoremock_simple_resource.first" \
        in summary


def test_a_move_with_an_update_says_both() -> None:
    _, summary, artifact = texts(load_plan(UPSTREAM / "terraform_moved_with_update.json"))
    line = ("~ tfcoremock_simple_resource.moved  # update in-place (moved from "
            "tfcoremock_simple_resource.base)")
    assert line in artifact
    assert "1 to change" in summary and "1 to move" in summary


def test_an_import_only_plan_is_shown_as_an_import() -> None:
    comment, summary, artifact = texts(load_plan(UPSTREAM / "terraform_import_config_gen.json"))
    line = 'terraform_data.foo  # import (id "bar"; config will be generated)'
    assert line in comment and line in artifact
    assert summary.startswith("**Plan:** 1 to import, 0 to add")
    assert "(Terraform's count: 1 to import, 0 to add" in artifact


def test_a_forget_says_the_object_is_not_destroyed() -> None:
    _, summary, artifact = texts(load_plan(UPSTREAM / "derived" / "terraform-1.7_forget.json"))
    assert "Destructive" not in summary and "Destructive" not in artifact
    assert ("`null_resource.null_resource`: forget: no longer managed by Terraform, but not "
            "destroyed (destroy = false is set in the configuration)") in summary


def test_why_a_resource_is_replaced_or_destroyed() -> None:
    comment, summary, _ = texts(load_plan(UPSTREAM / "terraform_requires_replace.json"))
    assert "`test_instance.test`: replace (forced by: ami)" in summary
    assert "-/+ test_instance.test  # replace (forced by: ami)" in comment
    edge = render_plan_summary(load_plan(PLANS / "edge" / "mixed.json"), (), None)
    assert ("`sandbox_database.old`: destroy (because sandbox_database.old is not in "
            "configuration)") in edge
    assert "delete_because_no_resource_config" not in edge
    assert "read during apply (config refers to values not yet known)" in render_plan_markdown(
        "dev", load_plan(PLANS / "edge" / "mixed.json"), ())


def test_an_errored_plan_says_planning_failed() -> None:
    comment, summary, artifact = texts(load_plan(UPSTREAM / "opentofu_plan_error.json"))
    assert "❌ plan errored" in comment and "**Planning failed**" in comment
    assert summary.startswith("**Plan:** planning failed")
    assert "No changes" not in artifact and "Planning failed" in artifact


@pytest.mark.parametrize("name", ["terraform-1.2_condition_results.json",
                                  "terraform-1.8_checks.json"])
def test_failed_checks_are_shown(name: str) -> None:
    comment, summary, artifact = texts(load_plan(UPSTREAM / name))
    assert "checks failed: 2" in comment
    for text in (comment, summary, artifact):
        assert "**Checks:** 2 failed" in text
        assert "`test_instance.foo` fail: Invalid AMI ID: must start with \"ami-\"." in text


def test_rebuilt_drift_addresses_are_marked() -> None:
    artifact = render_plan_markdown("dev", load_plan(
        UPSTREAM / "derived" / "terraform-1.0.0_drift_without_address.json"), ())
    assert ("~ test_instance.should_refresh  # changed outside Terraform (address rebuilt: "
            "this Terraform version wrote none)") in artifact


def test_a_deferred_plan_is_incomplete() -> None:
    """Terraform >= 1.8 (deferred actions): changes it could not plan yet; no public capture of
    this shape was found, so it is built from the project's plan factory."""
    from plan_factory import make_resource_change

    doc = {**make_plan_doc(1), "format_version": "1.2", "applyable": True, "complete": False,
           "deferred_changes": [{"reason": "provider_config_unknown",
                                 "resource_change": make_resource_change(5, "create")}]}
    p = parse_plan(doc)
    assert [(d.address, d.reason, d.actions) for d in p.deferred] == [
        ("module.m0.sandbox_service.r[5]", "provider_config_unknown", ("create",))]
    comment, summary, artifact = texts(p)
    assert "⚠️ incomplete plan" in comment
    note = ("⚠️ **Incomplete plan**: 1 change deferred (its provider's configuration is not "
            "known yet): another plan and apply will be needed after this one.")
    assert note in summary and note in artifact
    assert "- `module.m0.sandbox_service.r[5]` (create): its provider's configuration" in artifact


def test_very_long_addresses_still_list_every_destructive_change_in_the_approval_form() -> None:
    doc = make_plan_doc(30, ("delete",), realistic=False)
    for i, change in enumerate(doc["resource_changes"]):
        key = f"{i}-" + "k" * 5000  # a for_each key holding a whole document
        change["address"] = change["address"].replace(f"r[{i}]", f'r["{key}"]')
        change["index"] = key
    summary = render_plan_summary(parse_plan(doc), (), "fp")
    assert len(summary) <= 3000
    assert summary.count("…") >= 5 and "- `module.m0.sandbox_network.r[\"0-kkk" in summary
    comment = render_pr_comment([report("dev", parse_plan(doc))], header="h", limit=20_000)
    assert len(comment) <= 20_000 and "**⚠️ Destructive changes (30)**" in comment
    assert_well_formed(comment)
