"""The `/gitops` commands people write on the code host (pure, no Prefect: the receiver uses it).

    /gitops approve <environment> <fingerprint>
    /gitops reject <environment> [reason]
    /gitops override <environment> <check key> <fingerprint> [reason]

A command is the first non-empty line of a comment or review body; anything after it is the
writer's own text. Parsing a command proves nothing about who wrote it: gitops.approval judges that
against what the code host vouches for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gitops.config import ENV_NAME

_ENV = ENV_NAME.pattern.removeprefix("^").removesuffix("$")
_COMMAND_RE = re.compile(
    rf"^/gitops[ \t]+(approve|reject|override)[ \t]+({_ENV})(?:[ \t]+(.*?))?[ \t]*$")


@dataclass(frozen=True)
class Command:
    """A parsed `/gitops approve|reject` line."""

    verb: Literal["approve", "reject", "override"]
    environment: str
    argument: str
    """approve, override: the fingerprint; reject: the reason (may be empty)."""
    check: str = ""
    """override: the key of the check it overrides."""
    reason: str = ""
    """override: the writer's reason (may be empty)."""


def parse_command(body: str) -> Command | None:
    """The command on the first non-empty line of ``body``, or None."""
    for line in body.splitlines():
        if line.strip():
            match = _COMMAND_RE.match(line.strip())
            if match is None:
                return None
            verb, env, arg = match.groups()
            arg = (arg or "").strip()
            if verb == "override":
                check, fingerprint, reason = (arg.split(None, 2) + ["", "", ""])[:3]
                return Command(verb, env, fingerprint, check, reason.strip())
            return Command(verb, env, arg)  # type: ignore[arg-type]
    return None


def approve_command(environment: str, fingerprint: str) -> str:
    """The comment that approves ``fingerprint`` for ``environment``."""
    return f"/gitops approve {environment} {fingerprint}"


def reject_command(environment: str, reason: str = "") -> str:
    return f"/gitops reject {environment} {reason}".rstrip()


def override_command(environment: str, check: str, fingerprint: str, reason: str = "") -> str:
    """The comment that overrides the soft-mandatory check ``check`` for one plan."""
    return f"/gitops override {environment} {check} {fingerprint} {reason}".rstrip()
