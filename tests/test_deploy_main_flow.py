"""End to end: a merge to main deploys exactly the environments its changes affect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitops.git import run_git
from infra_repo import InfraRepo

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
