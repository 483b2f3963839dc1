"""The saved plan while a deploy waits for approval: sealed into the environment's state bucket
before the run suspends, read back and checked by whichever worker resumes it, deleted after.

Thin Prefect wrappers around gitops.planstore.PlanStore, which gets an S3 client made from the
environment's *apply* credentials (the grant's; only they may read the prefix) and the key from
the Secret block named by ``GITOPS_PLAN_KEY_BLOCK``.
"""

from __future__ import annotations

import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from gitops.checkpoint import Checkpoint
from gitops.errors import ConfigError, StalePlan
from gitops.models import PlanStatus
from gitops.planstore import PlanStore, StoredPlan, plan_key_from_text
from gitops.workspace import EnvWorkspace
from tasks.credentials import load_secret, phase_credentials
from tasks.retry import BACKOFF, transient_only
from gitops.terraform import saved_plan
from tasks.terraform import StagedPlan, init_runner, staged_from

_RETRY = dict(retries=3, retry_delay_seconds=BACKOFF, retry_condition_fn=transient_only,
              cache_policy=NO_CACHE)


def plan_store(ws: EnvWorkspace) -> PlanStore:
    """The plan store of ``ws``'s environment: its state bucket, its apply credentials."""
    backend = ws.environment.backend
    if backend is None:
        raise ConfigError(f"{ws.name}: no state backend to keep a plan waiting for approval in")
    creds = phase_credentials(ws, apply=True)
    return PlanStore(creds.get_s3_client(), backend.bucket,
                     plan_key_from_text(load_secret(ws.settings.plan_key_block)))


@task(name="save-plan-for-approval", **_RETRY)
def save_plan(ws: EnvWorkspace, staged: StagedPlan, run_id: str) -> StoredPlan:
    """Seal the saved plan into the state bucket (idempotent: same run, same plan, same key)."""
    if staged.fingerprint is None:
        raise StalePlan(f"{ws.name}: nothing was planned")
    # Its show -json goes with it (a resumed run need not ask terraform again): read here, once
    # per wait, rather than kept from every plan.
    plan_file = Path(staged.plan_file)
    shown = init_runner(ws).read_saved(plan_file, staged.status)
    where = plan_store(ws).put(ws.name, run_id, plan_file, staged.fingerprint.plan_sha256,
                               json.dumps(shown.plan_json).encode())
    get_run_logger().info("%s: plan %s kept for the approval at s3://%s/%s (sealed)", ws.name,
                          staged.fingerprint.short, where.bucket, where.key)
    return where


@task(name="restore-approved-plan", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def restore_plan(ws: EnvWorkspace, checkpoint: Checkpoint) -> StagedPlan:
    """The plan this run waited with, read back on whichever worker resumed it: the same file
    (sha256 checked), the same fingerprint, checked again by today's trusted policies.

    ``terraform init`` (which apply needs) runs while the sealed plan is fetched, opened and
    judged; the plan's JSON comes sealed with it (gitops.planstore), so terraform reads the file
    again only for an object of the first format.
    """
    if checkpoint.commit != ws.commit:
        raise StalePlan(f"{ws.name}: the saved plan was made for {checkpoint.commit[:12]}, this "
                        f"workspace is at {ws.commit[:12]}")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"init-{ws.name}") as pool:
        initialised = pool.submit(contextvars.copy_context().run, init_runner, ws)
        restored = plan_store(ws).get(checkpoint.stored, ws.plan_file())
        if restored.plan_json is None:
            staged = staged_from(ws, initialised.result().read_saved(restored.path,
                                                                     PlanStatus.CHANGES))
        else:  # judged while init runs; apply waits for init below
            staged = staged_from(ws, saved_plan(restored.path, PlanStatus.CHANGES,
                                                _plan_json(ws, restored.plan_json)))
            initialised.result()
    if staged.fingerprint != checkpoint.fingerprint:
        raise StalePlan(f"{ws.name}: the plan read back is not the one that waited "
                        f"({staged.fingerprint.short if staged.fingerprint else '-'} vs "
                        f"{checkpoint.fingerprint.short})")
    get_run_logger().info("%s: resumed with plan %s, read back from s3://%s/%s", ws.name,
                          staged.fingerprint.short, checkpoint.bucket, checkpoint.object_key)
    return staged


def _plan_json(ws: EnvWorkspace, text: bytes) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StalePlan(f"{ws.name}: the saved plan's JSON does not parse: {exc}") from exc
    if not isinstance(value, dict):
        raise StalePlan(f"{ws.name}: the saved plan's JSON is not a terraform plan")
    return value


@task(name="forget-saved-plans", **_RETRY)
def forget_plans(ws: EnvWorkspace, run_id: str) -> int:
    """Delete this run's saved plans of ``ws``'s environment (applied, refused or replaced)."""
    gone = plan_store(ws).delete_run(ws.name, run_id)
    if gone:
        get_run_logger().info("%s: deleted %d saved plan(s) of this run from the state bucket",
                              ws.name, gone)
    return gone


@task(name="sweep-saved-plans", **_RETRY)
def sweep_plans(ws: EnvWorkspace, run_id: str) -> list[str]:
    """Delete the saved plans of ``ws``'s environment left by runs that are over (one that timed
    out while suspended never ran again to delete its own); the run ids swept."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    store = plan_store(ws)
    others = {}
    for name in store.runs(ws.name):
        try:
            if name != run_id:
                others[name] = uuid.UUID(name)
        except ValueError:
            continue
    if not others:
        return []
    with get_client(sync_client=True) as client:
        known = {str(r.id): r for r in client.read_flow_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=list(others.values()))))}
    swept = [name for name in others
             if (run := known.get(name)) is None or (run.state is not None and run.state.is_final())]
    for name in swept:
        store.delete_run(ws.name, name)
    if swept:
        get_run_logger().info("%s: deleted the saved plans of %d run(s) that are over: %s",
                              ws.name, len(swept), ", ".join(swept))
    return swept
