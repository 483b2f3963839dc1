"""The platform grant: exact names per environment, phases, backends. Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.errors import ConfigError, GrantRefused
from gitops.grant import Phase, load_grant, parse_grant

GRANT = Path(__file__).parent / "fixtures" / "grant" / "platform.toml"


@pytest.fixture(scope="module")
def grant():
    return load_grant(GRANT)


def test_the_rule_expands_to_exact_names_for_each_environment(grant) -> None:
    dev = grant.for_environment("dev")
    assert dev.credentials(apply=False) == "aws-dev-plan"
    assert dev.credentials(apply=True) == "aws-dev-apply"
    assert dev.credentials(apply=False, new_environment=True) == "aws-new-environment-plan"
    assert dev.state_keys == {"expense/dev/terraform.tfstate"}
    assert dev.secrets[Phase.DEPLOY] == {"db-password-dev"}
    assert dev.secrets[Phase.PROPOSED] == {"db-password-dev"}


def test_an_environment_table_adds_lists_and_replaces_credentials(grant) -> None:
    prod = grant.for_environment("prod")
    assert prod.credentials(apply=True) == "aws-prod-apply-break-glass"
    assert prod.credentials(apply=False) == "aws-prod-plan"
    assert prod.state_keys == {"expense/prod/terraform.tfstate", "legacy/prod.tfstate"}
    assert prod.secrets[Phase.DEPLOY] == {"db-password-prod", "prod-signing-key"}
    assert prod.secrets[Phase.PROPOSED] == frozenset()


@pytest.mark.parametrize("name", ["dev-x", "x-dev", "de", "devv", "qa"])
def test_names_never_match_another_environments_blocks(grant, name: str) -> None:
    other = grant.for_environment(name)
    dev = grant.for_environment("dev")
    assert not (other.secrets[Phase.DEPLOY] & dev.secrets[Phase.DEPLOY])
    assert other.credentials(apply=True) != dev.credentials(apply=True)
    assert not (other.state_keys & dev.state_keys)


def test_a_backend_outside_the_grant_is_refused_naming_what_is_wrong(grant) -> None:
    dev = grant.for_environment("dev")
    dev.check_backend("acme-tfstate", "expense/dev/terraform.tfstate", "acme-tflocks")
    with pytest.raises(GrantRefused, match="state key 'expense/prod/terraform.tfstate'"):
        dev.check_backend("acme-tfstate", "expense/prod/terraform.tfstate", "acme-tflocks")
    with pytest.raises(GrantRefused, match="bucket 'other'"):
        dev.check_backend("other", "expense/dev/terraform.tfstate", "acme-tflocks")
    with pytest.raises(GrantRefused, match="locking is required"):
        dev.check_backend("acme-tfstate", "expense/dev/terraform.tfstate", None)


def test_secrets_are_granted_per_phase_and_foreign_blocks_refused(grant) -> None:
    staging = grant.for_environment("staging")
    wanted = {"db_password": "db-password-staging"}
    assert dict(staging.secret_grant(wanted, Phase.DEPLOY).granted) == wanted
    proposed = staging.secret_grant(wanted, Phase.PROPOSED)
    assert dict(proposed.granted) == {} and proposed.withheld == ("db_password",)
    with pytest.raises(GrantRefused, match="db-password-prod"):
        staging.secret_grant({"db_password": "db-password-prod"}, Phase.DEPLOY)
    with pytest.raises(GrantRefused, match="gitops-github-token"):
        staging.secret_grant({"token": "gitops-github-token"}, Phase.DRIFT)


def test_an_environment_with_no_credentials_granted_is_refused() -> None:
    bare = parse_grant("[default]\nstate_buckets = ['b']\n").for_environment("dev")
    with pytest.raises(GrantRefused, match="no apply_credentials"):
        bare.credentials(apply=True)


@pytest.mark.parametrize("text, message", [
    ("[default]\nplan_credentials = 'aws-*'\n", "exact values"),
    ("[default]\nstate_keys = ['{repo}/x']\n", "only {env}"),
    ("[default]\nunknown = 1\n", "unknown"),
    ("[default.secrets]\nship = ['x']\n", "ship"),
    ("[default\n", "not valid TOML"),
])
def test_a_malformed_grant_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_grant(text)


def test_no_grant_configured_says_how_to_configure_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GITOPS_GRANT_FILE"):
        load_grant("")
    with pytest.raises(ConfigError, match="cannot read"):
        load_grant(tmp_path / "missing.toml")
