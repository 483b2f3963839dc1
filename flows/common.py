"""Orchestration helpers shared by the flows: run directories, workspaces, approval.

Every workspace pairs the code of the commit being run with the *trusted* configuration: the
environment's settings as the default branch holds them now (checked out beside the code), bounded
by the platform grant. A commit cannot choose its own backend, secrets or approval rule, and
only a commit in the default branch's history reaches an environment (unless the trusted rule
``allow_unmerged`` says otherwise).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn

from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.logging import get_run_logger

from gitops.approval import (
    ANSWER_KEY_PREFIX,
    REQUEST_KEY_PREFIX,
    ApprovalInput,
    ApprovalOutcome,
    ApprovalRecord,
    ApprovalRequest,
    Tally,
    approve_command,
    judge_form,
)
from gitops.checkpoint import CHECKPOINT_KEY_PREFIX, Checkpoint, newest
from gitops.config import Environment, inside_checkout, load_configured
from gitops.errors import (
    ApprovalTampered,
    ApprovalTimedOut,
    ConfigError,
    ForeignRepository,
    StateLocked,
    UnknownEnvironment,
)
from gitops.git import Commit, GitRepository, discard_run_files
from gitops.grant import Phase, load_grant
from gitops.history import admit_commit
from gitops.planstore import StoredPlan
from gitops.settings import GitopsSettings, load_settings
from gitops.workspace import EnvWorkspace
from tasks.git import checkout_commit
from gitops.models import PlanStatus
from gitops.render import (
    ApprovalText,
    approval_marker,
    render_approval_form,
    render_approval_request,
    render_plan_markdown,
)
from tasks.approvals import (
    Announcement,
    Venue,
    announce,
    announcement_unchanged,
    find_venue,
    tally_approvals,
    update_announcement,
)
from gitops.scrub import scrub, scrub_obj
from tasks.publish import emit, publish_markdown
from tasks.plans import restore_plan, save_plan, sweep_plans
from tasks.terraform import StagedPlan, enforce_checks, plan_stack


def flow_run_id() -> str:
    ctx = get_run_context()
    return str(ctx.flow_run.id)


def run_dir(settings: GitopsSettings) -> Path:
    """This run's work directory (its checkouts and plan files), readable by its owner only.

    The first call of a run also removes what finished runs left behind (a run that crashed
    never ran its state hooks).
    """
    path = Path(settings.workdir) / "runs" / flow_run_id()
    if not path.exists():
        sweep_finished_run_files(settings)
    for folder in (Path(settings.workdir), path.parent, path):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    return path


def sweep_finished_run_files(settings: GitopsSettings) -> list[str]:
    """Delete the work directories of runs that are over (or unknown to Prefect); return their ids.

    A paused or suspended run keeps its directory: it holds the plan waiting for approval.
    """
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = Path(settings.workdir) / "runs"
    if settings.keep_run_files or not runs.is_dir():
        return []
    me = flow_run_id()
    ids: dict[str, uuid.UUID] = {}
    for entry in runs.iterdir():
        try:
            ids[entry.name] = uuid.UUID(entry.name)
        except ValueError:
            continue
    ids.pop(me, None)
    if not ids:
        return []
    try:
        with get_client(sync_client=True) as client:
            found = {str(r.id): r for r in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(ids.values()))))}
    except Exception as exc:  # noqa: BLE001 - a sweep must never fail the run that does it
        get_run_logger().warning("could not check the runs whose files are left: %s", exc)
        return []
    swept = []
    for name in ids:
        run = found.get(name)
        if run is None or (run.state is not None and run.state.is_final()):
            discard_run_files_of(settings, name)
            swept.append(name)
    if swept:
        get_run_logger().info("removed the files of %d finished run(s): %s", len(swept),
                              ", ".join(swept))
    return swept


def discard_run_files_of(settings: GitopsSettings, flow_run_id_: Any) -> None:
    """Delete a run's work directory (plan files hold secrets), unless GITOPS_KEEP_RUN_FILES."""
    if not settings.keep_run_files:
        discard_run_files(Path(settings.workdir) / "runs" / str(flow_run_id_),
                          Path(settings.workdir))


