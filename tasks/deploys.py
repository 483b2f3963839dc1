"""Start a deploy as its own run of the ``deploy/deploy`` deployment, without waiting for it.

Used where a deploy must wait for approval outside the run that decided it (deploy-main hands an
environment that needs approval to a run that can suspend) and by drift remediation.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

DEPLOY_DEPLOYMENT = "deploy/deploy"


def start_deploy_run(environment: str, sha: str, idempotency_key: str) -> tuple[str, str]:
    """The (id, name) of the deploy run of ``environment`` at ``sha`` for ``idempotency_key``
    (the same key gives the same run); ObjectNotFound when the deployment does not exist."""
    from prefect.deployments import run_deployment

    run = run_deployment(DEPLOY_DEPLOYMENT, parameters={"environment": environment, "sha": sha},
                         timeout=0, as_subflow=False, idempotency_key=idempotency_key)
    return str(run.id), run.name


@task(name="start-deploy-run", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def start_deploy(environment: str, sha: str, idempotency_key: str) -> tuple[str, str]:
    """:func:`start_deploy_run` as a task (deploy-main's hand-off)."""
    return start_deploy_run(environment, sha, idempotency_key)
