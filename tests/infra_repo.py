"""A working clone of the sandbox's infrastructure repository, for tests that change and push it."""

from __future__ import annotations

import shutil
from pathlib import Path

from gitops.git import commit_all, run_git, seed_repository


REPO_ROOT = Path(__file__).resolve().parent.parent


def current_sandbox():  # noqa: ANN201 - deployments.sandbox.launcher.Sandbox
    """The sandbox the settings point at (GITOPS_WORKDIR is ``<sandbox root>/work``)."""
    import os

    from deployments.sandbox.launcher import Sandbox

    return Sandbox(Path(os.environ["GITOPS_WORKDIR"]).parent)


class InfraRepo:
    """Clone of ``url`` at ``path``; edit files, then `push` to get a commit SHA on main (or
    `push_branch` for one that is not merged)."""

    def __init__(self, url: str, path: Path) -> None:
        self.path = path
        run_git(["clone", "--quiet", url, str(path)])

    @classmethod
    def isolated(cls, tmp_path: Path, environments: tuple[str, ...]) -> InfraRepo:
        """A new infra repository holding only ``environments`` (not yet pushed).

        For flows that act on every configured environment. The caller points
        GITOPS_REPOSITORY_URL at ``repo.url``.
        """
        bare = tmp_path / "infra.git"
        seed_repository(bare, REPO_ROOT, tmp_path / "seed")
        repo = cls(bare.as_uri(), tmp_path / "work")
        for name in environments:
            repo.add_environment(name)
        for name in ("dev", "staging", "prod"):
            shutil.rmtree(repo.path / "terraform" / "environments" / name)
        return repo

    @property
    def url(self) -> str:
        return run_git(["remote", "get-url", "origin"], cwd=self.path).strip()

    def add_environment(self, name: str, *, like: str = "staging", approval: bool = False,
                        approval_timeout: int = 600, approval_rule: str = "",
                        extra_toml: str = "",
                        provision: bool = True) -> None:
        """A new environment = one new folder (+ its Argo CD overlay), as a team would add it."""
        src = self.path / "terraform" / "environments" / like
        dst = self.path / "terraform" / "environments" / name
        shutil.copytree(src, dst)
        (dst / f"{like}.tfvars").rename(dst / f"{name}.tfvars")
        for file in dst.iterdir():
            file.write_text(file.read_text().replace(like, name))
        toml = dst / "environment.toml"
        text = toml.read_text().replace(
            "required = false",
            f"required = {str(approval).lower()}\ntimeout_seconds = {approval_timeout}\n"
            + approval_rule)
        toml.write_text(text + extra_toml)
        # Its database password lives in a Secret block, as every secret does, and the platform
        # gives it a plan and an apply user of its own (the grant names their blocks).
        from prefect.blocks.system import Secret

        Secret(value=f"test-db-password-{name}").save(f"gitops-db-password-{name}", overwrite=True)
        if provision:
            current_sandbox().provision_environment(name)
        overlay = self.path / "overlays" / name
        shutil.copytree(self.path / "overlays" / like, overlay)
        for file in overlay.iterdir():
            file.write_text(file.read_text().replace(like, name))

    def set_var(self, env: str, key: str, value: str) -> None:
        """Set one variable in the environment's tfvars (value as HCL)."""
        tfvars = self.path / "terraform" / "environments" / env / f"{env}.tfvars"
        lines = [ln for ln in tfvars.read_text().splitlines() if not ln.split("=")[0].strip() == key]
        lines.append(f"{key} = {value}")
        tfvars.write_text("\n".join(lines) + "\n")

    def set_top_level(self, env: str, line: str) -> None:
        """Put one top-level setting (``key = value``) in the environment's environment.toml."""
        toml = self.path / "terraform" / "environments" / env / "environment.toml"
        toml.write_text(f"{line}\n{toml.read_text()}")

    def push(self, message: str, *, author: str = "Dev Eloper",
             email: str = "dev@example.com") -> str:
        sha = commit_all(self.path, message, author=author, email=email)
        run_git(["push", "--quiet", "origin", "HEAD:main"], cwd=self.path)
        return sha

    def push_branch(self, branch: str, message: str) -> str:
        """Commit the changes on ``branch`` (from main as it is), push it, and come back to main:
        an unmerged commit, as a pull request's head is. Returns its SHA."""
        run_git(["checkout", "--quiet", "-B", branch], cwd=self.path)
        try:
            sha = commit_all(self.path, message)
            run_git(["push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}"],
                    cwd=self.path)
        finally:
            run_git(["checkout", "--quiet", "--force", "main"], cwd=self.path)
        return sha

    def force_main(self, sha: str) -> None:
        """Force-push main to ``sha`` (history rewritten), and reset the clone to it."""
        run_git(["push", "--quiet", "--force", "origin", f"{sha}:refs/heads/main"], cwd=self.path)
        run_git(["reset", "--quiet", "--hard", sha], cwd=self.path)
