"""Git, through the git CLI: fetch a repository once, check commits out as worktrees, diff them.

``GitRepository(url, cache_dir)`` keeps one bare mirror per repository URL and adds a detached
worktree per checkout, so each run sees exactly the commit it was asked for. Runs on one worker
share the mirror: whatever writes to it (clone, fetch, worktree add/remove/prune) holds an
exclusive file lock beside it, so concurrent runs take turns instead of failing on git's own
ref and index locks. Git's automatic gc after a fetch keeps the mirror's size in check.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gitops.errors import GitError

SHA = re.compile(r"^[0-9a-f]{7,40}$")
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
_IDENTITY = ["-c", "user.name=gitops-flows", "-c", "user.email=gitops-flows@localhost"]


def run_git(args: Sequence[str], *, cwd: Path | None = None, timeout: float = 300.0) -> str:
    """Run one git command; return stdout, raise GitError with git's message on failure."""
    env = {**os.environ, **_GIT_ENV}
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False, umask=0o077)
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


@dataclass(frozen=True)
class Commit:
    """One commit's identity and author."""

    sha: str
    author_name: str
    author_email: str
    subject: str


class GitRepository:
    """A remote repository, mirrored under ``cache_dir``."""

    def __init__(self, url: str, cache_dir: Path) -> None:
        if not url:
            raise GitError("no repository URL configured (GITOPS_REPOSITORY_URL)")
        self.url = url
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.mirror = Path(cache_dir) / "mirrors" / f"{key}.git"

    def fetch(self) -> None:
        """Create or update the local mirror."""
        with mirror_lock(self.mirror):
            self._fetch()

    def resolve(self, ref: str) -> str:
        """The full SHA of a branch, tag or (abbreviated) commit."""
        with mirror_lock(self.mirror):
            self._fetch()
            return self._rev_parse(ref)

    def checkout(self, sha: str, dest: Path) -> Path:
        """A detached worktree of ``sha`` at ``dest`` (replaced if it exists)."""
        if not SHA.fullmatch(sha):
            raise GitError(f"not a commit SHA: {sha!r}")
        with mirror_lock(self.mirror):
            full = self._known_commit(sha)  # usually just resolved: no second fetch
            if full is None:
                self._fetch()
                full = self._rev_parse(sha)
            if dest.exists():
                self._remove_checkout(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            run_git(["worktree", "add", "--detach", "--force", str(dest), full], cwd=self.mirror)
        return dest

    def remove_checkout(self, dest: Path) -> None:
        """Drop a worktree made by `checkout`."""
        with mirror_lock(self.mirror):
            self._remove_checkout(dest)

    # The unlocked steps; callers hold `mirror_lock` (it is not re-entrant).

    def _fetch(self) -> None:
        if not (self.mirror / "HEAD").exists():
            shutil.rmtree(self.mirror, ignore_errors=True)  # a clone cut short leaves debris
            run_git(["clone", "--mirror", "--quiet", self.url, str(self.mirror)])
        else:
            run_git(["fetch", "--prune", "--quiet", "origin"], cwd=self.mirror)

    def _rev_parse(self, ref: str) -> str:
        out = run_git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=self.mirror)
        return out.strip()

    def _known_commit(self, sha: str) -> str | None:
        """The full SHA if the mirror already holds the commit, else None."""
        if not (self.mirror / "HEAD").exists():
            return None
        try:
            return self._rev_parse(sha)
        except GitError:
            return None

    def _remove_checkout(self, dest: Path) -> None:
        try:
            run_git(["worktree", "remove", "--force", str(dest)], cwd=self.mirror)
        except GitError:
            shutil.rmtree(dest, ignore_errors=True)
            run_git(["worktree", "prune"], cwd=self.mirror)

    def commit(self, sha: str) -> Commit:
        """Author and subject of one commit."""
        out = run_git(["show", "-s", "--format=%H%x00%an%x00%ae%x00%s", sha], cwd=self.mirror)
        full, name, email, subject = out.rstrip("\n").split("\x00", 3)
        return Commit(full, name, email, subject)

    def changed_files(self, base: str, head: str) -> list[str]:
        """Paths changed on ``head`` since it forked from ``base`` (``git diff base...head``)."""
        out = run_git(["diff", "--name-only", "--no-renames", f"{base}...{head}"], cwd=self.mirror)
        return [line for line in out.splitlines() if line]

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether ``older`` is an ancestor of ``newer``."""
        try:
            run_git(["merge-base", "--is-ancestor", older, newer], cwd=self.mirror)
            return True
        except GitError:
            return False


def discard_run_files(run_dir: Path, cache_dir: Path) -> None:
    """Delete a run's checkouts, plan files and terraform data dirs, and forget its worktrees.

    Saved plans hold sensitive values in clear (that is terraform's format), so they do not
    outlive the run.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    for mirror in (Path(cache_dir) / "mirrors").glob("*.git"):
        try:
            with mirror_lock(mirror):
                run_git(["worktree", "prune"], cwd=mirror)
        except GitError:
            pass


@contextmanager
def mirror_lock(mirror: Path) -> Iterator[None]:
    """Hold the exclusive lock of one mirror (``<mirror>.lock``, an flock released on exit,
    also when the process dies)."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with open(mirror.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_SEED_IGNORE = shutil.ignore_patterns(".terraform", "*.tfstate", "*.tfstate.*", "*.tfplan",
                                      ".terraform.lock.hcl", "__pycache__")


def seed_repository(bare: Path, source: Path, scratch: Path, branch: str = "main") -> str:
    """Create a bare repository holding ``source``'s terraform/, the Argo CD overlays and the
    default Rego policies (``policies/``).

    Used by the sandbox to play the team's infrastructure repository. Returns the commit SHA.
    """
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    shutil.copytree(source / "terraform", scratch / "terraform", ignore=_SEED_IGNORE)
    overlays = source / "deployments" / "infra-repo" / "overlays"
    if overlays.is_dir():
        shutil.copytree(overlays, scratch / "overlays", ignore=_SEED_IGNORE)
    policies = source / "deployments" / "infra-repo" / "policies"
    if policies.is_dir():  # the default Rego policies: trusted configuration, like the rules
        shutil.copytree(policies, scratch / "policies", ignore=_SEED_IGNORE)
    run_git(["init", "--quiet", "--initial-branch", branch], cwd=scratch)
    run_git(["add", "-A"], cwd=scratch)
    run_git([*_IDENTITY, "commit", "--quiet", "-m", "Seed the sandbox infrastructure repository"],
            cwd=scratch)
    bare.parent.mkdir(parents=True, exist_ok=True)
    run_git(["clone", "--bare", "--quiet", str(scratch), str(bare)])
    sha = run_git(["rev-parse", "HEAD"], cwd=scratch).strip()
    shutil.rmtree(scratch, ignore_errors=True)
    return sha


def commit_all(worktree: Path, message: str, *, author: str = "gitops-flows",
               email: str = "gitops-flows@localhost") -> str:
    """Commit every change in ``worktree`` (used by the sandbox demo and tests); return the SHA."""
    run_git(["add", "-A"], cwd=worktree)
    run_git(["-c", f"user.name={author}", "-c", f"user.email={email}", "commit", "--quiet",
             "-m", message], cwd=worktree)
    return run_git(["rev-parse", "HEAD"], cwd=worktree).strip()
