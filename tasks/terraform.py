"""Terraform stages as Prefect tasks: validate, plan (+ checks), apply of exactly the approved plan.

Retry policy: validate and plan only read, but their failures are not transient (a held lock waits
`-lock-timeout` inside terraform and is then reported as a value), so none of them retries.
`apply` never retries: a failed apply goes to the rollback subflow instead. `unlock` never
retries either: it is a person's decision, made once, about one lock ID.
"""

from __future__ import annotations

from datetime import datetime, timezone

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from gitops.checks import CheckLevel, CheckReport, describe_blocking, unoverridable
from gitops.errors import ConfigError, PolicyViolation, StalePlan, TerraformValidateFailed
from gitops.guard import check_stack_backend
from gitops.models import (
    ApplyResult,
    LockInfo,
    PlanFingerprint,
    PlanStatus,
    RunnerPlan,
    UnlockOutcome,
)
from gitops.plan import Plan, parse_plan, sensitive_strings
from gitops.scrub import register_all
from gitops.policy import tag_check
from gitops.render import render_plan_summary
from gitops.terraform import (
    DEFAULT_PASSTHROUGH,
    TerraformRunner,
    TerraformSettings,
    file_sha256,
    write_cli_config,
)
from gitops.workspace import EnvWorkspace
from tasks.credentials import aws_environment, phase_credentials, secret_variables
from tasks.publish import emit

UNLOCK_EVENT = "gitops.lock.released"


@dataclass(frozen=True)
class StagedPlan:
    """A saved plan, what it changes, the checks' reports, and the fingerprint approval binds to."""

    environment: str
    commit: str
    status: PlanStatus
    plan_file: str
    fingerprint: PlanFingerprint | None
    plan: Plan | None
    checks: tuple[CheckReport, ...]
    summary: str
    lock: LockInfo | None = None
    proposed_checks: tuple[CheckReport, ...] | None = None
    """The same checks with a pull request's own policies instead of the trusted ones (display
    only); None when there were none to evaluate (``ws.proposed_policies``)."""

    @property
    def has_changes(self) -> bool:
        return self.status is PlanStatus.CHANGES


LOCAL_BACKEND_OVERRIDE = "zz_gitops_proposed_backend_override.tf"
"""Written into a proposed new environment's own checkout: its plan runs against an empty local
state, so it needs no access to any state bucket."""


def terraform_env(ws: EnvWorkspace, *, apply: bool = False) -> dict[str, str]:
    """Environment for terraform: the phase's credentials and secrets, extra settings."""
    env = dict(ws.settings.extra_terraform_env)
    env.update(aws_environment(phase_credentials(ws, apply=apply)))
    secrets_env, _withheld = secret_variables(ws)
    env.update(secrets_env)
    return env


def cli_config(ws: EnvWorkspace) -> str:
    """The CLI config of this workspace's runs: providers only from the platform's sources."""
    s = ws.settings
    return str(write_cli_config(ws.env_dir / "terraform.rc",
                                mirror=Path(s.provider_mirror) if s.provider_mirror else None,
                                include=s.provider_mirror_include, direct=s.provider_direct))


def make_runner(ws: EnvWorkspace, *, apply: bool = False) -> TerraformRunner:
    """A runner for the workspace's stack, its var file and its own data dir."""
    settings = TerraformSettings(
        binary=ws.settings.terraform_binary,
        timeout_seconds=ws.settings.terraform_timeout_seconds,
        lock_timeout_seconds=ws.environment.lock_timeout_seconds,
        env=terraform_env(ws, apply=apply),
        cli_config=cli_config(ws),
        passthrough=(*DEFAULT_PASSTHROUGH, *ws.settings.terraform_env_passthrough),
    )
    return TerraformRunner(ws.stack_dir, settings=settings, data_dir=ws.data_dir,
                           var_files=[ws.var_file])


def backend_config(ws: EnvWorkspace) -> dict[str, str]:
    """The ``-backend-config`` pairs of the workspace: the trusted backend, checked against the
    grant, then the platform's overrides (the sandbox's endpoint)."""
    if ws.proposed_new:
        return {"path": str(ws.env_dir / "proposed.tfstate")}
    backend = ws.environment.backend
    if backend is None:
        raise ConfigError(f"{ws.name}: no backend configuration")
    ws.grant.check_backend(backend.bucket, backend.key, backend.dynamodb_table)
    return {**backend.as_backend_config(), **ws.settings.backend_overrides}


