"""Prefect blocks that hold every credential the pipeline uses (the only place secrets live)."""

from __future__ import annotations

import os

from gitops.errors import SandboxError
from deployments.sandbox import iam
from deployments.sandbox.aws import SANDBOX_REGION

#: The admin's block: the sandbox's own tooling. Every block and what its user may do:
#: ``deployments/sandbox/iam.py``.
AWS_BLOCK = iam.ADMIN_BLOCK
SECRET_BLOCKS = {
    "argocd": "gitops-argocd-token",
    "github": "gitops-github-token",
    "webhook": "gitops-webhook-secret",
    "plan-key": "gitops-plan-key",  # seals plans that wait for approval (gitops.planstore)
}
SANDBOX_ENVIRONMENTS = iam.ENVIRONMENTS
RESULTS_BLOCK = "gitops-results"
"""The S3Bucket block flow results persist to (prefect.yaml names it as s3-bucket/gitops-results)."""


def register_sandbox_blocks(api_url: str | None, *, moto_endpoint: str,
                            tokens: dict[str, str]) -> None:
    """Save the sandbox's AwsCredentials blocks (endpoint = moto; one per IAM user, with the
    user's key from ``tokens``) and its Secret blocks.

    On ``api_url`` when given, else on the Prefect API of the current settings context.
    """
    if api_url is not None:
        os.environ["PREFECT_API_URL"] = api_url
    from prefect.blocks.system import Secret
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    from deployments.sandbox.launcher import RESULTS_BUCKET

    for block in iam.sandbox_blocks(SANDBOX_ENVIRONMENTS):
        key = iam.key_from_tokens(tokens, block)
        if key is None:
            raise SandboxError(f"no access key for block {block!r} in the sandbox's tokens")
        AwsCredentials(
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
            region_name=SANDBOX_REGION,
            aws_client_parameters=AwsClientParameters(endpoint_url=moto_endpoint),
        ).save(block, overwrite=True)
    admin = iam.key_from_tokens(tokens, iam.ADMIN_BLOCK)
    S3Bucket(bucket_name=RESULTS_BUCKET, credentials=AwsCredentials(
        aws_access_key_id=admin.access_key_id, aws_secret_access_key=admin.secret_access_key,
        region_name=SANDBOX_REGION,
        aws_client_parameters=AwsClientParameters(endpoint_url=moto_endpoint),
    )).save(RESULTS_BLOCK, overwrite=True)
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
