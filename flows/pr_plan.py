"""The pull-request flows: plan every environment a PR affects, and tell GitHub; nothing is applied.

``pr-plan`` (on opened / synchronize / reopened):
    checkout the PR head (the code) and the default branch head (the trusted configuration) →
    which environments the diff ``base...head`` affects →
    commit status ``gitops/plan: <env>`` = pending for each → validate + plan each, at most
    ``settings.plan_concurrency`` at a time → each full plan as a markdown artifact → ONE PR comment
    (edited in place on every push) → each status success or failure.
    The default branch's policies judge every plan; when the PR changes policies, its own are
    evaluated on each plan too and the comment shows the difference (they judge nothing).
    A PR that affects no environment gets a comment saying so, and no statuses.
    A delivery for another repository than the configured one (``GITOPS_REPOSITORY``) is refused
    before anything is checked out.
``pr-closed`` (closed without merge): the comment says the plans were discarded.

Orchestration only: the pure parts are gitops.affected and gitops.pr_report, the steps are tasks.
Plan errors, policy violations and held locks are outcomes (a failure status on the PR), not a
failed run; the run fails only when it cannot do its job (checkout, GitHub), and then the pending
statuses it set are turned to ``error`` so nothing stays pending forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.futures import as_completed
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from gitops.affected import changed_policies
from gitops.config import config_changes, inside_checkout, with_trusted_rules
from gitops.errors import ConfigError, UnsafeCheckout
from gitops.grant import Phase
from gitops.models import PlanStatus
from gitops.pr_report import (
    MARKER,
    ConfigNotice,
    Verdict,
    closed_comment,
    no_environments_comment,
    plan_comment,
    refused_comment,
    verdict,
)
from gitops.scrub import scrub
from gitops.render import EnvReport, relative_to_checkout, render_plan_markdown
from gitops.settings import GitopsSettings, load_settings
from gitops.workspace import EnvWorkspace
from flows.common import (
    DISCARD_RUN_FILES,
    configured_repository_url,
    flow_run_id,
    run_dir,
    superseding_run,
    trusted_config,
    workspace,
)
from tasks.affected import PullRequestChange, find_affected
from tasks.git import checkout_commit
from tasks.publish import publish_markdown
from tasks.github import replace_pr_comment, set_commit_status, status_context, upsert_pr_comment
from tasks.terraform import StagedPlan, plan_stack, validate_stack

REFUSED_CONTEXT = "gitops/plan"
"""The status a pull request gets when its checkout is refused before any environment is known."""
MAX_ERROR_CHARS = 4000
"""How much of a failure's message goes into the PR comment (the run log has all of it)."""


@dataclass(frozen=True)
class EnvOutcome:
    """One environment's result on the PR: its status and where its full plan is."""

    env: str
    state: str
    description: str
    artifact_url: str | None = None


@dataclass(frozen=True)
class PrPlanReport:
    """What a pr-plan run did, as the flow's result."""

    repository: str
    pr_number: int
    head_sha: str
    environments: tuple[EnvOutcome, ...]
    comment_id: int | None
    changed_paths: int = 0
    superseded_by: str | None = None
    """A newer run for a newer push of the same PR, which owns the comment instead."""

    @property
    def passed(self) -> bool:
        """True when every affected environment's status is success."""
        return all(e.state == "success" for e in self.environments)


@flow(name="pr-plan", flow_run_name="pr-plan-{pr_number}", **DISCARD_RUN_FILES)
def pr_plan(repository: str, pr_number: int, head_sha: str, base_ref: str = "main") -> PrPlanReport:
    """Plan the environments pull request ``pr_number`` affects at ``head_sha``; report on GitHub."""
    logger = get_run_logger()
    settings = load_settings()
    repo_url = configured_repository_url(settings, repository)  # another repository: refused
    if newer := superseding_run():
        logger.info("#%d: a newer push is being planned (flow run %s); skipping %s", pr_number,
                    newer, head_sha[:12])
        return PrPlanReport(repository, pr_number, head_sha, (), None, superseded_by=newer)
    base = run_dir(settings)
    url = flow_run_url(settings)
    try:
        commit = checkout_commit(repo_url, Path(settings.workdir), head_sha, base / "head")
    except UnsafeCheckout as exc:
        refuse_pull_request(settings, repository, pr_number, head_sha, base_ref, str(exc), url)
        raise
    change = find_affected(settings, base / "head", base_ref, commit.sha)
    policy_paths = changed_policies(change.changed_paths, settings.policies_dir)

    if change.affected.empty:
        body = no_environments_comment(change.changed_paths, head_sha=commit.sha,
                                       pr_number=pr_number, base_ref=base_ref, run_url=url,
                                       policy_paths=policy_paths)
        comment = upsert_pr_comment(settings, repository, pr_number, body, MARKER)
        logger.info("#%d at %s affects no environment; said so on the PR", pr_number,
                    commit.sha[:12])
        return PrPlanReport(repository, pr_number, commit.sha, (), comment.id,
                            len(change.changed_paths))

    names = change.affected.environments
    for name in names:
        set_commit_status(settings, repository, commit.sha, "pending", status_context(name),
                          "planning…", url)
    try:
        reports, notices = plan_environments(settings, change, base, commit.sha, pr_number,
                                             compare_policies=bool(policy_paths))
        body = plan_comment(list(reports.values()), change.affected, head_sha=commit.sha,
                            pr_number=pr_number, base_ref=base_ref, run_url=url,
                            notices=list(notices.values()), policy_paths=policy_paths)
        newer = superseding_run()
        if newer:  # a newer push arrived while planning: its run owns the comment
            logger.info("#%d: leaving the comment to the newer run %s", pr_number, newer)
            comment = None
        else:
            comment = upsert_pr_comment(settings, repository, pr_number, body, MARKER)
    except BaseException:
        mark_errored(settings, repository, commit.sha, names, url)
        raise

    outcomes = []
    for name in names:
        result = verdict(reports[name])
        set_commit_status(settings, repository, commit.sha, result.state, status_context(name),
                          result.description, url)
        outcomes.append(EnvOutcome(name, result.state, result.description,
                                   reports[name].artifact_url))
        log_verdict(result)
    return PrPlanReport(repository, pr_number, commit.sha, tuple(outcomes),
                        comment.id if comment else None, len(change.changed_paths),
                        superseded_by=newer)


