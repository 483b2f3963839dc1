"""Run directories: the owner's only, and what crashed runs left is swept by the next run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("prefect_api")


def _run_in(state_name: str) -> str:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Crashed, Paused, Running

    @flow(name="some-earlier-run")
    def earlier() -> None:  # pragma: no cover - never executed, only registered
        return None

    states = {"Completed": Completed, "Crashed": Crashed, "Paused": Paused, "Running": Running}
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(earlier)
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, states[state_name](), force=True)
        return str(run.id)


def test_the_next_run_sweeps_finished_runs_and_keeps_waiting_ones(tmp_path: Path,
                                                                    monkeypatch) -> None:
    from prefect import flow

    from flows.common import run_dir
    from gitops.settings import GitopsSettings

    runs = tmp_path / "work" / "runs"
    left = {state: _run_in(state) for state in ("Completed", "Crashed", "Paused", "Running")}
    unknown = str(uuid.uuid4())
    for name in (*left.values(), unknown, "not-a-run"):
        (runs / name / "checkout").mkdir(parents=True)
        (runs / name / "checkout" / "plan.tfplan").write_text("secret in clear")
    settings = GitopsSettings(workdir=tmp_path / "work")

    @flow(name="sweeping-run")
    def next_run() -> str:
        return str(run_dir(settings))

    mine = Path(next_run())
    kept = sorted(p.name for p in runs.iterdir())
    assert kept == sorted([left["Paused"], left["Running"], "not-a-run", mine.name])
    for path in (tmp_path / "work", runs, mine):
        assert path.stat().st_mode & 0o777 == 0o700