def discard_run_files_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow state hook: the run's work directory goes when the run ends, whatever the outcome.

    A flow that *returns* a Cancelled state gets no hook call (Prefect calls on_cancellation only
    for runs cancelled from outside), so such a flow discards its files itself.
    """
    discard_run_files_of(load_settings(), flow_run.id)


# Spread into every @flow that works in a run directory.
DISCARD_RUN_FILES: dict[str, Any] = {
    hook: [discard_run_files_hook]
    for hook in ("on_completion", "on_failure", "on_cancellation", "on_crashed")
}


@dataclass(frozen=True)
class TrustedConfig:
    """The default branch head as a run reads it: its environments and where it is checked out."""

    environments: dict[str, Environment]
    broken: dict[str, str]
    """Environment name -> why its configuration does not load."""
    head: Commit
    checkout: Path

    def policies(self, settings: GitopsSettings) -> Path | None:
        """Its Rego policies (trusted configuration, like the rules); None when it has none."""
        path = inside_checkout(self.checkout, settings.policies_dir)
        return path if path.is_dir() else None

    def environment(self, settings: GitopsSettings, name: str) -> Environment:
        """One environment's trusted configuration; unknown or broken there: refused."""
        if name in self.environments:
            return self.environments[name]
        if name in self.broken:
            raise ConfigError(f"{name}: its configuration on {settings.default_branch} "
                              f"({self.head.sha[:12]}) does not load: {self.broken[name]}")
        raise UnknownEnvironment(name, sorted(self.environments))


def trusted_config(settings: GitopsSettings, base: Path, *, code: Path | None = None,
                   code_sha: str | None = None) -> TrustedConfig:
    """The default branch head, read now: checked out under ``base/trusted``, or ``code`` itself
    when that checkout (at ``code_sha``) already is the head."""
    repo_url = settings.repository_url
    if code is not None and code_sha is not None:
        repo = GitRepository(repo_url, Path(settings.workdir))
        if repo.resolve(settings.default_branch) == code_sha:
            loaded, broken = load_configured(code, settings.environments_dir)
            return TrustedConfig(loaded, broken, repo.commit(code_sha), code)
    head = checkout_commit(repo_url, Path(settings.workdir), settings.default_branch,
                           base / "trusted")
    loaded, broken = load_configured(base / "trusted", settings.environments_dir)
    return TrustedConfig(loaded, broken, head, base / "trusted")


def workspace(settings: GitopsSettings, env: Environment, checkout: Path, sha: str,
              envs_dir: Path, phase: Phase, *, proposed_new: bool = False,
              policies: Path | None = None,
              proposed_policies: Path | None = None) -> EnvWorkspace:
    """A workspace for ``env`` on the code at ``checkout``, with the environment's grant and
    the trusted Rego ``policies`` (see :meth:`TrustedConfig.policies`); ``proposed_policies``
    are a pull request's own, shown beside them (see :class:`EnvWorkspace`)."""
    for rel in (env.stack, env.var_file):
        if not inside_checkout(checkout, rel).exists():
            raise ConfigError(f"{env.name}: {rel} does not exist at {sha[:12]}")
    grant = load_grant(settings.grant_file).for_environment(env.name)
    return EnvWorkspace(settings, env, checkout, sha, envs_dir, grant, phase, proposed_new,
                        policies, proposed_policies=proposed_policies)


def open_workspace(settings: GitopsSettings, environment: str, ref: str, *, label: str = "checkout",
                   repo_url: str | None = None,
                   phase: Phase = Phase.DEPLOY) -> tuple[EnvWorkspace, Commit]:
    """Check out ``ref``'s code; the environment's rules are the default branch's.

    Only a commit in the default branch's history (fetched now) is taken, unless the trusted
    rule ``allow_unmerged`` says otherwise (see :func:`admit_reviewed`): the workspace's
    ``unmerged`` then says so.

    The commit's own settings for its code (stack, var file, DNS, Argo CD) are used when its
    configuration loads; a commit whose configuration does not (an older layout) is run with the
    default branch's configuration whole, and the log says so.
    """
    from gitops.config import (
        check_environment_name,
        load_environment,
        prepare_hcl_parser,
        with_trusted_rules,
    )

    check_environment_name(environment)
    base = run_dir(settings)
    parser = prepare_hcl_parser()  # built while git fetches
    commit = checkout_commit(repo_url or settings.repository_url, Path(settings.workdir), ref,
                             base / label)
    parser.join()
    config = trusted_config(settings, base, code=base / label, code_sha=commit.sha)
    trusted = config.environment(settings, environment)
    unmerged = admit_reviewed(settings, trusted, commit.sha, config)
    try:
        env = with_trusted_rules(
            load_environment(base / label, environment, settings.environments_dir), trusted)
    except ConfigError as exc:
        get_run_logger().warning("%s: its configuration at %s does not load (%s); using the "
                                 "default branch's", environment, commit.sha[:12], exc)
        env = trusted
    ws = workspace(settings, env, base / label, commit.sha, base / f"{label}-envs", phase,
                   policies=config.policies(settings))
    return replace(ws, unmerged=unmerged), commit


