"""End to end on the sandbox: the deploy flow with the real terraform, moto, the Argo CD emulator
and a real Prefect server. Each test adds its own environment to the infra repo (one folder, as a
team would), so tests never share state."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.sandbox.launcher import SandboxState
from tests.infra_repo import InfraRepo

pytestmark = pytest.mark.slow


@pytest.fixture()
def infra(sandbox: Any, tmp_path: Path) -> InfraRepo:
    import os

    return InfraRepo(os.environ["GITOPS_REPOSITORY_URL"], tmp_path / "infra")


@pytest.fixture()
def argocd(sandbox: Any) -> httpx.Client:
    """The Argo CD emulator's control API (fault injection)."""
    url = SandboxState.load(sandbox.state_file).services["argocd"].url
    with httpx.Client(base_url=url, timeout=10) as client:
        client.post("/_emulator/reset")
        yield client


def dns_value(sandbox: Any, record: str) -> str | None:
    r53 = sandbox.aws_client("route53")  # as the sandbox admin
    zone = r53.list_hosted_zones_by_name(DNSName="sandbox.internal.")["HostedZones"][0]["Id"]
    for rr in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]:
        if rr["Name"] == record + ".":
            return rr["ResourceRecords"][0]["Value"]
    return None


def argo_app(argocd: httpx.Client, sandbox: Any, name: str) -> dict:
    token = SandboxState.load(sandbox.state_file).tokens["argocd"]
    resp = argocd.get(f"/api/v1/applications/{name}", headers={"Authorization": f"Bearer {token}"})
    resp.raise_for_status()
    return resp.json()


def state_versions(sandbox: Any, env: str) -> int:
    s3 = sandbox.aws_client("s3")
    versions = s3.list_object_versions(Bucket="gitops-tfstate",
                                       Prefix=f"expense/{env}/terraform.tfstate")
    return len(versions.get("Versions", []))


def run_files_left(state: Any) -> bool:
    """Whether the run's work directory (checkout, plan files: secrets) is still on disk."""
    import os

    return (Path(os.environ["GITOPS_WORKDIR"]) / "runs" / str(state.state_details.flow_run_id)
            ).exists()


def deploy_state(env: str, sha: str):
    from flows.deploy import deploy

    return deploy(env, sha=sha, return_state=True)


def find_paused_run(env: str, timeout: float = 60.0) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[f"deploy-{env}"])))
            for run in runs:
                if run.state and run.state.is_paused():
                    return run
            time.sleep(0.5)
    raise AssertionError(f"no paused deploy of {env} within {timeout}s")


