"""The pipeline scaled out on Prefect's own machinery: a Prefect server on PostgreSQL, two process
workers (`w1`, `w2`, `--limit 1` each) on the `gitops` pool, the deployments from
`prefect deploy --all` (tests/scaleout.py starts all of it, once for the module).

- deploys of two environments run at the same time, on different workers;
- two deploys of one environment, on different workers, take turns on the environment's deploy
  slot (the global concurrency limit gitops-deploy-<env>);
- a signed push to the webhook receiver starts deploy-main, which a worker runs;
- a prod-like deploy suspended for approval loses nothing when the worker that ran it is killed
  and the server restarts: a fresh worker applies exactly the approved plan, read back sealed from
  the state bucket (the fault matrix's kill-the-worker case);
- a deploy killed mid-apply (its worker and its process) is marked Crashed by the zombie
  automation, its slot's lease runs out, and the next deploy reports the held state lock.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deployments.emulators.server import BackgroundServer
from deployments.sandbox import iam
from deployments.sandbox.launcher import SANDBOX_BACKEND, SandboxState
from gitops.receiver import signature_for
from scaleout import RunRecord, ScaleOut, scale_out_fixture
from gitops.planstore import PREFIX
from test_deploy_flow import dns_value, state_versions
from test_fault_matrix import _terraform_pids, lock_items, state_key

pytestmark = pytest.mark.slow
CONTRACTS = Path(__file__).resolve().parent / "contracts" / "github"
REPOSITORY = "acme/infrastructure"
SECRET = "scale-out-webhook-secret"

scale_out = scale_out_fixture(environments=("sc-a", "sc-b"), workers={"w1": 1, "w2": 1})


def deploy_together(scale: ScaleOut, *environments: str, sha: str) -> list[RunRecord]:
    """Start one deploy run per entry of ``environments`` at once; their records once finished."""
    ids = [scale.run_deployment("deploy/deploy", environment=env, sha=sha) for env in environments]
    return [scale.record(run_id) for run_id in ids]


def explain(scale: ScaleOut, *runs: RunRecord) -> str:
    lines = [f"{r.name} {r.state} on {r.worker} {r.running[0]:%T.%f}-{r.running[1]:%T.%f}"
             for r in runs]
    return "\n".join(lines) + "\n" + scale.worker_logs()


def test_two_environments_deploy_at_once_on_different_workers(scale_out: ScaleOut) -> None:
    sha = scale_out.repo.push("Add sc-a and sc-b")

    a, b = deploy_together(scale_out, "sc-a", "sc-b", sha=sha)

    assert (a.state, b.state) == ("COMPLETED", "COMPLETED"), explain(scale_out, a, b)
    assert {a.worker, b.worker} == {"w1", "w2"}, explain(scale_out, a, b)
    assert a.overlaps(b), explain(scale_out, a, b)
    assert a.log_time("waiting: another deploy") is None  # no slot is shared between them
    assert b.log_time("waiting: another deploy") is None


def test_two_deploys_of_one_environment_take_turns_on_its_slot(scale_out: ScaleOut) -> None:
    scale_out.repo.set_var("sc-a", "replicas", "3")
    sha = scale_out.repo.push("sc-a: 3 replicas")

    first, second = deploy_together(scale_out, "sc-a", "sc-a", sha=sha)

    runs = (first, second)
    assert (first.state, second.state) == ("COMPLETED", "COMPLETED"), explain(scale_out, *runs)
    assert {first.worker, second.worker} == {"w1", "w2"}, explain(scale_out, *runs)
    assert first.overlaps(second), explain(scale_out, *runs)  # both running: the slot, not a worker
    # One of them waited: it said so when the slot was taken as it looked ("waiting: another
    # deploy of sc-a holds its slot"), or took it between its look and its ask; either way it
    # logs how long it waited once it got the slot.
    waited = [r for r in runs if r.log_time("got the deploy slot of sc-a")]
    assert len(waited) == 1, explain(scale_out, *runs)
    waiter = waited[0]
    holder = second if waiter is first else first
    got = waiter.log_time("got the deploy slot of sc-a")
    assert got is not None, explain(scale_out, *runs)
    # Everything the holder logged while it ran was logged before the waiter got the slot, and
    # the waiter did its work (checkout, plan, apply...) only after.
    holder_work = [at for at, _ in holder.logs if at <= holder.running[1]]
    assert max(holder_work) <= got, explain(scale_out, *runs)
    assert waiter.log_time("deploying sc-a at") > got  # type: ignore[operator]
    assert holder.log_time("deploying sc-a at") < got  # type: ignore[operator]


def push_payload(sha: str) -> bytes:
    doc = json.loads((CONTRACTS / "push.default-branch.2.json").read_text())
    doc["ref"] = "refs/heads/main"
    doc["after"] = sha
    doc["repository"]["full_name"] = REPOSITORY
    doc["repository"]["default_branch"] = "main"
    return json.dumps(doc).encode()


def test_a_signed_push_starts_deploy_main_which_a_worker_runs(scale_out: ScaleOut) -> None:
    from deployments.webhook_server import build_app
    from prefect.variables import Variable

    scale_out.repo.set_var("sc-b", "replicas", "4")
    sha = scale_out.repo.push("sc-b: 4 replicas")
    app = build_app(environ={"GITOPS_REPOSITORIES": REPOSITORY, "GITHUB_WEBHOOK_SECRET": SECRET},
                    load_block=lambda name: None)
    body = push_payload(sha)
    with BackgroundServer(app) as server:
        response = httpx.post(f"{server.url}/webhooks/github", content=body, timeout=30, headers={
            "X-GitHub-Event": "push", "X-GitHub-Delivery": "scale-out-1",
            "X-Hub-Signature-256": signature_for(SECRET.encode(), body),
            "Content-Type": "application/json"})
    assert response.status_code == 202, response.text

    run = scale_out.record(response.json()["run_id"])

    assert run.state == "COMPLETED", explain(scale_out, run)
    assert run.worker in {"w1", "w2"}, explain(scale_out, run)
    assert run.log_time("sc-b: deploying") is not None, explain(scale_out, run)
    assert Variable.get("gitops-last-good-sc-b")["sha"] == sha
    assert dns_value(scale_out.sandbox, "app.sc-b.sandbox.internal") is not None
    state = SandboxState.load(scale_out.sandbox.state_file)
    app_doc = httpx.get(f"{state.services['argocd'].url}/api/v1/applications/expense-sc-b",
                        headers={"Authorization": f"Bearer {state.tokens['argocd']}"}).json()
    assert app_doc["status"]["sync"]["revision"] == sha


TEAM_RULE = 'approvers = ["acme/platform"]\n'


def add_environment(scale: ScaleOut, env: str, *, approval: bool) -> None:
    """A new environment like sc-a (the module's repo has no staging to copy), with the team's
    approval rule when ``approval``. sc-a's rule already names a timeout, which
    InfraRepo.add_environment would write a second time: the rule is written here, once."""
    scale.repo.add_environment(env, like="sc-a")
    toml = scale.repo.path / f"terraform/environments/{env}/environment.toml"
    head, rule = toml.read_text().split("[approval]\n", 1)
    rule = "\n".join(line for line in rule.splitlines()
                     if not line.startswith(("required", "timeout_seconds")))
    toml.write_text(f"{head}[approval]\nrequired = {str(approval).lower()}\n"
                    f"timeout_seconds = 600\n{TEAM_RULE if approval else ''}{rule}\n")


def saved_plans(scale: ScaleOut, env: str, run_id: str) -> list[str]:
    s3 = scale.sandbox.aws_client("s3")
    found = s3.list_objects_v2(Bucket=SANDBOX_BACKEND.bucket, Prefix=f"{PREFIX}/{env}/{run_id}/")
    return [o["Key"] for o in found.get("Contents", [])]


def result_objects(scale: ScaleOut) -> list[str]:
    """The keys of the results bucket (prefect.yaml persists flow results there)."""
    from deployments.sandbox.launcher import RESULTS_BUCKET

    s3 = scale.sandbox.aws_client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=RESULTS_BUCKET)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def approval_fingerprint(env: str, sha: str) -> str:
    """The fingerprint the run asks approval for, from its request on the commit (GitHub)."""
    from deployments.approvals import paused_approvals, waiting_request

    (waiting,) = paused_approvals(env)
    request = waiting_request(waiting.run_id)
    assert request.commit == sha
    return request.fingerprint


@pytest.fixture()
def github_reads_this_repo(scale_out: ScaleOut) -> Iterator[None]:
    """The GitHub emulator answers `GET /repos/acme/infrastructure/commits/{sha}` (who wrote a
    commit: the approval's author check) from the module's repository, then the sandbox's again."""
    from urllib.parse import urlparse

    from deployments.emulators.github import EmulatorControl
    from deployments.sandbox.launcher import SANDBOX_REPOSITORY

    state = SandboxState.load(scale_out.sandbox.state_file)
    with EmulatorControl(state.services["github"].url, state.tokens["github"]) as control:
        control.attach_git(SANDBOX_REPOSITORY, urlparse(scale_out.repo.url).path)
        try:
            yield
        finally:
            control.attach_git(SANDBOX_REPOSITORY, scale_out.sandbox.repo_dir)


@pytest.mark.usefixtures("github_reads_this_repo")
def test_a_suspended_approval_survives_its_worker_and_a_server_restart(
        scale_out: ScaleOut, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from botocore.exceptions import ClientError

    from deployments.cli import main as cli
    from prefect.client.orchestration import get_client

    env = "sc-prod"
    add_environment(scale_out, env, approval=True)
    sha = scale_out.repo.push(f"Add {env}")
    results_before = set(result_objects(scale_out))
    run_id = scale_out.run_deployment("deploy/deploy", environment=env, sha=sha)
    run = scale_out.wait_state(run_id, lambda s: s.is_paused() or s.is_final(), 300, "waiting")
    assert run.state.name == "Suspended", (run.state, scale_out.worker_logs())
    fingerprint = approval_fingerprint(env, sha)
    # Nothing waits on a worker: no process, no files. The plan waits sealed in the state
    # bucket, where the environment's plan credentials cannot read it.
    assert not (Path(os.environ["GITOPS_WORKDIR"]) / "runs" / run_id).exists()
    (key,) = saved_plans(scale_out, env, run_id)
    assert key.split("/")[-1].startswith(fingerprint[:12]) and key.endswith(".tfplan.enc")
    with pytest.raises(ClientError, match="AccessDenied"):
        scale_out.sandbox.aws_client("s3", iam.plan_block(env)).get_object(
            Bucket=SANDBOX_BACKEND.bucket, Key=key)
    assert state_versions(scale_out.sandbox, env) == 0

    ran_on = (run.labels or {}).get("prefect.worker.name")
    scale_out.workers[ran_on].kill()          # a redeploy of the workers, a drained node
    scale_out.server.restart()                # and the Prefect server restarts meanwhile
    fresh = scale_out.start_worker("w-fresh")
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.name == "Suspended"   # nothing lost
    monkeypatch.setenv("GITOPS_GITHUB_TOKEN", scale_out.sandbox.github_token("erin"))
    capsys.readouterr()
    code = cli(["approve", env, "--wait", "240"])
    said = capsys.readouterr()
    assert code == 0 and "approved" in said.out, (said, scale_out.worker_logs())

    done = scale_out.record(run_id)
    assert done.state == "COMPLETED", explain(scale_out, done)
    resumed_by = [w.name for w in scale_out.workers.values()
                  if w.name != ran_on and run_id in w.log_text()]
    assert resumed_by, explain(scale_out, done)   # another worker took the resumed run
    with get_client(sync_client=True) as client:
        report = client.read_flow_run(run_id).state.result()  # persisted to S3, read over the API
    assert (report.outcome.value, report.approver) == ("deployed", "erin")
    # ...and that report is all the run persisted: no task's result (a parsed plan, the stack's
    # outputs: state values in clear text) went to the results bucket.
    assert len(set(result_objects(scale_out)) - results_before) == 1
    assert state_versions(scale_out.sandbox, env) == 1
    assert done.log_time(f"resumed with plan {fingerprint}") is not None, explain(scale_out, done)
    assert done.log_time(f"applied {fingerprint}") is not None, explain(scale_out, done)
    assert saved_plans(scale_out, env, run_id) == []   # deleted once applied
    assert fresh.alive()


def processes_of_run(run_id: str) -> list[int]:
    """Every process that carries the flow run's id in its environment: the run's own process
    (PREFECT__FLOW_RUN_ID), terraform and the provider plugin under it (their TF_DATA_DIR is in
    the run's work directory). A provider left behind would go on with the apply."""
    mark = run_id.encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if mark in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_a_deploy_killed_mid_apply_is_crashed_frees_its_slot_and_reports_its_lock(
        scale_out: ScaleOut, monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments.automations import ensure_zombie_automation
    from deployments.sandbox.cloud import SandboxCloud
    from tasks.slots import slot_in_use, slot_name
    from test_deploy_flow import deploy_state

    ensure_zombie_automation()    # what `gitops-flows install-automations` does, once a server
    env = "sc-kill"
    add_environment(scale_out, env, approval=False)
    toml = scale_out.repo.path / f"terraform/environments/{env}/environment.toml"
    toml.write_text(toml.read_text().replace("lock_timeout_seconds = 30",
                                             "lock_timeout_seconds = 2"))
    sha = scale_out.repo.push(f"Add {env}")
    cloud = SandboxCloud(scale_out.sandbox.cloud_dir)
    cloud.inject_fault(f"expense-{env}-web", delay_seconds=300)   # apply sits in the provider
    run_id = scale_out.run_deployment("deploy/deploy", environment=env, sha=sha)
    # The plan takes the state lock too, briefly: wait for `terraform apply` itself (found by the
    # run's work directory in its arguments: terraform gets an environment of its own) and for the
    # lock it holds while it sits in the delayed provider call.
    deadline = time.monotonic() + 240
    while not (_terraform_pids(run_id) and any(state_key(env) in i["LockID"]["S"]
                                              for i in lock_items(scale_out.sandbox))):
        assert time.monotonic() < deadline, ("apply never took the lock", scale_out.worker_logs())
        time.sleep(0.5)
    assert slot_in_use(slot_name(env))
    running = scale_out.wait_state(run_id, lambda s: s.is_running(), 10, "running")
    time.sleep(2)
    scale_out.workers[(running.labels or {})["prefect.worker.name"]].kill()  # the node goes...
    # ...and its runs: the run's process, and terraform with its provider.
    terraform = _terraform_pids(run_id)
    assert terraform, "terraform apply is not running"
    for pid in set(processes_of_run(run_id) + terraform):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    died = time.monotonic()
    while processes_of_run(run_id):   # nothing of the run goes on behind the test's back
        assert time.monotonic() - died < 10, processes_of_run(run_id)
        time.sleep(0.2)
    cloud.clear_fault(f"expense-{env}-web")

    run = scale_out.wait_final(run_id, 240)
    assert run.state.is_crashed(), run.state
    assert "heartbeats stopped" in (run.state.message or "")
    assert time.monotonic() - died < 150     # about a minute: 60 s of silence, one heartbeat
    while slot_in_use(slot_name(env)):       # its lease ran out: nobody resets it by hand
        assert time.monotonic() - died < 180, "the dead run's deploy slot was never freed"
        time.sleep(2)

    # The next deploy gets the slot at once and says the state lock is held, and how to release
    # it; the pipeline never breaks it on its own.
    monkeypatch.setenv("GITOPS_REPOSITORY_URL", scale_out.repo.url)   # run here, in the test
    state = deploy_state(env, sha)
    assert state.is_failed() and "state is locked" in state.message, state.message
    assert "unlock" in state.message
    assert any(state_key(env) in i["LockID"]["S"] for i in lock_items(scale_out.sandbox))
