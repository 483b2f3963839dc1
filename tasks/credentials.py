"""Credentials from Prefect blocks (prefect-aws AwsCredentials, Secret): never files, never Git."""

from __future__ import annotations

from typing import Any

from gitops.config import Environment
from gitops.errors import ConfigError


def load_aws_credentials(block_name: str) -> Any:
    """The AwsCredentials block named ``block_name``."""
    from prefect_aws import AwsCredentials

    try:
        return AwsCredentials.load(block_name, _sync=True)
    except ValueError as exc:
        raise ConfigError(f"AwsCredentials block {block_name!r} not found: create it in the "
                          "Prefect UI (Blocks) or with prefect-aws before deploying") from exc


def load_secret(block_name: str) -> str:
    """The value of the Secret block named ``block_name``."""
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(block_name, _sync=True).get())
    except ValueError as exc:
        raise ConfigError(f"Secret block {block_name!r} not found: create it in the Prefect UI "
                          "(Blocks > Secret) before deploying") from exc


def aws_environment(credentials: Any) -> dict[str, str]:
    """Environment variables that hand the block's credentials to terraform (not argv)."""
    env: dict[str, str] = {}
    if credentials.aws_access_key_id:
        env["AWS_ACCESS_KEY_ID"] = credentials.aws_access_key_id
    if credentials.aws_secret_access_key is not None:
        env["AWS_SECRET_ACCESS_KEY"] = credentials.aws_secret_access_key.get_secret_value()
    if credentials.aws_session_token:
        env["AWS_SESSION_TOKEN"] = credentials.aws_session_token
    if credentials.region_name:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = credentials.region_name
    if credentials.profile_name:
        env["AWS_PROFILE"] = credentials.profile_name
    return env


def secret_variables(environment: Environment) -> dict[str, str]:
    """TF_VAR_* values for the environment's secret variables, read from their Secret blocks."""
    return {f"TF_VAR_{var}": load_secret(block)
            for var, block in environment.secret_variables.items()}


def endpoint_url(credentials: Any) -> str | None:
    """The endpoint override of an AwsCredentials block (the sandbox's moto), if any."""
    params = getattr(credentials, "aws_client_parameters", None)
    url = getattr(params, "endpoint_url", None) if params is not None else None
    return str(url) if url else None
