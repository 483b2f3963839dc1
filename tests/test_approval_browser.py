"""End to end in a real browser: a deploy waits for approval, someone answers the Prefect UI's
form in headless Chromium, and the deploy applies. The form is the only channel of a dev-like
environment (``allow_declared = true``) that no code host vouches for: a typed name counts there,
recorded as declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser import answer_resume_form, chromium, prefect_ui
from tests.test_deploy_flow import (  # noqa: F401 - fixtures
    Background,
    find_paused_run,
    infra,
    state_versions,
)

pytestmark = pytest.mark.slow


def test_a_declared_approval_typed_in_the_prefect_ui_deploys(sandbox: Any, infra: Any,
                                                               tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    env = "e2e-ui"
    infra.add_environment(env, approval=True, approval_rule="allow_declared = true")
    sha = infra.push(f"Add {env}", author="Alice Author", email="alice@example.com")
    run = Background(env, sha)  # plans while the UI starts

    # The test server serves no UI: one `prefect server start` serves it for that API.
    with prefect_ui(PREFECT_API_URL.value(), tmp_path) as ui, \
            chromium(tmp_path / "chromium", failure_screenshot=tmp_path / "failure.png") as driver:
        paused = find_paused_run(env)
        assert state_versions(sandbox, env) == 0
        shown = answer_resume_form(driver, ui, paused.id, {
            "Approve": True, "Approver": "carol", "Reason": "read the plan in the UI"})
        state = run.join()

    assert f"Approve the {env} deploy?" in shown and sha[:12] in shown
    assert "counts as declared" in shown
    assert state.is_completed(), state.message
    report = state.result()
    assert report.outcome == "deployed" and report.applied and report.approver == "carol"
    (record,) = report.approvals
    assert record.describe() == "approved by 'carol' (declared, unverified, prefect-form)"
    assert record.reason == "read the plan in the UI"
    assert f"fingerprint {record.fingerprint}" in shown  # the plan shown is the plan approved
    assert state_versions(sandbox, env) >= 1
