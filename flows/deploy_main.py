"""The merge-to-main flow: deploy the default branch head to every environment it affects, in
promotion order.

What is deployed is the branch head *now*, resolved at run time, not the pushed ``sha`` (a
delayed or replayed delivery names an older commit; the branch is the desired state). For each
environment configured at the head, its last good commit decides (gitops.history.move): the same
commit, or one newer than the head, is skipped (an environment never goes back); a head that
follows it is deployed when the changes since affect the environment (gitops.affected); a
diverged history (force-push) deploys the head, saying why. An environment never deployed (a new
folder) always is. Environments without an approval rule go first (dev, staging), then those with
one (prod); the first failure stops the promotion, so a commit that broke staging never reaches
prod. Run from its deployment, deploy-main hands each environment whose rule requires approval to
a deploy run of its own (``deploy/deploy``), which suspends while it waits, holding no worker;
run directly, it deploys them in its own process, which waits (pauses) for the approval. A delivery for another repository than the configured one is refused before any checkout.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State

from gitops.affected import affected_environments
from gitops.config import load_configured
from gitops.errors import DeployStopped, GitopsError
from gitops.reports import MergeOutcome
from gitops.git import GitRepository
from gitops.settings import load_settings
from gitops.history import Move, move
from flows.common import (
    DISCARD_RUN_FILES,
    configured_repository_url,
    flow_run_id,
    run_dir,
    waits_durably,
)
from flows.deploy import deploy
from tasks.deploys import start_deploy
from tasks.git import checkout_commit
from tasks.records import last_good_commit


@flow(name="deploy-main", flow_run_name="deploy-main-{sha}", **DISCARD_RUN_FILES)
def deploy_main(repository: str, sha: str, ref: str = "refs/heads/main") -> list[MergeOutcome]:
    """Deploy the default branch head of ``repository`` (pushed: ``sha``) to every environment
    it affects."""
    logger = get_run_logger()
    settings = load_settings()
    repo_url = configured_repository_url(settings, repository)
    checkout = run_dir(settings) / "checkout"
    commit = checkout_commit(repo_url, Path(settings.workdir), settings.default_branch, checkout)
    if not commit.sha.startswith(sha.strip().lower()):
        logger.warning("push of %s; %s is now at %s; deploying %s", sha[:12],
                       settings.default_branch, commit.sha[:12], commit.sha[:12])
    repo = GitRepository(repo_url, Path(settings.workdir))
    environments, broken = load_configured(checkout, settings.environments_dir)
    for name, why in broken.items():
        logger.error("%s: not deployed, its configuration does not load: %s", name, why)

    outcomes: list[MergeOutcome] = []
    stopped_by: str | None = None
    for env in sorted(environments.values(), key=lambda e: (e.approval.required, e.name)):
        if stopped_by is not None:
            outcomes.append(MergeOutcome(env.name, "not-started", f"{stopped_by} failed first"))
            continue
        deploy_it, reason = why_deploy(repo, checkout, settings.environments_dir, env.name,
                                       environments, commit.sha)
        if not deploy_it:
            logger.info("%s: skipped: %s", env.name, reason)
            outcomes.append(MergeOutcome(env.name, "skipped", reason))
            continue
        if env.approval.required and waits_durably(settings):
            run_id, run_name = start_deploy(env.name, commit.sha,
                                            f"deploy-main-{flow_run_id()}-{env.name}")
            logger.info("%s: %s; its own deploy run %s (%s) waits for approval, suspended: it "
                        "holds no worker while it waits", env.name, reason, run_name, run_id)
            outcomes.append(MergeOutcome(env.name, "handed-off",
                                         f"deploy run {run_name} ({run_id}) waits for approval"))
            continue
        logger.info("%s: deploying %s (%s)", env.name, commit.sha[:12], reason)
        state = deploy(env.name, sha=commit.sha, return_state=True)
        outcomes.append(MergeOutcome(env.name, deploy_outcome(state), state.message or ""))
        if not state.is_completed():
            stopped_by = env.name
    for line in outcomes:
        logger.info("%s: %s %s", line.environment, line.outcome, line.message)
    if stopped_by is not None or broken:
        parts = ([f"stopped at {stopped_by}"] if stopped_by else []) + \
            [f"{name} has a broken configuration" for name in sorted(broken)]
        raise GitopsError(f"deploy of {commit.sha[:12]} incomplete: {'; '.join(parts)}")
    return outcomes


def deploy_outcome(state: State) -> str:
    """The deploy's own outcome (deployed, rejected, blocked...), or its state for a run that
    ended otherwise (crashed, an error before it could say)."""
    if state.is_completed():
        return state.result().outcome.value
    stopped = state.result(raise_on_failure=False)
    if isinstance(stopped, DeployStopped):
        return stopped.report.outcome.value
    return state.type.value.lower()


def why_deploy(repo: GitRepository, checkout: Path, environments_dir: str, name: str,
               environments: dict, head: str) -> tuple[bool, str]:
    """Whether ``name`` must be deployed at the branch ``head``, and why (or why not)."""
    last = last_good_commit(name)
    step = move(last, head,
                last_is_ancestor=last is not None and repo.is_ancestor(last, head),
                head_is_ancestor=last is not None and repo.is_ancestor(head, last))
    if step is Move.FIRST:
        return True, "never deployed"
    if step is Move.SAME:
        return False, f"already at {head[:12]}"
    if step is Move.BACKWARD:
        return False, (f"already at newer {last[:12]}; {head[:12]} is older and an "
                       "environment never goes back")
    if step is Move.DIVERGED:
        return True, (f"last good commit {last[:12]} is not in the history of {head[:12]} "
                      "(history rewritten): deploying the branch head, the desired state")
    changed = repo.changed_files(last, head)
    affected = affected_environments(changed, {name: environments[name]}, repo_root=checkout,
                                     environments_dir=environments_dir)
    if name not in affected.environments:
        return False, f"not affected by the changes since {last[:12]}"
    return True, "; ".join(f"{i.reason} {i.path}" for i in affected.impacts_on(name))
