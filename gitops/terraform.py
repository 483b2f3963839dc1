"""The Terraform runner: the one module that imports python_terraform.

python_terraform builds the command lines (its ``generate_cmd_string``); this module owns
everything else: execution, environment, timeouts, exit codes and what they mean.

* **Environment**: allow-listed, never inherited. terraform and the providers it starts run code
  the commit chose, so they get only ``TerraformSettings.passthrough`` from the worker's
  environment (``PATH``, locale, CA bundle, proxy: no Prefect API URL or key, no tokens), then
  ``TerraformSettings.env`` (the phase's credentials, ``TF_VAR_*`` secrets: secrets travel in the
  environment, never in argv; any other ``TF_*`` there is dropped, ``TF_CLI_ARGS`` could smuggle
  ``-lock=false`` in), then the forced ``TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0``,
  ``TF_DATA_DIR=<per env>``, ``HOME`` beside the data dir, and
  ``TF_CLI_CONFIG_FILE``. ``os.environ`` is never mutated.
* **Providers**: always installed as the CLI config says that the pipeline hands over
  (``TerraformSettings.cli_config``, see :func:`write_cli_config`); without one, a config whose
  only source is an empty mirror, so nothing can be installed. A CLI config with an explicit
  ``provider_installation`` makes terraform ignore ``terraform.d/plugins`` and every other implied
  plugin folder a repository could ship.
* **Files**: terraform runs with umask 077, so plan files and data dirs are the owner's only.
* **Timeouts**: on expiry terraform is *interrupted* (it stops gracefully, persists state and
  releases its lock), given ``interrupt_grace_seconds``, then its process group is killed.
  The interrupt is SIGTERM sent to terraform's own process: terraform 1.0.x runs under panicwrap,
  whose parent ignores a SIGINT sent to it and forwards only SIGTERM; terraform and OpenTofu treat
  SIGTERM exactly like Ctrl-C. A SIGINT to the whole process group (what Ctrl-C does) would also
  hit the provider plugins, and Python providers exit on KeyboardInterrupt mid-call.
* **Exit codes**: ``plan -detailed-exitcode`` 2 means "changes"; a held state lock during plan is
  a value (``PlanStatus.LOCKED``); everything else non-zero is an exception from gitops.errors.
* **python-terraform pitfalls** (see FIELD-NOTES): ``var=None`` everywhere (no temporary
  ``-var-file`` and no "Can't set variables when applying a saved plan"), backend config values
  formatted as strings here, no ``synchronous=False``, no ``output(name)``.

Only features of Terraform 1.0.3 are used, so terraform >= 1.0 and OpenTofu both work.
A runner is not thread-safe; use one per environment (each with its own ``data_dir``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from python_terraform import IsFlagged, Terraform

from gitops.errors import (
    LockMismatch,
    StalePlan,
    StateLocked,
    TerraformApplyFailed,
    TerraformError,
    TerraformInitFailed,
    TerraformPlanFailed,
    TerraformTimeout,
    TerraformValidateFailed,
)
from gitops.models import (
    ApplyResult,
    LockInfo,
    PlanStatus,
    RunnerPlan,
    StateIdentity,
    UnlockOutcome,
)
from gitops.redact import MASK, is_secret_name
from gitops.scrub import scrub

__all__ = [
    "DEFAULT_PASSTHROUGH",
    "SENSITIVE_MASK",
    "Output",
    "TerraformRunner",
    "TerraformSettings",
    "parse_lock_info",
    "read_plan_state",
    "render_diagnostics",
    "saved_plan",
    "write_cli_config",
]

SENSITIVE_MASK = "(sensitive)"
"""What a sensitive output's value is replaced with in an ApplyResult."""

