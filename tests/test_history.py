"""Which commits may reach an environment, and which way a deploy moves one: pure decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.config import load_environment
from gitops.errors import UnreviewedCommit
from gitops.history import Move, admit_commit, move

REPO_ROOT = Path(__file__).resolve().parent.parent
SHA, HEAD = "a" * 40, "b" * 40


def test_a_merged_commit_is_admitted_silently() -> None:
    staging = load_environment(REPO_ROOT, "staging")
    assert admit_commit(staging, SHA, branch="main", head=HEAD, merged=True) == ""


def test_an_unmerged_commit_is_refused_naming_commit_and_branch() -> None:
    staging = load_environment(REPO_ROOT, "staging")
    with pytest.raises(UnreviewedCommit) as refused:
        admit_commit(staging, SHA, branch="main", head=HEAD, merged=False)
    message = str(refused.value)
    assert SHA[:12] in message and "history of main" in message and HEAD[:12] in message
    assert "staging" in message and "nothing was planned or applied" in message
    assert (refused.value.sha, refused.value.branch) == (SHA, "main")


def test_an_environment_allowing_unmerged_commits_takes_one_with_a_warning() -> None:
    scratch = load_environment(REPO_ROOT, "dev").model_copy(update={"allow_unmerged": True})
    warning = admit_commit(scratch, SHA, branch="main", head=HEAD, merged=False)
    assert "NOT in the history of main" in warning and "allow_unmerged = true" in warning
    assert SHA[:12] in warning


@pytest.mark.parametrize("last, head, last_is_ancestor, head_is_ancestor, expected", [
    (None, HEAD, False, False, Move.FIRST),
    (HEAD, HEAD, True, True, Move.SAME),
    (SHA, HEAD, True, False, Move.FORWARD),
    (SHA, HEAD, False, True, Move.BACKWARD),
    (SHA, HEAD, False, False, Move.DIVERGED),
])
def test_move_from_the_last_good_commit(last, head, last_is_ancestor, head_is_ancestor,
                                        expected) -> None:
    assert move(last, head, last_is_ancestor=last_is_ancestor,
                head_is_ancestor=head_is_ancestor) is expected


@pytest.mark.parametrize("repository", ["acme/infrastructure", "ACME/Infrastructure",
                                        " acme/infrastructure "])
def test_a_delivery_for_the_configured_repository_gets_its_clone_url(repository: str) -> None:
    from flows.common import configured_repository_url
    from gitops.settings import GitopsSettings

    settings = GitopsSettings(repository="Acme/infrastructure", repository_url="file:///infra.git")
    assert configured_repository_url(settings, repository) == "file:///infra.git"


@pytest.mark.parametrize("repository", ["other/repo", "acme/infrastructure-fork", "acme", ""])
def test_a_delivery_for_another_repository_is_refused(repository: str) -> None:
    from flows.common import configured_repository_url
    from gitops.errors import ConfigError, ForeignRepository
    from gitops.settings import GitopsSettings

    settings = GitopsSettings(repository="acme/infrastructure", repository_url="file:///infra.git")
    with pytest.raises(ForeignRepository, match="not '") as refused:
        configured_repository_url(settings, repository)
    assert isinstance(refused.value, ConfigError)
    assert "acme/infrastructure" in str(refused.value)
