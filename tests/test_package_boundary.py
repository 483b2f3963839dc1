"""The product's packages never import the stand-ins (the sandbox and the emulators)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAND_INS = ("deployments.sandbox", "deployments.emulators")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_gitops_tasks_and_flows_never_import_the_stand_ins() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if m.startswith(STAND_INS))
        for package in ("gitops", "tasks", "flows")
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert not (ROOT / "gitops" / "sandbox").exists() and not (ROOT / "gitops" / "emulators").exists()


def test_the_receiver_imports_no_prefect() -> None:
    """gitops.receiver decides what a delivery starts; only deployments/ talks to Prefect."""
    import subprocess
    import sys

    probe = ("import sys, gitops.receiver; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "[]"