_LOCK_ERROR = "Error acquiring the state lock"
_STALE_PLAN = ("Saved plan is stale", "Saved plan does not match the given state")
_LOCK_FIELD = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):[ \t]*(.*?)\s*$")
_LOCK_MISMATCH = "does not match existing lock"
# The S3 backend's answer when no lock item exists (it unmarshals an empty lock info).
_NOT_LOCKED = "failed to retrieve lock info: unexpected end of JSON input"
_LOCK_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._:-]{0,127}$")
_FORCED_ENV = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0"}
DEFAULT_PASSTHROUGH = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)
"""What terraform may see of the worker's own environment (names only; values are not secret)."""
_UMASK = 0o077


@dataclass(frozen=True)
class TerraformSettings:
    """How terraform is run: which binary, how long it may take, extra environment."""

    binary: str = "terraform"
    timeout_seconds: float = 1800.0
    lock_timeout_seconds: int = 60
    env: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)  # secrets: no repr
    interrupt_grace_seconds: float = 60.0
    cli_config: str | None = None
    """The CLI config terraform reads (provider installation); None: nothing can be installed."""
    passthrough: tuple[str, ...] = DEFAULT_PASSTHROUGH

    def __post_init__(self) -> None:
        # A private copy (a plain dict, so settings stay picklable): later changes to the caller's
        # mapping do not leak in. Treat it as read-only. TF_* other than TF_VAR_* is the runner's.
        object.__setattr__(self, "env", {
            str(k): str(v) for k, v in self.env.items()
            if not str(k).startswith("TF_") or str(k).startswith("TF_VAR_")})


@dataclass(frozen=True)
class Output:
    """One stack output as ``terraform output -json`` reports it."""

    value: Any
    sensitive: bool = False
    type: Any = None

    def masked(self) -> Output:
        """This output with its value replaced by SENSITIVE_MASK if it is sensitive."""
        return Output(SENSITIVE_MASK, True, self.type) if self.sensitive else self

    def __repr__(self) -> str:
        shown = SENSITIVE_MASK if self.sensitive else repr(self.value)
        return f"Output(value={shown}, sensitive={self.sensitive}, type={self.type!r})"


@dataclass(frozen=True)
class _Completed:
    """One finished terraform command: its redacted command line, exit code and output."""

    command: str
    returncode: int
    stdout: str
    stderr: str


class _Cli(Terraform):
    """python_terraform's command-line builder, with execution replaced by ours."""

    def __init__(self, working_dir: Path, settings: TerraformSettings, data_dir: Path) -> None:
        super().__init__(working_dir=str(working_dir), terraform_bin_path=settings.binary,
                         is_env_vars_included=False)
        self._settings = settings
        self._data_dir = data_dir

    def environment(self) -> dict[str, str]:
        """The complete environment terraform runs with (see the module docstring)."""
        env = {k: os.environ[k] for k in self._settings.passthrough if k in os.environ}
        env.update(self._settings.env)
        env.update(_FORCED_ENV)
        env["TF_DATA_DIR"] = str(self._data_dir)
        home = self._data_dir.parent / "home"
        env["HOME"] = str(home)  # not TMPDIR: providers put unix sockets there (108-byte paths)
        env["TF_CLI_CONFIG_FILE"] = self._settings.cli_config or str(
            write_cli_config(home / "no-providers.tfrc", mirror=home / "no-providers"))
        return env

    def cmd(self, cmd: str, *args: Any, **kwargs: Any) -> _Completed:  # type: ignore[override]
        """Build the command line with python_terraform, run it ourselves, return the result."""
        for unsupported in ("synchronous", "capture_output", "raise_on_error"):
            if unsupported in kwargs:
                raise TypeError(f"{unsupported!r} is not supported by the gitops runner")
        try:
            argv = [str(a) for a in self.generate_cmd_string(cmd, *args, **kwargs)]
            return _run(argv, cwd=self.working_dir, env=self.environment(),
                        timeout=self._settings.timeout_seconds,
                        grace=self._settings.interrupt_grace_seconds)
        finally:
            self.temp_var_files.clean_up()