def wait_for_log(flow_run_id: Any, text: str, timeout: float = 20.0) -> bool:
    """Whether a log line of the run contains ``text`` (logs reach the API in batches)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                any_=[flow_run_id])))
            if any(text in log.message for log in logs):
                return True
            time.sleep(0.5)
    return False


class Background:
    """Run a deploy in a thread (it blocks while paused for approval)."""

    def __init__(self, env: str, sha: str) -> None:
        self.state: Any = None
        self.thread = threading.Thread(target=self._run, args=(env, sha), daemon=True)
        self.thread.start()

    def _run(self, env: str, sha: str) -> None:
        self.state = deploy_state(env, sha)

    def join(self, timeout: float = 180.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "deploy did not finish"
        return self.state


def test_staging_like_deploy_applies_points_dns_and_syncs_argocd(sandbox, infra, argocd):
    infra.add_environment("e2e-stg")
    sha = infra.push("Add the e2e-stg environment")

    state = deploy_state("e2e-stg", sha)

    assert state.is_completed(), state.message
    report = state.result()
    assert report.outcome == "deployed" and report.applied
    assert dns_value(sandbox, "app.e2e-stg.sandbox.internal").endswith(".lb.sandbox.internal")
    app = argo_app(argocd, sandbox, "expense-e2e-stg")
    assert app["spec"]["source"]["path"] == "overlays/e2e-stg"
    assert app["status"]["sync"]["status"] == "Synced"
    assert app["status"]["sync"]["revision"] == sha
    assert app["status"]["health"]["status"] == "Healthy"
    assert state_versions(sandbox, "e2e-stg") >= 1
    assert not run_files_left(state)  # plan files hold secrets: gone with the run

    # Same commit again: nothing to apply, no approval, still Synced.
    again = deploy_state("e2e-stg", sha)
    assert again.is_completed()
    assert again.result().outcome == "no-changes"


def test_prod_like_deploy_pauses_and_applies_only_after_approval(sandbox, infra, argocd, capsys):
    from deployments.cli import main as cli

    infra.add_environment("e2e-prd", approval=True, approval_rule="allow_declared = true")
    sha = infra.push("Add the e2e-prd environment", author="Alice Author", email="alice@example.com")

    run = Background("e2e-prd", sha)
    paused = find_paused_run("e2e-prd")
    assert state_versions(sandbox, "e2e-prd") == 0  # nothing applied while waiting
    # The operator's view: what waits, then an answer by environment name (resume_flow_run).
    capsys.readouterr()
    assert cli(["approvals"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("e2e-prd ")]
    assert len(listed) == 1 and str(paused.id) in listed[0] and sha[:12] in listed[0]
    assert "expires" in listed[0]
    assert cli(["approvals", "--plans"]) == 0
    shown = capsys.readouterr().out
    assert "Approve the e2e-prd deploy?" in shown and "fingerprint" in shown  # the form text
    assert cli(["approve", "e2e-nope", "--as", "bob"]) == 2  # nothing waits there: refused
    assert "no run of 'e2e-nope' is waiting" in capsys.readouterr().err
    assert cli(["approve", "e2e-prd", "--as", "bob", "--reason", "reviewed the plan"]) == 0
    told = capsys.readouterr().out  # what the run made of it, not only that it was delivered
    assert f"flow run {paused.id}: approved" in told and "declared" in told
    state = run.join()

    assert state.is_completed(), state.message
    assert state.result().approver == "bob"
    (record,) = state.result().approvals
    assert (record.login, record.verified, record.channel.value) == ("bob", False, "prefect-form")
    assert state_versions(sandbox, "e2e-prd") >= 1
    assert dns_value(sandbox, "app.e2e-prd.sandbox.internal") is not None
    assert argo_app(argocd, sandbox, "expense-e2e-prd")["status"]["sync"]["revision"] == sha


def test_a_rejection_in_the_prefect_form_applies_nothing(sandbox, infra, argocd):
    """Anyone who reaches the form may reject (stopping is always safe); the run ends Cancelled."""
    from prefect.flow_runs import resume_flow_run

    answer, outcome = {"approve": False, "approver": "bob", "reason": "not today"}, "rejected"
    env = "e2e-rej"
    infra.add_environment(env, approval=True)
    sha = infra.push(f"Add {env}", author="Alice Author", email="alice@example.com")

    run = Background(env, sha)
    resume_flow_run(find_paused_run(env).id, run_input=answer)
    state = run.join()

    assert state.is_cancelled(), state
    assert state.result(raise_on_failure=False).report.outcome == outcome
    assert not run_files_left(state)
    assert state_versions(sandbox, env) == 0
    assert dns_value(sandbox, f"app.{env}.sandbox.internal") is None


def test_approval_timeout_applies_nothing(sandbox, infra):
    infra.add_environment("e2e-tmo", approval=True, approval_timeout=3)
    sha = infra.push("Add e2e-tmo with a 3 s approval timeout")

    state = deploy_state("e2e-tmo", sha)

    assert state.is_failed()
    assert wait_for_log(state.state_details.flow_run_id, "nobody approved")
    assert not run_files_left(state)
    assert state_versions(sandbox, "e2e-tmo") == 0


def test_state_moved_after_approval_is_refused_and_replanned(sandbox, infra):
    """Someone applies between approval and apply: the approved plan is stale, never applied."""
    from prefect.flow_runs import resume_flow_run

    infra.add_environment("e2e-stale", approval=True, approval_rule="allow_declared = true")
    sha = infra.push("Add e2e-stale")
    first = Background("e2e-stale", sha)
    paused = find_paused_run("e2e-stale")

    # Meanwhile the state moves: another version of the stack is applied outside this run.
    infra.set_var("e2e-stale", "replicas", "5")
    other = infra.push("Scale e2e-stale")
    from tests.helpers_terraform import apply_outside_pipeline

    apply_outside_pipeline(sandbox, "e2e-stale", other)
    versions_before = state_versions(sandbox, "e2e-stale")

    resume_flow_run(paused.id, run_input={"approve": True, "approver": "bob", "reason": "ok"})
    # The run re-plans against the new state and asks again.
    second = find_paused_run("e2e-stale")
    resume_flow_run(second.id, run_input={"approve": True, "approver": "bob", "reason": "again"})
    state = first.join()

    assert state.is_completed(), state.message
    assert state_versions(sandbox, "e2e-stale") > versions_before


def test_argocd_degraded_after_apply_rolls_back_dns_argocd_and_infrastructure(sandbox, infra,
                                                                              argocd):
    infra.add_environment("e2e-rb")
    good = infra.push("Add e2e-rb")
    assert deploy_state("e2e-rb", good).is_completed()
    good_dns = dns_value(sandbox, "app.e2e-rb.sandbox.internal")

    infra.set_var("e2e-rb", "image", '"ghcr.io/acme/expense:2.0.0-broken"')
    bad = infra.push("Release 2.0.0")
    argocd.post("/_emulator/applications/expense-e2e-rb/degrade-next-sync",
                json={"message": "CrashLoopBackOff"})

    state = deploy_state("e2e-rb", bad)

    assert state.is_failed()
    assert "rolled back" in state.message and "Degraded" in state.message
    report = state.result(raise_on_failure=False).report  # a DeployStopped: Prefect wants an
    assert report.outcome == "rolled-back"                 # exception in a Failed state
    assert any(line.startswith("Argo CD") for line in report.rollback)
    assert any(line.startswith("infrastructure") for line in report.rollback)
    app = argo_app(argocd, sandbox, "expense-e2e-rb")
    assert app["status"]["sync"]["revision"] == good
    assert app["status"]["health"]["status"] == "Healthy"
    assert dns_value(sandbox, "app.e2e-rb.sandbox.internal") == good_dns
    # Infrastructure is back at the good commit: planning it again shows no changes.
    again = deploy_state("e2e-rb", good)
    assert again.result().outcome == "no-changes"


def test_first_deploy_failing_after_apply_says_there_is_nothing_to_roll_back_to(sandbox, infra,
                                                                                argocd):
    infra.add_environment("e2e-first")
    sha = infra.push("Add e2e-first")
    argocd.post("/_emulator/applications/expense-e2e-first/degrade-next-sync",
                json={"message": "ImagePullBackOff"})

    state = deploy_state("e2e-first", sha)

    assert state.is_failed()
    assert "Degraded" in state.message and "ImagePullBackOff" in state.message
    assert "ROLLBACK FAILED" in state.message and "no last good commit" in state.message
    assert "left as the failed deploy left it" in state.message
    assert state_versions(sandbox, "e2e-first") >= 1  # applied, and kept: never destroyed


def test_transient_argocd_503_is_retried_and_succeeds(sandbox, infra, argocd):
    infra.add_environment("e2e-503")
    sha = infra.push("Add e2e-503")
    argocd.post("/_emulator/faults/unavailable", json={"count": 2, "status": 503})

    state = deploy_state("e2e-503", sha)

    assert state.is_completed(), state.message
    assert argo_app(argocd, sandbox, "expense-e2e-503")["status"]["sync"]["revision"] == sha


def wait_until(condition: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def operation_phase(argocd: httpx.Client, sandbox: Any, name: str) -> str | None:
    try:
        app = argo_app(argocd, sandbox, name)
    except httpx.HTTPStatusError:
        return None  # not created yet
    return app.get("status", {}).get("operationState", {}).get("phase")


def any_run_logged(run_name: str, text: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=[run_name])))
    return any(wait_for_log(run.id, text, timeout=0.1) for run in runs)


def test_two_deploys_of_one_environment_run_one_after_the_other(sandbox, infra, argocd):
    infra.add_environment("e2e-conc")
    sha = infra.push("Add e2e-conc")
    # The first deploy holds the environment's slot until the test lets its Argo CD sync finish,
    # so the second one is certain to arrive while the slot is taken (no reliance on timing).
    argocd.put("/_emulator/sync-seconds", json={"seconds": 600})
    try:
        first = Background("e2e-conc", sha)
        wait_until(lambda: operation_phase(argocd, sandbox, "expense-e2e-conc") == "Running",
                   "the first deploy's Argo CD sync")
        second = Background("e2e-conc", sha)
        wait_until(lambda: any_run_logged("deploy-e2e-conc", "waiting: another deploy of e2e-conc"),
                   "the second deploy to wait for the slot")
        # A deploy is running: its state lock is in use, not stuck, so unlock is refused.
        from flows.unlock import unlock

        refused = unlock("e2e-conc", "00000000-0000-4000-8000-000000000000", by="ops",
                         reason="impatient", return_state=True)
        assert refused.is_failed() and "a deploy of e2e-conc is running" in refused.message
        argocd.put("/_emulator/sync-seconds", json={"seconds": 0.5})
        argocd.post("/_emulator/applications/expense-e2e-conc/finish-operation")
        a, b = first.join(), second.join()
    finally:
        argocd.put("/_emulator/sync-seconds", json={"seconds": 2.0})
    assert a.is_completed() and b.is_completed(), (a.message, b.message)
    # Serialised: the first applied, the second found nothing left to do. Never two applies at once.
    assert (a.result().outcome, b.result().outcome) == ("deployed", "no-changes")
    assert wait_for_log(b.state_details.flow_run_id, "got the deploy slot of e2e-conc")


def test_manual_rollback_goes_back_to_the_previous_good_commit(sandbox, infra, argocd):
    from flows.rollback import rollback

    infra.add_environment("e2e-man")
    good = infra.push("Add e2e-man")
    assert deploy_state("e2e-man", good).is_completed()
    infra.set_var("e2e-man", "replicas", "4")
    newer = infra.push("Scale e2e-man to 4")
    assert deploy_state("e2e-man", newer).is_completed()

    state = rollback("e2e-man", return_state=True)

    assert state.is_completed(), state.message
    done = state.result()
    assert any(line.startswith("infrastructure: re-applied") for line in done)
    assert argo_app(argocd, sandbox, "expense-e2e-man")["status"]["sync"]["revision"] == good
    # The environment now matches the good commit exactly.
    assert deploy_state("e2e-man", good).result().outcome == "no-changes"


def test_a_moved_state_backend_waits_for_the_environments_approval(sandbox, infra, argocd,
                                                                   tmp_path, monkeypatch):
    """Moving an environment's state (within what the platform grants) is a rule change: its next
    deploy asks for approval, although the environment's rule needs none."""
    from prefect.flow_runs import resume_flow_run

    from deployments.sandbox.launcher import SANDBOX_GRANT

    env = "e2e-move"
    infra.add_environment(env, approval_rule="allow_declared = true")
    first = infra.push(f"Add {env}")
    assert deploy_state(env, first).is_completed()

    grant = tmp_path / "grant.toml"  # the platform allows a second key (and keys that reach it)
    grant.write_text(SANDBOX_GRANT.read_text() + (
        f'\n[environments.{env}]\nplan_credentials = "gitops-aws"\n'
        f'apply_credentials = "gitops-aws"\n'
        f'state_keys = ["expense/{env}-v2/terraform.tfstate"]\n'))
    monkeypatch.setenv("GITOPS_GRANT_FILE", str(grant))
    backend = infra.path / "terraform" / "environments" / env / "backend.hcl"
    backend.write_text(backend.read_text().replace(f"expense/{env}/", f"expense/{env}-v2/"))
    moved = infra.push(f"Move {env}'s state")

    run = Background(env, moved)
    paused = find_paused_run(env)
    assert wait_for_log(paused.id, f"the state moves from s3://gitops-tfstate/expense/{env}/")
    assert state_versions(sandbox, f"{env}-v2") == 0  # nothing written while waiting
    resume_flow_run(paused.id, run_input={"approve": True, "approver": "bob", "reason": "moving"})
    state = run.join()
    assert state.is_completed(), state.message
    assert state.result().approver == "bob"
    assert state_versions(sandbox, f"{env}-v2") >= 1


