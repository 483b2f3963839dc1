"""End to end on the sandbox: approvals that count only when GitHub (the emulator, held to GitHub's
REST description) vouches for who gave them, bound to one plan, with the real Prefect server,
terraform and moto. Each test adds its own environment."""

from __future__ import annotations

import re
from typing import Any
from collections.abc import Iterator

import pytest

from deployments.sandbox.launcher import SANDBOX_REPOSITORY, SandboxState
from gitops.github import GitHubClient
from tests.test_deploy_flow import (  # noqa: F401 - fixtures
    Background,
    argocd,
    deploy_state,
    find_paused_run,
    infra,
    run_files_left,
    state_versions,
    wait_for_log,
)

pytestmark = pytest.mark.slow

TEAM_RULE = 'approvers = ["acme/platform"]\n'


@pytest.fixture()
def github(sandbox: Any) -> Iterator[Any]:
    """Open a GitHub client as one of the sandbox's accounts: ``github("alice")``."""
    url = SandboxState.load(sandbox.state_file).services["github"].url
    clients: list[GitHubClient] = []

    def as_user(login: str) -> GitHubClient:
        clients.append(GitHubClient.from_token(sandbox.github_token(login), base_url=url))
        return clients[-1]

    yield as_user
    for client in clients:
        client.close()


@pytest.fixture()
def control(sandbox: Any) -> Iterator[Any]:
    from deployments.emulators.github import EmulatorControl

    state = SandboxState.load(sandbox.state_file)
    with EmulatorControl(state.services["github"].url, state.tokens["github"]) as ctl:
        yield ctl


