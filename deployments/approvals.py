"""Paused approvals as the operator sees them: which runs wait for an answer, and for which
environment, so `gitops-flows approve prod --as alice` needs no flow run ID."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.input.actions import read_flow_run_input
from prefect.input.run_input import keyset_from_paused_state

from gitops.approval import ANSWER_KEY_PREFIX, REQUEST_KEY_PREFIX
from gitops.errors import ConfigError

if TYPE_CHECKING:
    from gitops.codehost import CodeHost


@dataclass(frozen=True)
class PausedApproval:
    """One flow run paused for an approval."""

    run_id: str
    run_name: str
    environment: str
    sha: str
    paused_since: datetime | None
    expires: datetime | None
    state_name: str
    """Suspended (no process waits: any worker resumes it) or Paused (its process waits)."""
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
            state_name=(state.name or "Paused") if state else "Paused",
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


def resolve_paused_run(target: str, *, settle: float = 15.0) -> str:
    """The flow run to answer: ``target`` itself if it is a run ID, else the one run paused for
    the environment named ``target``.

    A run that just took an answer is Running for a moment before it waits again (an approval
    that was one of two, a refused answer): when nothing is paused, look again for up to
    ``settle`` seconds before saying so.
    """
    import time

    try:
        return str(uuid.UUID(target))
    except ValueError:
        pass
    deadline = time.monotonic() + settle
    waiting = paused_approvals(target)
    while not waiting and time.monotonic() < deadline and _running(target):
        time.sleep(0.5)
        waiting = paused_approvals(target)
    if len(waiting) == 1:
        return waiting[0].run_id
    if not waiting:
        raise ConfigError(f"no run of {target!r} is waiting for approval "
                          "(`gitops-flows approvals` lists those that are)")
    ids = ", ".join(f"{p.run_name} {p.run_id}" for p in waiting)
    raise ConfigError(f"{len(waiting)} runs of {target!r} wait for approval ({ids}); "
                      "answer one by its run ID")


def _running(environment: str) -> bool:
    """Whether a run of ``environment`` is under way (it may be about to wait again)."""
    under_way = [StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=under_way))),
            sort=FlowRunSort.START_TIME_DESC, limit=200)
    return any(run.parameters.get("environment") == environment for run in runs)


# -- answering as a code-host identity ----------------------------------------------------------

@dataclass(frozen=True)
class WaitingRequest:
    """What a waiting run asks approval for, as it wrote it."""

    run_id: str
    environment: str
    fingerprint: str
    repository: str
    commit: str
    pr_number: int | None
    marker: str
    overrides: tuple[str, ...] = ()


def waiting_request(run_id: str) -> WaitingRequest:
    """The newest approval request of ``run_id``."""
    from prefect.input.actions import filter_flow_run_input

    found = filter_flow_run_input(REQUEST_KEY_PREFIX, limit=50, flow_run_id=uuid.UUID(run_id))
    if not found:
        raise ConfigError(f"flow run {run_id} is paused but asks for no gitops approval (it is not "
                          "a deploy or rollback waiting for one)")
    value = max(found, key=lambda f: f.created or datetime.min).decoded_value
    return WaitingRequest(run_id, value["environment"], value["fingerprint"], value["repository"],
                          value["commit"], value.get("pr_number"), value["marker"],
                          tuple(value.get("overrides") or ()))


def post_answer(host: "CodeHost", request: WaitingRequest, *, approve: bool,
                reason: str = "", override: str | None = None) -> str:
    """Post `/gitops approve|reject` (or `override` of the check ``override``) where
    ``request`` was announced, as ``host``'s account.

    The request must be on the code host under the run's marker (the fingerprint comes from the
    run, the text it approves from the code host); otherwise nothing is posted.
    """
    from gitops.commands import approve_command, override_command, reject_command

    if override is not None:
        if override not in request.overrides:
            raise ConfigError(f"no soft-mandatory check {override!r} blocks plan "
                              f"{request.fingerprint} (those that do: "
                              f"{', '.join(request.overrides) or 'none'})")
        body = override_command(request.environment, override, request.fingerprint, reason)
    elif approve:
        body = approve_command(request.environment, request.fingerprint)
    else:
        body = reject_command(request.environment, reason)
    if request.pr_number is not None:
        comments = host.list_comments(request.repository, request.pr_number)
    else:
        comments = host.list_commit_comments(request.repository, request.commit)
    if not any(request.marker in c.body for c in comments):
        raise ConfigError(f"the approval request of run {request.run_id} (plan "
                          f"{request.fingerprint}) is not on {request.repository}; nothing posted")
    if request.pr_number is not None:
        comment = host.create_comment(request.repository, request.pr_number, body)
    else:
        comment = host.create_commit_comment(request.repository, request.commit, body)
    return comment.html_url or f"comment {comment.id}"


def answers_so_far(run_id: str) -> set[str]:
    from prefect.input.actions import filter_flow_run_input

    return {f.key for f in filter_flow_run_input(ANSWER_KEY_PREFIX, limit=200,
                                                 flow_run_id=uuid.UUID(run_id))}


def deliver(run_id: str, run_input: dict) -> None:
    """Resume the run with ``run_input``; a run that can no longer take it is refused."""
    from prefect.flow_runs import resume_flow_run

    try:
        resume_flow_run(uuid.UUID(run_id), run_input=run_input)
    except Exception as exc:  # NotPausedError, FlowPauseTimeout, RuntimeError (Prefect's refusal)
        raise ConfigError(f"flow run {run_id} cannot take an answer: {exc}") from exc


def run_verdict(run_id: str, before: set[str], timeout: float = 60.0,
                poll: float = 0.5) -> dict | None:
    """What the run made of the answer just delivered (its newest answer input); a run that ended
    instead (the approval text was replaced, it failed) gives ``{"verdict": "ended", ...}`` with
    its state; None if it said nothing within ``timeout``."""
    import time

    from prefect.input.actions import filter_flow_run_input

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [f for f in filter_flow_run_input(ANSWER_KEY_PREFIX, limit=200,
                                                flow_run_id=uuid.UUID(run_id))
               if f.key not in before]
        if new:
            return max(new, key=lambda f: f.created or datetime.min).decoded_value
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(uuid.UUID(run_id)).state
        if state is not None and state.is_final():
            return {"verdict": "ended", "progress": f"the run ended {state.name}: "
                                                    f"{state.message or ''}", "approvals": [],
                    "refused": []}
        time.sleep(poll)
    return None