def admit_reviewed(settings: GitopsSettings, trusted: Environment, sha: str,
                   config: TrustedConfig) -> str:
    """Refuse ``sha`` unless it is in the default branch's history as fetched for ``config``
    (:class:`UnreviewedCommit`); an environment whose trusted rule sets ``allow_unmerged`` takes
    it with a warning, which is returned (``""`` for a reviewed commit)."""
    merged = sha == config.head.sha or GitRepository(
        settings.repository_url, Path(settings.workdir)).is_ancestor(sha, config.head.sha)
    warning = admit_commit(trusted, sha, branch=settings.default_branch, head=config.head.sha,
                           merged=merged)
    if warning:
        get_run_logger().warning("%s", warning)
    return warning


def configured_repository_url(settings: GitopsSettings, repository: str) -> str:
    """The clone URL of ``repository`` (owner/name) if it is the configured repository;
    compared case-insensitively, as GitHub does. Any other is refused (:class:`ForeignRepository`)
    before anything is checked out."""
    if repository.strip().casefold() != settings.repository.strip().casefold():
        raise ForeignRepository(repository, settings.repository)
    return settings.repository_url


def publish_plan(ws: EnvWorkspace, staged: StagedPlan) -> None:
    """The plan as the run's markdown artifact (scrubbed)."""
    if staged.plan is None:
        return
    publish_markdown(f"plan-{ws.name}", render_plan_markdown(ws.name, staged.plan, staged.checks),
                     f"terraform plan for {ws.name} at {ws.commit[:12]}")


def plan_and_check(ws: EnvWorkspace, saved: Checkpoint | None = None) -> StagedPlan:
    """The one plan → check step of every path that applies (deploy, rollback, remediation):
    plan, refuse a held lock, publish the plan, stop on any blocking check. A resumed run's
    plan is the ``saved`` one, read back from the state bucket (tasks/plans), not a new one
    (published before the run suspended: the same run's artifact)."""
    staged = restore_plan(ws, saved) if saved is not None else plan_stack(ws)
    if staged.status is PlanStatus.LOCKED:
        raise StateLocked(staged.lock)
    if saved is None:
        publish_plan(ws, staged)
    enforce_checks(staged)
    return staged