def approve_cli(sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any, login: str,
                env: str, *extra: str) -> tuple[int, str, str]:
    """`gitops-flows approve ENV` as the sandbox account ``login``: (exit code, out, err)."""
    from deployments.cli import main as cli

    find_paused_run(env)  # the operator answers a run that waits (not one taking an answer)
    monkeypatch.setenv("GITOPS_GITHUB_TOKEN", sandbox.github_token(login))
    capsys.readouterr()
    code = cli(["approve", env, "--wait", "60", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def request_comment(github: Any, env: str, *, pr: int | None = None, sha: str = "") -> str:
    """The approval request the run posted (on the pull request, or on the commit)."""
    with github("dev") as reader:
        comments = (reader.list_comments(SANDBOX_REPOSITORY, pr) if pr is not None
                    else reader.list_commit_comments(SANDBOX_REPOSITORY, sha))
    found = [c.body for c in comments if f"gitops-flows:approval {env} " in c.body]
    assert found, f"no approval request for {env}"
    return found[-1]


def fingerprint_of(body: str, env: str) -> str:
    match = re.search(rf"/gitops approve {env} (\S+)", body)
    assert match, body
    return match.group(1)


def test_only_an_allowed_account_that_did_not_write_the_change_approves(
        sandbox, infra, argocd, github, control, monkeypatch, capsys):
    from prefect.flow_runs import resume_flow_run

    env = "e2e-gh"
    infra.add_environment(env, approval=True, approval_rule=TEAM_RULE)
    # alice wrote the commit under another display name; bob opened the pull request.
    sha = infra.push(f"Add {env}", author="Alice Smith", email="alice@acme.example")
    control.add_pull(SANDBOX_REPOSITORY, 41, "bob", head_sha=sha, merge_commit_sha=sha,
                     merged=True)

    run = Background(env, sha)
    paused = find_paused_run(env)
    body = request_comment(github, env, pr=41)
    fingerprint = fingerprint_of(body, env)
    assert "acme/platform" in body and "Status:** waiting" in body

    for login, why in (("alice", "wrote this change"),        # the commit's author, by account
                       ("bob", "wrote this change"),          # the pull request's author
                       ("mallory", "not write")):             # read access only
        code, _, err = approve_cli(sandbox, monkeypatch, capsys, login, env)
        assert code == 1 and why in err, (login, err)
    with github("dev") as dev:  # write access, outside acme/platform
        dev.create_comment(SANDBOX_REPOSITORY, 41, f"/gitops approve {env} {fingerprint}")
    # A forged answer through the Prefect API: no GitHub approval behind it.
    resume_flow_run(find_paused_run(env).id,
                    run_input={"approve": True, "approver": "erin", "reason": "trust me"})
    assert wait_for_log(paused.id, "unverified claim")
    assert wait_for_log(paused.id, "@dev is not an allowed approver")
    assert state_versions(sandbox, env) == 0  # still waiting, nothing applied

    code, out, _ = approve_cli(sandbox, monkeypatch, capsys, "erin", env)
    assert code == 0 and "approved" in out
    state = run.join()

    assert state.is_completed(), state.message
    report = state.result()
    assert report.approver == "erin"
    (record,) = [a for a in report.approvals if a.decision == "approved"]
    assert (record.login, record.verified, record.channel.value) == (
        "erin", True, "github-comment")
    assert record.fingerprint == fingerprint
    assert state_versions(sandbox, env) >= 1
    assert "approved by @erin (verified" in request_comment(github, env, pr=41)


def test_min_approvals_needs_two_distinct_accounts(sandbox, infra, argocd, github, monkeypatch,
                                                   capsys):
    env = "e2e-two"
    infra.add_environment(env, approval=True, approval_rule=TEAM_RULE + "min_approvals = 2\n")
    sha = infra.push(f"Add {env}")  # by dev; no pull request: asked on the commit

    run = Background(env, sha)
    find_paused_run(env)
    fingerprint = fingerprint_of(request_comment(github, env, sha=sha), env)
    assert approve_cli(sandbox, monkeypatch, capsys, "alice", env)[0] == 0
    code, out, err = approve_cli(sandbox, monkeypatch, capsys, "alice", env)  # the same account
    assert code == 0 and "waiting: 1 of 2" in out, err
    assert state_versions(sandbox, env) == 0
    code, out, err = approve_cli(sandbox, monkeypatch, capsys, "erin", env)
    assert code == 0 and "approved: 2 of 2" in out, err
    state = run.join()

    assert state.is_completed(), state.message
    assert sorted(a.login for a in state.result().approvals) == ["alice", "erin"]
    assert all(a.fingerprint == fingerprint for a in state.result().approvals)


def test_an_approval_of_a_plan_that_went_stale_does_not_count_for_the_new_one(
        sandbox, infra, github, monkeypatch, capsys):
    from prefect.flow_runs import resume_flow_run

    from tests.helpers_terraform import apply_outside_pipeline

    env = "e2e-ghstale"
    infra.add_environment(env, approval=True, approval_rule=TEAM_RULE)
    sha = infra.push(f"Add {env}")
    run = Background(env, sha)
    find_paused_run(env)
    old = fingerprint_of(request_comment(github, env, sha=sha), env)

    infra.set_var(env, "replicas", "5")  # the state moves while the approval is given
    apply_outside_pipeline(sandbox, env, infra.push(f"Scale {env}"))
    assert approve_cli(sandbox, monkeypatch, capsys, "alice", env)[0] == 0

    second = find_paused_run(env)  # apply refused the stale plan; planned again, asks again
    new = fingerprint_of(request_comment(github, env, sha=sha), env)
    assert new != old
    with github("alice") as alice:  # the old fingerprint, approved again after the new request
        alice.create_commit_comment(SANDBOX_REPOSITORY, sha, f"/gitops approve {env} {old}")
    resume_flow_run(second.id, run_input={"check_github": True})
    assert wait_for_log(second.id, f"names plan {old}, not {new}")  # does not count
    assert wait_for_log(second.id, "before this plan was announced")  # nor the first approval
    assert find_paused_run(env).id == second.id
    assert approve_cli(sandbox, monkeypatch, capsys, "alice", env)[0] == 0
    state = run.join()
    assert state.is_completed(), state.message
    assert [a.fingerprint for a in state.result().approvals if a.login == "alice"] == [old, new]


def test_a_replaced_approval_text_is_detected_and_nothing_is_applied(
        sandbox, infra, github, monkeypatch, capsys):
    """An API caller rewrites what the Prefect form shows ("1 to change") while the plan creates
    everything: the run notices before any approval counts, and fails."""
    from prefect.input import keyset_from_base_key
    from prefect.input.actions import create_flow_run_input, delete_flow_run_input

    env = "e2e-swap"
    infra.add_environment(env, approval=True, approval_rule=TEAM_RULE)
    sha = infra.push(f"Add {env}")
    run = Background(env, sha)
    paused = find_paused_run(env)
    key = keyset_from_base_key(f"paused-{paused.state.state_details.pause_key}")["description"]
    delete_flow_run_input(key, flow_run_id=paused.id)
    create_flow_run_input(key, "## Approve?\n\nPlan: 0 to add, 1 to change, 0 to destroy.",
                          flow_run_id=paused.id)

    code, _, err = approve_cli(sandbox, monkeypatch, capsys, "alice", env)
    state = run.join()

    assert code == 1 and "took no answer" in err and "was replaced" in err  # the run ended
    assert state.is_failed() and "was replaced" in state.message
    assert state_versions(sandbox, env) == 0
    assert not run_files_left(state)
    assert "approval text was replaced" in request_comment(github, env, sha=sha)


def test_a_rejection_on_github_ends_the_run_cancelled(sandbox, infra, github, monkeypatch,
                                                     capsys):
    env = "e2e-ghrej"
    infra.add_environment(env, approval=True, approval_rule=TEAM_RULE)
    sha = infra.push(f"Add {env}")
    run = Background(env, sha)
    find_paused_run(env)

    code, out, _ = approve_cli(sandbox, monkeypatch, capsys, "bob", env, "--reject",
                               "--reason", "not during the freeze")
    state = run.join()

    assert code == 0 and "rejected" in out
    assert state.is_cancelled()
    report = state.result(raise_on_failure=False).report
    assert report.outcome == "rejected"
    (record,) = report.approvals
    assert (record.login, record.decision, record.verified, record.reason) == (
        "bob", "rejected", True, "not during the freeze")
    assert state_versions(sandbox, env) == 0
    assert "rejected by @bob" in request_comment(github, env, sha=sha)


def test_a_pr_that_destroys_the_database_is_blocked_until_a_policy_owner_overrides_it(
        sandbox, infra, argocd, github, control, monkeypatch, capsys):
    """The soft-mandatory stateful_resources policy (the default branch's): shown on the PR,
    then at deploy the plan waits for an override by a policy owner, and is applied after it."""
    from flows.pr_plan import pr_plan
    from gitops.git import run_git

    env = "e2e-ovr"
    infra.add_environment(env)  # like staging: no approval; policy_owners = ["acme/platform"]
    first = infra.push(f"Add {env}")
    assert deploy_state(env, first).is_completed()  # no approval rule: deployed at once

    infra.set_var(env, "db_name_suffix", '"-v2"')  # renames the database: it is replaced
    head = infra.push_branch("rename-db", f"Rename {env}'s database")
    pr = pr_plan(repository=SANDBOX_REPOSITORY, pr_number=52, head_sha=head, base_ref="main",
                 return_state=True)
    assert pr.is_completed(), pr.message
    with github("dev") as reader:
        plan_comment = "\n".join(c.body for c in reader.list_comments(SANDBOX_REPOSITORY, 52))
    assert "stateful_resources" in plan_comment and "soft-mandatory" in plan_comment
    assert "policy owner overrides it" in plan_comment

    # Merged: the deploy plans the same replacement and waits for an override.
    run_git(["merge", "--quiet", "--no-ff", "-m", "Merge pull request #52", "rename-db"],
            cwd=infra.path)
    run_git(["push", "--quiet", "origin", "HEAD:main"], cwd=infra.path)
    merged = run_git(["rev-parse", "HEAD"], cwd=infra.path).strip()
    control.add_pull(SANDBOX_REPOSITORY, 52, "dev", head_sha=head, merge_commit_sha=merged,
                     merged=True)
    versions = state_versions(sandbox, env)
    run = Background(env, merged)
    paused = find_paused_run(env)
    request = request_comment(github, env, pr=52)
    assert f"/gitops override {env} stateful_resources.rego" in request

    code, _, err = approve_cli(sandbox, monkeypatch, capsys, "bob", env,
                               "--override", "stateful_resources.rego")
    assert code == 1 and "not a policy owner" in err  # write access, not acme/platform
    code, out, err = approve_cli(sandbox, monkeypatch, capsys, "alice", env)  # an approval is
    assert "still needed for stateful_resources.rego" in out, err            # not an override
    assert find_paused_run(env).id == paused.id and state_versions(sandbox, env) == versions
    code, out, _ = approve_cli(sandbox, monkeypatch, capsys, "alice", env, "--override",
                               "stateful_resources.rego", "--reason", "the data is migrated")
    assert code == 0 and "approved" in out
    state = run.join()

    assert state.is_completed(), state.message
    overrides = [a for a in state.result().approvals if a.decision == "overridden"]
    assert [(o.login, o.check, o.reason, o.verified) for o in overrides] == [
        ("alice", "stateful_resources.rego", "the data is migrated", True)]
    assert state_versions(sandbox, env) > versions
    assert "stateful_resources.rego overridden by @alice" in request_comment(github, env, pr=52)
