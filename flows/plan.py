"""The plan flow: one environment at one commit, planned and summarised; nothing applied."""

from __future__ import annotations

from prefect import flow
from prefect.logging import get_run_logger

from gitops.settings import load_settings
from flows.common import DISCARD_RUN_FILES, open_workspace, publish_plan
from tasks.terraform import plan_stack, validate_stack


@flow(name="plan", flow_run_name="plan-{environment}", **DISCARD_RUN_FILES)
def plan(environment: str, sha: str | None = None) -> str:
    """Validate and plan ``environment``; publish the plan artifact; return the summary."""
    settings = load_settings()
    ws, commit = open_workspace(settings, environment, sha or settings.default_branch)
    validate_stack(ws)
    staged = plan_stack(ws)
    publish_plan(ws, staged)
    get_run_logger().info("%s at %s:\n%s", environment, commit.sha[:12], staged.summary)
    return staged.summary
