"""gitops.plan: `terraform show -json` into frozen models (real fixtures + hand-written edge cases)."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from gitops.errors import PlanParseError
from gitops.plan import (
    ABSENT, SENSITIVE, UNKNOWN, Action, Counts, FrozenMap, Plan, load_plan, parse_plan,
)
from plan_factory import make_plan_doc

PLANS = Path(__file__).resolve().parent / "fixtures" / "plans"
EDGE = PLANS / "edge"
FIXTURE_PASSWORDS = ("fixture-password-1", "fixture-password-2")


def plan(name: str) -> Plan:
    return load_plan(PLANS / name)


def attrs(change: Any) -> dict[str, Any]:
    return {a.path: a for a in change.attributes}


def by_address(p: Plan) -> dict[str, Any]:
    return {c.address: c for c in p.changes}


# --------------------------------------------------------------------------------------------
# real fixtures (Terraform 1.0.3 + the sandbox provider)


def test_create() -> None:
    p = plan("create.json")
    assert (p.format_version, p.terraform_version) == ("0.2", "1.0.3")
    assert p.counts == Counts(add=4)
    assert p.has_changes and not p.is_destroy and not p.destructive and not p.drift
    assert {c.action for c in p.changes} == {Action.CREATE}
    db = by_address(p)["module.db.sandbox_database.this"]
    assert (db.module_address, db.type, db.name, db.mode) == ("module.db", "sandbox_database",
                                                              "this", "managed")
    assert db.provider == "registry.terraform.io/gitops/sandbox"
    a = attrs(db)
    assert a["id"].after == UNKNOWN and a["id"].unknown and a["id"].before == ABSENT
    assert a["name"].after == '"expense-dev-db"'
    assert a["password"].after == SENSITIVE and a["password"].sensitive
    assert a["tags_all.Owner"].after == '"team-expense"'
    # effective tags = tags_all (provider default tags merged in)
    assert db.takes_tags
    assert dict(db.tags_after or {}) == {"Application": "expense", "Component": "database",
                                         "Environment": "dev", "Owner": "team-expense"}
    outputs = {o.name: o for o in p.outputs}
    assert outputs["db_password"].sensitive and outputs["db_password"].after == SENSITIVE
    assert outputs["lb_hostname"].unknown and outputs["lb_hostname"].after == UNKNOWN


def test_no_changes() -> None:
    p = plan("no_changes.json")
    assert p.changes == () and p.outputs == () and p.drift == ()
    assert not p.has_changes and p.counts == Counts() and p.counts.total == 0


def test_update_only_lists_attributes_that_differ() -> None:
    p = plan("update.json")
    assert p.counts == Counts(change=4)
    web = by_address(p)["module.web.sandbox_service.this"]
    assert [(a.path, a.before, a.after) for a in web.attributes] == [
        ("image", '"registry.sandbox.internal/expense/api:1.0.0"',
         '"registry.sandbox.internal/expense/api:1.1.0"'),
        ("replicas", "2", "3"),
        ("tags_all.Owner", '"team-expense"', '"team-payments"'),
    ]


def test_replace_counts_and_destructive_first() -> None:
    p = plan("replace.json")
    assert p.counts == Counts(change=1, replace=2)
    assert (p.counts.terraform_add, p.counts.terraform_destroy) == (2, 2)
    assert [c.action for c in p.changes_destructive_first] == [Action.REPLACE, Action.REPLACE,
                                                               Action.UPDATE]
    assert [c.address for c in p.destructive] == ["module.network.sandbox_network.this",
                                                  "module.web.sandbox_service.this"]
    net = p.destructive[0]
    assert net.action_reason == "replace_because_cannot_update"
    assert net.actions == ("delete", "create") and not net.create_before_destroy
    assert attrs(net)["cidr"].forces_replacement
    assert not attrs(net)["id"].forces_replacement


def test_delete_is_a_destroy_plan() -> None:
    p = plan("delete.json")
    assert p.counts == Counts(destroy=4) and p.is_destroy and len(p.destructive) == 4
    db = by_address(p)["module.db.sandbox_database.this"]
    assert db.tags_after is not None and db.tags_after["Owner"] == "team-expense"
    assert attrs(db)["password"].before == SENSITIVE


def test_drift_is_separate_from_changes() -> None:
    p = plan("drift.json")
    assert len(p.drift) == 1 and p.has_drift
    drifted = p.drift[0]
    assert drifted.address == "module.web.sandbox_service.this"
    a = attrs(drifted)
    assert (a["replicas"].before, a["replicas"].after) == ("2", "5")
    assert a["tags.Hotfix"].before == ABSENT and a["tags.Hotfix"].after == '"INC-1234"'
    # and the plan undoes it
    undo = attrs(p.changes[0])
    assert (undo["replicas"].before, undo["replicas"].after) == ("5", "2")


def test_refresh_only_plan_has_drift_but_no_changes() -> None:
    p = plan("drift_refresh_only.json")
    assert p.changes == () and not p.has_changes and len(p.drift) == 1


def test_sensitive_values_never_in_the_model() -> None:
    p = plan("sensitive.json")
    db = p.changes[0]
    assert [(a.path, a.before, a.after, a.sensitive) for a in db.attributes] == [
        ("password", SENSITIVE, SENSITIVE, True)]
    out = p.outputs[0]
    assert (out.name, out.before, out.after, out.sensitive) == ("db_password", SENSITIVE,
                                                                SENSITIVE, True)
    text = repr(p) + repr(db.attributes) + repr(p.outputs)
    blob = pickle.dumps(p)
    for secret in FIXTURE_PASSWORDS:
        assert secret not in text
        assert secret.encode() not in blob


def test_scaled_and_untagged() -> None:
    scaled = plan("scaled.json")
    assert scaled.counts == Counts(add=45)
    assert all(c.module_address.startswith("module.worker[") for c in scaled.changes)
    untagged = plan("untagged.json")
    assert all("Owner" not in (c.tags_after or {}) for c in untagged.changes)


# --------------------------------------------------------------------------------------------
# hand-written edge cases


@pytest.fixture(scope="module")
def mixed() -> Plan:
    return load_plan(EDGE / "mixed.json")


def test_edge_counts_and_order(mixed: Plan) -> None:
    assert mixed.counts == Counts(add=3, change=2, destroy=1, replace=2, read=1)
    assert "sandbox_service.web[1]" not in by_address(mixed)  # the no-op
    ordered = [c.action for c in mixed.changes_destructive_first]
    assert ordered == [Action.DELETE, Action.REPLACE, Action.REPLACE, Action.UPDATE, Action.UPDATE,
                       Action.CREATE, Action.CREATE, Action.CREATE, Action.READ]
    assert [c.address for c in mixed.destructive] == [
        "sandbox_database.old", 'module.app["blue"].sandbox_service.api["x"]',
        "sandbox_load_balancer.front"]


def test_edge_addresses_and_keys(mixed: Plan) -> None:
    changes = by_address(mixed)
    api = changes['module.app["blue"].sandbox_service.api["x"]']
    assert (api.module_address, api.index, api.action) == ('module.app["blue"]', "x",
                                                           Action.REPLACE)
    assert changes["sandbox_service.web[0]"].index == 0
    assert changes["sandbox_database.old"].action_reason == "delete_because_no_resource_config"
    read = changes["data.sandbox_network.shared"]
    assert (read.mode, read.action, read.action_reason) == ("data", Action.READ,
                                                             "read_because_config_unknown")


def test_edge_create_before_destroy(mixed: Plan) -> None:
    lb = by_address(mixed)["sandbox_load_balancer.front"]
    assert lb.action is Action.REPLACE and lb.create_before_destroy and lb.is_destructive
    # tags_all unknown as a whole: effective tags fall back to tags
    assert dict(lb.tags_after or {}) == {"Environment": "dev", "Application": "web", "Owner": ""}
    assert attrs(lb)["tags_all"].after == UNKNOWN


def test_edge_unknown_values(mixed: Plan) -> None:
    net = attrs(by_address(mixed)["module.net.sandbox_network.main"])
    assert net["subnets[0]"].after == '"10.0.1.0/24"'
    assert net["subnets[1]"].after == UNKNOWN and net["subnets[1]"].unknown
    unk = by_address(mixed)["sandbox_service.unk"]
    assert unk.tags_unknown == frozenset({"Owner"}) and "Owner" not in (unk.tags_after or {})
    assert attrs(unk)["tags_all.Owner"].after == UNKNOWN


def test_edge_nested_sensitive_and_credentials(mixed: Plan) -> None:
    db = attrs(by_address(mixed)["sandbox_database.main"])
    assert db["settings.auth.password"].after == SENSITIVE
    assert (db["settings.size"].before, db["settings.size"].after) == ('"small"', '"large"')
    assert "settings.auth.user" not in db  # unchanged
    # a non-sensitive attribute that contains a value marked sensitive elsewhere
    assert db["note"].after == SENSITIVE and db["note"].sensitive
    web = attrs(by_address(mixed)["sandbox_service.web[0]"])
    assert web["description"].after == SENSITIVE  # an AWS access key id, not marked sensitive
    assert web["env.HELPER"].after == SENSITIVE  # a GitHub token
    assert web["env.API_TOKEN"].after == SENSITIVE  # a secret-ish name
    assert web["env.LOG_LEVEL"].after == '"debug"'
    text = repr([c.attributes for c in mixed.changes]) + repr(mixed.outputs)
    for secret in ("s3cr3t-value", "Pa55word", "AKIAIOSFODNN7EXAMPLE", "ghp_", "tok-123456"):
        assert secret not in text


def test_edge_types_without_tags(mixed: Plan) -> None:
    rnd = by_address(mixed)["sandbox_random.suffix"]
    assert not rnd.takes_tags and rnd.tags_after is None


def test_edge_outputs(mixed: Plan) -> None:
    outputs = {o.name: o for o in mixed.outputs}
    assert set(outputs) == {"db_password", "lb_dns"}  # the no-op is dropped
    assert outputs["db_password"].after == SENSITIVE
    assert outputs["lb_dns"].unknown and outputs["lb_dns"].after == UNKNOWN


def test_edge_drift(mixed: Plan) -> None:
    assert [(c.address, c.action) for c in mixed.drift] == [("sandbox_service.web[0]",
                                                            Action.UPDATE)]


def test_format_1_x_and_future_actions() -> None:
    p = load_plan(EDGE / "format_1_2.json")
    assert (p.format_version, p.applyable, p.complete, p.errored) == ("1.2", True, True, False)
    changes = by_address(p)
    gone, future, imported = (changes["sandbox_network.gone"], changes["sandbox_network.future"],
                              changes["sandbox_network.imported"])
    assert gone.action is Action.FORGET and not gone.is_destructive
    assert future.action is Action.OTHER and future.actions == ("delete", "teleport")
    assert future.is_destructive and future.action_reason == "some_reason_from_the_future"
    assert imported.action is Action.REPLACE and not imported.is_destructive  # create+forget
    assert imported.importing and imported.import_id == "net-7"
    assert p.counts == Counts(replace=1, forget=1, other=1, imports=1) and p.has_changes


# --------------------------------------------------------------------------------------------
# failures


MALFORMED = json.loads((EDGE / "malformed.json").read_text())


@pytest.mark.parametrize("case", [k for k in MALFORMED if not k.startswith("_")])
def test_malformed_documents_raise_plan_parse_error(case: str) -> None:
    with pytest.raises(PlanParseError) as info:
        parse_plan(MALFORMED[case]["doc"])
    assert MALFORMED[case]["error"] in str(info.value)


def test_load_plan_errors(tmp_path: Path) -> None:
    with pytest.raises(PlanParseError, match="cannot read plan file"):
        load_plan(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PlanParseError, match="not valid JSON"):
        load_plan(bad)


# --------------------------------------------------------------------------------------------
# model properties


def test_models_are_frozen_hashable_and_picklable(mixed: Plan) -> None:
    change = mixed.changes[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.address = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        change.tags_after["x"] = "y"  # type: ignore[index]
    assert isinstance(change.tags_after, FrozenMap)
    hash(change)
    copy = pickle.loads(pickle.dumps(mixed))
    assert copy == mixed
    assert [c.attributes for c in copy.changes] == [c.attributes for c in mixed.changes]


def test_parse_does_not_copy_or_mutate_the_document() -> None:
    doc = json.loads((PLANS / "update.json").read_text())
    before = json.dumps(doc, sort_keys=True)
    p = parse_plan(doc)
    _ = [c.attributes for c in p.changes]
    assert json.dumps(doc, sort_keys=True) == before


def test_counts_summary() -> None:
    c = Counts(add=1, change=2, destroy=3, replace=4, read=5)
    assert c.summary() == "1 to add, 2 to change, 3 to destroy, 4 to replace, 5 to read"
    assert (c.terraform_add, c.terraform_destroy, c.total) == (5, 7, 15)


def test_big_plan_parses_every_resource() -> None:
    """10,000 resources parse into 10,000 changes (speed is measured in bench/, not here)."""
    doc = json.loads(json.dumps(make_plan_doc(10_000, ("create", "update", "delete", "replace"))))
    plan = parse_plan(doc)
    assert len(plan.changes) == 10_000
    assert plan.counts.total == 10_000


# --------------------------------------------------------------------------------------------
# documents nobody here wrote (tests/fixtures/plans/upstream/SOURCES.md)

UPSTREAM = PLANS / "upstream"


def upstream(name: str) -> Plan:
    return load_plan(UPSTREAM / name)


def test_terraform_1_0_0_drift_without_address_keeps_the_plan() -> None:
    p = upstream("derived/terraform-1.0.0_drift_without_address.json")
    # the valid changes are all there
    assert [(c.address, c.action) for c in p.changes] == [
        ("test_instance.no_refresh", Action.UPDATE),
        ("test_instance.should_refresh", Action.UPDATE)]
    # the drift keeps the entry Terraform wrote, under its rebuilt address; the unchanged one
    # (1.0.0 listed every resource) is dropped, as Terraform 1.0.1 does
    assert [(d.address, d.address_rebuilt) for d in p.drift] == [
        ("test_instance.should_refresh", True)]
    assert [(a.path, a.before, a.after) for a in p.drift[0].attributes] == [
        ("ami", '"refresh-me"', '"refreshed"')]
    # the same plan as 1.0.1 writes it: same drift, address as written
    fixed = upstream("terraform_drift.json")
    assert [(d.address, d.address_rebuilt) for d in fixed.drift] == [
        ("test_instance.should_refresh", False)]
    assert fixed.drift[0].attributes == p.drift[0].attributes


def _as_terraform_1_0_0_drift(doc: dict[str, Any]) -> dict[str, Any]:
    """Drift entries for every prior_state object (all in the root module), written the 1.0.0 way
    (no address, no index): even-numbered objects drifted (name changed), the last one deleted
    out of band."""
    resources = doc["prior_state"]["values"]["root_module"]["resources"]
    drift = []
    for i, res in enumerate(resources):
        before = dict(res["values"])
        if i % 2 == 0:
            before["name"] = "changed-outside"
        after = None if i == len(resources) - 1 else res["values"]
        drift.append({"mode": "managed", "type": res["type"], "name": res["name"],
                      "change": {"actions": ["delete" if after is None else "update"],
                                 "before": before, "after": after}})
    return {**doc, "resource_drift": drift}


def test_drift_without_address_takes_the_instance_key_from_the_refreshed_state() -> None:
    doc = make_plan_doc(8, ("update",))
    for res in doc["prior_state"]["values"]["root_module"]["resources"]:
        res["address"] = res["address"].replace("module.m0.", "")  # root module, keyed by index
    p = parse_plan(_as_terraform_1_0_0_drift(doc))
    assert len(p.changes) == 8
    assert [d.address for d in p.drift] == [
        "sandbox_network.r[0]", "sandbox_load_balancer.r[2]", "sandbox_network.r[4]",
        "sandbox_load_balancer.r[6]",
        # deleted out of band: no refreshed object to match, so a placeholder key
        "sandbox_database.r[?1]"]
    assert all(d.address_rebuilt for d in p.drift)


def test_drift_without_address_nor_type_is_refused() -> None:
    doc = {"format_version": "0.1", "resource_drift": [{"change": {"actions": ["update"]}}]}
    with pytest.raises(PlanParseError, match="no 'address', nor 'type' and 'name'"):
        parse_plan(doc)


def test_a_plan_that_only_moves_is_a_change() -> None:
    for name in ("terraform_moved_simple.json", "terraform-json_moved_block.json"):
        p = upstream(name)
        assert p.has_changes, name
        [move] = p.changes
        assert move.action is Action.NO_OP and move.moved and move.previous_address
        assert p.counts == Counts(no_op=1, moves=1) and p.counts.total == 1
        assert p.counts.summary() == ("0 to add, 0 to change, 0 to destroy, 0 to replace, "
                                      "1 to move")
        assert not p.is_destroy and not p.destructive


def test_a_move_with_an_update_counts_once_as_a_change() -> None:
    p = upstream("terraform_moved_with_update.json")
    [move] = p.changes
    assert (move.action, move.previous_address) == (Action.UPDATE,
                                                    "tfcoremock_simple_resource.base")
    assert p.counts == Counts(change=1, moves=1) and p.counts.total == 1


def test_a_move_seen_by_a_refresh_only_plan_is_not_drift() -> None:
    p = upstream("terraform_moved_with_refresh_only.json")
    assert p.drift == () and p.changes == () and not p.has_changes


def test_a_plan_that_only_imports_is_a_change() -> None:
    p = upstream("terraform_import_config_gen.json")
    [imported] = p.changes
    assert (imported.address, imported.action) == ("terraform_data.foo", Action.NO_OP)
    assert imported.importing and imported.import_id == "bar" and imported.generated_config
    assert p.has_changes and p.counts == Counts(no_op=1, imports=1)
    assert p.counts.summary().startswith("1 to import, 0 to add")


def test_a_plan_that_only_forgets_is_a_change_that_destroys_nothing() -> None:
    p = upstream("derived/terraform-1.7_forget.json")
    [gone] = p.changes
    assert gone.action is Action.FORGET and not gone.is_destructive
    assert gone.action_reason == "delete_because_no_resource_config"
    assert p.has_changes and p.counts == Counts(forget=1) and not p.is_destroy


def test_replace_paths_are_on_the_change() -> None:
    p = upstream("terraform_requires_replace.json")
    [replaced] = p.changes
    assert replaced.action is Action.REPLACE and replaced.replace_paths == ("ami",)
    assert replaced.action_reason == "replace_because_cannot_update"


@pytest.mark.parametrize("name", ["terraform-1.2_condition_results.json",
                                  "terraform-1.8_checks.json"])
def test_failed_checks_are_kept_with_their_messages(name: str) -> None:
    p = upstream(name)
    assert [(c.address, c.status, c.problems) for c in p.checks] == [
        ("test_instance.bar", "fail", ("Resource ID is unacceptably short (9 characters).",)),
        ("test_instance.foo", "fail", ('Invalid AMI ID: must start with "ami-".',)),
    ]


def test_an_errored_plan_says_so() -> None:
    p = upstream("opentofu_plan_error.json")
    assert p.errored and p.applyable is None  # OpenTofu's test data omits applyable/complete
    assert not p.has_changes


def test_terraform_0_12_plan() -> None:
    p = upstream("terraform-json_basic_0.12.json")
    assert (p.format_version, p.terraform_version) == ("0.1", "0.12.11")
    assert p.has_changes and p.counts.total == len(p.changes)


def test_sensitive_strings_finds_secrets_held_only_in_state_or_no_op_changes() -> None:
    """The database is unchanged in an update plan: its password is in a no-op change and the
    prior state only, and is still found (the scrubber then masks it in every encoding)."""
    import json

    from gitops.plan import sensitive_strings

    doc = json.loads((PLANS / "update.json").read_text())
    assert "fixture-password-1" in sensitive_strings(doc)
    assert not any(s in sensitive_strings(doc) for s in ("expense", "web"))
    # Only the prior state holds it: still found.
    state_only = {"prior_state": doc["prior_state"]}
    assert "fixture-password-1" in sensitive_strings(state_only)
    assert sensitive_strings({}) == set()
