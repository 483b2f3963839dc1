"""Process-wide settings, from ``GITOPS_*`` environment variables. Never secrets.

Secrets live in Prefect blocks; settings only name those blocks. The sandbox writes the values
for its own services into ``.sandbox/env.json``; the CLI loads that file when present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gitops.config import DEFAULT_ENVIRONMENTS_DIR


class GitopsSettings(BaseSettings):
    """Where things are and which blocks hold the secrets."""

    model_config = SettingsConfigDict(env_prefix="GITOPS_", frozen=True, extra="ignore")

    repository_url: str = Field(default="", description="the infrastructure Git repository")
    repository: str = Field(default="acme/infrastructure",
                            description="owner/name of that repository on GitHub")
    default_branch: str = "main"
    environments_dir: str = DEFAULT_ENVIRONMENTS_DIR
    workdir: Path = Field(default=Path.home() / ".cache" / "gitops-flows",
                          description="checkouts, plan files, terraform data dirs")
    keep_run_files: bool = Field(
        default=False, description="keep each run's checkout and plan files (they hold secrets)")

    terraform_binary: str = Field(default="terraform", description="terraform or tofu")
    terraform_timeout_seconds: float = 1800.0
    policy_timeout_seconds: float = Field(default=60.0, gt=0)
    """How long the Rego policies may take on one plan (a child process, killed after it)."""
    policies_dir: str = "policies"
    """Where the Rego policies are in the infrastructure repository (read from the default
    branch's checkout only, never from the commit being planned)."""
    grant_file: str = Field(
        default="", description="the platform grant (TOML) on the workers: what each environment "
                                "may use; never read from the repository")
    provider_mirror: str = Field(
        default="", description="filesystem mirror terraform installs providers from")
    provider_mirror_include: list[str] = Field(
        default_factory=list, description="provider addresses the mirror serves (default: all)")
    provider_direct: list[str] = Field(
        default_factory=list,
        description="provider address patterns that may be installed from their registry "
                    "(default: none; e.g. [\"registry.terraform.io/hashicorp/aws\"])")
    terraform_env_passthrough: list[str] = Field(
        default_factory=list,
        description="more names of the worker's environment terraform may see (not secrets)")
    backend_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="extra -backend-config key=value pairs (the sandbox points S3 at moto)")
    extra_terraform_env: dict[str, str] = Field(
        default_factory=dict, description="extra non-secret environment for terraform")

    argocd_url: str = ""
    argocd_token_block: str = "gitops-argocd-token"
    github_api_url: str = "https://api.github.com"
    github_token_block: str = "gitops-github-token"
    webhook_secret_block: str = "gitops-webhook-secret"
    prefect_ui_url: str = Field(default="", description="base URL for links to flow runs")

    approval_poll_seconds: int = Field(default=10, ge=1)
    approval_wait: Literal["auto", "pause"] = Field(
        default="auto",
        description="auto: a deploy run from a deployment suspends for approval (no process "
                    "waits; any worker resumes it), one run directly pauses in its process; "
                    "pause: always pause in the process")
    plan_key_block: str = Field(
        default="gitops-plan-key",
        description="Secret block holding the base64 AES-256 key that seals saved plans while "
                    "they wait for approval (gitops.planstore)")
    plan_concurrency: int = Field(default=3, ge=1, le=32)
    argocd_sync_timeout_seconds: float = 600.0
    dns_insync_timeout_seconds: float = 300.0


def load_settings(sandbox_env: Path | None = None) -> GitopsSettings:
    """Settings from the environment; values from a sandbox env file fill in what is unset.

    Every flow starts here, so this is also where the log scrubber is put on every log handler
    (gitops.scrub): whatever a run logs is masked before Prefect ships it.
    """
    import os

    from gitops.scrub import install_log_scrubber

    install_log_scrubber()
    if sandbox_env is not None and sandbox_env.is_file():
        for key, value in json.loads(sandbox_env.read_text()).items():
            os.environ.setdefault(key, value)
    return GitopsSettings()
