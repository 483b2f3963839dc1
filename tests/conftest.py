"""Shared fixtures: isolation from real clouds, and the real local servers the tests run against."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployments.sandbox.aws import (
    SANDBOX_ACCESS_KEY,
    SANDBOX_SECRET_KEY,
    MotoServer,
    StateBackend,
    ensure_state_backend,
    sandbox_client,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

_SCRUBBED = (
    "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE",
    "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy",
    "GITHUB_TOKEN", "GH_TOKEN", "ARGOCD_AUTH_TOKEN", "TF_CLI_CONFIG_FILE", "TF_DATA_DIR",
    "PREFECT_API_URL", "PREFECT_API_KEY",
)


def pytest_configure(config: pytest.Config) -> None:
    # Set before anything imports boto3 or Prefect: no test can reach a real account or server.
    for name in _SCRUBBED:
        os.environ.pop(name, None)
    os.environ["AWS_ACCESS_KEY_ID"] = SANDBOX_ACCESS_KEY
    os.environ["AWS_SECRET_ACCESS_KEY"] = SANDBOX_SECRET_KEY
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ["CHECKPOINT_DISABLE"] = "1"
    os.environ["TF_IN_AUTOMATION"] = "1"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="gitops-prefect-home-"))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One real moto server (S3, DynamoDB, Route53) on loopback for the whole session."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with MotoServer(log_path=log) as server:
        yield server


@pytest.fixture()
def state_backend(moto_server: MotoServer, request: pytest.FixtureRequest) -> StateBackend:
    """A fresh versioned state bucket and lock table per test (names unique to the test)."""
    suffix = abs(hash(request.node.nodeid)) % 10**8
    backend = StateBackend(bucket=f"tfstate-{suffix}", lock_table=f"tflocks-{suffix}")
    ensure_state_backend(sandbox_client("s3", moto_server.endpoint),
                         sandbox_client("dynamodb", moto_server.endpoint), backend)
    return backend


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One real temporary Prefect server for the session (pause/resume, variables, blocks)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def sandbox(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The whole local sandbox (moto, Argo CD + GitHub emulators, provider, infra repo) with its
    credentials in blocks on the test Prefect server, and the GITOPS_* settings pointing at it."""
    from deployments.blocks import register_sandbox_blocks
    from deployments.sandbox.launcher import Sandbox, SandboxState

    box = Sandbox(tmp_path_factory.mktemp("sandbox"), source=REPO_ROOT)
    env = box.up(services=("moto", "argocd", "github"), register_blocks=False)
    state = SandboxState.load(box.state_file)
    register_sandbox_blocks(None, moto_endpoint=state.services["moto"].url, tokens=state.tokens)
    env["GITOPS_APPROVAL_POLL_SECONDS"] = "1"
    env["GITOPS_ARGOCD_SYNC_TIMEOUT_SECONDS"] = "30"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield box
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        box.down()
