"""Fault matrix on the sandbox: each fault ends in a defined, stated state and no state is lost.

(Argo CD 503 then recovery, Argo CD Degraded after apply, rejected / timed-out / self approvals,
concurrent deploys and a stale plan are in test_deploy_flow.py. The faults of a pool of workers
are in test_scale_out.py: a worker killed while prod waits suspended for approval, and the
Prefect server restarted then, ends applied by another worker, exactly the approved plan; a
worker and its run killed mid-apply ends Crashed within about a minute, its slot freed, its state
lock reported with the unlock command.)
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from deployments.sandbox.launcher import SANDBOX_BACKEND, SandboxState
from deployments.sandbox.cloud import SandboxCloud
from infra_repo import InfraRepo
from test_deploy_flow import deploy_state, dns_value, wait_for_log
from test_drift_flow import wait_events

pytestmark = pytest.mark.slow


@pytest.fixture()
def infra(sandbox: Any, tmp_path: Path) -> InfraRepo:
    return InfraRepo(os.environ["GITOPS_REPOSITORY_URL"], tmp_path / "infra")


def state_key(env: str) -> str:
    return f"expense/{env}/terraform.tfstate"


def state_history(sandbox: Any, env: str) -> list[dict]:
    """Every stored version of the environment's state, oldest first, parsed."""
    s3 = sandbox.aws_client("s3")  # as the sandbox admin
    versions = s3.list_object_versions(Bucket=SANDBOX_BACKEND.bucket, Prefix=state_key(env))
    out = []
    for v in sorted(versions.get("Versions", []), key=lambda v: v["LastModified"]):
        body = s3.get_object(Bucket=SANDBOX_BACKEND.bucket, Key=state_key(env),
                             VersionId=v["VersionId"])["Body"].read()
        out.append(json.loads(body))
    return out


def assert_state_intact(sandbox: Any, env: str, before: list[dict]) -> None:
    """Earlier versions are all still there, unchanged; every version is valid, one lineage."""
    after = state_history(sandbox, env)
    assert after[: len(before)] == before
    assert len({s["lineage"] for s in after}) == 1
    serials = [s["serial"] for s in after]
    assert serials == sorted(serials)


def lock_items(sandbox: Any) -> list[dict]:
    table = sandbox.aws_client("dynamodb")
    items = table.scan(TableName=SANDBOX_BACKEND.lock_table)["Items"]
    return [i for i in items if "Info" in i]


def deployed_then_moved(sandbox: Any, infra: InfraRepo, env: str,
                        cidr: str) -> tuple[str, str, list[dict]]:
    """Deploy a new environment; push a new network range for it (which replaces the network and
    the services). Returns the good commit, the new one, and the state history so far."""
    infra.add_environment(env)
    good = infra.push(f"Add {env}")
    assert deploy_state(env, good).is_completed()
    before = state_history(sandbox, env)
    infra.set_var(env, "network_cidr", f'"{cidr}"')
    return good, infra.push("Move to a new network range"), before


def test_apply_error_half_way_rolls_back_to_the_last_good_commit(sandbox, infra):
    env = "fm-apply"
    good, bad, before = deployed_then_moved(sandbox, infra, env, "10.77.0.0/16")
    # The cloud fails creating the web service, after the network was already replaced:
    # terraform stops half-way.
    SandboxCloud(sandbox.cloud_dir).inject_fault(f"expense-{env}-web",
                                                 message="InsufficientCapacity: no capacity")

    state = deploy_state(env, bad)

    assert state.is_failed()
    assert "apply failed" in state.message and "InsufficientCapacity" in state.message
    assert "rolled back" in state.message
    assert_state_intact(sandbox, env, before)
    assert deploy_state(env, good).result().outcome == "no-changes"


def test_a_rollback_that_fails_says_what_is_left_where(sandbox, infra):
    env = "fm-rbfail"
    good, bad, before = deployed_then_moved(sandbox, infra, env, "10.78.0.0/16")
    # The cloud keeps refusing the web service: the apply fails half-way, and so does the
    # rollback's re-apply of the good commit.
    cloud = SandboxCloud(sandbox.cloud_dir)
    cloud.inject_fault(f"expense-{env}-web", message="InsufficientCapacity: none", once=False)
    try:
        state = deploy_state(env, bad)
    finally:
        cloud.clear_fault(f"expense-{env}-web")

    assert state.is_failed()
    message = state.message
    assert "ROLLBACK FAILED" in message and f"rollback to {good[:12]} incomplete" in message
    assert f"infrastructure: NOT rolled back to {good[:12]}" in message
    assert "InsufficientCapacity" in message
    assert "done: Argo CD:" in message  # what did get rolled back is said too
    assert_state_intact(sandbox, env, before)
    # Once the cloud recovers, the good commit deploys again.
    again = deploy_state(env, good)
    assert again.is_completed(), again.message
    assert_state_intact(sandbox, env, before)


def test_a_missing_secret_block_fails_clearly_before_terraform_runs(sandbox, infra):
    from prefect.blocks.system import Secret

    env = "fm-nosecret"
    infra.add_environment(env)
    sha = infra.push(f"Add {env}, whose Secret block nobody created")
    Secret.delete(f"gitops-db-password-{env}")

    state = deploy_state(env, sha)

    assert state.is_failed()
    assert f"Secret block 'gitops-db-password-{env}' not found" in state.message
    assert state_history(sandbox, env) == []  # nothing planned against, nothing written