def _display(argv: Sequence[str]) -> str:
    """The command line as text, with the values of secret-named ``-backend-config`` masked."""
    shown = []
    for arg in argv:
        if arg.startswith("-backend-config=") and "=" in arg[len("-backend-config="):]:
            key, _, _value = arg[len("-backend-config="):].partition("=")
            if is_secret_name(key.strip()):
                arg = f"-backend-config={key}={MASK}"
        shown.append(arg)
    return shlex.join(shown)


def _run(argv: list[str], *, cwd: str, env: Mapping[str, str], timeout: float,
         grace: float) -> _Completed:
    """Run one terraform command; on timeout interrupt it, then kill it, and raise TerraformTimeout."""
    command = _display(argv)
    for key in ("TF_DATA_DIR", "HOME"):
        if key in env:
            _private_dir(Path(env[key]))
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, umask=_UMASK)
    except OSError as ex:
        raise TerraformError(f"cannot run {argv[0]!r}: {ex}", command=command) from ex
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err, killed = _stop(proc, grace)
        how = (f"killed after a {grace:g}s grace period (it may still hold the state lock)"
               if killed else f"interrupted; it stopped gracefully with exit code {proc.returncode}")
        raise TerraformTimeout(
            f"{command} ran past its {timeout:g}s timeout and was {how}",
            command=command, returncode=proc.returncode,
            stderr=scrub(_text(err).strip() or _text(out)[-4000:]),  # "Interrupt received": stdout
        ) from None
    except BaseException:
        # Our own caller is going away (KeyboardInterrupt, cancellation): stop terraform cleanly.
        _stop(proc, grace)
        raise
    # stderr is what errors (and so exceptions, state messages, logs) carry: secrets the run
    # injected are masked at the source. stdout is data (plan JSON) and is scrubbed where shown.
    return _Completed(command, proc.returncode, _text(out), scrub(_text(err)))


def _stop(proc: subprocess.Popen[bytes], grace: float) -> tuple[bytes, bytes, bool]:
    """Interrupt terraform, wait up to ``grace`` seconds, then kill its process group."""
    killed = False
    _signal(proc, signal.SIGTERM, group=False)
    try:
        out, err = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        killed = True
        _signal(proc, signal.SIGKILL, group=True)
        out, err = proc.communicate()
    _signal(proc, signal.SIGKILL, group=True)  # leftover provider plugins, if any
    return out or b"", err or b"", killed


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(proc.pid, sig)
        elif proc.poll() is None:
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by its owner only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def write_cli_config(path: Path, *, mirror: Path | None, include: Sequence[str] = (),
                     direct: Sequence[str] = ()) -> Path:
    """Write the terraform CLI config that decides where providers come from; return ``path``.

    ``mirror`` is a filesystem mirror (``include``: the provider addresses it serves, default all);
    ``direct`` lists the provider address patterns that may still be installed from their registry
    (default none). Nothing else can be installed, and no ``dev_overrides`` exist.
    """
    lines = ["# Written by gitops-flows for one run: where providers may come from.",
             "provider_installation {"]
    if mirror is not None:
        lines += ["  filesystem_mirror {", f"    path    = {json.dumps(str(Path(mirror)))}"]
        if include:
            lines.append(f"    include = {json.dumps(list(include))}")
        lines.append("  }")
    if direct:
        lines += ["  direct {", f"    include = {json.dumps(list(direct))}", "  }"]
    lines.append("}")
    path = Path(path)
    _private_dir(path.parent)
    if mirror is not None and not Path(mirror).exists():
        _private_dir(Path(mirror))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:  # mkstemp: mode 0600, a name of its own per writer
        handle.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


# --- pure helpers --------------------------------------------------------------------------------

