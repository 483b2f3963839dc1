"""The unlock flow: release an environment's stuck Terraform state lock, on a person's say-so.

gitops-flows never breaks a lock on its own. When a run died holding one (the next run fails
naming the lock's ID and holder), an operator runs `gitops-flows unlock ENV LOCK_ID --as NAME
--reason WHY`, or the `unlock` deployment from the Prefect UI. It is refused while a deploy of the
environment runs, and terraform refuses any ID but the held lock's; who released what, and why,
is in the run's log and in a `gitops.lock.released` event.
"""

from __future__ import annotations

from prefect import flow

from gitops.errors import ConfigError
from gitops.models import UnlockOutcome
from gitops.settings import load_settings
from flows.common import DISCARD_RUN_FILES, open_workspace
from tasks.slots import environment_slot
from tasks.terraform import release_state_lock


@flow(name="unlock", flow_run_name="unlock-{environment}", **DISCARD_RUN_FILES)
def unlock(environment: str, lock_id: str, by: str, reason: str) -> str:
    """Release ``environment``'s state lock ``lock_id``; ``by`` and ``reason`` are required."""
    if not by.strip() or not reason.strip():
        raise ConfigError("unlock needs who is releasing the lock (--as) and why (--reason)")
    settings = load_settings()
    ws, _ = open_workspace(settings, environment, settings.default_branch, label="unlock")
    with environment_slot(environment, wait=False):
        outcome = release_state_lock(ws, lock_id, by.strip(), reason.strip())
    if outcome is UnlockOutcome.NOT_LOCKED:
        return f"{environment}: the state is not locked; nothing was released"
    return (f"{environment}: state lock {lock_id} released by {by.strip()} (declared, "
            "unverified)")
