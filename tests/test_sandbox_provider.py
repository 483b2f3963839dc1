"""The sandbox cloud, and the sandbox provider driven by the real Terraform 1.0.3.

Pure tests of `SandboxCloud`, the installer and the provider's tag logic first; then end-to-end
tests: the sandbox stack with a local backend in tmp_path, the provider installed into a
temporary mirror once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitops.errors import SandboxError, SandboxObjectNotFound
from deployments.sandbox.cloud import SandboxCloud
from deployments.sandbox.provider import (
    CLOUD_DIR_ENV,
    NetworkResource,
    SandboxProvider,
    ServiceResource,
    merge_tags,
)
from deployments.sandbox.provider_install import install_provider, provider_path, write_cli_config

REPO = Path(__file__).resolve().parent.parent
TERRAFORM = REPO / ".venv" / "bin" / "terraform"
BASE_TFVARS = REPO / "tests" / "fixtures" / "plans" / "base.tfvars"
PASSWORD = "fixture-password-1"  # the value in base.tfvars
STACK = Path("terraform/stacks/sandbox")

needs_terraform = pytest.mark.skipif(not TERRAFORM.exists(), reason="terraform 1.0.3 not installed in .venv")


# --------------------------------------------------------------------------------------------
# SandboxCloud
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def cloud(tmp_path: Path) -> SandboxCloud:
    return SandboxCloud(tmp_path / "cloud")


def test_create_assigns_a_prefixed_id_and_stores_json(cloud: SandboxCloud) -> None:
    obj = cloud.create("network", {"name": "expense-dev", "cidr": "10.0.0.0/16"})

    assert obj["id"].startswith("net-")
    path = cloud.root / "network" / f"{obj['id']}.json"
    assert json.loads(path.read_text()) == obj
    assert cloud.get("network", obj["id"]) == obj


def test_ids_are_deterministic_per_root_and_unique_per_creation(tmp_path: Path) -> None:
    first, second = SandboxCloud(tmp_path / "a"), SandboxCloud(tmp_path / "b")

    a1 = first.create("service", {"name": "web"})["id"]
    a2 = first.create("service", {"name": "web"})["id"]
    b1 = second.create("service", {"name": "web"})["id"]

    assert a1 == b1
    assert a1 != a2


def test_get_of_a_missing_object_is_none(cloud: SandboxCloud) -> None:
    assert cloud.get("network", "net-000000000000") is None


def test_update_replaces_attributes_and_keeps_the_id(cloud: SandboxCloud) -> None:
    obj = cloud.create("service", {"name": "web", "replicas": 1})

    updated = cloud.update("service", obj["id"], {"name": "web", "replicas": 3, "id": "ignored"})

    assert updated == {"name": "web", "replicas": 3, "id": obj["id"]}
    assert cloud.get("service", obj["id"]) == updated


def test_update_and_tamper_of_a_missing_object_raise(cloud: SandboxCloud) -> None:
    with pytest.raises(SandboxObjectNotFound) as info:
        cloud.update("service", "svc-000000000000", {"name": "web"})
    assert isinstance(info.value, SandboxError)
    assert info.value.kind == "service"
    with pytest.raises(SandboxObjectNotFound):
        cloud.tamper("service", "svc-000000000000", {"replicas": 2})


def test_delete_reports_whether_the_object_existed(cloud: SandboxCloud) -> None:
    obj = cloud.create("database", {"name": "db"})

    assert cloud.delete("database", obj["id"]) is True
    assert cloud.delete("database", obj["id"]) is False
    assert cloud.get("database", obj["id"]) is None


def test_list_returns_every_object_of_a_kind_and_nothing_else(cloud: SandboxCloud) -> None:
    assert cloud.list("service") == []
    made = [cloud.create("service", {"name": f"worker-{i}"}) for i in range(3)]
    cloud.create("network", {"name": "net"})

    listed = cloud.list("service")

    assert sorted(o["id"] for o in listed) == sorted(o["id"] for o in made)
    assert [o["id"] for o in listed] == sorted(o["id"] for o in listed)


def test_tamper_changes_top_level_attributes_out_of_band(cloud: SandboxCloud) -> None:
    obj = cloud.create("service", {"name": "web", "replicas": 2, "tags": {"Owner": "a", "Env": "dev"}})

    tampered = cloud.tamper("service", obj["id"], {"replicas": 5, "tags": {"Owner": "b"}})

    assert tampered["replicas"] == 5
    assert tampered["tags"] == {"Owner": "b"}  # the whole map is replaced
    assert cloud.get("service", obj["id"]) == tampered
    with pytest.raises(ValueError):
        cloud.tamper("service", obj["id"], {"id": "svc-other"})


def test_writes_leave_no_temporary_files(cloud: SandboxCloud) -> None:
    obj = cloud.create("service", {"name": "web"})
    cloud.update("service", obj["id"], {"name": "web", "replicas": 1})
    cloud.tamper("service", obj["id"], {"replicas": 2})

    leftovers = [p.name for p in (cloud.root / "service").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize(("kind", "obj_id"), [("../etc", "x"), ("Service", "x"), ("service", "../x")])
def test_kinds_and_ids_cannot_escape_the_root(cloud: SandboxCloud, kind: str, obj_id: str) -> None:
    with pytest.raises(ValueError):
        cloud.get(kind, obj_id)


def test_concurrent_creates_get_distinct_ids(cloud: SandboxCloud) -> None:
    ids: list[str] = []

    def create(i: int) -> None:
        ids.append(cloud.create("service", {"name": f"worker-{i % 3}"})["id"])

    threads = [threading.Thread(target=create, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 12
    assert len(cloud.list("service")) == 12


# --------------------------------------------------------------------------------------------
# Installer and provider logic (no terraform)
# --------------------------------------------------------------------------------------------


def test_install_provider_writes_an_executable_wrapper_idempotently(tmp_path: Path) -> None:
    path = install_provider(tmp_path / "mirror", "/opt/venv/bin/python")

    assert path == provider_path(tmp_path / "mirror")
    assert path.relative_to(tmp_path / "mirror").as_posix() == (
        "registry.terraform.io/gitops/sandbox/0.1.0/linux_amd64/terraform-provider-sandbox_v0.1.0"
    )
    assert path.stat().st_mode & stat.S_IXUSR
    assert "exec /opt/venv/bin/python -I -m deployments.sandbox.provider" in path.read_text()
    before = path.stat().st_mtime_ns

    assert install_provider(tmp_path / "mirror", "/opt/venv/bin/python") == path
    assert path.stat().st_mtime_ns == before  # unchanged: the lock file hash stays valid


def test_cli_config_mirrors_only_the_gitops_namespace(tmp_path: Path) -> None:
    config = write_cli_config(tmp_path / "terraform.rc", tmp_path / "mirror").read_text()

    assert f'path    = "{(tmp_path / "mirror").resolve()}"' in config
    assert 'include = ["registry.terraform.io/gitops/*"]' in config
    assert "direct" not in config  # nothing else can be installed


def test_merge_tags_lets_the_resource_win() -> None:
    assert merge_tags({"Owner": "team", "Env": "dev"}, {"Owner": "me"}) == {"Owner": "me", "Env": "dev"}
    assert merge_tags(None, None) == {}


def test_provider_without_root_or_env_reports_a_clear_error() -> None:
    from tf.utils import Diagnostics

    diags = Diagnostics()
    SandboxProvider(environ={}).configure_provider(diags, {"root": None, "default_tags": None})

    assert diags.has_errors()
    assert CLOUD_DIR_ENV in diags.diagnostics[0].detail


def configured(root: Path, default_tags: dict[str, str]) -> SandboxProvider:
    from tf.utils import Diagnostics

    provider = SandboxProvider(environ={CLOUD_DIR_ENV: str(root)})
    diags = Diagnostics()
    provider.configure_provider(diags, {"root": None, "default_tags": default_tags})
    assert not diags.has_errors()
    return provider


def test_read_keeps_default_tags_out_of_tags_and_shows_console_tags_in_both(tmp_path: Path) -> None:
    from tf.iface import ReadContext
    from tf.utils import Diagnostics

    provider = configured(tmp_path, {"Owner": "team"})
    cloud = SandboxCloud(tmp_path)
    net = cloud.create("network", {"name": "n", "cidr": "10.0.0.0/16",
                                   "tags": {"Owner": "team", "Component": "net"}})
    current = {"id": net["id"], "name": "n", "cidr": "10.0.0.0/16", "tags": {"Component": "net"},
               "tags_all": {"Owner": "team", "Component": "net"}}
    resource = NetworkResource(provider)

    assert resource.read(ReadContext(Diagnostics(), "sandbox_network"), dict(current)) == current

    cloud.tamper("network", net["id"], {"tags": {"Owner": "other", "Component": "net", "Hotfix": "1"}})
    state = resource.read(ReadContext(Diagnostics(), "sandbox_network"), dict(current))
    assert state is not None
    assert state["tags"] == {"Component": "net", "Hotfix": "1"}
    assert state["tags_all"] == {"Owner": "other", "Component": "net", "Hotfix": "1"}

    cloud.delete("network", net["id"])
    assert resource.read(ReadContext(Diagnostics(), "sandbox_network"), dict(current)) is None


def test_plan_computes_tags_all_and_leaves_generated_values_unknown_on_create(tmp_path: Path) -> None:
    from tf.iface import PlanContext
    from tf.types import Unknown
    from tf.utils import Diagnostics

    resource = ServiceResource(configured(tmp_path, {"Owner": "team", "Component": "x"}))
    planned = resource.plan(
        PlanContext(Diagnostics(), "sandbox_service", changed_fields=set()),
        None,
        {"name": "web", "tags": {"Component": "web"}, "tags_all": Unknown, "endpoint": Unknown},
    )

    assert planned is not None
    assert planned["tags_all"] == {"Owner": "team", "Component": "web"}
    assert planned["endpoint"] is Unknown
    assert planned["id"] is Unknown


# --------------------------------------------------------------------------------------------
# End to end: real terraform against the provider
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderMirror:
    """The provider installed in a temporary filesystem mirror, and the CLI config using it."""

    mirror: Path
    cli_config: Path


@dataclass(frozen=True)
class Result:
    """One terraform run."""

    returncode: int
    stdout: str
    stderr: str


class SandboxStack:
    """The sandbox stack copied into a directory, with a local backend and its own cloud."""

    def __init__(self, work: Path, mirror: ProviderMirror) -> None:
        ignore = shutil.ignore_patterns(".terraform*", "*.tfstate*")  # no local init leftovers
        for rel in (STACK, Path("terraform/sandbox/modules")):
            shutil.copytree(REPO / rel, work / rel, ignore=ignore)
        self.dir = work / STACK
        (self.dir / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
        shutil.copy(BASE_TFVARS, self.dir / "base.tfvars")
        self.cloud = SandboxCloud(work / "cloud")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TF_")},
            "TF_CLI_CONFIG_FILE": str(mirror.cli_config),
            CLOUD_DIR_ENV: str(self.cloud.root),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
        }

    def run(self, *args: str, ok: Sequence[int] = (0,)) -> Result:
        proc = subprocess.run([str(TERRAFORM), *args], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=120)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        assert proc.returncode in ok, f"terraform {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
        return result

    def init(self) -> None:
        self.run("init", "-input=false", "-no-color")

    def plan(self, *args: str, out: str = "plan.tfplan") -> Result:
        """``plan -detailed-exitcode`` with base.tfvars; 0 and 2 are both fine."""
        return self.run("plan", "-input=false", "-no-color", "-detailed-exitcode",
                        "-var-file=base.tfvars", f"-out={out}", *args, ok=(0, 2))

    def show(self, planfile: str = "plan.tfplan") -> dict[str, Any]:
        return json.loads(self.run("show", "-json", planfile).stdout)

    def apply(self, planfile: str = "plan.tfplan") -> Result:
        return self.run("apply", "-input=false", "-no-color", planfile)

    def applied(self) -> SandboxStack:
        """Init, plan and apply the base stack."""
        self.init()
        assert self.plan().returncode == 2
        self.apply()
        return self

    def web_service(self) -> dict[str, Any]:
        return next(s for s in self.cloud.list("service") if s["name"] == "expense-dev-web")


def change_of(plan: dict[str, Any], address: str, key: str = "resource_changes") -> dict[str, Any]:
    return next(r["change"] for r in plan.get(key) or [] if r["address"] == address)


WEB = "module.web.sandbox_service.this"


@pytest.fixture(scope="session")
def provider_mirror(tmp_path_factory: pytest.TempPathFactory) -> ProviderMirror:
    root = tmp_path_factory.mktemp("provider")
    install_provider(root / "mirror", sys.executable)
    return ProviderMirror(root / "mirror", write_cli_config(root / "terraform.rc", root / "mirror"))


@pytest.fixture()
def stack(tmp_path: Path, provider_mirror: ProviderMirror) -> SandboxStack:
    return SandboxStack(tmp_path, provider_mirror)


@needs_terraform
def test_apply_then_plan_shows_no_changes(stack: SandboxStack) -> None:
    stack.applied()

    assert stack.plan().returncode == 0
    outputs = json.loads(stack.run("output", "-json").stdout)
    assert outputs["lb_hostname"]["value"].endswith(".lb.sandbox.internal")
    assert outputs["image"]["value"] == "registry.sandbox.internal/expense/api:1.0.0"
    assert outputs["db_password"]["sensitive"] is True
    assert len(stack.cloud.list("service")) == 1


@pytest.mark.slow
@needs_terraform
def test_updates_and_replacements_apply_consistently(stack: SandboxStack) -> None:
    stack.applied()
    before = json.loads(stack.run("output", "-json").stdout)

    changes = ("-var=replicas=3", "-var=owner=team-payments", "-var=network_cidr=10.43.0.0/16")
    assert stack.plan(*changes).returncode == 2
    stack.apply()  # fails on "Provider produced inconsistent result" if computed values drift

    assert stack.plan(*changes).returncode == 0
    after = json.loads(stack.run("output", "-json").stdout)
    assert after["lb_hostname"] == before["lb_hostname"]  # updated in place: same hostname
    assert after["service_endpoint"] != before["service_endpoint"]  # replaced service
    assert stack.web_service()["replicas"] == 3
    assert stack.web_service()["tags"]["Owner"] == "team-payments"


@needs_terraform
def test_tags_all_is_known_and_merged_at_plan_time(stack: SandboxStack) -> None:
    stack.init()
    stack.plan()
    plan = stack.show()

    change = change_of(plan, WEB)
    assert change["after"]["tags_all"] == {
        "Application": "expense", "Environment": "dev", "Owner": "team-expense", "Component": "web",
    }
    assert change["after_unknown"].get("tags_all") in ({}, None)
    assert change["after_unknown"]["endpoint"] is True


@pytest.mark.slow
@needs_terraform
def test_out_of_band_change_is_drift(stack: SandboxStack) -> None:
    stack.applied()
    web = stack.web_service()
    stack.cloud.tamper("service", web["id"], {"replicas": 5, "tags": {**web["tags"], "Hotfix": "1"}})

    assert stack.plan().returncode == 2
    plan = stack.show()
    drift = change_of(plan, WEB, "resource_drift")
    assert (drift["before"]["replicas"], drift["after"]["replicas"]) == (2, 5)
    assert drift["after"]["tags"]["Hotfix"] == "1"
    undo = change_of(plan, WEB)
    assert undo["actions"] == ["update"]
    assert (undo["before"]["replicas"], undo["after"]["replicas"]) == (5, 2)

    assert stack.plan("-refresh-only", out="refresh.tfplan").returncode == 2
    refresh = stack.show("refresh.tfplan")
    assert change_of(refresh, WEB, "resource_drift")["after"]["replicas"] == 5


@needs_terraform
def test_object_deleted_out_of_band_is_planned_for_recreation(stack: SandboxStack) -> None:
    stack.applied()
    stack.cloud.delete("service", stack.web_service()["id"])

    assert stack.plan().returncode == 2
    assert change_of(stack.show(), WEB)["actions"] == ["create"]


@needs_terraform
def test_sensitive_password_is_never_printed(stack: SandboxStack) -> None:
    stack.init()
    created = stack.plan()
    applied = stack.apply()
    changed = stack.plan("-var=db_password=another-secret-value")

    assert changed.returncode == 2
    assert "(sensitive value)" in changed.stdout
    for result in (created, applied, changed):
        for text in (result.stdout, result.stderr):
            assert PASSWORD not in text
            assert "another-secret-value" not in text
    assert PASSWORD not in json.dumps(stack.cloud.list("database"))  # the cloud keeps a hash only


@needs_terraform
def test_missing_cloud_directory_fails_clearly(stack: SandboxStack) -> None:
    stack.init()
    del stack.env[CLOUD_DIR_ENV]

    result = stack.run("plan", "-input=false", "-no-color", "-var-file=base.tfvars", ok=(1,))
    assert "No sandbox cloud directory" in result.stderr
    assert CLOUD_DIR_ENV in result.stderr
