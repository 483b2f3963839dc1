"""Every failure gitops-flows raises, in one tree.

Expected outcomes (no changes, lock held during a read-only plan, drift found, approval rejected)
are *values*, not exceptions. These classes are for operations that failed.

    GitopsError
    ├── ConfigError                  bad environment name, missing/invalid environment files
    │   ├── UnknownEnvironment       a name that is not a configured environment
    │   ├── GrantRefused             the platform grant does not give an environment what it asks
    │   ├── BackendCollision         two environments resolve to the same state
    │   ├── UnsafeCheckout           a path or symlink that leaves the checkout, a foreign backend
    │   └── ForeignRepository        a delivery for a repository that is not the configured one
    ├── TerraformError               terraform exited with an error (carries command, rc, stderr)
    │   ├── TerraformInitFailed
    │   ├── TerraformValidateFailed  fmt check or `terraform validate` failed
    │   ├── TerraformPlanFailed
    │   ├── TerraformApplyFailed
    │   ├── TerraformTimeout         the command ran past its timeout and was stopped
    │   ├── StateLocked              the state lock is held by someone else (carries the LockInfo)
    │   └── LockMismatch             an unlock named another ID than the held lock's (nothing freed)
    ├── PlanError
    │   ├── PlanParseError           `show -json` output we cannot read
    │   └── StalePlan                state or commit moved since the plan was made/approved
    ├── PolicyViolation              a check report blocks the plan (carries the CheckReports)
    ├── PolicyError                  the Rego policies cannot be loaded or tested (file:line)
    ├── ApprovalError
    │   ├── ApprovalRejected         an approver said no
    │   ├── ApprovalTimedOut         nobody answered in time
    │   └── ApprovalTampered         what the approvers read was replaced (nothing applied)
    ├── ApplyFailed                  terraform apply failed (the deploy rolls back; carries the cause)
    ├── DeployStopped                a deploy that ended without deploying (carries its report)
    ├── GitError                     clone/checkout/diff failed
    ├── UnreviewedCommit             a commit outside the default branch's history, for an
    │                                environment that takes only reviewed (merged) ones
    ├── DnsError                     Route53 call failed or never reached INSYNC
    ├── ArgoCDError                  Argo CD API call failed (carries status code and body)
    │   ├── ArgoCDUnavailable        transient: connection error, timeout, 5xx (safe to retry)
    │   └── ArgoCDSyncFailed         the sync ended Failed/Error, Degraded, or timed out
    ├── GitHubError                  GitHub API call failed (carries status code)
    │   └── GitHubUnavailable        transient: connection error, timeout, 5xx (safe to retry)
    ├── WebhookError                 a delivery we refuse (carries the HTTP status to answer)
    ├── SandboxError                 the local sandbox could not start/stop
    │   └── SandboxObjectNotFound    a sandbox cloud object that does not exist (carries kind, id)
    ├── DeployRunning                an unlock asked while a deploy of the environment runs
    └── RollbackFailed               the rollback itself failed (says what is left in which state)

Messages never contain secret values: callers pass already-redacted text.
"""

from __future__ import annotations

from typing import Any

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from gitops.models import LockInfo


class GitopsError(Exception):
    """Base class of every gitops-flows failure."""


class ConfigError(GitopsError):
    """The environment configuration is missing or invalid."""


class UnknownEnvironment(ConfigError):
    """A name that is not one of the configured environments."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"unknown environment {name!r}; configured environments: {', '.join(known) or '(none)'}"
        )


class GrantRefused(ConfigError):
    """The platform grant does not give an environment what its configuration asks for."""


class BackendCollision(ConfigError):
    """Two environments resolve to the same state (bucket + key)."""


class UnsafeCheckout(ConfigError):
    """A checkout holds what the pipeline refuses to run: a path or symlink leaving it, a backend
    or provider setting the platform does not allow."""


class ForeignRepository(ConfigError):
    """A delivery names a repository that is not the one this pipeline is configured for."""

    def __init__(self, repository: str, configured: str) -> None:
        self.repository = repository
        self.configured = configured
        super().__init__(
            f"refused: this pipeline delivers {configured!r} (GITOPS_REPOSITORY), not "
            f"{repository!r}; nothing was checked out")


class TerraformError(GitopsError):
    """terraform exited with an error."""

    def __init__(self, message: str, *, command: str = "", returncode: int | None = None,
                 stderr: str = "") -> None:
        self.command = command
        self.returncode = returncode
        self.stderr = stderr
        detail = f"\n{stderr.strip()}" if stderr.strip() else ""
        super().__init__(f"{message}{detail}")


class TerraformInitFailed(TerraformError):
    """`terraform init` failed."""


class TerraformValidateFailed(TerraformError):
    """`terraform fmt -check` or `terraform validate` failed."""


class TerraformPlanFailed(TerraformError):
    """`terraform plan` or `terraform show -json` failed."""


class TerraformApplyFailed(TerraformError):
    """`terraform apply` of a saved plan failed."""


class TerraformTimeout(TerraformError):
    """A terraform command ran past its timeout and was stopped."""


class StateLocked(TerraformError):
    """The state lock is held by someone else; never broken automatically."""

    def __init__(self, lock: LockInfo, *, command: str = "", stderr: str = "") -> None:
        self.lock = lock
        super().__init__(
            f"state is locked by {lock.who or 'unknown'} (lock ID {lock.id or 'unknown'}, "
            f"operation {lock.operation or 'unknown'}, since {lock.created or 'unknown'}). "
            "If that run is dead, check it, then release the lock with `gitops-flows unlock "
            f"ENV {lock.id or '<ID>'} --as NAME --reason WHY` (or the unlock deployment, or "
            f"`terraform force-unlock {lock.id or '<ID>'}`); gitops-flows never does on its own.",
            command=command, stderr="",
        )
        self.stderr = stderr


class LockMismatch(TerraformError):
    """An unlock named a lock ID that is not the held lock's: nothing was released."""

    def __init__(self, requested: str, held: LockInfo | None, *, command: str = "") -> None:
        self.requested, self.held = requested, held
        holder = (f"the state is locked by {held.who or 'unknown'} (lock ID {held.id}, operation "
                  f"{held.operation or 'unknown'}, since {held.created or 'unknown'})"
                  if held else "another lock is held")
        super().__init__(f"lock ID {requested} is not the held lock: {holder}. Nothing was "
                         "released; check that run before you unlock its ID.", command=command)