@flow(name="pr-closed", flow_run_name="pr-closed-{pr_number}")
def pr_closed(repository: str, pr_number: int) -> int | None:
    """Say on the PR's plan comment that it was closed without merge; return the comment id."""
    settings = load_settings()
    comment = replace_pr_comment(settings, repository, pr_number, closed_comment(pr_number),
                                 MARKER)
    return None if comment is None else comment.id


def plan_environments(settings: GitopsSettings, change: PullRequestChange, base: Path,
                      sha: str, pr_number: int, *, compare_policies: bool = False
                      ) -> tuple[dict[str, EnvReport], dict[str, ConfigNotice]]:
    """Validate then plan each affected environment (bounded); publish each plan as an artifact.

    Each is planned with its *trusted* configuration (the default branch's), the PR's code, and
    the ``proposed`` phase's grant; a new environment (not on the default branch) against an
    empty local state with the new-environment credentials and no secrets. What the PR changes
    in a configuration is returned as notices, shown loud on the PR, and used by nothing.
    The default branch's policies judge each plan; with ``compare_policies`` the PR's own
    are evaluated on it too, for the comment only.
    """
    url = flow_run_url(settings)
    reports: dict[str, EnvReport] = {}
    config = trusted_config(settings, base)
    trusted, trusted_broken = config.environments, config.broken
    policies = config.policies(settings)  # the default branch's, never the PR's
    proposed_policies = (inside_checkout(base / "head", settings.policies_dir)
                         if compare_policies else None)  # the PR's: shown, judging nothing
    notices: dict[str, ConfigNotice] = {}
    for name, why in change.broken.items():
        reports[name] = EnvReport(name, error=_clip(f"configuration does not load: {why}"),
                                  run_url=url)
        notices[name] = ConfigNotice(name, refusal=_clip(why))
    workspaces: dict[str, EnvWorkspace] = {}
    for name in change.affected.environments:
        if name in reports or name not in change.environments:
            continue
        proposed = change.environments[name]
        try:
            if name in trusted:
                ws = workspace(settings, with_trusted_rules(proposed, trusted[name]),
                               base / "head", sha, base / "pr-envs", Phase.PROPOSED,
                               policies=policies, proposed_policies=proposed_policies)
                notices[name] = ConfigNotice(name, changes=tuple(
                    config_changes(trusted[name], proposed)),
                    withheld=ws.grant.secret_grant(
                        trusted[name].secret_variables, Phase.PROPOSED).withheld)
            elif name in trusted_broken:
                raise ConfigError(f"its configuration on {settings.default_branch} does not "
                                  f"load: {trusted_broken[name]}")
            else:
                new_checkout = base / "head-new"
                if not new_checkout.exists():
                    checkout_commit(settings.repository_url, Path(settings.workdir), sha,
                                    new_checkout)
                ws = workspace(settings, proposed, new_checkout, sha, base / "pr-new-envs",
                               Phase.PROPOSED, proposed_new=True, policies=policies,
                               proposed_policies=proposed_policies)
                backend = proposed.backend
                refusal = None
                try:
                    if backend is not None:
                        ws.grant.check_backend(backend.bucket, backend.key,
                                               backend.dynamodb_table)
                except ConfigError as exc:
                    refusal = str(exc)
                notices[name] = ConfigNotice(name, new=True,
                                             withheld=tuple(sorted(proposed.secret_variables)),
                                             refusal=refusal)
                if refusal:
                    raise ConfigError(f"this new environment would be refused once merged: "
                                      f"{refusal}")
        except ConfigError as exc:
            reports[name] = EnvReport(name, error=_clip(str(exc)), run_url=url)
            continue
        workspaces[name] = ws

    with ThreadPoolTaskRunner(max_workers=settings.plan_concurrency) as runner:
        validations = {
            runner.submit(validate_stack.with_options(task_run_name=f"validate-{name}"),
                          {"ws": ws}): name
            for name, ws in workspaces.items()}
        plans = {}
        for future in as_completed(list(validations)):
            name = validations[future]
            future.wait()  # as_completed yields once done; wait() records the final state
            if future.state.is_completed():
                plans[name] = runner.submit(plan_stack.with_options(task_run_name=f"plan-{name}"),
                                            {"ws": workspaces[name]})
            else:
                reports[name] = EnvReport(name, error=_failure("validate", future,
                                                               workspaces[name].checkout),
                                          run_url=url)
        for name, future in plans.items():
            future.wait()
            if not future.state.is_completed():
                reports[name] = EnvReport(name, error=_failure("plan", future,
                                                               workspaces[name].checkout),
                                          run_url=url)
                continue
            staged: StagedPlan = future.result()
            reports[name] = env_report(settings, staged, pr_number, url)
    return {name: reports[name] for name in change.affected.environments}, notices


