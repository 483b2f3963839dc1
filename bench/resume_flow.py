"""The baseline of bench/resume.py: a bare flow that suspends for an input and, resumed, logs a
marker. No work before or after: what Prefect itself costs to resume a suspended run on a
process worker (worker pickup, a new process, the flow re-run from the top to its wait).

Deployed by bench/resume.py on the `gitops` pool (entrypoint ``bench/resume_flow.py:bare_suspend``).
"""

from __future__ import annotations

from prefect import flow
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger

MARKER = "bench-resume: resumed"


class Go(RunInput):
    """The input the bare flow waits for (a RunInput, as the deploy's approval form is)."""

    go: bool = False


@flow(name="bench-bare-suspend")
def bare_suspend(key: str) -> bool:
    """Suspend for a :class:`Go` under ``key``; once resumed, log :data:`MARKER`."""
    answer = suspend_flow_run(wait_for_input=Go, key=key, timeout=3600)
    get_run_logger().info("%s (go=%s)", MARKER, answer.go)
    return answer.go
