"""Rego engines measured against gitops.rego's choice (not product dependencies).

``RegopyEngine`` adapts PyPI ``regopy`` (Microsoft's rego-cpp bindings) to
:class:`gitops.rego.RegoEngine`, so ``gitops.rego.run_policy_tests(..., engine=
"bench.rego_engines:RegopyEngine")`` runs the same suites, the same way, on it.
rego-cpp reads Rego v1 only; ``v0`` is ignored (FIELD-NOTES: v0 set rules become objects).
"""

from __future__ import annotations

import json
from typing import Any

from gitops.rego import UNDEFINED, RegoError


class RegopyEngine:
    def __init__(self) -> None:
        from regopy import Interpreter

        self._rego = Interpreter()
        self._modules: list[tuple[str, str]] = []

    def add_module(self, name: str, source: str, *, v0: bool) -> None:
        try:
            self._rego.add_module(name, source)
        except Exception as exc:  # noqa: BLE001 - regopy raises plain errors
            raise RegoError(str(exc)[:300], name) from None

    def add_data(self, data_json: str) -> None:
        self._rego.add_data_json(data_json)

    def set_input(self, input_json: str) -> None:
        self._rego.set_input_term(input_json)

    def eval_rule(self, path: str) -> Any:
        try:
            out = self._rego.query(path)
        except Exception as exc:  # noqa: BLE001
            raise RegoError(str(exc)[:300]) from None
        text = str(out)
        if text.strip() == "undefined":
            return UNDEFINED
        try:
            doc = json.loads(text)
        except ValueError:
            raise RegoError(text[:300]) from None
        if "expressions" not in doc:
            if "errors" in doc or "error" in text:
                raise RegoError(text[:300])
            return UNDEFINED
        values = doc["expressions"]
        return values[0] if values else UNDEFINED
