"""The per-environment deploy slot: a Prefect global concurrency limit `gitops-deploy-<env>`.

Deploys, rollbacks and unlocks of one environment hold it one at a time; drift only reads it.
It sits on top of the Terraform state lock, which still guards against anything outside Prefect.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_run_logger

from gitops.config import check_environment_name
from gitops.errors import DeployRunning

# How long a caller that must not wait may still take to acquire a slot that reads as free (the
# API can be slow under load; a deploy that starts meanwhile makes this a refusal, not a wait).
NO_WAIT_ACQUIRE_SECONDS = 60.0

SLOT_LEASE_SECONDS = 60.0
"""The slot's lease: its holder renews it while it runs; a holder that died (a killed worker, a
lost node) gives it up when the lease runs out, within about this long. A suspended deploy holds
no slot while it waits; it takes the slot again when it resumes. The server keeps leases in its
lease storage: a filesystem or Redis one survives a server restart (README, Scaling out)."""


def slot_name(environment: str) -> str:
    """The slot's name; a name that is not a plain environment name is refused (ConfigError)
    before it reaches the API or any path."""
    return f"gitops-deploy-{check_environment_name(environment)}"


def ensure_limit(name: str) -> Any:
    """The global concurrency limit ``name``, created with one slot if it does not exist (a
    concurrent creator is fine too): the deploy slot's, the drift notify lock's."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.upsert_global_concurrency_limit_by_name(name, 1)
            except ObjectAlreadyExists:  # created meanwhile
                pass
            return client.read_global_concurrency_limit_by_name(name)


def ensure_slot(environment: str) -> bool:
    """Create the environment's deploy slot if it does not exist; whether it is in use (a deploy
    holds it), read in the same look."""
    return ensure_limit(slot_name(environment)).active_slots > 0


def slot_in_use(slot: str) -> bool:
    """Whether the global concurrency limit ``slot`` has an active slot (a deploy is running).

    Only reads the limit; never acquires it. A limit that does not exist is not in use.
    """
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(slot)
        except ObjectNotFound:
            return False
    return limit.active_slots > 0


@contextmanager
def environment_slot(environment: str, *, wait: bool = True) -> Iterator[None]:
    """Hold the environment's single deploy slot.

    Whether someone else holds it is read first, so a run that has to wait says so in its log
    and one that must not wait (``wait=False``) raises DeployRunning without queueing.
    """
    logger = get_run_logger()
    name = slot_name(environment)
    busy = ensure_slot(environment)
    if busy and not wait:
        raise _running(environment)
    if busy:
        logger.info("waiting: another deploy of %s holds its slot (%s)", environment, name)
    with ExitStack() as stack:
        asked = time.monotonic()
        try:
            # A renewal that fails (the server restarting) is logged, never the end of a run
            # that may be applying: the Terraform state lock still guards the state.
            stack.enter_context(concurrency(
                name, occupy=1, strict=True, lease_duration=SLOT_LEASE_SECONDS,
                raise_on_lease_renewal_failure=False,
                timeout_seconds=None if wait else NO_WAIT_ACQUIRE_SECONDS))
        except TimeoutError:
            raise _running(environment) from None
        waited = time.monotonic() - asked
        if busy or waited > 1.0:  # it was taken when looked at, or between the look and the ask
            logger.info("got the deploy slot of %s (waited %.0f s)", environment, waited)
        yield


def _running(environment: str) -> DeployRunning:
    return DeployRunning(
        f"a deploy of {environment} is running (it holds {slot_name(environment)}), so its state "
        "lock is in use, not stuck. A run whose process died gives its slot up when its lease "
        f"runs out ({SLOT_LEASE_SECONDS:.0f} s after its last renewal); try again then.")