def init_runner(ws: EnvWorkspace, *, apply: bool = False) -> TerraformRunner:
    """A runner whose backend is initialised for the workspace's environment.

    The stack's own backend block is checked first (gitops.guard). `terraform init` runs once
    per workspace (one checkout, one data dir): the validate, plan and apply stages share it.
    """
    marker = ws.data_dir / ".gitops-initialised"
    if not marker.exists():
        check_stack_backend(ws.stack_dir, ws.environment.stack)
        pairs = backend_config(ws)
        if ws.proposed_new:
            (ws.stack_dir / LOCAL_BACKEND_OVERRIDE).write_text(
                'terraform {\n  backend "local" {}\n}\n')
        runner = make_runner(ws, apply=apply)
        runner.init(backend_overrides=pairs)
        marker.touch()
        return runner
    return make_runner(ws, apply=apply)


@task(name="validate", cache_policy=NO_CACHE)
def validate_stack(ws: EnvWorkspace) -> None:
    """`terraform fmt -check`, `init`, `terraform validate` of the environment's stack."""
    logger = get_run_logger()
    runner = init_runner(ws)
    unformatted = runner.fmt_check()
    if unformatted:
        raise TerraformValidateFailed(
            "terraform fmt -check failed; run `terraform fmt -recursive` on: "
            + ", ".join(unformatted))
    runner.validate()
    logger.info("%s: %s is formatted and valid", ws.name, ws.environment.stack)


def stage_plan(ws: EnvWorkspace, *, refresh_only: bool = False, label: str = "plan") -> StagedPlan:
    """Plan to a saved file and read it back (plain function: the pr-plan and drift flows reuse it)."""
    runner = init_runner(ws)
    result = runner.plan(ws.plan_file(label), refresh_only=refresh_only)
    if result.status is PlanStatus.LOCKED:
        return StagedPlan(ws.name, ws.commit, result.status, "", None, None, (),
                          "state is locked", lock=result.lock)
    return staged_from(ws, result)


def staged_from(ws: EnvWorkspace, result: RunnerPlan) -> StagedPlan:
    """A saved plan as the stages see it: parsed, checked, fingerprinted, summarised."""
    register_all(sensitive_strings(result.plan_json))  # state-held secrets: masked from now on
    plan = parse_plan(result.plan_json)
    tags = tag_check(plan)
    trusted, proposed = policy_checks(ws, result.plan_json)
    checks = (tags, *trusted)
    fingerprint = PlanFingerprint(plan_sha256=result.plan_sha256, state=result.state,
                                  commit=ws.commit)
    summary = render_plan_summary(plan, checks, fingerprint.short)
    return StagedPlan(ws.name, ws.commit, result.status, result.plan_file, fingerprint, plan,
                      checks, summary,
                      proposed_checks=None if proposed is None else (tags, *proposed))


def policy_checks(ws: EnvWorkspace, plan_json: dict
                  ) -> tuple[tuple[CheckReport, ...], tuple[CheckReport, ...] | None]:
    """The Rego policies of the *trusted* checkout (``ws.policies``) on this plan (none when the
    workspace has no policies directory), and those of ``ws.proposed_policies`` when set (else
    None), each in a child process (gitops.rego) with the policy timeout; both at once, so the
    proposed ones add no time. The proposed ones never raise: a failure is an error report."""
    input_json = json.dumps(plan_json)
    if ws.proposed_policies is None:
        return _rego_reports(ws, ws.policies, input_json), None
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"policies-{ws.name}") as pool:
        proposed = pool.submit(_rego_reports, ws, ws.proposed_policies, input_json)
        trusted = _rego_reports(ws, ws.policies, input_json)
        try:
            return trusted, proposed.result()
        except Exception as exc:  # noqa: BLE001 - shown on the PR, never the run's failure
            return trusted, (CheckReport(
                "policies (this pull request's)", CheckLevel.HARD_MANDATORY,
                error=f"{type(exc).__name__}: {exc}", replaces_set=True),)


