"""Argo CD stage: ensure the environment's Application, sync it at the deployed commit, wait.

Retries: API calls that fail transiently (connection errors, timeouts, 5xx) retry with backoff;
a sync that ends Failed or Degraded does not: it triggers the rollback.
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from gitops.argocd import Application, ApplicationSpec, ArgoCDClient
from gitops.errors import ArgoCDError
from gitops.workspace import EnvWorkspace
from tasks.credentials import load_secret
from tasks.retry import BACKOFF, transient_only


@contextmanager
def argocd_client(ws: EnvWorkspace) -> Iterator[ArgoCDClient]:
    """A client for the configured Argo CD, authenticated with the token from its Secret block."""
    if not ws.settings.argocd_url:
        raise ArgoCDError("no Argo CD URL configured (GITOPS_ARGOCD_URL)")
    token = load_secret(ws.settings.argocd_token_block)
    with httpx.Client(base_url=ws.settings.argocd_url, timeout=15.0) as http:
        yield ArgoCDClient(http, token)


def application_spec(ws: EnvWorkspace, repo_url: str) -> ApplicationSpec:
    cfg = ws.environment.argocd
    assert cfg is not None
    return ApplicationSpec(name=cfg.application, project=cfg.project, repo_url=repo_url,
                           path=cfg.path, target_revision=ws.commit,
                           dest_server=cfg.destination_server,
                           dest_namespace=cfg.destination_namespace, auto_sync=cfg.auto_sync)


@task(name="argocd-app", retries=3, retry_delay_seconds=BACKOFF,
      retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def ensure_application(ws: EnvWorkspace, repo_url: str) -> Application | None:
    """Create the environment's Application (source overlays/<env>) if it does not exist."""
    if ws.environment.argocd is None:
        return None
    with argocd_client(ws) as argo:
        app, created = argo.ensure_application(application_spec(ws, repo_url))
    get_run_logger().info("%s: Argo CD application %s %s", ws.name, app.name,
                          "created" if created else "exists")
    return app


@task(name="argocd-sync", retries=3, retry_delay_seconds=BACKOFF,
      retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def sync_application(ws: EnvWorkspace, revision: str) -> Application | None:
    """Start a sync at ``revision``, then wait for Succeeded + Synced at it + Healthy."""
    cfg = ws.environment.argocd
    if cfg is None:
        return None
    with argocd_client(ws) as argo:
        argo.sync(cfg.application, revision=revision)
        app = argo.wait_until_synced(cfg.application, revision=revision,
                                     timeout=ws.settings.argocd_sync_timeout_seconds,
                                     poll_interval=1.0)
    get_run_logger().info("%s: %s Synced at %s and Healthy", ws.name, cfg.application,
                          revision[:12])
    return app


@task(name="argocd-rollback", retries=3, retry_delay_seconds=BACKOFF,
      retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def rollback_application(ws: EnvWorkspace, revision: str) -> str:
    """Go back to ``revision``: Argo CD rollback to its history id, or a sync if auto-sync is on."""
    cfg = ws.environment.argocd
    if cfg is None:
        return "no Argo CD application configured"
    with argocd_client(ws) as argo:
        app = argo.get_application(cfg.application)
        if app is None:
            return f"{cfg.application} does not exist; nothing to roll back"
        entry = next((h for h in reversed(app.history) if h.revision == revision), None)
        if app.auto_sync or entry is None:
            argo.sync(cfg.application, revision=revision)
            how = "synced"
        else:
            argo.rollback(cfg.application, history_id=entry.id)
            how = f"rolled back to history id {entry.id}"
        argo.wait_until_synced(cfg.application, revision=revision,
                               timeout=ws.settings.argocd_sync_timeout_seconds, poll_interval=1.0)
    return f"{cfg.application} {how} at {revision[:12]} (Synced, Healthy)"
