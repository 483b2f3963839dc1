"""Which environments a set of changed paths affects: what a pull request has to plan. PURE.

A changed path (repository-relative, ``/``-separated, as ``git diff --name-only`` prints it)
affects an environment when it is:

    environment  under the environment's folder (``<environments_dir>/<env>/``), or is its
                 var file or backend config wherever those live
    stack        under the environment's stack (its root module)
    module       under a local module the stack uses, directly or through other local modules
                 (``source = "../..."`` in the ``*.tf`` files, followed transitively)
    overlay      under the environment's Argo CD overlay (``overlays/<env>/`` or the ``path`` of
                 its ``[argocd]`` settings): only Argo CD changes, but it is planned all the same

Anything else (README, ``.github/``, another stack's module) affects nothing; a change under the
policies directory (:func:`changed_policies`) is not planned for itself either, but is shown on
the plans that are made. One path may affect
many environments (a shared module), and every environment it affects is listed with the reason.

Nothing is written; the only I/O is reading the stacks' ``*.tf`` files under ``repo_root`` to find
their local module sources.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gitops.config import DEFAULT_ENVIRONMENTS_DIR, Environment

__all__ = ["AffectedSet", "Impact", "Reason", "affected_environments", "changed_policies",
           "local_modules"]

_LOCAL_SOURCE = re.compile(r'^\s*"?source"?\s*[=:]\s*"(\.\.?/[^"]*)"', re.MULTILINE)
"""A module block's local source (HCL ``source = "../x"`` or JSON ``"source": "../x"``)."""
_TF_SUFFIXES = (".tf", ".tf.json")
MAX_MODULES = 1000
"""Stop following local modules after this many directories (a guard, not a real limit)."""


class Reason(StrEnum):
    """Why a path affects an environment (in order of precedence)."""

    ENVIRONMENT = "environment"
    STACK = "stack"
    MODULE = "module"
    OVERLAY = "overlay"


@dataclass(frozen=True, slots=True)
class Impact:
    """One changed path affecting one environment."""

    env: str
    path: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class AffectedSet:
    """The environments a change affects, why, and the paths that affect nothing."""

    impacts: tuple[Impact, ...] = ()
    unaffecting: tuple[str, ...] = ()
    """Changed paths that affect no environment (docs, CI files, unused modules)."""

    @property
    def environments(self) -> tuple[str, ...]:
        """Affected environment names, sorted, each once."""
        return tuple(sorted({i.env for i in self.impacts}))

    @property
    def empty(self) -> bool:
        """True when no environment is affected."""
        return not self.impacts

    def impacts_on(self, env: str) -> tuple[Impact, ...]:
        """The changed paths affecting ``env`` (sorted by path)."""
        return tuple(i for i in self.impacts if i.env == env)

    def reasons(self, env: str) -> frozenset[Reason]:
        """Why ``env`` is affected (empty when it is not)."""
        return frozenset(i.reason for i in self.impacts if i.env == env)


def _normalise(path: str) -> str | None:
    """A repository-relative posix path, or None if it is empty or leaves the repository."""
    path = path.strip().replace("\\", "/")
    if not path or path.startswith("/"):
        return None
    norm = posixpath.normpath(path)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        return None
    return norm


def _under(path: str, folder: str) -> bool:
    return folder in ("", ".") or path == folder or path.startswith(folder + "/")


def _module_sources(module_dir: Path) -> list[str]:
    """The local module sources named in the ``*.tf``/``*.tf.json`` files of one module dir."""
    if not module_dir.is_dir():
        return []
    found: list[str] = []
    for file in sorted(module_dir.iterdir()):
        if not file.is_file() or not file.name.endswith(_TF_SUFFIXES):
            continue
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found.extend(_LOCAL_SOURCE.findall(text))
    return found


def local_modules(stack: str, *, repo_root: Path) -> frozenset[str]:
    """Repository-relative folders of the local modules ``stack`` uses, transitively.

    A source that leaves the repository or does not exist is ignored (terraform will say so
    when it plans). The stack itself is not included.
    """
    start = _normalise(stack)
    if start is None:
        return frozenset()
    root = Path(repo_root)
    seen: set[str] = {start}
    todo = [start]
    while todo and len(seen) < MAX_MODULES:
        current = todo.pop()
        for source in _module_sources(root / current):
            target = _normalise(posixpath.join(current, source.split("//", 1)[0] or "."))
            if target is None or target in seen:
                continue
            seen.add(target)
            todo.append(target)
    seen.discard(start)
    return frozenset(seen)


def affected_environments(changed_paths: Iterable[str],
                          environments: Mapping[str, Environment], *, repo_root: Path,
                          environments_dir: str = DEFAULT_ENVIRONMENTS_DIR,
                          unloadable: Collection[str] = ()) -> AffectedSet:
    """The environments ``changed_paths`` affect (see the module docstring for the rules).

    ``environments`` are the configured environments at the head commit, checked out at
    ``repo_root``. ``unloadable`` names environment folders whose configuration failed to load:
    a change under their folder still marks them affected (reason ``environment``), so the
    failure is reported on the pull request instead of silently skipped.
    """
    paths = sorted({p for p in (_normalise(raw) for raw in changed_paths) if p is not None})
    env_root = _normalise(environments_dir) or ""
    modules_of: dict[str, frozenset[str]] = {}
    rules: list[tuple[str, list[tuple[Reason, str, bool]]]] = []
    for name in sorted(environments):
        env = environments[name]
        stack = _normalise(env.stack) or env.stack
        if stack not in modules_of:
            modules_of[stack] = local_modules(stack, repo_root=repo_root)
        overlay = env.argocd.path if env.argocd is not None else f"overlays/{name}"
        own: list[tuple[Reason, str, bool]] = [
            (Reason.ENVIRONMENT, posixpath.join(env_root, name), True),
            (Reason.ENVIRONMENT, _normalise(env.var_file) or env.var_file, False),
            (Reason.ENVIRONMENT, _normalise(env.backend_config) or env.backend_config, False),
            (Reason.STACK, stack, True),
            *((Reason.MODULE, module, True) for module in sorted(modules_of[stack])),
        ]
        overlay_dir = _normalise(overlay)
        if overlay_dir is not None:
            own.append((Reason.OVERLAY, overlay_dir, True))
        rules.append((name, own))
    for name in sorted(set(unloadable) - set(environments)):
        rules.append((name, [(Reason.ENVIRONMENT, posixpath.join(env_root, name), True)]))

    impacts: list[Impact] = []
    unaffecting: list[str] = []
    for path in paths:
        hit = False
        for name, own in rules:
            for reason, target, is_folder in own:
                if (_under(path, target) if is_folder else path == target):
                    impacts.append(Impact(name, path, reason))
                    hit = True
                    break
        if not hit:
            unaffecting.append(path)
    impacts.sort(key=lambda i: (i.env, i.path))
    return AffectedSet(tuple(impacts), tuple(unaffecting))


def changed_policies(changed_paths: Iterable[str], policies_dir: str) -> tuple[str, ...]:
    """The changed paths under the policies directory (its ``env/<name>/`` folders included)."""
    folder = _normalise(policies_dir)
    if folder is None:
        return ()
    return tuple(sorted({p for p in (_normalise(raw) for raw in changed_paths)
                         if p is not None and _under(p, folder) and p != folder}))
