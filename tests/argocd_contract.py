"""Argo CD's Swagger contract as a test double: validate every request and answer on the wire.

`ContractCheckingTransport` wraps a real httpx transport. For each exchange it checks that

- the method + path is an operation of `contracts/argocd/swagger-subset.json`, or the one documented
  extra (`POST /api/v1/applications`, ApplicationService_Create, built from the subset's own
  `v1alpha1Application` definition);
- every query parameter is one the operation declares;
- the request body (JSON, `Content-Type: application/json`) matches the operation's body schema;
- the answer is JSON and matches the schema for its status: `200`, else `default` (`runtimeError`).

Schemas are checked as JSON Schema draft 4 with `#/definitions/...` refs resolved in the file, with
format checks for int32/int64/byte/date-time. By default objects are *closed*: a property the
definition does not name is a violation (the upstream file leaves objects open, which would let a
misspelt key such as `repoUrl` through unnoticed). Violations raise `ContractViolation` at once and
are also kept on the transport.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft4Validator, FormatChecker

SPEC_PATH = Path(__file__).resolve().parent / "contracts" / "argocd" / "swagger-subset.json"

# Not in the subset, but documented by Argo CD and used by the client (see contracts README).
CREATE_OPERATION: Mapping[str, Any] = {
    "operationId": "ApplicationService_Create",
    "parameters": [
        {"name": "body", "in": "body", "required": True,
         "schema": {"$ref": "#/definitions/v1alpha1Application"}},
        {"name": "upsert", "in": "query", "type": "boolean"},
        {"name": "validate", "in": "query", "type": "boolean"},
    ],
    "responses": {"200": {"schema": {"$ref": "#/definitions/v1alpha1Application"}},
                  "default": {"schema": {"$ref": "#/definitions/runtimeError"}}},
}


class ContractViolation(AssertionError):
    """A request or an answer that the Argo CD contract does not allow."""


@dataclass(frozen=True)
class Operation:
    """One path operation of the contract."""

    method: str
    path: str
    operation_id: str
    body_definition: str | None
    query_parameters: frozenset[str]
    responses: Mapping[str, str]
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Exchange:
    """One checked request/answer pair."""

    operation_id: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    request_body: Any
    status_code: int
    response_body: Any


def _definition_name(schema: Mapping[str, Any] | None) -> str | None:
    if not schema:
        return None
    ref = schema.get("$ref", "")
    prefix = "#/definitions/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported schema (only $ref to definitions): {schema!r}")
    return ref[len(prefix):]


def _close(schema: Any, definitions: Mapping[str, Any]) -> None:
    """Make every object schema with named properties reject other properties (in place)."""
    if isinstance(schema, list):
        for item in schema:
            _close(item, definitions)
        return
    if not isinstance(schema, dict):
        return
    if "allOf" in schema and "properties" in schema:
        merged = dict(schema["properties"])
        for part in schema.pop("allOf"):
            target = definitions[_definition_name(part) or ""] if "$ref" in part else part
            merged.update(target.get("properties", {}))
        schema["properties"] = merged
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for key in ("properties",):
        for sub in schema.get(key, {}).values():
            _close(sub, definitions)
    for key in ("items", "additionalProperties", "allOf"):
        if isinstance(schema.get(key), (dict, list)):
            _close(schema[key], definitions)


def _format_checker() -> FormatChecker:
    checker = Draft4Validator.FORMAT_CHECKER
    checker = FormatChecker(formats=list(checker.checkers))

    def int_range(bits: int):  # type: ignore[no-untyped-def]
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

        def check(instance: object) -> bool:
            if isinstance(instance, bool):
                return True  # the type keyword reports it
            if isinstance(instance, str):
                if not re.fullmatch(r"-?\d+", instance):
                    return False
                instance = int(instance)
            return not isinstance(instance, int) or low <= instance <= high
        return check

    checker.checks("int32")(int_range(32))
    checker.checks("int64")(int_range(64))

    @checker.checks("byte")
    def is_base64(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        try:
            base64.b64decode(instance, validate=True)
        except (binascii.Error, ValueError):
            return False
        return True

    return checker


class ArgoCDContract:
    """The operations and definitions of the Argo CD Swagger subset, ready to validate against."""

    def __init__(self, spec: Mapping[str, Any], *, closed: bool = True) -> None:
        definitions = copy.deepcopy(dict(spec["definitions"]))
        if closed:
            originals = copy.deepcopy(definitions)
            for schema in definitions.values():
                _close(schema, originals)
        self.definitions: Mapping[str, Any] = definitions
        self.closed = closed
        self._checker = _format_checker()
        self._validators: dict[str, Draft4Validator] = {}
        paths = {path: dict(ops) for path, ops in spec["paths"].items()}
        paths.setdefault("/api/v1/applications", {}).setdefault("post", CREATE_OPERATION)
        self.operations: tuple[Operation, ...] = tuple(
            self._operation(method, path, op)
            for path, ops in paths.items() for method, op in ops.items()
        )

    @classmethod
    def load(cls, path: Path = SPEC_PATH, *, closed: bool = True) -> ArgoCDContract:
        """The contract from a Swagger 2.0 file (default: the copy under tests/contracts)."""
        return cls(json.loads(path.read_text(encoding="utf-8")), closed=closed)

    @staticmethod
    def _operation(method: str, path: str, op: Mapping[str, Any]) -> Operation:
        params = op.get("parameters", [])
        body = next((p for p in params if p["in"] == "body"), None)
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        return Operation(
            method=method.upper(), path=path, operation_id=op["operationId"],
            body_definition=_definition_name(body["schema"]) if body else None,
            query_parameters=frozenset(p["name"] for p in params if p["in"] == "query"),
            responses={status: _definition_name(r.get("schema")) or ""
                       for status, r in op["responses"].items()},
            pattern=pattern,
        )

    def operation(self, method: str, path: str) -> Operation:
        """The operation serving method + path; ContractViolation if there is none."""
        for op in self.operations:
            if op.method == method.upper() and op.pattern.match(path):
                return op
        raise ContractViolation(f"{method} {path} is not an operation of the Argo CD contract")

    def validate(self, definition: str, instance: Any, where: str = "") -> None:
        """Raise ContractViolation listing every way `instance` breaks `#/definitions/<name>`."""
        validator = self._validators.get(definition)
        if validator is None:
            if definition not in self.definitions:
                raise ContractViolation(f"no definition {definition!r} in the contract")
            validator = Draft4Validator(
                {"$ref": f"#/definitions/{definition}", "definitions": self.definitions},
                format_checker=self._checker)
            self._validators[definition] = validator
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:20]]
            raise ContractViolation(f"{where or definition} does not match {definition}:\n  "
                                    + "\n  ".join(lines))

    def check_request(self, request: httpx.Request) -> tuple[Operation, Any]:
        """Validate path, query and body of `request`; returns its operation and parsed body."""
        where = f"{request.method} {request.url.path}"
        op = self.operation(request.method, request.url.path)
        unknown = {k for k, _ in request.url.params.multi_items()} - op.query_parameters
        if unknown:
            raise ContractViolation(f"{where}: query parameters {sorted(unknown)} are not declared")
        content = request.content
        if op.body_definition is None:
            if content:
                raise ContractViolation(f"{where} takes no body")
            return op, None
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            raise ContractViolation(f"{where}: body Content-Type is {content_type!r}, "
                                    "not application/json")
        try:
            body = json.loads(content)
        except ValueError as ex:
            raise ContractViolation(f"{where}: request body is not JSON") from ex
        self.validate(op.body_definition, body, f"{where} request body")
        return op, body

    def check_response(self, op: Operation, status_code: int, headers: httpx.Headers,
                       content: bytes, where: str) -> Any:
        """Validate an answer against the schema for its status (200 or `default`)."""
        key = str(status_code) if str(status_code) in op.responses else "default"
        definition = op.responses.get(key)
        if not definition:
            raise ContractViolation(f"{where}: status {status_code} has no response in the spec")
        if not headers.get("content-type", "").startswith("application/json"):
            raise ContractViolation(f"{where}: {status_code} answer is "
                                    f"{headers.get('content-type')!r}, not application/json")
        try:
            body = json.loads(content)
        except ValueError as ex:
            raise ContractViolation(f"{where}: {status_code} answer is not JSON") from ex
        self.validate(definition, body, f"{where} {status_code} answer")
        return body


@dataclass
class ContractCheckingTransport(httpx.BaseTransport):
    """An httpx transport that checks each exchange against the contract, then records it."""

    inner: httpx.BaseTransport
    contract: ArgoCDContract
    exchanges: list[Exchange] = field(default_factory=list)
    violations: list[ContractViolation] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        where = f"{request.method} {request.url.path}"
        try:
            op, request_body = self.contract.check_request(request)
        except ContractViolation as violation:
            self.violations.append(violation)
            raise
        response = self.inner.handle_request(request)
        content = response.read()
        try:
            response_body = self.contract.check_response(op, response.status_code,
                                                         response.headers, content, where)
        except ContractViolation as violation:
            self.violations.append(violation)
            raise
        self.exchanges.append(Exchange(
            operation_id=op.operation_id, method=request.method, path=request.url.path,
            query=tuple(request.url.params.multi_items()), request_body=request_body,
            status_code=response.status_code, response_body=response_body))
        return response

    def close(self) -> None:
        self.inner.close()

    def operation_ids(self) -> set[str]:
        """The operations exercised so far."""
        return {exchange.operation_id for exchange in self.exchanges}
