"""Typed test doubles for the webhook receiver."""

from __future__ import annotations

import threading

from gitops.receiver import Decision


class LaunchFailed(RuntimeError):
    """What `FakeLauncher(fail=True)` raises, standing in for a Prefect API error."""


class FakeLauncher:
    """A `gitops.receiver.Launcher` that records every call and dedupes on the idempotency key,
    like `run_deployment(..., idempotency_key=...)`: the same key gives back the same run id.

    ``waiting`` maps an environment to the ids of the runs paused for its approval; `wake`
    resumes them (each once, like a run that is no longer paused after its resume)."""

    def __init__(self, *, fail: bool = False,
                 waiting: dict[str, list[str]] | None = None) -> None:
        self.fail = fail
        self.calls: list[Decision] = []
        self.wake_calls: list[Decision] = []
        self._runs: dict[str, str] = {}
        self._waiting = {env: list(ids) for env, ids in (waiting or {}).items()}
        self._lock = threading.Lock()

    def launch(self, decision: Decision) -> str:
        """Record the call; return the run id for its idempotency key (new key: new run)."""
        with self._lock:
            self.calls.append(decision)
            if self.fail:
                raise LaunchFailed("Prefect API unreachable (secret-looking detail: hunter2)")
            key = decision.idempotency_key or f"no-key-{len(self.calls)}"
            if key not in self._runs:
                self._runs[key] = f"run-{len(self._runs) + 1}"
            return self._runs[key]

    def wake(self, decision: Decision) -> list[str]:
        """Record the call; return (and forget) the runs waiting for its environment."""
        with self._lock:
            self.wake_calls.append(decision)
            if self.fail:
                raise LaunchFailed("Prefect API unreachable (secret-looking detail: hunter2)")
            return self._waiting.pop(str(decision.parameters["environment"]), [])

    @property
    def runs(self) -> dict[str, str]:
        """Idempotency key -> run id, one entry per distinct run started."""
        with self._lock:
            return dict(self._runs)
