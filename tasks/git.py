"""Checkout stage: the commit to deploy, as a detached worktree. Fetching is safe to retry."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from gitops.git import Commit, GitRepository
from gitops.guard import refuse_escaping_symlinks
from tasks.retry import unless_refused


@task(name="checkout", retries=2, retry_delay_seconds=[2, 5], retry_condition_fn=unless_refused,
      cache_policy=NO_CACHE)
def checkout_commit(repo_url: str, cache_dir: Path, ref: str, dest: Path) -> Commit:
    """Resolve ``ref`` (branch or SHA) and check that commit out at ``dest``.

    A commit holding a symlink that leaves the checkout is refused here, before anything reads it.
    """
    repo = GitRepository(repo_url, cache_dir)
    sha = repo.resolve(ref)
    repo.checkout(sha, dest)
    refuse_escaping_symlinks(dest)
    return repo.commit(sha)
