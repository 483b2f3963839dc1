"""The Terraform runner: pure parsing on captured stderr, then the real binary against moto's S3 backend.

The configs under fixtures/terraform have no provider: output values alone make real plans
(exit code 2) and real applies that write state to the bucket and take the DynamoDB lock.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops.errors import (
    StalePlan,
    StateLocked,
    LockMismatch,
    TerraformApplyFailed,
    TerraformError,
    TerraformInitFailed,
    TerraformPlanFailed,
    TerraformTimeout,
    TerraformValidateFailed,
)
from gitops.models import LockInfo, PlanStatus, StateIdentity, UnlockOutcome
from deployments.sandbox.aws import (
    SANDBOX_ACCESS_KEY,
    SANDBOX_SECRET_KEY,
    MotoServer,
    StateBackend,
    sandbox_client,
)
from gitops.terraform import (
    SENSITIVE_MASK,
    Output,
    TerraformRunner,
    TerraformSettings,
    parse_lock_info,
    read_plan_state,
    render_diagnostics,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STDERR = FIXTURES / "stderr"
CONFIGS = FIXTURES / "terraform"
STATE_KEY = "env/test.tfstate"


def _terraform_binary() -> str:
    beside_python = Path(sys.executable).with_name("terraform")
    return str(beside_python) if beside_python.exists() else (shutil.which("terraform") or "terraform")


TERRAFORM = _terraform_binary()


# --- pure helpers on captured stderr --------------------------------------------------------------

def test_parse_lock_info_from_a_real_plan_lock_error() -> None:
    lock = parse_lock_info((STDERR / "plan_lock_held_1.0.3.txt").read_text())
    assert lock == LockInfo(
        id="ac08e43e-9643-2b5c-b2f9-65b6def5d712", path="bucket-one/env/a.tfstate",
        operation="OperationTypeApply", who="root@vm", version="1.0.3",
        created="2026-11-26 13:06:09.056811932 +0000 UTC", info="",
    )


def test_parse_lock_info_from_a_real_apply_lock_error() -> None:
    lock = parse_lock_info((STDERR / "apply_lock_held_1.0.3.txt").read_text())
    assert lock is not None
    assert (lock.id, lock.operation, lock.who) == (
        "86511fdd-5de0-21f5-9c24-dd46b0335b0f", "OperationTypeApply", "root@vm")


def test_parse_lock_info_from_a_refused_unlock() -> None:
    held = parse_lock_info((STDERR / "force_unlock_mismatch_1.0.3.txt").read_text())
    assert held is not None
    assert (held.id, held.who) == ("5f1a9c3e-0000-4000-8000-000000000001", "alice@ci-runner")
    assert parse_lock_info((STDERR / "force_unlock_not_locked_1.0.3.txt").read_text()) is None


@pytest.mark.parametrize("lock_id", ["", "-force", "a b", "../x", "x" * 200])
def test_force_unlock_refuses_what_is_not_a_lock_id(tmp_path: Path, lock_id: str) -> None:
    runner = TerraformRunner(tmp_path, settings=_settings(), data_dir=tmp_path / "data")
    with pytest.raises(TerraformError, match="not a state lock ID"):
        runner.force_unlock(lock_id)


@pytest.mark.parametrize("name", ["plan_lock_table_missing_1.0.3.txt", "apply_stale_plan_1.0.3.txt"])
def test_parse_lock_info_is_none_without_a_lock_holder(name: str) -> None:
    # "Error acquiring the state lock" because the table is missing is a failure, not a held lock.
    assert parse_lock_info((STDERR / name).read_text()) is None


def test_read_plan_state_rejects_a_file_that_is_not_a_plan(tmp_path: Path) -> None:
    bogus = tmp_path / "plan.tfplan"
    bogus.write_text("not a zip")
    with pytest.raises(TerraformPlanFailed, match="not a readable terraform plan file"):
        read_plan_state(bogus)


def test_render_diagnostics() -> None:
    text = render_diagnostics([{"severity": "error", "summary": "Bad thing", "detail": "Why.",
                                "range": {"filename": "main.tf", "start": {"line": 3}}}])
    assert text == "main.tf:3: Error: Bad thing: Why."


def test_sensitive_output_is_masked_and_not_in_its_repr() -> None:
    out = Output(value="hunter2-secret", sensitive=True, type="string")
    assert out.masked() == Output(SENSITIVE_MASK, True, "string")
    assert "hunter2-secret" not in repr(out)
    assert Output("plain").masked() == Output("plain")


# --- the real binary: fmt and validate (no backend) -----------------------------------------------

# terraform sees nothing of this process's environment but PATH and the like: the credentials
# for moto are handed over as the pipeline hands over a phase's credentials.
AWS_ENV = {"AWS_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET_KEY,
           "AWS_DEFAULT_REGION": "us-east-1"}


def _settings(**overrides: object) -> TerraformSettings:
    defaults: dict[str, object] = {"binary": TERRAFORM, "timeout_seconds": 60,
                                   "lock_timeout_seconds": 1}
    defaults.update(overrides)
    defaults["env"] = {**AWS_ENV, **dict(overrides.get("env", {}))}  # type: ignore[call-overload]
    return TerraformSettings(**defaults)  # type: ignore[arg-type]


def _copy_config(name: str, tmp_path: Path) -> Path:
    work = tmp_path / "config" / name
    shutil.copytree(CONFIGS / name, work)
    return work


def test_fmt_check_lists_unformatted_files(tmp_path: Path) -> None:
    runner = TerraformRunner(_copy_config("unformatted", tmp_path), settings=_settings(),
                             data_dir=tmp_path / "data")
    assert runner.fmt_check() == ("main.tf",)
    clean = TerraformRunner(_copy_config("slow", tmp_path), settings=_settings(),
                            data_dir=tmp_path / "data")
    assert clean.fmt_check() == ()


def test_validate_raises_with_the_rendered_diagnostics(tmp_path: Path) -> None:
    runner = TerraformRunner(_copy_config("invalid", tmp_path), settings=_settings(),
                             data_dir=tmp_path / "data")
    runner.init()
    with pytest.raises(TerraformValidateFailed) as caught:
        runner.validate()
    assert "main.tf:2: Error: Reference to undeclared input variable" in str(caught.value)
    assert "validate" in caught.value.command


# --- the real binary against the S3 backend on moto (about 15 s in all: marked slow) --------------

RunnerFactory = Callable[..., TerraformRunner]


def _backend_overrides(backend: StateBackend, endpoint: str) -> dict[str, str]:
    return {
        "bucket": backend.bucket, "key": STATE_KEY, "region": backend.region,
        "dynamodb_table": backend.lock_table, "endpoint": endpoint, "dynamodb_endpoint": endpoint,
        "force_path_style": "true", "skip_credentials_validation": "true",
        "skip_metadata_api_check": "true", "skip_region_validation": "true",
    }


@pytest.fixture()
def make_runner(tmp_path: Path, state_backend: StateBackend,
                moto_server: MotoServer) -> RunnerFactory:
    """Runners on one copy of a config, each with its own data dir, initialised on the S3 backend."""
    count = 0

    def make(config: str = "outputs", *, tfvars: str | None = None,
             settings: TerraformSettings | None = None) -> TerraformRunner:
        nonlocal count
        count += 1
        work = tmp_path / "config" / config
        if not work.exists():
            shutil.copytree(CONFIGS / config, work)
        var_files = []
        if tfvars is not None:
            var_file = tmp_path / f"vars-{count}.tfvars"
            var_file.write_text(tfvars)
            var_files.append(var_file)
        runner = TerraformRunner(work, settings=settings or _settings(),
                                 data_dir=tmp_path / f"data-{count}", var_files=var_files)
        runner.init(backend_overrides=_backend_overrides(state_backend, moto_server.endpoint))
        return runner

    return make


def _lock_item(moto_server: MotoServer, backend: StateBackend) -> dict | None:
    dynamodb = sandbox_client("dynamodb", moto_server.endpoint)
    found = dynamodb.get_item(TableName=backend.lock_table,
                              Key={"LockID": {"S": f"{backend.bucket}/{STATE_KEY}"}},
                              ConsistentRead=True)
    return found.get("Item")


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_plan_apply_plan_again(make_runner: RunnerFactory, tmp_path: Path,
                               state_backend: StateBackend, moto_server: MotoServer) -> None:
    environ_before = dict(os.environ)
    runner = make_runner(tfvars='message = "hello"\n',
                         settings=_settings(env={"TF_VAR_api_token": "tok-from-env-123456"}))

    plan = runner.plan(tmp_path / "plans" / "first.tfplan")
    assert plan.status is PlanStatus.CHANGES
    assert plan.state == StateIdentity()  # planned against a state that did not exist yet
    assert plan.plan_json["output_changes"]["message"]["after"] == "hello"
    assert len(plan.plan_sha256) == 64 and Path(plan.plan_file).is_file()

    result = runner.apply(Path(plan.plan_file))
    assert result.state.exists and result.state.serial >= 0  # a new state starts at serial 0
    assert result.outputs["message"] == Output("hello", False, "string")
    assert result.outputs["api_token"].value == SENSITIVE_MASK
    assert runner.outputs()["api_token"].value == "tok-from-env-123456"  # secrets arrive via env

    s3 = sandbox_client("s3", moto_server.endpoint)
    stored = json.loads(s3.get_object(Bucket=state_backend.bucket, Key=STATE_KEY)["Body"].read())
    assert (stored["lineage"], stored["serial"]) == (result.state.lineage, result.state.serial)
    assert runner.current_state() == result.state
    assert _lock_item(moto_server, state_backend) is None

    again = runner.plan(tmp_path / "plans" / "second.tfplan")
    assert again.status is PlanStatus.NO_CHANGES
    assert again.state == result.state == read_plan_state(Path(again.plan_file))

    destroy = runner.plan(tmp_path / "plans" / "destroy.tfplan", destroy=True)
    assert destroy.status is PlanStatus.CHANGES
    with pytest.raises(ValueError):
        runner.plan(tmp_path / "plans" / "x.tfplan", destroy=True, refresh_only=True)
    assert dict(os.environ) == environ_before


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_apply_of_a_stale_plan_raises_stale_plan(make_runner: RunnerFactory,
                                                 tmp_path: Path) -> None:
    first = make_runner(tfvars='message = "a"\n')
    second = make_runner(tfvars='message = "b"\n')  # same checkout, its own data dir

    # Against a state that does not exist yet (terraform 1.0.3 itself misses this case).
    plan_a = first.plan(tmp_path / "a0.tfplan")
    plan_b = second.plan(tmp_path / "b0.tfplan")
    second.apply(Path(plan_b.plan_file))
    with pytest.raises(StalePlan):
        first.apply(Path(plan_a.plan_file))

    # Against an existing state: both made at the same serial, B applied first.
    plan_a = first.plan(tmp_path / "a1.tfplan")
    plan_b = first.plan(tmp_path / "b1.tfplan", destroy=True)
    assert plan_a.state == plan_b.state
    first.apply(Path(plan_b.plan_file))
    with pytest.raises(StalePlan, match="state moved"):
        first.apply(Path(plan_a.plan_file))


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_terraform_own_stale_plan_message_becomes_stale_plan(make_runner: RunnerFactory) -> None:
    # The race our pre-check cannot close (state moves between the check and terraform's lock):
    # terraform's own refusal, as captured, must map to StalePlan too.
    from gitops.terraform import _Completed

    runner = make_runner(tfvars='message = "x"\n')
    stderr = (STDERR / "apply_stale_plan_1.0.3.txt").read_text()
    err = runner._apply_error(_Completed("terraform apply plan", 1, "", stderr))
    assert isinstance(err, StalePlan) and err.stderr == stderr  # type: ignore[attr-defined]


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_apply_refuses_anything_but_a_saved_plan_file(make_runner: RunnerFactory,
                                                      tmp_path: Path) -> None:
    runner = make_runner(tfvars='message = "x"\n')
    with pytest.raises(TerraformApplyFailed, match="not a saved plan file"):
        runner.apply(tmp_path / "missing.tfplan")
    assert runner.current_state() == StateIdentity()


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_held_lock_is_reported_and_never_broken(make_runner: RunnerFactory, tmp_path: Path,
                                                state_backend: StateBackend,
                                                moto_server: MotoServer) -> None:
    runner = make_runner(tfvars='message = "x"\n')
    plan = runner.plan(tmp_path / "before-lock.tfplan")

    # Exactly what terraform's S3 backend writes when it takes the lock.
    info = {"ID": "5f1a9c3e-0000-4000-8000-000000000001", "Operation": "OperationTypeApply",
            "Info": "", "Who": "alice@ci-runner", "Version": "1.0.3",
            "Created": "2026-01-02T03:04:05.123456789Z",
            "Path": f"{state_backend.bucket}/{STATE_KEY}"}
    item = {"LockID": {"S": f"{state_backend.bucket}/{STATE_KEY}"}, "Info": {"S": json.dumps(info)}}
    sandbox_client("dynamodb", moto_server.endpoint).put_item(TableName=state_backend.lock_table,
                                                              Item=item)

    locked = runner.plan(tmp_path / "while-locked.tfplan")
    assert locked.status is PlanStatus.LOCKED
    assert locked.lock is not None
    assert (locked.lock.id, locked.lock.who, locked.lock.operation) == (
        info["ID"], "alice@ci-runner", "OperationTypeApply")
    assert not (tmp_path / "while-locked.tfplan").exists()

    started = time.monotonic()
    with pytest.raises(StateLocked) as caught:
        runner.apply(Path(plan.plan_file))
    assert time.monotonic() - started >= 1.0  # waited -lock-timeout first
    assert caught.value.lock.who == "alice@ci-runner"
    assert "force-unlock" in str(caught.value) and "-lock-timeout=1s" in caught.value.command
    assert _lock_item(moto_server, state_backend) == item  # never broken
    assert runner.current_state() == StateIdentity()

    # Released only on request, and only with the held lock's own ID.
    with pytest.raises(LockMismatch) as refused:
        runner.force_unlock("5f1a9c3e-0000-4000-8000-00000000beef")
    assert refused.value.held is not None and refused.value.held.id == info["ID"]
    assert _lock_item(moto_server, state_backend) == item
    assert runner.force_unlock(info["ID"]) is UnlockOutcome.RELEASED
    assert _lock_item(moto_server, state_backend) is None
    assert runner.force_unlock(info["ID"]) is UnlockOutcome.NOT_LOCKED
    assert runner.plan(tmp_path / "after-unlock.tfplan").status is PlanStatus.CHANGES


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_timeout_interrupts_terraform_which_releases_its_lock(
        make_runner: RunnerFactory, tmp_path: Path, state_backend: StateBackend,
        moto_server: MotoServer) -> None:
    # work factor 15: the apply holds the lock for about 1.6 s, well past the 0.7 s timeout.
    plan = make_runner("slow", tfvars="work_factor = 15\n").plan(tmp_path / "slow.tfplan")
    runner = make_runner("slow", settings=_settings(timeout_seconds=0.7,
                                                    interrupt_grace_seconds=30))
    with pytest.raises(TerraformTimeout, match="interrupted; it stopped gracefully") as caught:
        runner.apply(Path(plan.plan_file))
    assert "Interrupt received" in caught.value.stderr
    assert _lock_item(moto_server, state_backend) is None


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_timeout_kills_terraform_after_the_grace_period(
        make_runner: RunnerFactory, tmp_path: Path, state_backend: StateBackend,
        moto_server: MotoServer) -> None:
    plan = make_runner("slow").plan(tmp_path / "slow.tfplan")
    # work factor 16 (about 3 s): killed at about 1.8 s, while terraform still holds the lock.
    runner = make_runner("slow", settings=_settings(timeout_seconds=1.5,
                                                    interrupt_grace_seconds=0.3))
    with pytest.raises(TerraformTimeout, match="killed after"):
        runner.apply(Path(plan.plan_file))
    # A killed terraform leaves its lock behind; it is reported, never broken by us.
    assert _lock_item(moto_server, state_backend) is not None


SECRET = "s3cr3t-value-never-in-argv"


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_broken_tfvars_fail_the_plan_and_secrets_stay_out_of_the_command(
        make_runner: RunnerFactory, tmp_path: Path) -> None:
    settings = _settings(env={"AWS_SECRET_ACCESS_KEY": SECRET, "TF_VAR_api_token": SECRET})
    runner = make_runner(tfvars='message = "unterminated\n', settings=settings)
    with pytest.raises(TerraformPlanFailed) as caught:
        runner.plan(tmp_path / "broken.tfplan")
    err = caught.value
    assert err.returncode == 1
    assert "Invalid multi-line string" in str(err) or "Unterminated" in str(err)
    assert "plan" in err.command and "-var-file=" in err.command
    assert SECRET not in err.command and SECRET not in str(err)


@pytest.mark.slow  # real terraform on the moto S3 backend
def test_init_failure_masks_secret_backend_values(tmp_path: Path, state_backend: StateBackend,
                                                  moto_server: MotoServer) -> None:
    runner = TerraformRunner(_copy_config("outputs", tmp_path), settings=_settings(),
                             data_dir=tmp_path / "data")
    overrides = {**_backend_overrides(state_backend, moto_server.endpoint),
                 "secret_key": SECRET, "not_a_backend_option": "1"}
    with pytest.raises(TerraformInitFailed) as caught:
        runner.init(backend_overrides=overrides)
    assert "not_a_backend_option" in str(caught.value)
    assert "-backend-config=secret_key=(redacted)" in caught.value.command
    assert SECRET not in caught.value.command and SECRET not in str(caught.value)


@pytest.mark.slow  # real terraform
def test_terraform_sees_an_allow_listed_environment_and_providers_only_from_its_cli_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a plan can read of its own process: /proc/self/environ holds no worker variable."""
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    monkeypatch.setenv("WORKER_ONLY_TOKEN", "planted-worker-value-9f3a")
    monkeypatch.setenv("TF_CLI_ARGS", "-lock=false")
    work = tmp_path / "stack"
    work.mkdir()
    (work / "main.tf").write_text('output "environ" {\n  value = file("/proc/self/environ")\n}\n')
    settings = _settings(env={"TF_VAR_x": "granted-value", "TF_CLI_CONFIG_FILE": "/etc/evil.rc"})
    runner = TerraformRunner(work, settings=settings, data_dir=tmp_path / "env" / "data")
    runner.init()
    plan = runner.plan(tmp_path / "env" / "plan.tfplan")
    environ = plan.plan_json["planned_values"]["outputs"]["environ"]["value"]
    names = {item.split("=", 1)[0] for item in environ.split("\0") if item}
    assert "PREFECT_API_URL" not in names and "WORKER_ONLY_TOKEN" not in names
    assert "TF_CLI_ARGS" not in names and "planted-worker-value" not in environ
    assert {"TF_DATA_DIR", "TF_CLI_CONFIG_FILE", "HOME", "AWS_ACCESS_KEY_ID"} <= names
    assert "/etc/evil.rc" not in environ  # the runner's CLI config, not one a caller smuggles
    # Files the runner leaves are its owner's only.
    for path in (tmp_path / "env" / "data", tmp_path / "env" / "home"):
        assert path.stat().st_mode & 0o077 == 0
    assert (tmp_path / "env" / "plan.tfplan").stat().st_mode & 0o077 == 0
