"""What a commit may not bring: paths leaving the checkout, foreign backends, shared states.

Pure checks on copies of the repository's own terraform/ tree (gitops.config, gitops.guard).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from gitops.config import config_changes, load_configured, load_environment
from gitops.errors import ConfigError, UnsafeCheckout
from gitops.guard import check_stack_backend, escaping_symlinks, refuse_escaping_symlinks

REPO_ROOT = Path(__file__).resolve().parent.parent
STACK = "terraform/stacks/sandbox"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "terraform", tmp_path / "terraform",
                    ignore=shutil.ignore_patterns(".terraform*"))
    return tmp_path


def _env(repo: Path, name: str) -> Path:
    return repo / "terraform" / "environments" / name


# -- the backend file -----------------------------------------------------------------------------

def test_the_backend_file_is_read_into_its_few_allowed_settings(repo: Path) -> None:
    backend = load_environment(repo, "prod").backend
    assert backend is not None
    assert (backend.bucket, backend.key, backend.dynamodb_table) == (
        "gitops-tfstate", "expense/prod/terraform.tfstate", "gitops-tflocks")
    assert backend.as_backend_config()["encrypt"] == "true"


@pytest.mark.parametrize("line", [
    'endpoint = "http://attacker.example"',
    'role_arn = "arn:aws:iam::111111111111:role/admin"',
    'shared_credentials_file = "/root/.aws/credentials"',
    'profile = "prod-admin"',
    'access_key = "AKIAEXAMPLEEXAMPLE12"',
    'dynamodb_endpoint = "http://attacker.example"',
])
def test_a_backend_file_may_not_redirect_requests_or_credentials(repo: Path, line: str) -> None:
    path = _env(repo, "dev") / "backend.hcl"
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(UnsafeCheckout, match=line.split(" ")[0]):
        load_environment(repo, "dev")


def test_a_backend_value_must_be_a_literal(repo: Path) -> None:
    path = _env(repo, "dev") / "backend.hcl"
    path.write_text(path.read_text().replace('"expense/dev/terraform.tfstate"',
                                             '"${file("/etc/hostname")}"'))
    with pytest.raises(ConfigError, match="must be a literal string"):
        load_environment(repo, "dev")


def test_credentials_are_not_chosen_by_the_repository(repo: Path) -> None:
    path = _env(repo, "dev") / "environment.toml"
    path.write_text('aws_credentials_block = "gitops-aws-prod-apply"\n' + path.read_text())
    with pytest.raises(ConfigError, match="platform grant"):
        load_environment(repo, "dev")


# -- one state per environment --------------------------------------------------------------------

def test_two_environments_on_one_state_are_both_refused_naming_each_other(repo: Path) -> None:
    path = _env(repo, "dev") / "backend.hcl"
    path.write_text(path.read_text().replace("expense/dev/", "expense/prod/"))
    loaded, broken = load_configured(repo)
    assert sorted(loaded) == ["staging"]
    assert "'prod'" in broken["dev"] and "'dev'" in broken["prod"]
    assert "s3://gitops-tfstate/expense/prod/terraform.tfstate" in broken["dev"]


def test_config_changes_lists_each_changed_setting(repo: Path) -> None:
    before = load_environment(repo, "prod")
    path = _env(repo, "prod") / "environment.toml"
    path.write_text(path.read_text().replace("required = true", "required = false"))
    backend = _env(repo, "prod") / "backend.hcl"
    backend.write_text(backend.read_text().replace("expense/prod/", "expense/prod-2/"))
    after = load_environment(repo, "prod")
    assert config_changes(before, after) == [
        "approval.required: true → false",
        "backend.key: expense/prod/terraform.tfstate → expense/prod-2/terraform.tfstate",
    ]
    assert config_changes(before, before) == []


# -- symlinks and paths ---------------------------------------------------------------------------

def test_a_symlinked_tfvars_file_outside_the_checkout_is_refused(repo: Path, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secrets.tfvars"
    outside.write_text('db_password = "stolen"\n')
    tfvars = _env(repo, "dev") / "dev.tfvars"
    tfvars.unlink()
    tfvars.symlink_to(outside)
    with pytest.raises(UnsafeCheckout, match="dev.tfvars resolves outside the repository"):
        load_environment(repo, "dev")
    assert escaping_symlinks(repo) == ["terraform/environments/dev/dev.tfvars"]


def test_a_symlinked_environment_folder_is_refused(repo: Path, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(_env(repo, "staging"), outside / "qa")
    (outside / "qa" / "staging.tfvars").rename(outside / "qa" / "qa.tfvars")
    os.symlink(outside / "qa", _env(repo, "qa"))
    with pytest.raises(UnsafeCheckout, match="resolves outside"):
        load_environment(repo, "qa")
    with pytest.raises(UnsafeCheckout, match="terraform/environments/qa"):
        refuse_escaping_symlinks(repo)


@pytest.mark.parametrize("target", ["/proc/self/environ", "../../../../etc/passwd", "/"])
def test_any_symlink_leaving_the_checkout_refuses_it(repo: Path, target: str) -> None:
    os.symlink(target, repo / STACK / "leak.tf")
    with pytest.raises(UnsafeCheckout, match=f"{STACK}/leak.tf"):
        refuse_escaping_symlinks(repo)


def test_symlinks_inside_the_checkout_are_fine(repo: Path) -> None:
    os.symlink("../staging/staging.tfvars", _env(repo, "dev") / "shared.tfvars")
    os.symlink(repo / "terraform" / "sandbox", repo / "terraform" / "alias")
    refuse_escaping_symlinks(repo)
    assert escaping_symlinks(repo) == []


# -- the stack's backend block --------------------------------------------------------------------

def test_the_shipped_stacks_have_a_plain_s3_backend() -> None:
    check_stack_backend(REPO_ROOT / STACK, STACK)
    check_stack_backend(REPO_ROOT / "terraform/stacks/expense-app", "terraform/stacks/expense-app")


@pytest.mark.parametrize("file, text, message", [
    ("backend_override.tf", 'terraform {\n  backend "local" {}\n}\n', "backend 'local'"),
    ("x_override.tf", 'terraform {\n  backend "s3" {\n    endpoint = "http://evil"\n  }\n}\n',
     "sets endpoint"),
    ("assume.tf", 'terraform {\n  backend "s3" {\n    role_arn = "arn:aws:iam::1:role/x"\n'
                  "  }\n}\n", "sets role_arn"),
    ("cloud.tf", 'terraform {\n  cloud {\n    organization = "x"\n  }\n}\n', "cloud"),
    ("json.tf.json", json.dumps({"terraform": {"backend": {"http": {"address": "http://evil"}}}}),
     "backend 'http'"),
])
def test_a_stack_may_not_change_its_backend(repo: Path, file: str, text: str,
                                            message: str) -> None:
    (repo / STACK / file).write_text(text)
    with pytest.raises(UnsafeCheckout, match=message):
        check_stack_backend(repo / STACK, STACK)


def test_a_stack_without_a_backend_block_is_refused(repo: Path) -> None:
    versions = repo / STACK / "versions.tf"
    versions.write_text(versions.read_text().replace('backend "s3" {}', ""))
    with pytest.raises(UnsafeCheckout, match="declares no backend"):
        check_stack_backend(repo / STACK, STACK)
