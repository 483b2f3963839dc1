"""The one way a run's text reaches Prefect's artifacts and events: scrubbed first.

Every artifact and event a flow publishes goes through these three functions, so every secret
value the run loaded (gitops.scrub's registry) and everything that looks like a credential is
masked before it leaves the process. Logs are scrubbed by the filter gitops.scrub installs on
every handler; GitHub bodies by the GitHub client itself.
"""

from __future__ import annotations

from typing import Any

from gitops.scrub import scrub, scrub_obj


def publish_markdown(key: str, markdown: str, description: str) -> Any:
    """A markdown artifact; returns its id."""
    from prefect.artifacts import create_markdown_artifact

    return create_markdown_artifact(key=key, markdown=scrub(markdown),
                                    description=scrub(description))


def publish_table(key: str, rows: list[dict[str, str]], description: str) -> Any:
    """A table artifact; returns its id."""
    from prefect.artifacts import create_table_artifact

    return create_table_artifact(table=scrub_obj(rows), key=key, description=scrub(description))


def emit(event: str, environment: str, payload: dict[str, Any]) -> None:
    """A ``gitops.*`` event about one environment."""
    from prefect.events import emit_event

    emit_event(event=event,
               resource={"prefect.resource.id": f"gitops.environment.{environment}",
                         "prefect.resource.name": environment},
               payload=scrub_obj(payload))