def test_dns_failure_after_apply_rolls_back(sandbox, infra):
    env = "fm-dns"
    infra.add_environment(env)
    good = infra.push(f"Add {env}")
    assert deploy_state(env, good).is_completed()
    good_dns = dns_value(sandbox, f"app.{env}.sandbox.internal")

    toml = infra.path / f"terraform/environments/{env}/environment.toml"
    toml.write_text(toml.read_text().replace('zone = "sandbox.internal"',
                                             'zone = "missing.internal"'))
    infra.set_var(env, "replicas", "6")
    bad = infra.push("Scale and move the record to a zone that does not exist")

    state = deploy_state(env, bad)

    assert state.is_failed()
    assert "DnsError" in state.message and "rolled back" in state.message
    assert dns_value(sandbox, f"app.{env}.sandbox.internal") == good_dns
    assert deploy_state(env, good).result().outcome == "no-changes"


def _terraform_pids(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"terraform") and b"apply" in cmd and \
                any(marker.encode() in part for part in cmd):
            pids.append(int(proc.name))
    return pids


def test_process_killed_during_apply_leaves_the_lock_reported_never_broken(sandbox, infra, capsys):
    from helpers_terraform import start_apply_outside_pipeline

    env = "fm-kill"
    infra.add_environment(env)
    toml = infra.path / f"terraform/environments/{env}/environment.toml"
    toml.write_text(toml.read_text().replace("lock_timeout_seconds = 30",
                                             "lock_timeout_seconds = 2"))
    good = infra.push(f"Add {env}")
    assert deploy_state(env, good).is_completed()
    before = state_history(sandbox, env)

    infra.set_var(env, "replicas", "7")
    newer = infra.push("Scale fm-kill")
    SandboxCloud(sandbox.cloud_dir).inject_fault(f"expense-{env}-web", delay_seconds=60)
    apply_thread, marker = start_apply_outside_pipeline(sandbox, env, newer)
    deadline = time.monotonic() + 60
    while not (pids := _terraform_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pids, "terraform apply did not start"
    # Kill only once terraform holds the state lock (it then sits in the delayed provider call).
    while not any(state_key(env) in i["LockID"]["S"] for i in lock_items(sandbox)):
        assert time.monotonic() < deadline, "terraform apply never took the state lock"
        time.sleep(0.2)
    time.sleep(1)
    for pid in pids:
        os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker machine dies
    apply_thread.join(30)
    SandboxCloud(sandbox.cloud_dir).clear_fault(f"expense-{env}-web")
    held = lock_items(sandbox)
    assert any(state_key(env) in i["LockID"]["S"] for i in held)

    state = deploy_state(env, newer)

    assert state.is_failed()
    assert "state is locked" in state.message and "force-unlock" in state.message
    lock_id = json.loads(next(i for i in held if state_key(env) in i["LockID"]["S"])
                         ["Info"]["S"])["ID"]
    assert lock_id in state.message
    # Never broken on its own, and no state version lost.
    assert any(state_key(env) in i["LockID"]["S"] for i in lock_items(sandbox))
    assert_state_intact(sandbox, env, before)

    # An operator releases it, as the message says: a wrong ID is refused and frees nothing...
    from deployments.cli import main as cli

    other_id = "00000000-0000-4000-8000-000000000000"
    capsys.readouterr()
    assert cli(["unlock", env, other_id, "--as", "ops", "--reason", "typo"]) == 1
    said = capsys.readouterr().out
    assert f"lock ID {other_id} is not the held lock" in said and lock_id in said
    assert any(state_key(env) in i["LockID"]["S"] for i in lock_items(sandbox))
    # ...the held lock's own ID releases it, recorded with who and why...
    assert cli(["unlock", env, lock_id, "--as", "ops", "--reason", "worker died"]) == 0
    assert f"state lock {lock_id} released by ops" in capsys.readouterr().out
    assert not any(state_key(env) in i["LockID"]["S"] for i in lock_items(sandbox))
    assert wait_events(env, "gitops.lock.released", 1) == 1
    assert cli(["unlock", env, lock_id, "--as", "ops", "--reason", "again"]) == 0
    assert "not locked; nothing was released" in capsys.readouterr().out
    assert wait_events(env, "gitops.lock.released", 2, timeout=2) == 1
    assert_state_intact(sandbox, env, before)
    # ...and the next deploy goes through.
    assert deploy_state(env, newer).is_completed()
    assert_state_intact(sandbox, env, before)


def test_secrets_never_reach_logs_artifacts_or_messages(sandbox, infra):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    env = "fm-secret"
    infra.add_environment(env)
    sha = infra.push(f"Add {env}")
    state = deploy_state(env, sha)
    assert state.is_completed()
    run_id = state.state_details.flow_run_id
    assert wait_for_log(run_id, "is at")

    tokens = SandboxState.load(sandbox.state_file).tokens
    planted = [f"test-db-password-{env}", "sandbox-secret-key", tokens["argocd"], tokens["github"]]
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
        run = client.read_flow_run(run_id)
    sinks = [log.message for log in logs] + [str(a.data) for a in artifacts]
    sinks += [str(run.state.message), json.dumps(run.parameters)]
    assert artifacts, "the plan artifact was published"
    for secret in planted:
        assert not any(secret in text for text in sinks), secret


def test_a_broken_tfvars_file_fails_clearly_without_credentials_in_the_message(sandbox, infra):
    env = "fm-badvars"
    infra.add_environment(env)
    tfvars = infra.path / f"terraform/environments/{env}/{env}.tfvars"
    tfvars.write_text(tfvars.read_text() + 'replicas = "not a number"\nbroken = [\n')
    sha = infra.push("A broken tfvars file")

    state = deploy_state(env, sha)

    assert state.is_failed()
    assert "sandbox-secret-key" not in (state.message or "")
    assert f"test-db-password-{env}" not in (state.message or "")
    # terraform's own diagnostic, pointing at the file to fix
    assert f"{env}.tfvars" in state.message, state.message
