"""`make run`: deploy staging end to end on the sandbox, then show where everything landed."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from deployments.sandbox.launcher import Sandbox
from gitops.settings import load_settings


def run_demo() -> int:
    """Run the staging pipeline once and print what it did and where to look."""
    from flows.deploy import deploy

    settings = load_settings()
    print("== deploying staging on the sandbox (checkout, validate, plan, apply, DNS, Argo CD)")
    state = deploy("staging", return_state=True)
    print(f"== {state.name}: {state.message}")
    if not state.is_completed():
        return 1
    report = state.result()
    print(f"   commit      {report.commit[:12]}  ({report.outcome})")
    print(f"   DNS         {report.dns or '-'}")
    print(f"   Argo CD     {report.argocd or '-'}")

    if os.environ.get("GITOPS_BACKEND_OVERRIDES"):
        sandbox_dir = os.environ.get("GITOPS_SANDBOX_DIR")
        s3 = Sandbox(Path(sandbox_dir) if sandbox_dir else None).aws_client("s3")  # the admin
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="gitops-tfstate").get("Contents", [])]
        print(f"   state       s3://gitops-tfstate/ {', '.join(keys)}")
    ui = settings.prefect_ui_url
    if ui:
        try:
            httpx.get(f"{ui}/api/health", timeout=2.0)
            print(f"\nPrefect UI: {ui}  (flow runs, task logs, the plan artifact)")
        except httpx.HTTPError:
            pass
    show_prod_waiting(settings)
    print("Roll back by hand:  .venv/bin/gitops-flows rollback staging")
    print("Stop the sandbox:   make sandbox-down")
    return 0


def show_prod_waiting(settings) -> None:
    """Start a prod deploy in the background, wait until it asks for approval, say how to give it.

    prod counts only approvals GitHub vouches for (the emulator's GitHub here): a comment by a
    member of acme/platform. dev's rule also takes a declared approval (the Prefect UI form).
    """
    import sys
    import time

    from deployments.approvals import paused_approvals

    box = Sandbox(Path(os.environ["GITOPS_SANDBOX_DIR"])
                  if os.environ.get("GITOPS_SANDBOX_DIR") else None)
    cli = str(Path(sys.executable).with_name("gitops-flows"))
    waiting = paused_approvals("prod")
    if not waiting:
        from prefect.deployments import run_deployment

        print("\n== deploying prod on the sandbox's worker (deployment deploy/deploy); it "
              "waits for an approval")
        started = run_deployment("deploy/deploy", parameters={"environment": "prod"}, timeout=0)
        deadline = time.monotonic() + 300
        while not waiting and time.monotonic() < deadline:
            time.sleep(2)
            waiting = paused_approvals("prod")
        if not waiting:
            print(f"   prod did not reach its approval (no changes, or it failed): see flow run "
                  f"{started.id} and {box.logs / 'worker.log'}")
            return
    run = waiting[0]
    print(f"== prod waits for approval: flow run {run.run_id} ({run.state_name}: no process "
          "waits; restart the worker and the approval still works)")
    if settings.prefect_ui_url:
        print(f"   {settings.prefect_ui_url.rstrip('/')}/runs/flow-run/{run.run_id}")
    print("   The request, with the plan and the fingerprint to approve, is on the commit in the")
    print("   emulator's GitHub. Approve as alice (acme/platform: an allowed approver):")
    print(f"     GITOPS_GITHUB_TOKEN=$({cli} sandbox token alice) {cli} approve prod")
    print("   As bob (write access, not in acme/platform) the same is refused, and says why.")
    print(f"   See what waits, with its plan:  {cli} approvals --plans")
    print("   The Prefect UI form takes a rejection from anyone; an approval typed there does not")
    print("   count for prod. dev's rule allows declared approvals: `deploy dev`, then approve it")
    print(f"   in the form or with  {cli} approve dev --as <your-name>")
