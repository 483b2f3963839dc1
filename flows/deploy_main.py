"""The merge-to-main flow: deploy every environment the pushed commit affects, in promotion order.

For each environment configured at the commit, the changes since its last good commit decide
whether it is affected (gitops.affected); an environment never deployed (a new folder) always is.
Environments without an approval rule go first (dev, staging), then those with one (prod); the
first failure stops the promotion, so a commit that broke staging never reaches prod.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.logging import get_run_logger

from gitops.affected import affected_environments
from gitops.config import load_configured
from gitops.errors import GitopsError
from gitops.git import GitRepository
from gitops.settings import load_settings
from flows.common import DISCARD_RUN_FILES, run_dir
from flows.deploy import deploy
from tasks.git import checkout_commit
from tasks.records import last_good_commit


@dataclass(frozen=True)
class MergeOutcome:
    """What happened to one environment for the pushed commit."""

    environment: str
    outcome: str  # deployed | no-changes | skipped | failed | rejected | not-started | ...
    message: str


@flow(name="deploy-main", flow_run_name="deploy-main-{sha}", **DISCARD_RUN_FILES)
def deploy_main(repository: str, sha: str, ref: str = "refs/heads/main") -> list[MergeOutcome]:
    """Deploy ``sha`` of ``repository`` to every environment it affects."""
    logger = get_run_logger()
    settings = load_settings()
    checkout = run_dir(settings) / "checkout"
    commit = checkout_commit(settings.repository_url, Path(settings.workdir), sha, checkout)
    repo = GitRepository(settings.repository_url, Path(settings.workdir))
    environments, broken = load_configured(checkout, settings.environments_dir)
    for name, why in broken.items():
        logger.error("%s: not deployed, its configuration does not load: %s", name, why)

    outcomes: list[MergeOutcome] = []
    stopped_by: str | None = None
    for env in sorted(environments.values(), key=lambda e: (e.approval.required, e.name)):
        if stopped_by is not None:
            outcomes.append(MergeOutcome(env.name, "not-started", f"{stopped_by} failed first"))
            continue
        reason = why_deploy(repo, checkout, settings.environments_dir, env.name, environments,
                            commit.sha)
        if reason is None:
            outcomes.append(MergeOutcome(env.name, "skipped", "not affected by this push"))
            continue
        logger.info("%s: deploying %s (%s)", env.name, commit.sha[:12], reason)
        state = deploy(env.name, sha=commit.sha, return_state=True)
        report = state.result(raise_on_failure=False) if state.is_completed() else None
        outcome = getattr(report, "outcome", None) or state.type.value.lower()
        outcomes.append(MergeOutcome(env.name, outcome, state.message or ""))
        if not state.is_completed():
            stopped_by = env.name
    for line in outcomes:
        logger.info("%s: %s %s", line.environment, line.outcome, line.message)
    if stopped_by is not None or broken:
        parts = ([f"stopped at {stopped_by}"] if stopped_by else []) + \
            [f"{name} has a broken configuration" for name in sorted(broken)]
        raise GitopsError(f"deploy of {commit.sha[:12]} incomplete: {'; '.join(parts)}")
    return outcomes


def why_deploy(repo: GitRepository, checkout: Path, environments_dir: str, name: str,
               environments: dict, sha: str) -> str | None:
    """Why ``name`` must be deployed at ``sha`` (None: the push does not affect it)."""
    last = last_good_commit(name)
    if last is None:
        return "never deployed"
    if last == sha:
        return None
    if not repo.is_ancestor(last, sha):
        return f"last good commit {last[:12]} is not an ancestor of {sha[:12]}"
    changed = repo.changed_files(last, sha)
    affected = affected_environments(changed, {name: environments[name]}, repo_root=checkout,
                                     environments_dir=environments_dir)
    if name not in affected.environments:
        return None
    return "; ".join(f"{i.reason} {i.path}" for i in affected.impacts_on(name))
