"""Test helpers that act on an environment *outside* the pipeline (like an engineer would)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops.config import load_environment
from gitops.git import GitRepository
from gitops.settings import load_settings
from gitops.workspace import EnvWorkspace
from tasks.terraform import init_runner, stage_plan


def apply_outside_pipeline(sandbox: Any, environment: str, sha: str) -> None:
    """Plan and apply ``sha`` of ``environment`` directly with terraform, bypassing every flow."""
    settings = load_settings()
    base = Path(sandbox.root) / "outside" / sha[:12]
    repo = GitRepository(settings.repository_url, Path(settings.workdir))
    repo.checkout(sha, base / "checkout")
    env = load_environment(base / "checkout", environment, settings.environments_dir)
    ws = EnvWorkspace(settings, env, base / "checkout", sha, base / "envs")
    staged = stage_plan(ws)
    init_runner(ws).apply(Path(staged.plan_file))
