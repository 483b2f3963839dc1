"""Test helpers that act on an environment *outside* the pipeline (like an engineer would)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from gitops.config import load_environment
from gitops.errors import GitopsError
from gitops.git import GitRepository
from gitops.grant import Phase, load_grant
from gitops.settings import load_settings
from gitops.workspace import EnvWorkspace
from tasks.terraform import init_runner, stage_plan


def _outside_plan(sandbox: Any, environment: str, sha: str) -> tuple[EnvWorkspace, Path]:
    settings = load_settings()
    base = Path(sandbox.root) / "outside" / f"{environment}-{sha[:12]}"
    repo = GitRepository(settings.repository_url, Path(settings.workdir))
    repo.checkout(sha, base / "checkout")
    env = load_environment(base / "checkout", environment, settings.environments_dir)
    grant = load_grant(settings.grant_file).for_environment(environment)
    ws = EnvWorkspace(settings, env, base / "checkout", sha, base / "envs", grant, Phase.DEPLOY)
    return ws, Path(stage_plan(ws).plan_file)


def apply_outside_pipeline(sandbox: Any, environment: str, sha: str) -> None:
    """Plan and apply ``sha`` of ``environment`` directly with terraform, bypassing every flow."""
    ws, plan_file = _outside_plan(sandbox, environment, sha)
    init_runner(ws, apply=True).apply(plan_file)


def start_apply_outside_pipeline(sandbox: Any, environment: str,
                                 sha: str) -> tuple[threading.Thread, str]:
    """Start such an apply in a thread; return it and a string unique to its command line."""
    ws, plan_file = _outside_plan(sandbox, environment, sha)
    runner = init_runner(ws, apply=True)

    def apply() -> None:
        try:
            runner.apply(plan_file)
        except GitopsError:
            pass  # the test kills it

    thread = threading.Thread(target=apply, daemon=True)
    thread.start()
    return thread, str(plan_file)
