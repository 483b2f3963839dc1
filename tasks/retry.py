"""The retry policy: retry transient failures only (5xx, timeouts, throttling, connection errors).

Never a 4xx, a validation error or a policy violation, and never `terraform apply` (see
tasks/terraform.py: apply has no retries at all).
"""

from __future__ import annotations

from typing import Any

from gitops.errors import ArgoCDUnavailable, ConfigError, GitHubUnavailable
from gitops.route53 import DnsUnavailable

TRANSIENT: tuple[type[BaseException], ...] = (ArgoCDUnavailable, GitHubUnavailable, DnsUnavailable,
                                              ConnectionError, TimeoutError)
# Exponential backoff for the task decorators: 2 s, 4 s, 8 s (+ jitter).
BACKOFF = [2, 4, 8]


def is_transient(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a failure worth retrying."""
    return isinstance(exc, TRANSIENT)


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only when the task failed with a transient error."""
    try:
        exc = state.result(raise_on_failure=False)
    except BaseException as err:  # the state may hold the exception as its own result
        exc = err
    return is_transient(exc)


def unless_refused(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn` for git fetches: retry anything but a refusal (ConfigError:
    an unsafe checkout is refused the same way every time)."""
    try:
        exc = state.result(raise_on_failure=False)
    except BaseException as err:  # noqa: BLE001 - the state may hold the exception as its result
        exc = err
    return not isinstance(exc, ConfigError)
