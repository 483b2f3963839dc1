"""The last good commit of each environment, kept in a Prefect Variable (durable, visible in the UI)."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable


def _name(environment: str) -> str:
    return f"gitops-last-good-{environment}"


def last_good_commit(environment: str) -> str | None:
    """The commit that last deployed ``environment`` successfully, if any."""
    value = Variable.get(_name(environment), default=None, _sync=True)
    if isinstance(value, dict):
        return value.get("sha") or None
    return None


@task(name="record-last-good", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def record_last_good(environment: str, sha: str, flow_run_id: str) -> None:
    """Remember ``sha`` as the environment's last good commit."""
    Variable.set(_name(environment),
                 {"sha": sha, "flow_run_id": flow_run_id,
                  "deployed_at": datetime.now(timezone.utc).isoformat()},
                 overwrite=True, _sync=True)
