"""Checks of a checkout before terraform runs in it: what a commit may not bring. PURE (reads files).

A pull request is untrusted code. What it can change in the *code* is planned; what would change
*how the pipeline runs it* is refused, here, before any terraform command:

* :func:`refuse_escaping_symlinks`: a symlink anywhere in the checkout that resolves outside it
  (a tfvars file, an environment folder or a ``.tf`` file pointing at ``/proc/self/environ`` or a
  worker's files) refuses the whole checkout, naming each link;
* :func:`check_stack_backend`: the root module's ``terraform { backend ... }`` must be ``"s3"``
  and set nothing but the keys an environment's backend file may set (which the pipeline
  overrides anyway); no ``cloud`` block. So a stack cannot move its state, point the backend at
  another endpoint, assume a role, or read a credentials file.

Provider installation needs no check here: terraform reads only the CLI config the pipeline
writes (``plugin`` folders and ``terraform.d`` in the repository are not consulted when the CLI
config has an explicit ``provider_installation``), and ``TF_DATA_DIR`` is the run's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gitops.config import BackendSettings
from gitops.errors import ConfigError, UnsafeCheckout

__all__ = ["check_stack_backend", "escaping_symlinks", "refuse_escaping_symlinks"]

_ALLOWED_BACKEND_KEYS = frozenset(BackendSettings.model_fields)


def escaping_symlinks(root: Path) -> list[str]:
    """Repository-relative paths of the symlinks under ``root`` that resolve outside it."""
    top = Path(root).resolve()
    found = []
    for folder, dirs, files in os.walk(top):
        if ".git" in dirs:
            dirs.remove(".git")
        for name in (*dirs, *files):
            path = Path(folder) / name
            if not path.is_symlink():
                continue
            target = path.resolve()
            if target != top and top not in target.parents:
                found.append(path.relative_to(top).as_posix())
    return sorted(found)


def refuse_escaping_symlinks(root: Path) -> None:
    """Raise UnsafeCheckout if any symlink in the checkout leaves it."""
    bad = escaping_symlinks(root)
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise UnsafeCheckout(f"the commit holds symlinks that point outside the repository: "
                             f"{shown}; nothing was planned")


def _backend_blocks(stack_dir: Path) -> list[tuple[str, str, dict]]:
    """``(file, kind, body)`` of every backend/cloud block in the root module's files."""
    import hcl2
    from lark.exceptions import LarkError

    found: list[tuple[str, str, dict]] = []
    for path in sorted(stack_dir.iterdir()):
        if not path.is_file():
            continue
        if path.name.endswith(".tf"):
            try:
                doc = hcl2.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, LarkError) as exc:
                raise UnsafeCheckout(f"{path.name}: cannot be read to check its backend: "
                                     f"{exc}") from exc
        elif path.name.endswith(".tf.json"):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UnsafeCheckout(f"{path.name}: cannot be read to check its backend: "
                                     f"{exc}") from exc
        else:
            continue
        terraform = doc.get("terraform", []) if isinstance(doc, dict) else []
        for block in terraform if isinstance(terraform, list) else [terraform]:
            if not isinstance(block, dict):
                continue
            for kind in ("backend", "cloud"):
                entries = block.get(kind)
                if entries is None:
                    continue
                for entry in entries if isinstance(entries, list) else [entries]:
                    if kind == "cloud":
                        found.append((path.name, "cloud", entry if isinstance(entry, dict) else {}))
                        continue
                    for label, body in (entry.items() if isinstance(entry, dict) else ()):
                        found.append((path.name, label.strip('"'),
                                      body if isinstance(body, dict) else {}))
    return found


def check_stack_backend(stack_dir: Path, stack: str) -> None:
    """Refuse a root module whose backend is not a plain ``backend "s3"`` (see module docstring)."""
    directory = Path(stack_dir)
    if not directory.is_dir():
        raise ConfigError(f"{stack}: not a directory")
    blocks = _backend_blocks(directory)
    if not blocks:
        raise UnsafeCheckout(f"{stack}: the root module declares no backend \"s3\" block, so its "
                             "state would not be the environment's; refused")
    for file, kind, body in blocks:
        if kind == "cloud":
            raise UnsafeCheckout(f"{stack}/{file}: a `cloud` block is not allowed; the state "
                                 "lives in the environment's S3 backend")
        if kind != "s3":
            raise UnsafeCheckout(f"{stack}/{file}: backend {kind!r} is not allowed; only "
                                 "backend \"s3\" (configured by the pipeline)")
        extra = sorted(k for k in body if not k.startswith("__")
                       and k not in _ALLOWED_BACKEND_KEYS)
        if extra:
            raise UnsafeCheckout(
                f"{stack}/{file}: backend \"s3\" sets {', '.join(extra)}, which the pipeline does "
                f"not allow (allowed: {', '.join(sorted(_ALLOWED_BACKEND_KEYS))}); endpoints, "
                "roles and credentials come from the platform")