def superseding_run() -> str | None:
    """The id of a newer run of this flow for the same pull request at another head, if any.

    A burst of pushes creates one run per head; the older runs see the newer one and leave the
    PR comment to it, so the comment always shows the newest head, whatever order runs finish in.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterTags,
    )

    from gitops.receiver import PR_TAG_PREFIX  # the receiver's app: only the PR flows need it

    ctx = get_run_context()
    me = ctx.flow_run
    tags = [t for t in (me.tags or []) if t.startswith(PR_TAG_PREFIX)]
    if not tags or me.created is None:
        return None
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[ctx.flow.name])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tags[0]])))
    newer = [r for r in runs
             if r.id != me.id and r.created is not None and r.created > me.created
             and r.parameters.get("head_sha") != me.parameters.get("head_sha")
             and not (r.state is not None and (r.state.is_cancelled() or r.state.is_crashed()))]
    return str(newer[0].id) if newer else None


def run_url(settings: GitopsSettings) -> str | None:
    if not settings.prefect_ui_url:
        return None
    return f"{settings.prefect_ui_url.rstrip('/')}/runs/flow-run/{flow_run_id()}"


def request_approval(ws: EnvWorkspace, staged: StagedPlan, commit: Commit,
                     why: str = "", overrides: tuple[str, ...] = (), *, attempt: int = 0,
                     resume: Checkpoint | None = None, venue: Any = None) -> ApprovalOutcome:
    """Ask for approval of exactly ``staged`` and wait for an answer that counts.

    The request is posted on the code host (the pull request that brought the commit, or the
    commit) with the fingerprint to approve, and the run pauses with the Prefect form, which shows
    the same text. Every resume (a form answer, or a wake-up from the webhook or the CLI) is
    judged by gitops.approval against what the code host vouches for; an answer that does not
    count is logged and the run waits again, until the rule's timeout. The text the approvers
    read is checked before the answer counts: one replaced by an API caller fails the run.
    ``why`` says what makes an approval necessary beyond the rule (a state backend that moves);
    ``overrides`` are the keys of the soft-mandatory checks that need a policy owner's override
    (when they are all there is, no approval is asked, only the overrides).

    A top-level run of a deployment *suspends* (see :func:`waits_durably`): before each wait it
    seals the plan into the state bucket (tasks/plans) and writes a :class:`Checkpoint`; the
    process ends, and the run resumes on any worker from the top, where ``resume`` (the newest
    checkpoint, for this ``attempt``'s plan) takes it back to the round it waited in. Any other
    run pauses in its process, as before. ``venue``: the future of a ``find_venue`` started
    earlier for ``commit`` (a resumed run starts it while it restores its plan), else None.
    """
    logger = get_run_logger()
    settings, rule = ws.settings, ws.environment.approval
    fingerprint, run_id = staged.fingerprint.short, flow_run_id()
    durable = waits_durably(settings)
    if resume is not None and (resume.plan_sha256 != staged.fingerprint.plan_sha256
                               or resume.attempt != attempt):
        resume = None
    deadline = resume.deadline_at if resume else \
        datetime.now(timezone.utc) + timedelta(seconds=rule.timeout_seconds)
    needed = rule.min_approvals if rule.required or why else 0
    text = ApprovalText(ws.name, fingerprint, commit.sha, commit.subject, staged.summary,
                        needed, rule.approvers, rule.allow_author, rule.allow_declared,
                        deadline.strftime("%Y-%m-%d %H:%M UTC"), why, run_url(settings) or "",
                        overrides, rule.policy_owners)
    venue = venue.result() if venue is not None else \
        find_venue(settings, settings.repository, commit.sha)
    marker = approval_marker(ws.name, run_id, fingerprint)
    posted = announce(settings, venue, render_approval_request(text, "waiting", marker), marker)
    request = ApprovalRequest(ws.name, fingerprint, posted.created_at, venue.commit_author,
                              venue.pr_author, needed, overrides)
    plan_key = staged.fingerprint.plan_sha256[:12]
    if resume is None:  # a resumed run wrote it before it suspended
        _note_for_operator(f"{REQUEST_KEY_PREFIX}{plan_key}", {
            "environment": ws.name, "fingerprint": fingerprint, "repository": venue.repository,
            "commit": commit.sha, "pr_number": venue.pr_number, "marker": marker,
            "overrides": list(overrides)})
    declared: list[ApprovalRecord] = []
    seen: set[str] = set()
    current = Tally(needed, overrides_needed=overrides)
    stored = resume.stored if resume else None
    first = resume.round if resume else 0
    for earlier in range(first):  # rounds answered before the run was suspended again
        record, _ = judge_form(_answer_of(f"approve-{ws.name}-{plan_key}-{earlier}", durable),
                               rule, request, author_name=commit.author_name,
                               author_email=commit.author_email, at=datetime.now(timezone.utc))
        if record is not None:
            declared.append(record)
    if not durable:
        logger.info("%s: this run waits for approval in its own process (it does not run from "
                    "a deployment%s): if the process ends, the wait ends with it. Deployment "
                    "runs (`prefect deployment run deploy/deploy`) suspend instead, and any "
                    "worker resumes them", ws.name, "" if settings.approval_wait == "auto"
                    else "; GITOPS_APPROVAL_WAIT=pause")
    for round_ in itertools.count(first):
        remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
        description = scrub(render_approval_form(text, current.progress()))  # shown in the UI
        key = f"approve-{ws.name}-{plan_key}-{round_}"
        expected = _digest(description)
        if resume is not None and round_ == resume.round:
            expected = resume.description_sha256
        logger.info("%s: waiting %ds for approval of plan %s on %s: comment `%s` there, or run "
                    "`gitops-flows approve %s`; the Prefect form%s takes a rejection%s",
                    ws.name, remaining, fingerprint, venue.describe(),
                    approve_command(ws.name, fingerprint), ws.name,
                    f" ({run_url(settings)})" if run_url(settings) else "",
                    " or a declared approval" if rule.allow_declared else "")
        try:
            if remaining <= 0:
                raise FlowPauseTimeout("the approval's time is up")
            # Only the description: an initial value given for a field drops its help text
            # ("Apply this exact plan?") from the form; approve is False by default anyway.
            form = ApprovalInput.with_initial_data(description=description)
            if durable:
                if stored is None:
                    sweep_plans(ws, run_id)
                    stored = save_plan(ws, staged, run_id)
                if resume is None or round_ != resume.round:  # else: the one it resumed from
                    _note_for_operator(*_checkpoint(ws, staged, attempt, round_, deadline,
                                                    expected, stored))
                answer = _suspend(settings, run_id, form, math.ceil(remaining), key)
            else:
                answer = pause_flow_run(wait_for_input=form, timeout=math.ceil(remaining),
                                        poll_interval=settings.approval_poll_seconds, key=key)
        except FlowPauseTimeout as exc:
            update_announcement(settings, venue, posted, render_approval_request(
                text, "timed out: nothing was applied", marker))
            raise ApprovalTimedOut(
                f"{ws.name}: nobody approved plan {fingerprint} within "
                f"{rule.timeout_seconds}s ({current.progress()}); nothing was applied") from exc
        if _digest(_form_text(key, durable)) != expected:
            _tampered(ws, venue, posted, text, marker, "the approval text shown in Prefect")
        current = tally_approvals(settings, venue, request, rule)
        record, refusal = judge_form(answer, rule, request, author_name=commit.author_name,
                                     author_email=commit.author_email,
                                     at=datetime.now(timezone.utc))
        if record is not None:
            declared.append(record)
        for extra in declared:
            current = current.with_answer(extra, None)
        for refused in current.refused + ((refusal,) if refusal else ()):
            if refused.describe() not in seen:
                seen.add(refused.describe())
                logger.warning("%s: an answer that does not count: %s", ws.name,
                               refused.describe())
                emit("gitops.approval.refused", ws.name, {
                    "fingerprint": fingerprint, "login": refused.login,
                    "channel": refused.channel.value, "why": refused.why,
                    "source": refused.source})
        _note_for_operator(f"{ANSWER_KEY_PREFIX}{plan_key}-{round_}", {
            "verdict": current.verdict, "progress": current.progress(),
            "approvals": [a.login for a in current.approvals],
            "refused": [r.describe() for r in current.refused + ((refusal,) if refusal else ())]})
        if current.verdict != "waiting":
            break
        posted = update_announcement(settings, venue, posted, render_approval_request(
            text, f"waiting: {current.progress()}", marker))

    records = current.records
    if current.verdict == "approved" and not announcement_unchanged(settings, venue, posted):
        _tampered(ws, venue, posted, text, marker, f"the approval request on {venue.describe()}")
    for answered in records:
        event = {"approved": "granted", "rejected": "rejected",
                 "overridden": "overridden"}[answered.decision]
        emit(f"gitops.approval.{event}", ws.name, answered.as_event())
    applying = "applying this plan" if current.verdict == "approved" else "nothing is applied"
    update_announcement(settings, venue, posted, render_approval_request(
        text, f"{current.progress()}; {applying}", marker))
    logger.info("%s: %s", ws.name, current.progress()) if current.verdict == "approved" else \
        logger.warning("%s: %s", ws.name, current.progress())
    return ApprovalOutcome(current.verdict, fingerprint, tuple(records), current.refused,
                           current.progress())


def _keyset(key: str, durable: bool) -> Any:
    """The run input keys of the wait ``key`` (Prefect names them after the state: a suspended
    run's ``suspended-<key>``, a paused one's ``paused-<key>``)."""
    from prefect.input import keyset_from_base_key

    return keyset_from_base_key(f"{'suspended' if durable else 'paused'}-{key}")


def _form_text(key: str, durable: bool) -> str | None:
    """The description stored with the wait ``key`` (what the Prefect UI showed)."""
    from prefect.input.actions import read_flow_run_input

    text = read_flow_run_input(_keyset(key, durable)["description"])
    return text if isinstance(text, str) else None


def _answer_of(key: str, durable: bool) -> ApprovalInput:
    """The answer a finished round of this run took (read back after a resume)."""
    return ApprovalInput.load(_keyset(key, durable))


def _digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()


def waits_durably(settings: GitopsSettings) -> bool:
    """Whether this run suspends for approval: a top-level run of a deployment (Prefect can
    suspend nothing else), unless ``GITOPS_APPROVAL_WAIT=pause``."""
    run = get_run_context().flow_run
    return (settings.approval_wait == "auto" and run.deployment_id is not None
            and run.parent_task_run_id is None)


def resumed_checkpoint(settings: GitopsSettings, environment: str) -> Checkpoint | None:
    """The newest checkpoint this run wrote for ``environment`` before it was suspended (None on
    a first execution, and for any run that cannot suspend)."""
    from prefect.input.actions import filter_flow_run_input

    if not waits_durably(settings):
        return None
    found = [Checkpoint.from_json(f.decoded_value) for f in filter_flow_run_input(
        CHECKPOINT_KEY_PREFIX, limit=200, flow_run_id=get_run_context().flow_run.id)]
    checkpoint = newest([c for c in found if c.environment == environment])
    if checkpoint is not None:
        get_run_logger().info(
            "%s: resumed after approval round %d of plan %s (commit %s); going on with that plan",
            environment, checkpoint.round, checkpoint.fingerprint.short, checkpoint.commit[:12])
    return checkpoint


def _checkpoint(ws: EnvWorkspace, staged: StagedPlan, attempt: int, round_: int,
                deadline: datetime, description_sha256: str,
                stored: StoredPlan) -> tuple[str, dict[str, Any]]:
    fp = staged.fingerprint
    point = Checkpoint(ws.name, ws.commit, attempt, round_, fp.plan_sha256, fp.state.lineage,
                       fp.state.serial, deadline.isoformat(), description_sha256,
                       stored.bucket, stored.key)
    return point.key, point.to_json()


def _suspend(settings: GitopsSettings, run_id: str, form: Any, timeout: int, key: str) -> Any:
    """``suspend_flow_run``: the answer of a wait that already fired (a resumed run), or the end
    of this process (Prefect's Pause signal) after its files are removed: a resumed run reads its
    plan back from the state bucket, on whichever worker takes it."""
    from prefect.exceptions import Pause
    from prefect.flow_runs import suspend_flow_run

    try:
        return suspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
    except Pause:
        get_run_logger().info("suspended: no process waits; an answer resumes the run on any "
                              "worker of its pool")
        discard_run_files_of(settings, run_id)
        raise


def _tampered(ws: EnvWorkspace, venue: Venue, posted: Announcement, text: ApprovalText,
              marker: str, what: str) -> NoReturn:
    message = (f"{ws.name}: {what} was replaced after the run wrote it; an approval given on it "
               "cannot be trusted. Nothing was applied; deploy again to ask anew")
    get_run_logger().error("%s", message)
    emit("gitops.approval.tampered", ws.name, {"fingerprint": text.fingerprint, "what": what})
    update_announcement(ws.settings, venue, posted, render_approval_request(
        text, "refused: the approval text was replaced; nothing was applied", marker))
    raise ApprovalTampered(message)


def _note_for_operator(key: str, value: dict[str, Any]) -> None:
    """A flow run input the run writes for `gitops-flows approve` (see gitops.approval)."""
    from prefect.input.actions import create_flow_run_input, read_flow_run_input

    if read_flow_run_input(key) is None:  # written once: a resumed run finds it there
        create_flow_run_input(key, scrub_obj(value))
