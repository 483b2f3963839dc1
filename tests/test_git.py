"""GitRepository on real git repositories: mirror, detached worktrees, diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.errors import GitError
from gitops.git import GitRepository, commit_all, discard_run_files, run_git


@pytest.fixture()
def origin(tmp_path: Path) -> Path:
    work = tmp_path / "origin"
    work.mkdir()
    run_git(["init", "--quiet", "--initial-branch", "main"], cwd=work)
    (work / "terraform" / "environments" / "dev").mkdir(parents=True)
    (work / "terraform" / "environments" / "dev" / "dev.tfvars").write_text('owner = "a"\n')
    commit_all(work, "first", author="Ann", email="ann@example.com")
    return work


def test_checkout_is_a_detached_worktree_of_exactly_that_commit(origin: Path, tmp_path: Path):
    first = run_git(["rev-parse", "HEAD"], cwd=origin).strip()
    (origin / "README.md").write_text("later\n")
    second = commit_all(origin, "second")
    repo = GitRepository(origin.as_uri(), tmp_path / "cache")

    dest = repo.checkout(first, tmp_path / "run" / "checkout")

    assert run_git(["rev-parse", "HEAD"], cwd=dest).strip() == first
    assert not (dest / "README.md").exists()
    assert repo.resolve("main") == second
    assert repo.commit(first).author_email == "ann@example.com"


def test_checkout_refuses_what_is_not_a_sha(origin: Path, tmp_path: Path):
    repo = GitRepository(origin.as_uri(), tmp_path / "cache")
    for bad in ("main", "--upload-pack=evil", "../x", ""):
        with pytest.raises(GitError, match="not a commit SHA"):
            repo.checkout(bad, tmp_path / "x")


def test_an_unknown_commit_is_a_clear_git_error(origin: Path, tmp_path: Path):
    repo = GitRepository(origin.as_uri(), tmp_path / "cache")
    with pytest.raises(GitError):
        repo.checkout("0" * 40, tmp_path / "x")


def test_changed_files_lists_both_sides_of_a_move(origin: Path, tmp_path: Path):
    base = run_git(["rev-parse", "HEAD"], cwd=origin).strip()
    run_git(["mv", "terraform/environments/dev", "terraform/environments/qa"], cwd=origin)
    head = commit_all(origin, "rename dev to qa")
    repo = GitRepository(origin.as_uri(), tmp_path / "cache")
    repo.fetch()
    assert set(repo.changed_files(base, head)) == {"terraform/environments/dev/dev.tfvars",
                                                   "terraform/environments/qa/dev.tfvars"}
    assert repo.is_ancestor(base, head) and not repo.is_ancestor(head, base)


def test_discarding_a_run_removes_its_worktree_everywhere(origin: Path, tmp_path: Path):
    sha = run_git(["rev-parse", "HEAD"], cwd=origin).strip()
    repo = GitRepository(origin.as_uri(), tmp_path / "cache")
    repo.checkout(sha, tmp_path / "cache" / "runs" / "r1" / "checkout")

    discard_run_files(tmp_path / "cache" / "runs" / "r1", tmp_path / "cache")

    assert not (tmp_path / "cache" / "runs" / "r1").exists()
    assert "r1" not in run_git(["worktree", "list"], cwd=repo.mirror)


def test_no_repository_url_is_a_clear_error(tmp_path: Path):
    with pytest.raises(GitError, match="GITOPS_REPOSITORY_URL"):
        GitRepository("", tmp_path)


def test_concurrent_runs_share_one_mirror_safely(origin: Path, tmp_path: Path):
    """Runs on one worker check out at the same time: one clone, fetches and worktrees in turn."""
    from concurrent.futures import ThreadPoolExecutor

    for i in range(3):
        (origin / f"f{i}.txt").write_text(str(i))
        commit_all(origin, f"commit {i}")
    sha = run_git(["rev-parse", "HEAD"], cwd=origin).strip()

    def checkout(i: int) -> str:
        repo = GitRepository(str(origin), tmp_path / "cache")
        dest = repo.checkout(sha, tmp_path / "runs" / str(i))
        return (dest / "f2.txt").read_text()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(checkout, range(16))) == ["2"] * 16


def test_checkout_fetches_a_commit_the_mirror_does_not_hold_yet(origin: Path, tmp_path: Path):
    repo = GitRepository(origin.as_uri(), tmp_path / "cache")
    first = run_git(["rev-parse", "HEAD"], cwd=origin).strip()
    repo.checkout(first, tmp_path / "run1")
    (origin / "later.txt").write_text("later\n")
    later = commit_all(origin, "later")

    dest = repo.checkout(later, tmp_path / "run2")  # not resolved first: fetched on demand

    assert (dest / "later.txt").read_text() == "later\n"