def _rego_reports(ws: EnvWorkspace, policies: Path | None,
                  input_json: str) -> tuple[CheckReport, ...]:
    if policies is None:
        return ()
    from gitops.rego import check_plan

    return check_plan(policies, input_json, environment=ws.name, root=policies.parent,
                      timeout_seconds=ws.settings.policy_timeout_seconds)


@task(name="plan", cache_policy=NO_CACHE)
def plan_stack(ws: EnvWorkspace) -> StagedPlan:
    """`terraform plan -out` + `show -json`, parsed, checks run (tag policy, Rego policies)."""
    logger = get_run_logger()
    staged = stage_plan(ws)
    if staged.plan is not None:
        logger.info("%s: plan %s", ws.name, staged.plan.counts.summary()
                    if staged.plan.has_changes else "has no changes")
    else:
        logger.warning("%s: %s", ws.name, staged.summary)
    return staged


@task(name="checks", cache_policy=NO_CACHE)
def enforce_checks(staged: StagedPlan) -> None:
    """Fail the run before anything is applied if a check report blocks and nobody may override
    it (a hard-mandatory finding, a check that could not be evaluated). Advisory findings are
    logged; soft-mandatory ones too, and the approval stage asks a policy owner to override."""
    logger = get_run_logger()
    for report in staged.checks:
        if report.findings and not report.blocks:
            logger.warning("%s: %s (advisory): %s", staged.environment, report.name,
                           report.summary())
        elif report.overridable:
            logger.warning("%s: %s (soft-mandatory): %s; a policy owner's override is needed",
                           staged.environment, report.name, report.summary())
    stopped = unoverridable(staged.checks)
    if not stopped:
        return
    raise PolicyViolation(
        f"{staged.environment}: {len(stopped)} check(s) block this plan:\n"
        + describe_blocking(stopped), list(stopped))


def verify_fingerprint(ws: EnvWorkspace, staged: StagedPlan) -> None:
    """Refuse to apply unless the plan file and commit are those approved.

    The third part, the state snapshot, is checked by `TerraformRunner.apply` itself against the
    state recorded in this (hash-checked) plan file.
    """
    fp = staged.fingerprint
    if fp is None:
        raise StalePlan(f"{ws.name}: nothing was planned")
    if fp.commit != ws.commit:
        raise StalePlan(f"{ws.name}: plan was made for {fp.commit[:12]}, deploying {ws.commit[:12]}")
    if file_sha256(Path(staged.plan_file)) != fp.plan_sha256:
        raise StalePlan(f"{ws.name}: the plan file changed since it was approved")


@task(name="apply", retries=0, cache_policy=NO_CACHE)
def apply_staged_plan(ws: EnvWorkspace, staged: StagedPlan) -> ApplyResult:
    """Apply exactly the saved, approved plan file. Never retried."""
    logger = get_run_logger()
    runner = init_runner(ws, apply=True)
    verify_fingerprint(ws, staged)
    result = runner.apply(Path(staged.plan_file))
    logger.info("%s: applied %s; state serial %s", ws.name, staged.fingerprint.short,
                result.state.serial)
    return result


@task(name="unlock", retries=0, cache_policy=NO_CACHE)
def release_state_lock(ws: EnvWorkspace, lock_id: str, by: str, reason: str) -> UnlockOutcome:
    """`terraform force-unlock` of exactly ``lock_id``, on a person's say-so, recorded as an event.

    Terraform refuses any other ID than the held lock's (LockMismatch names the holder).
    """
    logger = get_run_logger()
    outcome = init_runner(ws).force_unlock(lock_id)
    if outcome is UnlockOutcome.NOT_LOCKED:
        logger.info("%s: the state is not locked; nothing to release", ws.name)
        return outcome
    logger.warning("%s: state lock %s released by %s (declared: a run parameter, which nothing "
                   "authenticates): %s", ws.name, lock_id, by, reason)
    # Recorded like an approval: who, when, through which channel, verified or declared.
    emit(UNLOCK_EVENT, ws.name, {"lock_id": lock_id, "by": by, "reason": reason,
                                 "channel": "prefect-run-parameter", "verified": False,
                                 "at": datetime.now(timezone.utc).isoformat()})
    return outcome


@task(name="outputs", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def read_outputs(ws: EnvWorkspace) -> dict:
    """The stack's outputs (reading state is safe to retry)."""
    return init_runner(ws).outputs()
