"""The sandbox "cloud": the objects the sandbox Terraform provider manages, as JSON files.

Each object lives in ``<root>/<kind>/<id>.json`` and is written atomically (temp file +
``os.replace``), so a reader never sees half an object. Besides the provider, the CLI and the tests
use this module directly to make out-of-band changes (``tamper``), the way an engineer clicking in a
cloud console makes drift.

Ids are deterministic for a given root: they derive from the kind, the object's ``name`` and how many
objects of that kind and name were created before. Re-running the same sequence of applies on a
fresh root gives the same ids, which keeps plan fixtures stable.

No Terraform or ``tf`` imports here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gitops.errors import SandboxObjectNotFound

_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")

#: Id prefixes per kind, like the cloud providers use (``vpc-``, ``i-``...); other kinds use the kind.
ID_PREFIXES: Mapping[str, str] = {
    "network": "net",
    "service": "svc",
    "load_balancer": "lb",
    "database": "db",
}


class SandboxFault(OSError):
    """A failure injected into the sandbox cloud: what a cloud API error looks like to the provider."""


class SandboxCloud:
    """A directory of JSON objects standing in for a cloud account."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- fault injection (tests and demos) ---------------------------------------------------

    def inject_fault(self, name: str, *, message: str = "", delay_seconds: float = 0.0,
                     once: bool = True) -> None:
        """Make the next create/update of the object named ``name`` slow and/or fail.

        ``message`` set: the call fails with it (after the delay). ``once``: the fault is used up
        by the first call it hits.
        """
        self._write_json(self._fault_path(name), {"message": message, "delay": delay_seconds,
                                                  "once": once})

    def clear_fault(self, name: str) -> None:
        """Remove an injected fault."""
        with contextlib.suppress(FileNotFoundError):
            self._fault_path(name).unlink()

    def _fault_path(self, name: str) -> Path:
        if not _ID.fullmatch(name):
            raise ValueError(f"invalid object name for a fault: {name!r}")
        return self.root / "_faults" / f"{name}.json"

    def _apply_fault(self, name: str) -> None:
        if not name or not _ID.fullmatch(name):
            return
        path = self._fault_path(name)
        try:
            fault = json.loads(path.read_text())
        except FileNotFoundError:
            return
        if fault.get("once", True):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if fault.get("delay"):
            time.sleep(float(fault["delay"]))
        if fault.get("message"):
            raise SandboxFault(str(fault["message"]))

    # -- public API -------------------------------------------------------------------------

    def create(self, kind: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new object of `kind` and return it with its assigned ``id``."""
        self._apply_fault(str(attrs.get("name", "")))
        kind_dir = self._kind_dir(kind)
        with self._locked(kind):
            counters_path = kind_dir / ".counters.json"
            counters: dict[str, int] = (
                json.loads(counters_path.read_text()) if counters_path.exists() else {}
            )
            name = str(attrs.get("name", ""))
            seq = counters.get(name, 0)
            counters[name] = seq + 1
            digest = hashlib.sha256(f"{kind}\x00{name}\x00{seq}".encode()).hexdigest()[:12]
            obj_id = f"{ID_PREFIXES.get(kind, kind.replace('_', '-'))}-{digest}"
            obj = {**dict(attrs), "id": obj_id}
            self._write_json(counters_path, counters)
            self._write_json(self._path(kind, obj_id), obj)
        return obj

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist (never created, or deleted)."""
        path = self._path(kind, obj_id)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def update(self, kind: str, obj_id: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the object's attributes (its id is kept); raise if it does not exist."""
        self._apply_fault(str(attrs.get("name", "")))
        with self._locked(kind):
            if self.get(kind, obj_id) is None:
                raise SandboxObjectNotFound(kind, obj_id)
            obj = {**dict(attrs), "id": obj_id}
            self._write_json(self._path(kind, obj_id), obj)
        return obj

    def delete(self, kind: str, obj_id: str) -> bool:
        """Delete the object; True if it existed, False if it was already gone."""
        with self._locked(kind):
            try:
                self._path(kind, obj_id).unlink()
            except FileNotFoundError:
                return False
        return True

    def list(self, kind: str) -> list[dict[str, Any]]:
        """Every object of `kind`, ordered by id."""
        kind_dir = self.root / self._check_kind(kind)
        if not kind_dir.is_dir():
            return []
        objs = []
        for path in sorted(kind_dir.glob("*.json")):
            if path.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                objs.append(json.loads(path.read_text()))
        return objs

    def tamper(self, kind: str, obj_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change top-level attributes out of band (a console click); raise if it does not exist.

        Each key in `changes` replaces that attribute as a whole (a ``tags`` change replaces the
        whole tag map). The ``id`` cannot be changed.
        """
        if "id" in changes:
            raise ValueError("an object's id cannot be tampered with")
        with self._locked(kind):
            obj = self.get(kind, obj_id)
            if obj is None:
                raise SandboxObjectNotFound(kind, obj_id)
            obj.update(changes)
            self._write_json(self._path(kind, obj_id), obj)
        return obj

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _check_kind(kind: str) -> str:
        if not _KIND.match(kind):
            raise ValueError(f"invalid sandbox object kind {kind!r}")
        return kind

    def _kind_dir(self, kind: str) -> Path:
        kind_dir = self.root / self._check_kind(kind)
        kind_dir.mkdir(parents=True, exist_ok=True)
        return kind_dir

    def _path(self, kind: str, obj_id: str) -> Path:
        if not _ID.match(obj_id):
            raise ValueError(f"invalid sandbox object id {obj_id!r}")
        return self.root / self._check_kind(kind) / f"{obj_id}.json"

    @contextlib.contextmanager
    def _locked(self, kind: str) -> Iterator[None]:
        """Serialise writers of one kind, across threads and processes."""
        lock_path = self._kind_dir(kind) / ".lock"
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _write_json(path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