class PlanError(GitopsError):
    """A plan cannot be used."""


class PlanParseError(PlanError):
    """`terraform show -json` output that does not match the documented format."""


class StalePlan(PlanError):
    """The state or the commit moved since the plan was made or approved."""


class PolicyViolation(GitopsError):
    """A check report blocks the plan: a mandatory check's finding, or a check that could not be
    evaluated. ``violations`` holds the blocking :class:`gitops.checks.CheckReport` objects."""

    def __init__(self, message: str, violations: list[Any] | None = None) -> None:
        self.violations = list(violations or [])
        super().__init__(message)


class PolicyError(GitopsError):
    """The Rego policies cannot be used as a whole (a directory that does not exist, a level
    header that does not parse). Problems of one policy file are reports, not this."""


class ApprovalError(GitopsError):
    """The approval step ended without an approval."""


class ApprovalRejected(ApprovalError):
    """An approver rejected the plan."""


class ApprovalTimedOut(ApprovalError):
    """Nobody answered the approval in time."""


class ApprovalTampered(ApprovalError):
    """The approval text (the Prefect form's description, the request on the code host) was
    replaced after the run wrote it: an answer given on it proves nothing."""


class ApplyFailed(GitopsError):
    """Apply itself failed: part of the plan may be applied, so the deploy rolls back."""


class DeployStopped(GitopsError):
    """A deploy that ended without deploying: rejected, timed out, locked, blocked by a check,
    rolled back. The payload of its Failed/Cancelled state (Prefect wants an exception there),
    carrying the run's report."""

    def __init__(self, message: str, report: Any) -> None:
        self.report = report
        super().__init__(message)


class GitError(GitopsError):
    """A git command failed."""


class UnreviewedCommit(GitopsError):
    """A commit that is not in the default branch's history (as fetched at run time) was asked
    for an environment that accepts only reviewed commits."""

    def __init__(self, environment: str, sha: str, branch: str, head: str) -> None:
        self.environment = environment
        self.sha = sha
        self.branch = branch
        self.head = head
        super().__init__(
            f"{environment}: commit {sha[:12]} is not in the history of {branch} (now at "
            f"{head[:12]}): only reviewed commits, merged to {branch}, may reach it; nothing "
            f"was planned or applied (a scratch environment may set allow_unmerged = true in "
            f"its environment.toml on {branch})")


class DnsError(GitopsError):
    """A Route53 call failed or the change never reached INSYNC."""


class ArgoCDError(GitopsError):
    """An Argo CD API call failed."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str = "") -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(message)


class ArgoCDUnavailable(ArgoCDError):
    """Argo CD did not answer, or answered 5xx: transient, safe to retry."""


class ArgoCDSyncFailed(ArgoCDError):
    """The sync operation failed, the app went Degraded, or it did not settle in time."""


class GitHubError(GitopsError):
    """A GitHub API call failed."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class GitHubUnavailable(GitHubError):
    """GitHub did not answer, or answered 5xx: transient, safe to retry."""


class WebhookError(GitopsError):
    """A webhook delivery we refuse; `status_code` is what the receiver answers."""

    def __init__(self, message: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)


class SandboxError(GitopsError):
    """The local sandbox could not be started, reached or stopped."""


class SandboxObjectNotFound(SandboxError):
    """A sandbox cloud object to update or tamper with does not exist."""

    def __init__(self, kind: str, obj_id: str) -> None:
        self.kind = kind
        self.obj_id = obj_id
        super().__init__(f"sandbox {kind} {obj_id!r} does not exist")


class DeployRunning(GitopsError):
    """A deploy of the environment holds its slot, so its state lock is in use, not stuck."""


class RollbackFailed(GitopsError):
    """The rollback itself failed; the message says what is left in which state."""
