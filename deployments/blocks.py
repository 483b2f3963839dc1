"""Prefect blocks that hold every credential the pipeline uses (the only place secrets live)."""

from __future__ import annotations

import os

from deployments.sandbox.aws import SANDBOX_ACCESS_KEY, SANDBOX_REGION, SANDBOX_SECRET_KEY

AWS_BLOCK = "gitops-aws"
SECRET_BLOCKS = {
    "argocd": "gitops-argocd-token",
    "github": "gitops-github-token",
    "webhook": "gitops-webhook-secret",
}
SANDBOX_ENVIRONMENTS = ("dev", "staging", "prod")


def register_sandbox_blocks(api_url: str | None, *, moto_endpoint: str,
                            tokens: dict[str, str]) -> None:
    """Save the sandbox's AwsCredentials (endpoint = moto) and Secret blocks.

    On ``api_url`` when given, else on the Prefect API of the current settings context.
    """
    if api_url is not None:
        os.environ["PREFECT_API_URL"] = api_url
    from prefect.blocks.system import Secret
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    AwsCredentials(
        aws_access_key_id=SANDBOX_ACCESS_KEY,
        aws_secret_access_key=SANDBOX_SECRET_KEY,
        region_name=SANDBOX_REGION,
        aws_client_parameters=AwsClientParameters(endpoint_url=moto_endpoint),
    ).save(AWS_BLOCK, overwrite=True)
    for key, block in SECRET_BLOCKS.items():
        Secret(value=tokens[key]).save(block, overwrite=True)
    for env in SANDBOX_ENVIRONMENTS:
        name = f"gitops-db-password-{env}"
        Secret(value=tokens[f"db-{env}"]).save(name, overwrite=True)


RECORD_PREFIXES = ("gitops-last-good-", "gitops-drift-")


def forget_deploy_records(api_url: str | None) -> list[str]:
    """Delete the last-good and drift records (Prefect Variables); return their names.

    For a sandbox whose AWS side restarted empty: those records describe state that is gone.
    """
    if api_url is not None:
        os.environ["PREFECT_API_URL"] = api_url
    from prefect.client.orchestration import get_client

    removed = []
    with get_client(sync_client=True) as client:
        for variable in client.read_variables():
            if variable.name.startswith(RECORD_PREFIXES):
                client.delete_variable_by_name(variable.name)
                removed.append(variable.name)
    return removed
