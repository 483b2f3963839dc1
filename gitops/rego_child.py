"""The child process of gitops.rego (``python -m gitops.rego_child check|test ...``).

A module of its own, so the child imports gitops.rego once, by its name (``-m gitops.rego``
would load it twice, as ``__main__`` and as itself, with two sets of classes).
"""

from __future__ import annotations

import sys

from gitops.rego import _main

if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
