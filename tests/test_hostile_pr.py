"""A pull request is untrusted code: each attack is a real branch of the sandbox's infrastructure
repository, planned by the real pr-plan path (signed delivery → receiver → flow → terraform →
GitHub emulator), and then every channel a run writes to is searched for every planted secret.

Planted values are the sandbox's own secrets (random per test session: its tokens, every
environment's database password, the AWS keys in its blocks), searched raw and in the encodings a
plan can produce (base64, URL-encoding, hex, characters spaced out, reversed).

Channels: the GitHub emulator's comments, statuses and issues; Prefect's artifacts, logs, events,
flow and task run states, and the flow's result.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from deployments.sandbox.launcher import SandboxState
from gitops.git import run_git
from gitops.git import seed_repository
from tests.infra_repo import REPO_ROOT, InfraRepo
from test_pr_plan_flow import (  # noqa: F401 - fixtures
    REPO,
    github,
    plan_comments,
    pull_request,
    push_branch,
    receiver,
)

pytestmark = pytest.mark.slow

STACK = Path("terraform/stacks/sandbox")


# -- what must never leak, and where to look ------------------------------------------------------

def encodings(value: str) -> dict[str, str]:
    """``value`` as a plan could print it."""
    raw = value.encode()
    return {
        "raw": value,
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "urlsafe-base64": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "url": urllib.parse.quote(value, safe=""),
        "hex": raw.hex(),
        "spaced": "-".join(value),
        "reversed": value[::-1],
    }


def planted(sandbox: Any) -> dict[str, str]:
    """Every secret the sandbox holds: name -> value."""
    from prefect_aws import AwsCredentials

    from deployments.blocks import AWS_BLOCK

    tokens = SandboxState.load(sandbox.state_file).tokens
    # Access key ids name a key (Prefect's own block events carry them); the secrets are searched.
    values = {f"token:{name}": value for name, value in tokens.items()
              if not name.endswith(".access_key_id")}
    creds = AwsCredentials.load(AWS_BLOCK, _sync=True)
    values["aws:secret"] = creds.aws_secret_access_key.get_secret_value()
    return values


def channels(github: Any, flow_run_ids: list[str], result: Any,
             shas: tuple[str, ...] = ()) -> dict[str, str]:
    """All text the runs left anywhere: channel name -> text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    out: dict[str, str] = {}
    out["github:comments"] = "\n".join(c.body for c in github.comments(REPO, 1))
    out["github:issues"] = "\n".join(repr(i) for i in github.issues(REPO))
    out["github:statuses"] = "\n".join(
        repr(s) for sha in shas for s in github.statuses(REPO, sha))
    with get_client(sync_client=True) as client:
        runs = FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids))
        out["prefect:artifacts"] = "\n".join(
            f"{a.key} {a.description} {a.data}" for a in client.read_artifacts(flow_run_filter=runs))
        out["prefect:logs"] = "\n".join(
            log.message for log in client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids))))
        out["prefect:flow-states"] = "\n".join(
            f"{r.state.message} {r.parameters}" for r in client.read_flow_runs(
                flow_run_filter=runs) if r.state)
        out["prefect:task-states"] = "\n".join(
            f"{t.name} {t.state.message}" for t in client.read_task_runs(flow_run_filter=runs)
            if t.state)
        page = client._client.post("/events/filter", json={"limit": 50}).json()
        texts = [repr(page.get("events"))]
        for _ in range(40):  # bounded: the newest 2,000 events
            if not page.get("next_page"):
                break
            page = client._client.get(page["next_page"]).json()
            texts.append(repr(page.get("events")))
        out["prefect:events"] = "\n".join(texts)
    out["result"] = repr(result)
    return out


def assert_nothing_leaked(secret_values: dict[str, str], found: dict[str, str]) -> None:
    leaks = [f"{name} ({how}) in {channel}"
             for name, value in secret_values.items()
             for how, encoded in encodings(value).items()
             for channel, text in found.items()
             if len(encoded) >= 8 and encoded in text]
    assert not leaks, "secrets leaked: " + "; ".join(leaks)


def open_pr(receiver: Any, github: Any, infra: Any, branch: str, message: str) -> tuple[Any, str]:
    sha = push_branch(infra, branch, message)
    answer = receiver.deliver("pull_request", pull_request("opened", number=1, head_sha=sha,
                                                           branch=branch))
    assert answer.status_code == 202, answer.text
    return receiver.launcher.states[-1], sha


def run_ids(receiver: Any) -> list[str]:
    return [str(s.state_details.flow_run_id) for s in receiver.launcher.states]


