"""The Prefect automation that marks a deploy whose process died as Crashed.

A run emits a heartbeat every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (prefect.yaml sets
it for every run of the pool). When a run's heartbeats stop and no state change explains why (it
ended, or it was suspended and holds no process), Prefect's own trigger service changes its state
to Crashed: Prefect's documented zombie detection. Its deploy slot is then freed when the slot's
lease runs out (tasks/slots.SLOT_LEASE_SECONDS), its files are removed by the next run on that
worker (flows.common.sweep_finished_run_files), and a held state lock is reported with its
unlock command by the next deploy's plan.
"""

from __future__ import annotations

from datetime import timedelta

NAME = "gitops: crash runs whose heartbeats stopped"
HEARTBEAT_SECONDS = 30
WITHIN_SECONDS = 60
"""How long after a run's last heartbeat it is taken for dead (two heartbeats: one late
heartbeat under load is no crash)."""


def ensure_zombie_automation() -> str:
    """Create (or replace) the automation on the Prefect API of the current settings; its id."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        Automation.read(name=NAME).delete()
    except ValueError:  # none yet
        pass
    automation = Automation(
        name=NAME,
        description="A flow run whose heartbeats stopped without a final state or a "
                    "suspension is marked Crashed (gitops-flows, deployments/automations.py).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed", "prefect.flow-run.Suspended"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=WITHIN_SECONDS),
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message=f"its heartbeats stopped {WITHIN_SECONDS} s ago and it neither ended nor "
                    "was suspended: its process died (a killed worker, a lost node); marked "
                    "Crashed by gitops-flows' zombie automation")],
    ).create()
    return str(automation.id)
