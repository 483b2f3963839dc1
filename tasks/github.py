"""GitHub stage: the PR's commit statuses and its one plan comment, as Prefect tasks.

Each task builds its client inside (token from the Secret block named by
``settings.github_token_block``, API URL ``settings.github_api_url``) and makes one adapter call.
Retries: transient failures only (connection errors, timeouts, 5xx, rate limits; see
tasks/retry.py); a 4xx is a real error and fails at once. Setting a status and upserting the
marked comment are both idempotent, so a retry cannot duplicate anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from gitops.codehost import CodeHost, Comment, CommitStatus, StatusState
from gitops.github import GitHubClient
from gitops.settings import GitopsSettings
from tasks.credentials import load_secret
from tasks.retry import BACKOFF, transient_only

STATUS_CONTEXT_PREFIX = "gitops/plan"


def status_context(environment: str) -> str:
    """The commit status context of one environment's PR plan: ``gitops/plan: <env>``."""
    return f"{STATUS_CONTEXT_PREFIX}: {environment}"


@contextmanager
def code_host(settings: GitopsSettings) -> Iterator[CodeHost]:
    """The code host the flows use (GitHub at ``settings.github_api_url``), with the token
    from its Secret block; closed when the block ends."""
    token = load_secret(settings.github_token_block)
    with GitHubClient.from_token(token, base_url=settings.github_api_url) as client:
        yield client


@task(name="github-status", task_run_name="github-status-{state}-{context}", retries=3,
      retry_delay_seconds=BACKOFF, retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def set_commit_status(settings: GitopsSettings, repository: str, sha: str, state: StatusState,
                      context: str, description: str = "",
                      target_url: str | None = None) -> CommitStatus:
    """Set one commit status on ``sha`` (the description is cut to GitHub's 140 characters)."""
    with code_host(settings) as github:
        status = github.create_status(repository, sha, state, context, description, target_url)
    get_run_logger().info("%s@%s: %s = %s", repository, sha[:12], context, state)
    return status


@task(name="github-comment", retries=3, retry_delay_seconds=BACKOFF,
      retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def upsert_pr_comment(settings: GitopsSettings, repository: str, pr_number: int, body: str,
                      marker: str) -> Comment:
    """Edit the PR's comment carrying ``marker`` in place, or post it if there is none yet."""
    with code_host(settings) as github:
        comment = github.upsert_marked_comment(repository, pr_number, body, marker)
    get_run_logger().info("%s#%d: plan comment %s (%d characters)", repository, pr_number,
                          comment.id, len(body))
    return comment


@task(name="github-comment-replace", retries=3, retry_delay_seconds=BACKOFF,
      retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def replace_pr_comment(settings: GitopsSettings, repository: str, pr_number: int, body: str,
                       marker: str) -> Comment | None:
    """Replace the body of the PR's comment carrying ``marker``; post nothing if there is none."""
    with code_host(settings) as github:
        for existing in github.list_comments(repository, pr_number):
            if marker in existing.body and github.is_own(existing):
                if existing.body == body:
                    return existing
                return github.update_comment(repository, existing.id, body)
    get_run_logger().info("%s#%d: no plan comment to update", repository, pr_number)
    return None
