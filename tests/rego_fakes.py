"""Engines that fail the way a native engine can: for the child-process tests of gitops.rego."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from gitops.rego import RegorusEngine


class CrashingEngine(RegorusEngine):
    """Dies of SIGSEGV on the first rule it evaluates (as regopy does on some queries)."""

    def eval_rule(self, path: str) -> Any:
        os.kill(os.getpid(), signal.SIGSEGV)


class HangingEngine(RegorusEngine):
    """Never answers."""

    def eval_rule(self, path: str) -> Any:
        time.sleep(3600)
