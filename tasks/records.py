"""The good commits of each environment, kept in a Prefect Variable (durable, visible in the UI).

``gitops-last-good-<env>`` holds the commit that last deployed successfully and the few before it,
newest last, so a manual rollback can go back one step.
"""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

HISTORY = 10


def _name(environment: str) -> str:
    return f"gitops-last-good-{environment}"


def good_commits(environment: str) -> list[str]:
    """Commits that deployed ``environment`` successfully, oldest first (at most HISTORY)."""
    value = Variable.get(_name(environment), default=None, _sync=True)
    if not isinstance(value, dict):
        return []
    history = [s for s in value.get("history", []) if isinstance(s, str)]
    return history or ([value["sha"]] if value.get("sha") else [])


def last_good_commit(environment: str) -> str | None:
    """The commit that last deployed ``environment`` successfully, if any."""
    history = good_commits(environment)
    return history[-1] if history else None


def last_good_backend(environment: str) -> str | None:
    """The state (``s3://bucket/key``) the last good deploy wrote, if it was recorded."""
    value = Variable.get(_name(environment), default=None, _sync=True)
    backend = value.get("backend") if isinstance(value, dict) else None
    return backend if isinstance(backend, str) and backend else None


def previous_good_commit(environment: str) -> str | None:
    """The good commit before the one deployed now: where a manual rollback goes by default."""
    history = good_commits(environment)
    current = history[-1] if history else None
    earlier = [sha for sha in history if sha != current]
    return earlier[-1] if earlier else None


@task(name="record-last-good", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def record_last_good(environment: str, sha: str, flow_run_id: str,
                     backend: str | None = None) -> None:
    """Remember ``sha`` as the environment's last good commit (and the state it wrote)."""
    history = [s for s in good_commits(environment) if s != sha] + [sha]
    value = {"sha": sha, "flow_run_id": flow_run_id,
             "deployed_at": datetime.now(timezone.utc).isoformat(), "history": history[-HISTORY:]}
    if backend:
        value["backend"] = backend
    Variable.set(_name(environment), value, overwrite=True, _sync=True)