def parse_lock_info(stderr: str) -> LockInfo | None:
    """The lock holder from terraform's "Error acquiring the state lock" (or a refused unlock's)
    text, or None if absent."""
    if "Lock Info:" not in stderr or (_LOCK_ERROR not in stderr and _LOCK_MISMATCH not in stderr):
        return None
    block = stderr.split("Lock Info:", 1)[1].splitlines()
    values: dict[str, str] = {}
    for line in block:
        match = _LOCK_FIELD.match(line)
        if match:
            values.setdefault(match.group(1).lower(), match.group(2))
        elif line.strip() and values:
            break
    if not values.get("id"):
        return None
    return LockInfo(**values)


def read_plan_state(plan_file: Path) -> StateIdentity:
    """The state snapshot a saved plan was made against (its ``tfstate`` member).

    A plan made against a state that did not exist yet gives ``StateIdentity()``.
    """
    try:
        with zipfile.ZipFile(plan_file) as archive:
            raw = archive.read("tfstate")
    except (OSError, KeyError, zipfile.BadZipFile) as ex:
        raise TerraformPlanFailed(f"{plan_file} is not a readable terraform plan file: {ex}") from ex
    return _state_identity(raw.decode("utf-8", errors="replace"))


def _state_identity(text: str) -> StateIdentity:
    if not text.strip():
        return StateIdentity()
    try:
        state = json.loads(text)
    except json.JSONDecodeError as ex:
        raise TerraformError(f"state snapshot is not JSON: {ex}") from ex
    lineage = str(state.get("lineage") or "")
    if not lineage:
        return StateIdentity()
    return StateIdentity(lineage=lineage, serial=int(state.get("serial", 0)))


def render_diagnostics(diagnostics: Sequence[Mapping[str, Any]]) -> str:
    """``terraform validate -json`` diagnostics as readable lines (file:line: Severity: summary)."""
    lines = []
    for diag in diagnostics:
        where = ""
        rng = diag.get("range") or {}
        if rng.get("filename"):
            where = f"{rng['filename']}:{(rng.get('start') or {}).get('line', '?')}: "
        severity = str(diag.get("severity", "error")).capitalize()
        text = f"{where}{severity}: {diag.get('summary', '')}"
        if diag.get("detail"):
            text += f": {diag['detail']}"
        lines.append(text)
    return "\n".join(lines)


def _outputs(raw: Mapping[str, Any]) -> dict[str, Output]:
    return {name: Output(value=o.get("value"), sensitive=bool(o.get("sensitive", False)),
                         type=o.get("type"))
            for name, o in raw.items()}