@pytest.fixture()
def infra(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InfraRepo:
    """An infrastructure repository of its own holding dev, staging and prod as shipped (the
    sandbox's shared one gathers every other test's environments)."""
    bare = tmp_path / "infra.git"
    seed_repository(bare, REPO_ROOT, tmp_path / "seed")
    monkeypatch.setenv("GITOPS_REPOSITORY_URL", bare.as_uri())
    return InfraRepo(bare.as_uri(), tmp_path / "work")


@pytest.fixture()
def branch(infra: Any) -> str:
    name = f"attack/{secrets.token_hex(4)}"
    run_git(["checkout", "--quiet", "-b", name], cwd=infra.path)
    return name


# -- the attacks ----------------------------------------------------------------------------------

def test_a_pr_printing_secrets_through_outputs_leaks_none(sandbox, receiver, github, infra,
                                                          branch) -> None:
    """nonsensitive(), encodings, /proc/self/environ, another environment's and the platform's
    blocks named in the PR's own environment.toml: the plan uses the trusted configuration."""
    stack = infra.path / STACK
    (stack / "leak.tf").write_text(
        'variable "webhook" {\n  type      = string\n  default   = "none"\n  sensitive = true\n}\n\n'
        'locals {\n  pw = nonsensitive(var.db_password)\n}\n\n'
        'output "innocent" {\n  value = local.pw\n}\n\n'
        'output "encoded" {\n  value = base64encode(local.pw)\n}\n\n'
        'output "spaced" {\n  value = join("-", split("", local.pw))\n}\n\n'
        'output "escaped" {\n  value = urlencode(local.pw)\n}\n\n'
        'output "backwards" {\n  value = join("", reverse(split("", local.pw)))\n}\n\n'
        'output "environ" {\n  value = file("/proc/self/environ")\n}\n\n'
        'output "hook" {\n  value = nonsensitive(var.webhook)\n}\n')
    toml = infra.path / "terraform/environments/dev/environment.toml"
    toml.write_text(toml.read_text().replace(
        'db_password = "gitops-db-password-dev"',
        'db_password = "gitops-db-password-prod"\nwebhook = "gitops-webhook-secret"'))
    prod = infra.path / "terraform/environments/prod/environment.toml"
    prod.write_text(prod.read_text().replace("required = true", "required = false"))

    state, sha = open_pr(receiver, github, infra, branch, "Add harmless outputs")
    assert state.is_completed(), state.message
    body = plan_comments(github, 1)[0].body
    # The configuration changes are shown, loud, and were not used.
    assert "This pull request changes how environments are run" in body
    assert "`secret_variables.db_password`: gitops-db-password-dev → gitops-db-password-prod" \
        in body
    assert "`approval.required`: true → false" in body
    assert "planned without its secret variables `db_password`" in body  # staging, prod
    report = state.result()
    assert {e.env: e.state for e in report.environments} == {
        "dev": "success", "staging": "success", "prod": "success"}
    assert_nothing_leaked(planted(sandbox), channels(github, run_ids(receiver), report, (sha,)))


def test_an_error_echoing_a_secret_is_scrubbed(sandbox, receiver, github, infra,
                                               branch) -> None:
    (infra.path / STACK / "echo.tf").write_text(
        'output "echo" {\n  value = file(nonsensitive(var.db_password))\n}\n')
    state, sha = open_pr(receiver, github, infra, branch, "Read a file")
    assert state.is_completed(), state.message
    body = plan_comments(github, 1)[0].body
    assert "no file exists" in body  # terraform's own error, shown
    report = state.result()
    assert {e.state for e in report.environments} == {"failure"}
    assert_nothing_leaked(planted(sandbox), channels(github, run_ids(receiver), report, (sha,)))


def test_code_shipped_in_the_pr_never_runs(sandbox, receiver, github, infra, branch,
                                           tmp_path: Path) -> None:
    """A plugin folder, CLI configs with dev_overrides, and Python files that would shadow the
    sandbox provider: terraform installs only from the platform's mirror, the provider runs
    isolated, and none of it executes."""
    marker = tmp_path / f"ran-{secrets.token_hex(4)}"
    stack = infra.path / STACK
    plugin_dir = (stack / "terraform.d/plugins/registry.terraform.io/gitops/sandbox/0.1.0"
                  / "linux_amd64")
    plugin_dir.mkdir(parents=True)
    plugin = plugin_dir / "terraform-provider-sandbox_v0.1.0"
    plugin.write_text(f"#!/bin/sh\necho plugin >> {marker}\nexit 1\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    override = (f'provider_installation {{\n  dev_overrides {{\n'
                f'    "gitops/sandbox" = "{plugin_dir}"\n  }}\n  direct {{}}\n}}\n')
    for name in (".terraformrc", "terraform.rc"):
        (stack / name).write_text(override)
        (infra.path / name).write_text(override)
    shadow = f"open({str(marker)!r}, 'a').write('python\\n')\n"
    for module in ("deployments/__init__.py", "deployments/sandbox/__init__.py",
                   "deployments/sandbox/provider.py", "tf/__init__.py", "sitecustomize.py"):
        path = stack / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(shadow)
    dev_tfvars = infra.path / "terraform/environments/dev/dev.tfvars"
    dev_tfvars.write_text(dev_tfvars.read_text() + "\n")

    state, _sha = open_pr(receiver, github, infra, branch, "Vendor a provider")
    assert state.is_completed(), state.message
    report = state.result()
    assert {e.env: e.state for e in report.environments} == {
        "dev": "success", "staging": "success", "prod": "success"}
    assert not marker.exists(), f"foreign code ran: {marker.read_text()}"


def test_symlinks_out_of_the_checkout_refuse_the_pr(sandbox, receiver, github, infra,
                                                    branch) -> None:
    dev = infra.path / "terraform/environments/dev"
    (dev / "dev.tfvars").unlink()
    (dev / "dev.tfvars").symlink_to("/proc/self/environ")
    (infra.path / STACK / "state.tf").symlink_to(sandbox.state_file)
    state, sha = open_pr(receiver, github, infra, branch, "Link some files")
    assert state.is_failed()
    assert "symlinks that point outside the repository" in state.message
    body = plan_comments(github, 1)[0].body
    assert "terraform/environments/dev/dev.tfvars" in body and f"{STACK}/state.tf" in body
    assert [s.state for s in github.statuses(REPO, sha)] == ["failure"]
    assert_nothing_leaked(planted(sandbox), channels(github, run_ids(receiver), None, (sha,)))


def test_a_backend_pointing_at_another_environment_never_reaches_its_state(
        sandbox, receiver, github, infra, branch) -> None:
    from deployments.sandbox.launcher import SANDBOX_BACKEND

    def versions() -> list[str]:
        s3 = sandbox.aws_client("s3")  # the admin's key: moto enforces IAM
        listed = s3.list_object_versions(Bucket=SANDBOX_BACKEND.bucket,
                                         Prefix="expense/prod/")
        return sorted(v["VersionId"] for v in listed.get("Versions", []))

    before = versions()
    backend = infra.path / "terraform/environments/dev/backend.hcl"
    backend.write_text(backend.read_text().replace("expense/dev/", "expense/prod/"))
    infra.add_environment("evil", provision=False)  # a PR's new environment: nothing granted yet
    evil = infra.path / "terraform/environments/evil/backend.hcl"
    evil.write_text(evil.read_text().replace("expense/evil/", "expense/prod/"))

    state, _sha = open_pr(receiver, github, infra, branch, "Share prod's state")
    assert state.is_completed(), state.message
    body = plan_comments(github, 1)[0].body
    report = {e.env: e for e in state.result().environments}
    # Both would share prod's state: refused, naming prod, loud in the comment.
    assert report["dev"].state == report["evil"].state == "failure"
    assert "refused once merged" in body
    assert "uses the state s3://gitops-tfstate/expense/prod/terraform.tfstate" in body
    assert "'prod'" in report["dev"].description or "prod" in body
    assert versions() == before  # prod's state was never written
    assert os.environ["GITOPS_GRANT_FILE"]  # the grant came from the platform, not the repo


def test_a_new_environment_is_planned_without_secrets_on_an_empty_state(
        sandbox, receiver, github, infra, branch) -> None:
    infra.add_environment("fresh", provision=False)
    state, _sha = open_pr(receiver, github, infra, branch, "Add the fresh environment")
    assert state.is_completed(), state.message
    body = plan_comments(github, 1)[0].body
    assert "**new environment `fresh`**" in body
    report = {e.env: e for e in state.result().environments}
    assert report["fresh"].state == "success"
    assert report["fresh"].description.startswith("4 to add")
    assert "test-db-password-fresh" not in body  # its Secret block was never read


def test_a_pr_reading_another_environments_state_is_denied_by_iam(sandbox, receiver, github,
                                                                   infra, branch) -> None:
    """The attacker knows the bucket, prod's key and the endpoint, and writes a remote-state read
    into the shared stack: dev's plan runs with dev's plan user, which AWS (moto, enforcing IAM)
    refuses prod's state."""
    moto = SandboxState.load(sandbox.state_file).services["moto"].url
    (infra.path / STACK / "steal.tf").write_text(
        'data "terraform_remote_state" "prod" {\n'
        '  count   = var.environment == "dev" ? 1 : 0\n'
        '  backend = "s3"\n'
        "  config = {\n"
        '    bucket                      = "gitops-tfstate"\n'
        '    key                         = "expense/prod/terraform.tfstate"\n'
        '    region                      = "us-east-1"\n'
        f'    endpoint                    = "{moto}"\n'
        '    force_path_style            = true\n'
        '    skip_credentials_validation = true\n'
        '    skip_metadata_api_check     = true\n'
        "  }\n}\n\n"
        'output "stolen" {\n'
        '  value = [for s in data.terraform_remote_state.prod : nonsensitive(s.outputs.db_password)]\n'
        "}\n")
    state, sha = open_pr(receiver, github, infra, branch, "Compare with prod")
    assert state.is_completed(), state.message
    report = {e.env: e for e in state.result().environments}
    assert report["dev"].state == "failure"
    body = plan_comments(github, 1)[0].body
    assert "AccessDenied" in body or "403" in body
    assert_nothing_leaked(planted(sandbox), channels(github, run_ids(receiver), report, (sha,)))
