"""What a pull request changes: the changed paths (``git diff base...head``), the environments
configured at its head, and which of them it affects (gitops.affected).

One task; reading the local mirror and the checkout only, so it does not retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from gitops.affected import AffectedSet, affected_environments
from gitops.config import Environment, load_configured
from gitops.git import SHA, GitRepository
from gitops.settings import GitopsSettings


@dataclass(frozen=True)
class PullRequestChange:
    """The paths a PR changes and the environments they affect, with their configs at its head."""

    base_ref: str
    head_sha: str
    changed_paths: tuple[str, ...]
    affected: AffectedSet
    environments: Mapping[str, Environment] = field(default_factory=dict)
    """Every environment configured at the head commit (loaded and valid)."""
    broken: Mapping[str, str] = field(default_factory=dict)
    """Environment folder -> why its configuration does not load (at the head commit)."""


def base_revision(base_ref: str) -> str:
    """The revision to diff against: a SHA as is, a branch name as ``refs/heads/<branch>``."""
    if SHA.fullmatch(base_ref) or base_ref.startswith("refs/"):
        return base_ref
    return f"refs/heads/{base_ref}"


@task(name="affected-environments", cache_policy=NO_CACHE)
def find_affected(settings: GitopsSettings, checkout: Path, base_ref: str,
                  head_sha: str) -> PullRequestChange:
    """Diff ``base_ref...head_sha`` in the mirror and map the paths to environments."""
    repo = GitRepository(settings.repository_url, Path(settings.workdir))
    changed = tuple(repo.changed_files(base_revision(base_ref), head_sha))
    environments, broken = load_configured(checkout, settings.environments_dir)
    affected = affected_environments(changed, environments, repo_root=checkout,
                                     environments_dir=settings.environments_dir,
                                     unloadable=tuple(broken))
    get_run_logger().info("%d changed path(s) since %s; affected: %s", len(changed), base_ref,
                          ", ".join(affected.environments) or "(none)")
    return PullRequestChange(base_ref, head_sha, changed, affected, environments,
                             {k: v for k, v in broken.items() if k in affected.environments})