def saved_plan(plan_file: Path, status: PlanStatus, plan_json: dict, *,
               stderr: str = "") -> RunnerPlan:
    """A saved plan file with the ``show -json`` terraform gave for it: its state (read from
    the file) and its sha256 (of the file), whoever holds the JSON."""
    plan_file = Path(plan_file).resolve()
    return RunnerPlan(status=status, plan_file=str(plan_file), plan_json=plan_json,
                      state=read_plan_state(plan_file), plan_sha256=file_sha256(plan_file),
                      stderr=stderr)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (a saved plan's identity in its fingerprint)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- the runner ----------------------------------------------------------------------------------

class TerraformRunner:
    """Runs terraform for one environment: one working dir, one data dir, its tfvars files."""

    def __init__(self, working_dir: Path, *, settings: TerraformSettings, data_dir: Path,
                 var_files: Sequence[Path] = ()) -> None:
        self.working_dir = Path(working_dir).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.settings = settings
        self.var_files = tuple(Path(v).resolve() for v in var_files)
        self._cli = _Cli(self.working_dir, settings, self.data_dir)

    @property
    def _lock_timeout(self) -> str:
        return f"{int(self.settings.lock_timeout_seconds)}s"

    def init(self, backend_config_file: Path | None = None,
             backend_overrides: Mapping[str, str] = MappingProxyType({})) -> None:
        """``terraform init -reconfigure`` with a backend config file, then key=value overrides."""
        backend_config = [str(Path(backend_config_file).resolve())] if backend_config_file else []
        backend_config += [f"{k}={_backend_value(v)}" for k, v in backend_overrides.items()]
        done = self._cli.init(backend_config=backend_config or None, var=None, var_file=None)
        if done.returncode != 0:
            raise TerraformInitFailed("terraform init failed", command=done.command,
                                      returncode=done.returncode, stderr=done.stderr)

    def fmt_check(self) -> tuple[str, ...]:
        """Files (relative to the working dir) that ``terraform fmt`` would change; empty = clean."""
        done = self._cli.cmd("fmt", check=IsFlagged, recursive=IsFlagged, list=True,
                             no_color=IsFlagged)
        files = tuple(line.strip() for line in done.stdout.splitlines() if line.strip())
        if done.returncode == 0 or (done.returncode == 3 and files):
            return files
        raise TerraformValidateFailed("terraform fmt -check failed", command=done.command,
                                      returncode=done.returncode, stderr=done.stderr)

    def validate(self) -> None:
        """``terraform validate``; raises TerraformValidateFailed with the rendered diagnostics."""
        done = self._cli.cmd("validate", json=IsFlagged, no_color=IsFlagged)
        try:
            report = json.loads(done.stdout)
        except json.JSONDecodeError:
            report = None
        if done.returncode == 0 and report is not None and report.get("valid", False):
            return
        rendered = render_diagnostics(report.get("diagnostics", [])) if report else ""
        raise TerraformValidateFailed("terraform validate found errors", command=done.command,
                                      returncode=done.returncode,
                                      stderr=rendered or done.stderr)

    def plan(self, out: Path, *, destroy: bool = False, refresh_only: bool = False) -> RunnerPlan:
        """Save a plan to ``out``; a held state lock is a LOCKED value, failures raise."""
        if destroy and refresh_only:
            raise ValueError("a plan cannot be both destroy and refresh-only")
        out = Path(out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)  # never mistake an old plan file for this run's
        done = self._cli.plan(
            out=str(out), detailed_exitcode=IsFlagged, lock_timeout=self._lock_timeout,
            destroy=IsFlagged if destroy else None,
            refresh_only=IsFlagged if refresh_only else None,
            var=None, var_file=[str(v) for v in self.var_files] or None,
        )
        if done.returncode == 1 and _LOCK_ERROR in done.stderr:
            lock = parse_lock_info(done.stderr)
            if lock is not None:
                return RunnerPlan(status=PlanStatus.LOCKED, lock=lock, stderr=done.stderr)
        if done.returncode not in (0, 2):
            raise TerraformPlanFailed("terraform plan failed", command=done.command,
                                      returncode=done.returncode, stderr=done.stderr)
        return self.read_saved(
            out, PlanStatus.CHANGES if done.returncode == 2 else PlanStatus.NO_CHANGES,
            stderr=done.stderr)

    def read_saved(self, out: Path, status: PlanStatus, *, stderr: str = "") -> RunnerPlan:
        """A saved plan file as terraform reads it (``show -json``), its state and its sha256:
        a fresh plan's, or one read back after it waited elsewhere for approval."""
        out = Path(out).resolve()
        shown = self._cli.cmd("show", str(out), json=IsFlagged, no_color=IsFlagged)
        try:
            plan_json = json.loads(shown.stdout) if shown.returncode == 0 else None
        except json.JSONDecodeError:
            plan_json = None
        if not isinstance(plan_json, dict):
            raise TerraformPlanFailed("terraform show -json of the saved plan failed",
                                      command=shown.command, returncode=shown.returncode,
                                      stderr=shown.stderr or scrub(shown.stdout)[:2000])
        return saved_plan(out, status, plan_json, stderr=stderr)

    def current_state(self) -> StateIdentity:
        """Lineage and serial of the state in the backend now; StateIdentity() if there is none."""
        done = self._cli.cmd("state pull")
        if done.returncode != 0:
            raise TerraformError("terraform state pull failed", command=done.command,
                                 returncode=done.returncode, stderr=done.stderr)
        return _state_identity(done.stdout)

    def apply(self, plan_file: Path) -> ApplyResult:
        """Apply exactly the saved ``plan_file``; never makes a fresh plan.

        Raises StalePlan if the state moved since the plan was made (checked here first, because
        terraform 1.0.3 does not notice when the plan was made before the state existed),
        StateLocked if the lock stays held past the lock timeout, TerraformApplyFailed otherwise.
        """
        plan_file = Path(plan_file).resolve()
        if not plan_file.is_file() or not zipfile.is_zipfile(plan_file):
            # terraform would treat a missing path as a directory and make a fresh plan.
            raise TerraformApplyFailed(f"{plan_file} is not a saved plan file")
        planned, current = read_plan_state(plan_file), self.current_state()
        if planned != current:
            raise StalePlan(f"the state moved since {plan_file.name} was made: planned against "
                            f"{_describe(planned)}, the backend now holds {_describe(current)}")
        done = self._cli.apply(str(plan_file), var=None, var_file=None,
                               lock_timeout=self._lock_timeout)
        if done.returncode != 0:
            raise self._apply_error(done)
        return ApplyResult(state=self.current_state(),
                           outputs={k: o.masked() for k, o in self.outputs().items()})

    def force_unlock(self, lock_id: str) -> UnlockOutcome:
        """``terraform force-unlock -force LOCK_ID``: release the state lock with exactly that ID.

        Terraform itself refuses an ID that is not the held lock's (LockMismatch, naming the
        holder), so a lock taken since the caller looked is never released by mistake. No lock
        held is a value (NOT_LOCKED); other failures raise TerraformError.
        """
        if not _LOCK_ID.fullmatch(lock_id):
            raise TerraformError(f"not a state lock ID: {lock_id!r}")
        done = self._cli.cmd("force-unlock", lock_id, force=IsFlagged, no_color=IsFlagged)
        if done.returncode == 0:
            return UnlockOutcome.RELEASED
        if _LOCK_MISMATCH in done.stderr:
            raise LockMismatch(lock_id, parse_lock_info(done.stderr), command=done.command)
        if _NOT_LOCKED in done.stderr:
            return UnlockOutcome.NOT_LOCKED
        raise TerraformError(f"terraform force-unlock {lock_id} failed", command=done.command,
                             returncode=done.returncode, stderr=done.stderr)

    def outputs(self) -> dict[str, Output]:
        """The stack's outputs from the state (sensitive values included: handle with care)."""
        done = self._cli.cmd("output", json=IsFlagged, no_color=IsFlagged)
        if done.returncode != 0:
            raise TerraformError("terraform output failed", command=done.command,
                                 returncode=done.returncode, stderr=done.stderr)
        try:
            raw = json.loads(done.stdout or "{}")
        except json.JSONDecodeError as ex:
            raise TerraformError(f"terraform output -json is not JSON: {ex}",
                                 command=done.command, returncode=done.returncode) from ex
        return _outputs(raw)

    def _apply_error(self, done: _Completed) -> Exception:
        if _LOCK_ERROR in done.stderr:
            lock = parse_lock_info(done.stderr)
            if lock is not None:
                err = StateLocked(lock, command=done.command, stderr=done.stderr)
                err.returncode = done.returncode
                return err
        if any(marker in done.stderr for marker in _STALE_PLAN):
            err = StalePlan(f"terraform refused the saved plan: {done.stderr.strip()}")
            # StalePlan is a PlanError: give it the same context a TerraformError carries.
            err.command, err.returncode, err.stderr = (  # type: ignore[attr-defined]
                done.command, done.returncode, done.stderr)
            return err
        return TerraformApplyFailed("terraform apply failed", command=done.command,
                                    returncode=done.returncode, stderr=done.stderr)


def _backend_value(value: object) -> str:
    """A -backend-config value as terraform wants it (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(state: StateIdentity) -> str:
    return f"lineage {state.lineage} serial {state.serial}" if state.exists else "no state"