def test_a_rollback_that_breaks_a_hard_policy_is_refused(sandbox, infra, argocd):
    """The rollback re-plans through the same plan → check step as a deploy, with the policies of
    the default branch now: a target that breaks one is refused, nothing applied."""
    from flows.rollback import rollback

    env = "e2e-rbpol"
    infra.add_environment(env)
    good = infra.push(f"Add {env}")
    assert deploy_state(env, good).is_completed()
    infra.set_var(env, "replicas", "4")
    newer = infra.push(f"Scale {env} to 4")
    assert deploy_state(env, newer).is_completed()
    policy = infra.path / "policies" / "env" / env / "min_replicas.rego"
    policy.parent.mkdir(parents=True)
    policy.write_text(
        "# gitops-flows: level = hard-mandatory\n"
        "package gitops.min_replicas\n\n"
        "import rego.v1\n\n"
        "deny contains msg if {\n"
        "\tsome rc in input.resource_changes\n"
        '\trc.type == "sandbox_service"\n'
        "\trc.change.after.replicas < 3\n"
        '\tmsg := sprintf("%s: at least 3 replicas", [rc.address])\n'
        "}\n")
    infra.push(f"{env} runs at least 3 replicas")
    versions = state_versions(sandbox, env)

    state = rollback(env, return_state=True)  # back to `good`: 2 replicas

    assert state.is_failed()
    assert "at least 3 replicas" in state.message and "NOT rolled back" in state.message
    assert state_versions(sandbox, env) == versions  # nothing applied


