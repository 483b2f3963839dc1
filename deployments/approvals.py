"""Paused approvals as the operator sees them: which runs wait for an answer, and for which
environment, so `gitops-flows approve prod --as alice` needs no flow run ID."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.input.actions import read_flow_run_input
from prefect.input.run_input import keyset_from_paused_state

from gitops.errors import ConfigError


@dataclass(frozen=True)
class PausedApproval:
    """One flow run paused for an approval."""

    run_id: str
    run_name: str
    environment: str
    sha: str
    paused_since: datetime | None
    expires: datetime | None
    description: str  # the approval form's text (plan summary, fingerprint), if it was read


def paused_approvals(environment: str | None = None, *,
                     descriptions: bool = False) -> list[PausedApproval]:
    """Flow runs paused now (oldest first), those of ``environment`` only if given; with
    ``descriptions``, each with its approval form's text (one more API call per run)."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
    found = []
    for run in runs:
        env = str(run.parameters.get("environment") or "")
        if environment is not None and env != environment:
            continue
        state = run.state
        found.append(PausedApproval(
            run_id=str(run.id), run_name=run.name, environment=env,
            sha=str(run.parameters.get("sha") or run.parameters.get("to_sha") or ""),
            paused_since=state.timestamp if state else None,
            expires=state.state_details.pause_timeout if state else None,
            description=_form_description(run.id, state) if descriptions else ""))
    return sorted(found, key=lambda p: (p.paused_since is None, p.paused_since or 0))


def _form_description(run_id: uuid.UUID, state: object) -> str:
    """What the Prefect UI shows above the form (empty for a pause without one)."""
    try:
        key = keyset_from_paused_state(state)["description"]  # type: ignore[arg-type]
    except (RuntimeError, AttributeError):
        return ""
    text = read_flow_run_input(key, flow_run_id=run_id)
    return text if isinstance(text, str) else ""


def resolve_paused_run(target: str) -> str:
    """The flow run to answer: ``target`` itself if it is a run ID, else the one run paused for
    the environment named ``target``."""
    try:
        return str(uuid.UUID(target))
    except ValueError:
        pass
    waiting = paused_approvals(target)
    if len(waiting) == 1:
        return waiting[0].run_id
    if not waiting:
        raise ConfigError(f"no run of {target!r} is waiting for approval "
                          "(`gitops-flows approvals` lists those that are)")
    ids = ", ".join(f"{p.run_name} {p.run_id}" for p in waiting)
    raise ConfigError(f"{len(waiting)} runs of {target!r} wait for approval ({ids}); "
                      "answer one by its run ID")
