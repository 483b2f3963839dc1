"""Credentials from Prefect blocks (prefect-aws AwsCredentials, Secret): never files, never Git.

Which blocks an environment gets is the platform grant's decision (gitops.grant), never the
repository's: the workspace carries its environment's grant and the phase it runs in. Every value
read here is registered with the scrubber (gitops.scrub) before it is returned, so it is masked
wherever text leaves the run.
"""

from __future__ import annotations

import secrets as _random
import threading
import time
from collections.abc import Callable
from typing import Any

from gitops.errors import ConfigError
from gitops.grant import Phase
from gitops.scrub import register_secret
from gitops.workspace import EnvWorkspace


BLOCK_REUSE_SECONDS = 60.0
"""How long one flow run reuses a block it read (each task would otherwise read the same block
again over the API); a run that waits longer, or another run, reads it anew."""

_read: dict[tuple[str, str, str], tuple[float, Any]] = {}
_read_lock = threading.Lock()


def _block(kind: str, name: str, load: Callable[[], Any]) -> Any:
    """``load()`` once per (flow run, block) within :data:`BLOCK_REUSE_SECONDS`."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    run = str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None
    if run is None:
        return load()
    key, now = (run, kind, name), time.monotonic()
    with _read_lock:
        hit = _read.get(key)
    if hit is not None and now - hit[0] < BLOCK_REUSE_SECONDS:
        return hit[1]
    value = load()
    with _read_lock:
        for other in [k for k in _read if k[0] != run]:  # runs before it in this process
            del _read[other]
        _read[key] = (now, value)
    return value


def load_aws_credentials(block_name: str) -> Any:
    """The AwsCredentials block named ``block_name``."""
    from prefect_aws import AwsCredentials

    def load() -> Any:
        try:
            return AwsCredentials.load(block_name, _sync=True)
        except ValueError as exc:
            raise ConfigError(f"AwsCredentials block {block_name!r} not found: create it in "
                              "the Prefect UI (Blocks) or with prefect-aws before "
                              "deploying") from exc

    creds = _block("aws-credentials", block_name, load)
    for value in aws_environment(creds).values():
        if value not in (creds.region_name, creds.profile_name):
            register_secret(value)
    return creds


def load_secret(block_name: str) -> str:
    """The value of the Secret block named ``block_name``."""
    from prefect.blocks.system import Secret

    def load() -> str:
        try:
            return str(Secret.load(block_name, _sync=True).get())
        except ValueError as exc:
            raise ConfigError(f"Secret block {block_name!r} not found: create it in the "
                              "Prefect UI (Blocks > Secret) before deploying") from exc

    value = _block("secret", block_name, load)
    register_secret(value)  # every time: cheap when known, and the registry may be new
    return value


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


WITHHELD_PREFIX = "withheld-by-gitops-"
"""Start of the placeholder a phase gets for a secret variable the grant does not give it."""


def secret_variables(ws: EnvWorkspace) -> tuple[dict[str, str], tuple[str, ...]]:
    """TF_VAR_* values for the workspace's phase, and the variables withheld from it.

    Granted variables are read from their Secret blocks; a withheld one gets a random placeholder
    (so terraform still plans), never the block's value. A proposed new environment gets none.
    """
    wanted = dict(ws.environment.secret_variables)
    if ws.proposed_new:
        granted, withheld = {}, tuple(sorted(wanted))
    else:
        split = ws.grant.secret_grant(wanted, ws.phase)
        granted, withheld = dict(split.granted), split.withheld
    env = {f"TF_VAR_{var}": load_secret(block) for var, block in granted.items()}
    for var in withheld:
        env[f"TF_VAR_{var}"] = WITHHELD_PREFIX + _random.token_hex(12)
    return env, withheld


def phase_credentials(ws: EnvWorkspace, *, apply: bool) -> Any:
    """The AwsCredentials block the grant gives this workspace for a plan or an apply."""
    if apply and ws.phase is not Phase.DEPLOY:
        raise ConfigError(f"{ws.name}: a {ws.phase} run never applies")
    return load_aws_credentials(ws.grant.credentials(apply=apply,
                                                     new_environment=ws.proposed_new))


def endpoint_url(credentials: Any) -> str | None:
    """The endpoint override of an AwsCredentials block (the sandbox's moto), if any."""
    params = getattr(credentials, "aws_client_parameters", None)
    url = getattr(params, "endpoint_url", None) if params is not None else None
    return str(url) if url else None
