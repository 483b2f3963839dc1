"""The GitHub webhook receiver as a process: the Prefect launcher, its secret, its allowlist.

    gitops-flows webhook serve [--host 127.0.0.1] [--port 8080]
    gitops-flows webhook route --event pull_request [--delivery ID] payload.json   (dry run)

`gitops.webhook` decides what a delivery starts; here a "run" decision becomes a flow run of the
Prefect deployment it names (``run_deployment(..., timeout=0, idempotency_key=...)``), so a
redelivered or duplicated event starts one run. Prefect Cloud has incoming webhooks of its own; a
self-hosted Prefect server needs this receiver in front of it.

Configuration:
    webhook secret   Prefect Secret block ``GITOPS_WEBHOOK_SECRET_BLOCK`` (default
                     ``gitops-webhook-secret``), else env ``GITHUB_WEBHOOK_SECRET``; neither:
                     the server refuses to start (it never accepts unsigned deliveries)
    allowlist        ``GITOPS_REPOSITORIES`` (comma-separated ``owner/name``), else
                     ``GITOPS_REPOSITORY``; neither: refuses to start
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from gitops.errors import ConfigError, WebhookError
from gitops.settings import GitopsSettings, load_settings
from gitops.webhook import Decision, create_app, parse_event, pr_tag, route

SECRET_ENV = "GITHUB_WEBHOOK_SECRET"
ALLOWLIST_ENV = "GITOPS_REPOSITORIES"
REPOSITORY_ENV = "GITOPS_REPOSITORY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
RUN_TAGS = ("gitops", "webhook")

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

SecretLoader = Callable[[str], str]


class PrefectLauncher:
    """A `gitops.webhook.Launcher` that creates a flow run of the decision's deployment.

    Does not wait for the run (``timeout=0``); the idempotency key makes a repeated decision
    return the run already created. Thread-safe: every call uses its own Prefect client.
    """

    def __init__(self, *, tags: tuple[str, ...] = RUN_TAGS) -> None:
        """Tag every run with ``tags`` (and the delivery id) so webhook runs are easy to find."""
        self.tags = tags

    def launch(self, decision: Decision) -> str:
        """Create (or find, by idempotency key) the flow run; return its id."""
        if decision.decision != "run" or not decision.deployment:
            raise ValueError(f"nothing to launch for a {decision.decision!r} decision")
        from prefect.deployments import run_deployment

        tags = [*self.tags]
        if decision.delivery_id:
            tags.append(f"delivery:{decision.delivery_id}")
        params = decision.parameters
        if "pr_number" in params and "repository" in params:
            tags.append(pr_tag(str(params["repository"]), int(params["pr_number"])))
        run = run_deployment(name=decision.deployment, parameters=dict(decision.parameters),
                             timeout=0, idempotency_key=decision.idempotency_key,
                             as_subflow=False, tags=tags, _sync=True)
        return str(run.id)


def load_webhook_secret(settings: GitopsSettings, *, environ: Mapping[str, str] | None = None,
                        load_block: SecretLoader | None = None) -> bytes:
    """The webhook secret: the Secret block ``settings.webhook_secret_block``, else the env var
    ``GITHUB_WEBHOOK_SECRET``. Raises ConfigError when neither has a non-empty value.

    ``environ`` and ``load_block`` default to ``os.environ`` and `tasks.credentials.load_secret`.
    """
    env = os.environ if environ is None else environ
    if load_block is None:
        from tasks.credentials import load_secret as load_block
    block_problem = ""
    try:
        value = load_block(settings.webhook_secret_block)
    except ConfigError as exc:
        value, block_problem = "", str(exc)
    except Exception as exc:  # noqa: BLE001 - Prefect API unreachable: the env var may still do
        value, block_problem = "", f"could not read Secret block " \
                                   f"{settings.webhook_secret_block!r} ({type(exc).__name__})"
    if value and value.strip():
        return value.strip().encode("utf-8")
    from_env = env.get(SECRET_ENV, "")
    if from_env.strip():
        return from_env.strip().encode("utf-8")
    why = block_problem or f"Secret block {settings.webhook_secret_block!r} is empty"
    raise ConfigError(
        f"refusing to start the webhook receiver: no webhook secret ({why}; and "
        f"{SECRET_ENV} is not set). Create the Secret block {settings.webhook_secret_block!r} "
        f"with the secret configured on the GitHub webhook, or set {SECRET_ENV}.")


def load_allowlist(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Repositories whose deliveries are accepted: ``GITOPS_REPOSITORIES`` (comma-separated),
    else ``GITOPS_REPOSITORY``. Raises ConfigError when empty or malformed."""
    env = os.environ if environ is None else environ
    source = ALLOWLIST_ENV if env.get(ALLOWLIST_ENV, "").strip() else REPOSITORY_ENV
    names = [name.strip() for name in env.get(source, "").split(",") if name.strip()]
    if not names:
        raise ConfigError(f"refusing to start the webhook receiver: no repository allowlist; "
                          f"set {ALLOWLIST_ENV}=owner/name[,owner/name...]")
    bad = [name for name in names if not _REPO_RE.fullmatch(name)]
    if bad:
        raise ConfigError(f"{source}: not 'owner/name': {', '.join(map(repr, bad))}")
    return frozenset(names)


