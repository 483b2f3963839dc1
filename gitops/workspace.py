"""Where one environment's run happens: the checkout, its config, its plan files and data dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops.config import Environment
from gitops.grant import EnvironmentGrant, Phase
from gitops.settings import GitopsSettings


@dataclass(frozen=True)
class EnvWorkspace:
    """One environment at one commit, checked out under ``checkout``.

    ``environment`` is the *trusted* configuration (the default branch's, bounded by ``grant``),
    whatever commit the code in ``checkout`` is at. ``phase`` decides the credentials and secrets
    terraform gets. ``proposed_new`` marks an environment that exists only in a pull request: it
    is planned against an empty local state with the grant's new-environment credentials.
    ``policies`` is where the Rego policies come from (see the field).
    """

    settings: GitopsSettings
    environment: Environment
    checkout: Path
    commit: str
    run_dir: Path
    grant: EnvironmentGrant
    phase: Phase = Phase.DEPLOY
    proposed_new: bool = False
    policies: Path | None = None
    """The Rego policies that judge this plan: a directory of the *default branch's* checkout
    (trusted configuration), never of the commit being planned. None: no Rego policies."""
    unmerged: str = ""
    """Why this commit, outside the default branch's history, runs anyway (the environment's
    ``allow_unmerged``); empty for a reviewed commit (and for pull-request plans, which plan
    unmerged heads by design and never apply)."""
    proposed_policies: Path | None = None
    """A pull request's own policies directory (which may not exist: the PR deleted it), set
    when the PR changes policies: evaluated on the plan for display only, never judging it."""

    @property
    def name(self) -> str:
        return self.environment.name

    @property
    def env_dir(self) -> Path:
        return self.run_dir / self.environment.name

    @property
    def data_dir(self) -> Path:
        """TF_DATA_DIR: one per environment, so environments plan concurrently from one checkout."""
        return self.env_dir / "tfdata"

    @property
    def stack_dir(self) -> Path:
        return self.checkout / self.environment.stack

    @property
    def var_file(self) -> Path:
        return self.checkout / self.environment.var_file

    @property
    def backend_file(self) -> Path:
        return self.checkout / self.environment.backend_config

    def plan_file(self, label: str = "plan") -> Path:
        return self.env_dir / f"{label}.tfplan"