def test_an_unmerged_commit_is_refused_by_deploy_and_by_rollback(sandbox, infra, argocd):
    """Only commits in main's history reach an environment; the commit saying
    ``allow_unmerged = true`` for itself does not count (the rule is main's)."""
    from flows.rollback import rollback

    env = "e2e-unrev"
    infra.add_environment(env)
    infra.push(f"Add {env}")
    infra.set_var(env, "replicas", "4")
    infra.set_top_level(env, "allow_unmerged = true")
    unmerged = infra.push_branch(f"scale-{env}", f"Scale {env}, unreviewed")

    state = deploy_state(env, unmerged)

    assert state.is_failed()
    assert f"commit {unmerged[:12]} is not in the history of main" in state.message
    assert "only reviewed commits" in state.message
    assert state_versions(sandbox, env) == 0  # nothing planned or applied

    refused = rollback(env, to=unmerged, return_state=True)

    assert refused.is_failed()
    assert f"commit {unmerged[:12]} is not in the history of main" in refused.message
    assert state_versions(sandbox, env) == 0


def test_an_environment_allowing_unmerged_commits_deploys_one_and_says_so(sandbox, infra, argocd):
    env = "e2e-scratch"
    infra.add_environment(env)
    infra.set_top_level(env, "allow_unmerged = true")
    infra.push(f"Add {env}, a scratch environment that takes unmerged commits")
    infra.set_var(env, "replicas", "3")
    unmerged = infra.push_branch(f"try-{env}", f"Try {env} at 3 replicas")

    state = deploy_state(env, unmerged)

    assert state.is_completed(), state.message
    report = state.result()
    assert report.outcome == "deployed" and report.commit == unmerged
    assert "UNMERGED" in state.message
    assert f"{unmerged[:12]} is NOT in the history of main" in report.unmerged
    assert wait_for_log(state.state_details.flow_run_id, "deployed anyway because the "
                                                         "environment sets allow_unmerged")
    assert argo_app(argocd, sandbox, f"expense-{env}")["status"]["sync"]["revision"] == unmerged


def test_a_rollback_to_a_tampered_last_good_commit_is_refused(sandbox, infra, argocd):
    """The last-good Variable is writable by any Prefect API caller: its commits are checked like
    any other."""
    from prefect.variables import Variable

    from flows.rollback import rollback

    env = "e2e-tamper"
    infra.add_environment(env)
    good = infra.push(f"Add {env}")
    assert deploy_state(env, good).is_completed()
    infra.set_var(env, "image", '"ghcr.io/evil/expense:latest"')
    planted = infra.push_branch(f"evil-{env}", "Not reviewed by anyone")
    Variable.set(f"gitops-last-good-{env}", {"sha": good, "history": [planted, good]},
                 overwrite=True, _sync=True)
    versions = state_versions(sandbox, env)

    state = rollback(env, return_state=True)  # default target: the "previous good" = planted

    assert state.is_failed()
    assert f"commit {planted[:12]} is not in the history of main" in state.message
    assert state_versions(sandbox, env) == versions  # nothing applied
    assert argo_app(argocd, sandbox, f"expense-{env}")["status"]["sync"]["revision"] == good
