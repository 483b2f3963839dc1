"""Environment configuration: the repository's own environments load; bad input is refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gitops.config import check_environment_name, list_environments, load_environment
from gitops.errors import ConfigError, UnknownEnvironment

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_environments_load() -> None:
    assert list_environments(REPO_ROOT) == ["dev", "prod", "staging"]
    prod = load_environment(REPO_ROOT, "prod")
    assert prod.approval.required and not prod.approval.allow_author
    assert prod.var_file == "terraform/environments/prod/prod.tfvars"
    assert prod.argocd is not None and prod.argocd.path == "overlays/prod"
    assert not load_environment(REPO_ROOT, "staging").approval.required


def test_an_unknown_environment_names_the_known_ones() -> None:
    with pytest.raises(UnknownEnvironment, match="configured environments: dev, prod, staging"):
        load_environment(REPO_ROOT, "qa")


@pytest.mark.parametrize("name", ["../prod", "prod/..", "/etc", "Prod", "", "a" * 40, "prod\n",
                                  "-rf", "prod;rm"])
def test_names_that_are_not_plain_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid environment name"):
        check_environment_name(name)
    with pytest.raises(ConfigError):
        load_environment(REPO_ROOT, name)


def _copy_env(tmp_path: Path, name: str = "qa") -> Path:
    shutil.copytree(REPO_ROOT / "terraform", tmp_path / "terraform",
                    ignore=shutil.ignore_patterns(".terraform*"))
    src = tmp_path / "terraform" / "environments" / "staging"
    dst = tmp_path / "terraform" / "environments" / name
    shutil.copytree(src, dst)
    (dst / "staging.tfvars").rename(dst / f"{name}.tfvars")
    return dst


def test_a_new_environment_is_one_new_folder(tmp_path: Path) -> None:
    _copy_env(tmp_path, "qa")
    assert "qa" in list_environments(tmp_path)
    assert load_environment(tmp_path, "qa").var_file == "terraform/environments/qa/qa.tfvars"


def test_broken_toml_is_reported_with_its_file(tmp_path: Path) -> None:
    folder = _copy_env(tmp_path)
    (folder / "environment.toml").write_text("stack = \n")
    with pytest.raises(ConfigError, match="environment.toml: not valid TOML"):
        load_environment(tmp_path, "qa")


def test_unknown_keys_and_paths_outside_the_repository_are_refused(tmp_path: Path) -> None:
    folder = _copy_env(tmp_path)
    toml = folder / "environment.toml"
    toml.write_text(toml.read_text() + "\nsurprise = 1\n")
    with pytest.raises(ConfigError, match="surprise"):
        load_environment(tmp_path, "qa")
    toml.write_text(toml.read_text().replace("surprise = 1", "").replace(
        'stack = "terraform/stacks/sandbox"', 'stack = "../../etc"'))
    with pytest.raises(ConfigError, match="inside the repository"):
        load_environment(tmp_path, "qa")


def test_a_missing_tfvars_file_is_reported(tmp_path: Path) -> None:
    folder = _copy_env(tmp_path)
    (folder / "qa.tfvars").unlink()
    with pytest.raises(ConfigError, match="qa.tfvars does not exist"):
        load_environment(tmp_path, "qa")


def test_allow_unmerged_is_a_rule_taken_from_the_trusted_configuration(tmp_path: Path) -> None:
    """A commit that sets ``allow_unmerged = true`` for itself gets the default branch's value."""
    from gitops.config import with_trusted_rules

    folder = _copy_env(tmp_path)
    trusted = load_environment(tmp_path, "qa")
    toml = folder / "environment.toml"
    toml.write_text("allow_unmerged = true\n" + toml.read_text())
    proposed = load_environment(tmp_path, "qa")
    assert proposed.allow_unmerged and not trusted.allow_unmerged
    assert not with_trusted_rules(proposed, trusted).allow_unmerged
    assert with_trusted_rules(trusted, proposed).allow_unmerged
