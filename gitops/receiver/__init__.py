"""The GitHub webhook receiver, one module per job.

A delivery goes through four steps, each refusing with a `WebhookError` carrying the status to
answer:

    step        refused when                               answer   module
    size        body over the limit                        413      app.py (body reading)
    signature   X-Hub-Signature-256 missing or wrong       401      signature.py (then nothing
                                                                    else happens)
    parse       not JSON, wrong shape, missing headers     400      events.py
    route       repository not on the allowlist            403      routing.py

What survives becomes a `Decision` (routing.py, where the routing rules are written down): "run"
a deployment (with parameters and an idempotency key so that redeliveries and duplicate events
start one run) or "ignore" it with a reason. `create_app` (app.py) wraps this in a Starlette
app; starting the run is the `Launcher`'s job (the Prefect one lives with the flows, in
deployments/webhook_server.py). Nothing here imports Prefect.
"""

from __future__ import annotations

from gitops.receiver.app import WEBHOOK_PATH, create_app
from gitops.receiver.events import (
    CommitCommentEvent,
    IssueCommentEvent,
    PingEvent,
    PullRequestEvent,
    PushEvent,
    UnhandledEvent,
    WebhookEvent,
    parse_event,
)
from gitops.receiver.routing import (
    DEPLOY_MAIN_DEPLOYMENT,
    PR_CLOSED_DEPLOYMENT,
    PR_PLAN_DEPLOYMENT,
    PR_TAG_PREFIX,
    Decision,
    Launcher,
    pr_tag,
    route,
)
from gitops.receiver.signature import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    signature_for,
    verify_signature,
)

__all__ = [
    "DELIVERY_HEADER", "DEPLOY_MAIN_DEPLOYMENT", "EVENT_HEADER", "PR_CLOSED_DEPLOYMENT",
    "PR_PLAN_DEPLOYMENT", "PR_TAG_PREFIX", "SIGNATURE_HEADER", "WEBHOOK_PATH", "Decision",
    "CommitCommentEvent", "IssueCommentEvent", "Launcher", "PingEvent", "PullRequestEvent", "PushEvent",
    "UnhandledEvent", "WebhookEvent", "create_app", "parse_event", "pr_tag", "route",
    "signature_for", "verify_signature",
]
