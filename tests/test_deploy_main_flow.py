"""End to end: a merge to main deploys exactly the environments its changes affect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitops.git import run_git
from infra_repo import InfraRepo
from test_deploy_flow import wait_for_log

pytestmark = pytest.mark.slow


@pytest.fixture()
def own_repo(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InfraRepo:
    """An infra repository holding only this test's environments (dm-a, dm-b)."""
    repo = InfraRepo.isolated(tmp_path, ("dm-a", "dm-b"))
    monkeypatch.setenv("GITOPS_REPOSITORY_URL", repo.url)
    return repo


def test_merge_deploys_new_environments_then_only_the_affected_one(own_repo: InfraRepo):
    from flows.deploy_main import deploy_main

    first = own_repo.push("Add dm-a and dm-b")
    outcomes = deploy_main("acme/infrastructure", first)
    assert {o.environment: o.outcome for o in outcomes} == {"dm-a": "deployed",
                                                            "dm-b": "deployed"}

    own_repo.set_var("dm-a", "replicas", "3")
    second = own_repo.push("Scale dm-a")
    outcomes = deploy_main("acme/infrastructure", second)
    assert {o.environment: o.outcome for o in outcomes} == {"dm-a": "deployed",
                                                            "dm-b": "skipped"}

    # A change to a module both stacks use affects both.
    module = own_repo.path / "terraform/sandbox/modules/service/main.tf"
    module.write_text(module.read_text() + "\n# touched\n")
    run_git(["add", "-A"], cwd=own_repo.path)
    third = own_repo.push("Touch the service module")
    outcomes = deploy_main("acme/infrastructure", third)
    assert {o.environment for o in outcomes if o.outcome in ("deployed", "no-changes")} == {
        "dm-a", "dm-b"}


def delete_runs(*names: str) -> int:
    """Delete every flow run of these names through the Prefect API (as a retention job would);
    return how many."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=list(names))))
        for run in runs:
            client.delete_flow_run(run.id)
    return len(runs)


def test_a_replayed_push_never_moves_an_environment_back(own_repo: InfraRepo):
    """deploy-main deploys main as it is now, not the delivery's sha; an environment at a newer
    commit than main's head stays where it is."""
    from flows.deploy_main import deploy_main
    from tasks.records import last_good_commit

    older = own_repo.push("Add dm-a and dm-b")
    # (deployed, or no-changes where an earlier test left the same state behind)
    assert {o.outcome for o in deploy_main("acme/infrastructure", older)} <= {"deployed",
                                                                              "no-changes"}
    assert last_good_commit("dm-a") == last_good_commit("dm-b") == older
    own_repo.set_var("dm-a", "replicas", "3")
    newer = own_repo.push("Scale dm-a")
    assert deploy_main("acme/infrastructure", newer)[0].outcome == "deployed"
    # The runs are gone (and with them the idempotency keys); the push of `older` is replayed.
    assert delete_runs(f"deploy-main-{older}", f"deploy-main-{newer}", "deploy-dm-a",
                       "deploy-dm-b") >= 5

    state = deploy_main("acme/infrastructure", older, return_state=True)

    assert state.is_completed(), state.message
    outcomes = {o.environment: o for o in state.result()}
    assert outcomes["dm-a"].outcome == "skipped"
    assert outcomes["dm-a"].message == f"already at {newer[:12]}"
    assert outcomes["dm-b"].outcome == "skipped"
    assert last_good_commit("dm-a") == newer
    assert wait_for_log(state.state_details.flow_run_id,
                        f"push of {older[:12]}; main is now at {newer[:12]}; deploying "
                        f"{newer[:12]}")

    # main is forced back to the older commit: dm-a is at a newer one and does not go back.
    own_repo.force_main(older)
    outcomes = {o.environment: o for o in deploy_main("acme/infrastructure", older)}
    assert outcomes["dm-a"].outcome == "skipped"
    assert outcomes["dm-a"].message.startswith(f"already at newer {newer[:12]}")
    assert last_good_commit("dm-a") == newer


def test_a_delivery_for_another_repository_is_refused_before_checkout(own_repo: InfraRepo):
    import os

    from flows.deploy_main import deploy_main
    from flows.pr_plan import pr_plan
    from gitops.git import GitRepository

    sha = own_repo.push("Add dm-a and dm-b")
    mirror = GitRepository(own_repo.url, Path(os.environ["GITOPS_WORKDIR"])).mirror

    merged = deploy_main("other/repo", sha, return_state=True)
    planned = pr_plan("other/repo", 1, sha, return_state=True)

    for state in (merged, planned):
        assert state.is_failed()
        assert "delivers 'acme/infrastructure' (GITOPS_REPOSITORY), not 'other/repo'" in \
            state.message
    assert not mirror.exists()  # nothing was fetched, let alone checked out