def env_report(settings: GitopsSettings, staged: StagedPlan, pr_number: int,
               url: str | None) -> EnvReport:
    """The comment row of one planned environment; its full plan published as an artifact."""
    if staged.status is PlanStatus.LOCKED or staged.plan is None:
        lock = staged.lock
        who = f" by {lock.who}" if lock is not None and lock.who else ""
        return EnvReport(staged.environment, run_url=url,
                         error=f"state is locked{who}; not planned (push again or re-run later)")
    artifact_id = publish_markdown(
        f"pr-{pr_number}-plan-{staged.environment}",
        render_plan_markdown(staged.environment, staged.plan, staged.checks),
        f"terraform plan of {staged.environment} for PR #{pr_number} at {staged.commit[:12]}")
    return EnvReport(staged.environment, plan=staged.plan, checks=staged.checks,
                     artifact_url=artifact_url(settings, artifact_id), run_url=url,
                     proposed_checks=staged.proposed_checks)


def refuse_pull_request(settings: GitopsSettings, repository: str, pr_number: int, sha: str,
                        base_ref: str, why: str, url: str | None) -> None:
    """Say on the PR why nothing was planned, with a failed ``gitops/plan`` status."""
    body = refused_comment(why, head_sha=sha, pr_number=pr_number, base_ref=base_ref,
                           run_url=url)
    upsert_pr_comment(settings, repository, pr_number, body, MARKER)
    set_commit_status(settings, repository, sha, "failure", REFUSED_CONTEXT,
                      "refused: the commit holds what the pipeline does not run", url)


def mark_errored(settings: GitopsSettings, repository: str, sha: str, names: tuple[str, ...],
                 url: str | None) -> None:
    """Best effort: turn the pending statuses to ``error`` after the run failed."""
    logger = get_run_logger()
    for name in names:
        try:
            set_commit_status(settings, repository, sha, "error", status_context(name),
                              "the pr-plan run failed; see the run", url)
        except Exception as exc:  # noqa: BLE001 - the original failure is what matters
            logger.warning("could not set %s to error: %s", status_context(name), exc)


def log_verdict(result: Verdict) -> None:
    logger = get_run_logger()
    if result.state == "success":
        logger.info("%s: %s", result.env, result.description)
    else:
        logger.warning("%s: %s", result.env, result.description)


def flow_run_url(settings: GitopsSettings) -> str | None:
    """This run in the Prefect UI (settings.prefect_ui_url, else Prefect's own UI URL)."""
    base = _ui_base(settings)
    return f"{base}/runs/flow-run/{flow_run_id()}" if base else None


def artifact_url(settings: GitopsSettings, artifact_id: Any) -> str | None:
    """An artifact in the Prefect UI, when a UI URL is known."""
    base = _ui_base(settings)
    return f"{base}/artifacts/artifact/{artifact_id}" if base and artifact_id else None


def _ui_base(settings: GitopsSettings) -> str:
    if settings.prefect_ui_url:
        return settings.prefect_ui_url.rstrip("/")
    from prefect.settings import PREFECT_UI_URL

    return str(PREFECT_UI_URL.value() or "").rstrip("/")


def _failure(stage: str, future: Any, checkout: Path) -> str:
    """What failed, for the comment: file paths relative to the repository, not the worker."""
    try:
        exc = future.result(raise_on_failure=False)
    except Exception as err:  # noqa: BLE001 - the result itself could not be read
        exc = err
    detail = (f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException)
              else future.state.message)
    for root in {str(checkout), str(checkout.resolve())}:
        detail = relative_to_checkout(detail, root)
    return _clip(f"{stage} failed: {detail}")


def _clip(text: str) -> str:
    text = scrub(text or "")
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " …(cut)"
