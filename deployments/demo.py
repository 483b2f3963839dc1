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
    print("\nTry prod, which waits for approval:")
    print("  .venv/bin/gitops-flows deploy prod")
    print("  -> the run pauses; open it in the Prefect UI and fill in the form, or from another shell:")
    print("     .venv/bin/gitops-flows approvals --plans              # what waits, and its plan")
    print("     .venv/bin/gitops-flows approve prod --as <your-name> [--reject] [--reason ...]")
    print("Roll back by hand:  .venv/bin/gitops-flows rollback staging")
    print("Stop the sandbox:   make sandbox-down")
    return 0
