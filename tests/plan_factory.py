"""Synthetic `terraform show -json` documents of any size, shaped like the real fixtures.

Used for the big-plan tests (10,000 resources) so no large file is committed. The documents follow
the documented format (format_version 0.2, as Terraform 1.0.3 writes): ``resource_changes`` with
before/after/after_unknown/*_sensitive, plus ``planned_values``, ``prior_state`` and
``configuration`` sections of realistic size (they make ``json.loads`` time comparable to a real
plan's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TYPES = ("sandbox_network", "sandbox_service", "sandbox_load_balancer", "sandbox_database")
PROVIDER = "registry.terraform.io/gitops/sandbox"
ACTION_LISTS = {
    "create": ["create"],
    "update": ["update"],
    "delete": ["delete"],
    "replace": ["delete", "create"],
    "replace_cbd": ["create", "delete"],
    "read": ["read"],
    "no-op": ["no-op"],
}


def _tags(i: int, owner: str | None = "team-a") -> dict[str, str]:
    tags = {"Environment": "dev", "Application": f"app-{i % 7}", "Component": TYPES[i % 4][8:]}
    if owner is not None:
        tags["Owner"] = owner
    return tags


def _values(i: int, type_: str, *, version: int, owner: str | None, secret: str | None,
            credential: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": f"{type_[8:11]}-{i:08x}",
        "name": f"expense-dev-{type_[8:]}-{i}",
        "tags": _tags(i, owner),
        "tags_all": {**_tags(i, owner), "ManagedBy": "terraform"},
    }
    if type_ == "sandbox_network":
        values["cidr"] = f"10.{i % 250}.0.0/16"
    elif type_ == "sandbox_service":
        values.update(image=f"registry.sandbox.internal/expense/api:1.{version}.0",
                      replicas=2 + version, network_id=f"net-{i:08x}",
                      endpoint=f"http://svc-{i}.svc.sandbox.internal")
        if credential is not None:
            values["description"] = f"deploy key {credential}"
    elif type_ == "sandbox_load_balancer":
        values.update(port=443, service_id=f"svc-{i:08x}", hostname=f"lb-{i}.lb.sandbox.internal")
    else:
        values.update(password=secret or f"generated-password-{i}-{version}",
                      address=f"db-{i}.db.sandbox.internal")
    return values


def make_resource_change(i: int, action: str = "create", *, module: bool = True,
                         owner: str | None = "team-a", secret: str | None = None,
                         credential: str | None = None) -> dict[str, Any]:
    """One `resource_changes` element: resource ``i`` of type ``TYPES[i % 4]`` under ``action``."""
    type_ = TYPES[i % 4]
    module_address = f"module.m{i // 100}" if module else None
    address = f"{module_address + '.' if module_address else ''}{type_}.r[{i}]"
    before = _values(i, type_, version=0, owner=owner, secret=secret, credential=None)
    after = _values(i, type_, version=1, owner=owner, secret=secret, credential=credential)
    sensitive = {"tags": {}, "tags_all": {}}
    if type_ == "sandbox_database":
        sensitive["password"] = True
    after_unknown: dict[str, Any] = {"tags": {}, "tags_all": {}}
    actions = ACTION_LISTS[action]
    if action in ("create", "replace", "replace_cbd"):
        del after["id"]
        after_unknown["id"] = True
    if action == "create":
        before = None
    if action == "delete":
        after = None
        after_unknown = {}
    if action == "no-op":
        after = before
    entry: dict[str, Any] = {
        "address": address,
        "mode": "managed",
        "type": type_,
        "name": "r",
        "index": i,
        "provider_name": PROVIDER,
        "change": {
            "actions": actions,
            "before": before,
            "after": after,
            "after_unknown": after_unknown,
            "before_sensitive": sensitive if before is not None else False,
            "after_sensitive": sensitive if after is not None else False,
        },
    }
    if module_address:
        entry["module_address"] = module_address
    if action in ("replace", "replace_cbd"):
        entry["action_reason"] = "replace_because_cannot_update"
        entry["change"]["replace_paths"] = [["name"]]
        entry["change"]["after"]["name"] += "-new"
    return entry


def make_plan_doc(n: int, actions: Sequence[str] = ("create",), *, owner: str | None = "team-a",
                  secret: str | None = None, credential: str | None = None,
                  realistic: bool = True) -> dict[str, Any]:
    """A plan document with ``n`` resource changes, cycling through ``actions``.

    ``secret`` becomes every database's (sensitive) password; ``credential`` is planted in every
    service's non-sensitive ``description``. ``realistic`` adds the planned_values, prior_state and
    configuration sections Terraform writes.
    """
    changes = [make_resource_change(i, actions[i % len(actions)], owner=owner, secret=secret,
                                    credential=credential) for i in range(n)]
    doc: dict[str, Any] = {
        "format_version": "0.2",
        "terraform_version": "1.0.3",
        "variables": {"environment": {"value": "dev"}},
        "resource_changes": changes,
        "output_changes": {
            "db_password": {"actions": ["update"], "before": secret or "old", "after": secret or "new",
                            "after_unknown": False, "before_sensitive": True,
                            "after_sensitive": True},
        },
    }
    if realistic:
        resources = [
            {"address": c["address"], "mode": "managed", "type": c["type"], "name": "r",
             "index": c["index"], "provider_name": PROVIDER, "schema_version": 0,
             "values": c["change"]["after"] or c["change"]["before"],
             "sensitive_values": c["change"]["after_sensitive"] or {}}
            for c in changes
        ]
        doc["planned_values"] = {"root_module": {"resources": resources}}
        doc["prior_state"] = {"format_version": "0.2", "terraform_version": "1.0.3",
                              "values": {"root_module": {"resources": resources}}}
        doc["configuration"] = {"root_module": {"resources": [
            {"address": c["address"], "mode": "managed", "type": c["type"], "name": "r",
             "provider_config_key": "sandbox",
             "expressions": {"name": {"constant_value": "x"}, "tags": {"references": ["local.tags"]}},
             "schema_version": 0, "count_expression": {"references": ["var.n"]}}
            for c in changes[:: max(1, n // 50)]
        ]}}
    return doc


def make_change(type_: str, name: str, actions: Sequence[str], after: dict[str, Any] | None,
                before: dict[str, Any] | None = None, *, module: str | None = None
                ) -> dict[str, Any]:
    """One `resource_changes` element of any resource type (the policy tests' AWS resources)."""
    address = f"{module + '.' if module else ''}{type_}.{name}"
    entry: dict[str, Any] = {
        "address": address, "mode": "managed", "type": type_, "name": name,
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": {"actions": list(actions), "before": before, "after": after,
                   "after_unknown": {}, "before_sensitive": {}, "after_sensitive": {}},
    }
    if module:
        entry["module_address"] = module
    return entry


def plan_doc_of(changes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A minimal plan document holding ``changes``."""
    return {"format_version": "0.2", "terraform_version": "1.0.3",
            "resource_changes": list(changes)}
