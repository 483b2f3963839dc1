"""What the default branch's history allows: which commits may reach an environment, and which
way a deploy would move one.

Pure: the git facts (is a commit in the branch's history, which of two commits is older) are read
by the caller from the repository at run time, never from a Prefect Variable or a parameter.
"""

from __future__ import annotations

from enum import Enum

from gitops.config import Environment
from gitops.errors import UnreviewedCommit


def admit_commit(trusted: Environment, sha: str, *, branch: str, head: str,
                 merged: bool) -> str:
    """Whether ``sha`` may reach ``trusted`` (the environment as the default branch configures it).

    A commit in ``branch``'s history (``merged``) is reviewed: ``""``. Any other is refused
    (:class:`UnreviewedCommit`), unless the trusted configuration sets ``allow_unmerged``: then
    the warning to log and report.
    """
    if merged:
        return ""
    if not trusted.allow_unmerged:
        raise UnreviewedCommit(trusted.name, sha, branch, head)
    return (f"{trusted.name}: commit {sha[:12]} is NOT in the history of {branch} (now at "
            f"{head[:12]}); deployed anyway because the environment sets allow_unmerged = true "
            f"on {branch}")


class Move(Enum):
    """Where deploying the branch head takes an environment, from its last good commit."""

    FIRST = "first"
    """Never deployed."""
    SAME = "same"
    """The head is the last good commit."""
    FORWARD = "forward"
    """The last good commit is an ancestor of the head: the usual push."""
    BACKWARD = "backward"
    """The head is an ancestor of the last good commit: deploying it would go back in time."""
    DIVERGED = "diverged"
    """Neither is an ancestor of the other: the branch's history was rewritten (force-push)."""


def move(last_good: str | None, head: str, *, last_is_ancestor: bool,
         head_is_ancestor: bool) -> Move:
    """Classify the step from ``last_good`` to ``head`` (``last_is_ancestor``: of the head;
    ``head_is_ancestor``: of the last good commit)."""
    if last_good is None:
        return Move.FIRST
    if last_good == head:
        return Move.SAME
    if last_is_ancestor:
        return Move.FORWARD
    if head_is_ancestor:
        return Move.BACKWARD
    return Move.DIVERGED
