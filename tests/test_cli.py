"""End to end through the command line a user types (`gitops-flows ...`), on the sandbox.

The flows behind each command are tested in depth elsewhere; these tests hold the commands to
what the README promises: exit codes, what they print, and that they act on the sandbox.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from deployments.cli import main as cli
from infra_repo import InfraRepo
from test_deploy_flow import dns_value, state_versions

pytestmark = pytest.mark.slow

ENV = "e2e-cli"


@pytest.fixture()
def infra(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InfraRepo:
    monkeypatch.setenv("GITOPS_SANDBOX_DIR", str(sandbox.root))  # `tamper` acts on this sandbox
    return InfraRepo(os.environ["GITOPS_REPOSITORY_URL"], tmp_path / "infra")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_deploy_tamper_drift_and_rollback_from_the_command_line(
        sandbox: Any, infra: InfraRepo, capsys: pytest.CaptureFixture[str]) -> None:
    infra.add_environment(ENV)
    first = infra.push(f"Add {ENV}")

    # plan: the summary, nothing applied.
    code, out, _ = run(capsys, "plan", ENV, "--sha", first)
    assert code == 0 and "4 to add, 0 to change, 0 to destroy" in out
    assert state_versions(sandbox, ENV) == 0

    # deploy (default: head of the default branch), then a second commit.
    code, out, _ = run(capsys, "deploy", ENV)
    assert code == 0 and f"Completed: {ENV} is at {first[:12]}" in out
    assert dns_value(sandbox, f"app.{ENV}.sandbox.internal") is not None
    infra.set_var(ENV, "replicas", "4")
    second = infra.push(f"Scale {ENV} to 4")
    code, out, _ = run(capsys, "apply", ENV, "--sha", second)
    assert code == 0 and f"{ENV} is at {second[:12]}" in out

    # tamper + drift: the console change is reported with its attribute.
    code, out, _ = run(capsys, "tamper", ENV, "service", "web", "replicas=9")
    assert code == 0 and f"expense-{ENV}-web" in out
    code, _, err = run(capsys, "tamper", ENV, "service", "nope", "replicas=9")
    assert code == 2 and f"no service named expense-{ENV}-nope" in err
    code, out, _ = run(capsys, "drift", ENV)
    line = next(ln for ln in out.splitlines() if ln.startswith(ENV))
    assert code == 0 and "drifted" in line and "replicas" in line

    # rollback (default: the good commit before the deployed one) puts the first commit back.
    code, out, _ = run(capsys, "rollback", ENV)
    assert code == 0
    assert f"rolled back infrastructure: re-applied {first[:12]}" in out
    code, out, _ = run(capsys, "plan", ENV, "--sha", first)
    assert code == 0 and "no changes" in out.lower()


def test_unknown_environments_are_refused_with_the_known_ones(
        sandbox: Any, infra: InfraRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "nope")
    assert code == 1 and "unknown environment 'nope'" in out and "staging" in out
    code, out, _ = run(capsys, "deploy", "../prod")
    assert code == 1 and "invalid environment name '../prod'" in out
    code, out, _ = run(capsys, "rollback", "../prod")
    assert code == 1 and "invalid environment name '../prod'" in out