def build_app(settings: GitopsSettings | None = None, *,
              environ: Mapping[str, str] | None = None,
              load_block: SecretLoader | None = None,
              launcher: PrefectLauncher | None = None) -> Starlette:
    """The receiver app with its secret, allowlist and the Prefect launcher."""
    settings = settings or load_settings()
    return create_app(secret=load_webhook_secret(settings, environ=environ, load_block=load_block),
                      launcher=launcher or PrefectLauncher(),
                      allowlist=load_allowlist(environ))


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run the receiver with uvicorn until interrupted (secret and allowlist checked first)."""
    import uvicorn

    app = build_app()
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)


def route_file(event: str, payload_path: Path | str, delivery_id: str = "dry-run", *,
               allowlist: frozenset[str] | None = None) -> dict[str, Any]:
    """Dry run: what the receiver would do with ``payload_path`` as an ``event`` delivery.

    No signature check and nothing started. A refused delivery gives ``decision = "refuse"``
    with the HTTP status the receiver would answer.
    """
    body = Path(payload_path).read_bytes()
    allowed = load_allowlist() if allowlist is None else allowlist
    try:
        decision = route(parse_event(event, body), delivery_id=delivery_id,
                         allowlist=frozenset(a.lower() for a in allowed))
    except WebhookError as ex:
        return {"decision": "refuse", "reason": str(ex), "status": ex.status_code,
                "deployment": None, "parameters": {}, "idempotency_key": None}
    return {"decision": decision.decision, "reason": decision.reason,
            "deployment": decision.deployment, "parameters": dict(decision.parameters),
            "idempotency_key": decision.idempotency_key}


# -- command line ---------------------------------------------------------------------------------


def cmd_webhook_serve(args: argparse.Namespace) -> int:
    """`gitops-flows webhook serve`."""
    serve(host=args.host, port=args.port)
    return 0


def cmd_webhook_route(args: argparse.Namespace) -> int:
    """`gitops-flows webhook route`: print the decision as JSON; exit 1 when refused."""
    result = route_file(args.event, args.payload, args.delivery)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 1 if result["decision"] == "refuse" else 0


def add_webhook_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``webhook serve`` and ``webhook route`` to the CLI's subparsers; return the parser."""
    wh = subparsers.add_parser("webhook", help="the GitHub webhook receiver")
    actions = wh.add_subparsers(dest="webhook_command", required=True)

    sv = actions.add_parser("serve", help="receive GitHub deliveries and start flow runs")
    sv.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    sv.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    sv.set_defaults(func=cmd_webhook_serve)

    rt = actions.add_parser("route", help="dry run: what a payload file would start")
    rt.add_argument("--event", required=True, help="the X-GitHub-Event value, e.g. pull_request")
    rt.add_argument("--delivery", default="dry-run", help="the X-GitHub-Delivery id")
    rt.add_argument("payload", type=Path, help="the delivery body (JSON file)")
    rt.set_defaults(func=cmd_webhook_route)
    return wh
