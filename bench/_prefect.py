"""The process environment of a benchmark run, and one temporary Prefect server for the
benchmarks that run flows (about 9 s to start).

``python -m bench`` calls :func:`isolate` before anything imports boto3 or Prefect, and opens the
server once for every selected benchmark that needs it (a nested :func:`prefect_server` reuses it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from deployments.sandbox.aws import SANDBOX_ACCESS_KEY, SANDBOX_REGION, SANDBOX_SECRET_KEY

_SCRUBBED = (
    "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE",
    "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy",
    "GITHUB_TOKEN", "GH_TOKEN", "ARGOCD_AUTH_TOKEN", "TF_CLI_CONFIG_FILE", "TF_DATA_DIR",
    "PREFECT_API_URL", "PREFECT_API_KEY",
)

_depth = 0


def isolate(prefect_home: Path) -> None:
    """Loopback only, dummy AWS credentials, a private quiet Prefect home (like tests/conftest)."""
    for name in _SCRUBBED:
        os.environ.pop(name, None)
    os.environ.update({
        "AWS_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET_KEY,
        "AWS_DEFAULT_REGION": SANDBOX_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "CHECKPOINT_DISABLE": "1",
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # flow and task logs still go to the API, as in production; the console shows warnings
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    })


@contextlib.contextmanager
def prefect_server() -> Iterator[None]:
    """A real temporary Prefect server as the API for flows run inside (re-entrant)."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        _depth = 1
        try:
            yield
        finally:
            _depth = 0

