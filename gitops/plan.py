"""Read ``terraform show -json <planfile>`` into frozen, typed models.

The input is the documented JSON plan representation (``format_version`` ``0.x``, as written by
Terraform 1.0, or ``1.x``, Terraform >= 1.1; minor versions only add fields, which are ignored).
A document with another major version, or one that does not have the documented shape, raises
:class:`~gitops.errors.PlanParseError` with a message naming the offending field; never
``KeyError``/``TypeError``.

What Terraform wrote that needs care (each seen in real plans):

* Terraform 0.15.4 to 1.0.0 wrote ``resource_drift`` entries without ``address`` (and without
  ``index``), and listed every managed resource there, drifted or not. The address is rebuilt from
  ``module_address``/``type``/``name`` (the instance key is taken from ``prior_state`` when one
  object there has the refreshed values; otherwise it shows as ``[?N]``) and entries whose
  before and after are equal are dropped, as Terraform 1.0.1 does.
* A plan can be errored (``errored``), incomplete (``complete: false``, deferred changes) or not
  applyable (``applyable: false``); :class:`Plan` says so, the renderers put it in words.

What the model holds:

* :class:`Plan`: the resource changes, the drift Terraform detected (``resource_drift``: objects
  changed outside Terraform), the output changes, :class:`Counts`, the deferred changes and failed
  checks, plus ``destructive`` and ``changes_destructive_first`` views. ``no-op`` entries are
  dropped unless they move (``previous_address``, Terraform >= 1.1) or import (``importing``,
  Terraform >= 1.5) an object: Terraform applies those, so they are changes.
* :class:`ResourceChange`: one resource instance, its :class:`Action`, whether it moves or is
  imported, why it is replaced (``action_reason``, ``replace_paths``) and, for the tag policy,
  its *effective* tags after the change (``tags_all``, falling back to ``tags``).
* :class:`AttributeChange`: one attribute that differs, as short display strings. Nested maps and
  lists are flattened (``tags.Owner``, ``ports[0]``).

No secret leaves this module in clear: a value Terraform marked sensitive displays as
``(sensitive)``, and so does a value that merely *looks* like a credential
(:func:`gitops.redact.looks_like_secret`), one under a secret-ish name (``db_password``), or one
that contains a value marked sensitive elsewhere in the plan.

Speed: a 10,000-resource plan parses in a fraction of the ``json.loads`` time of the same file.
Nothing is deep-copied; the attribute diff of a resource is computed the first time
:attr:`ResourceChange.attributes` is read (then cached, and the raw JSON reference dropped). The
document must therefore not be mutated after :func:`parse_plan`. Pickling a :class:`Plan` (e.g. as
a Prefect task result) computes the diffs and stores only the masked display strings.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gitops.errors import PlanParseError
from gitops.redact import MIN_KNOWN_SECRET_LENGTH, is_secret_name, looks_like_secret

__all__ = [
    "ABSENT", "SENSITIVE", "SUPPORTED_FORMAT_MAJORS", "UNKNOWN",
    "Action", "AttributeChange", "CheckResult", "Counts", "DeferredChange", "FrozenMap",
    "OutputChange", "Plan", "ResourceChange", "count_changes", "load_plan", "parse_plan",
    "sensitive_strings",
]

SENSITIVE = "(sensitive)"
"""Display of a value that is secret (marked sensitive, or credential-looking)."""
UNKNOWN = "(known after apply)"
"""Display of a value Terraform only knows after apply."""
ABSENT = ""
"""Display of a value that is null or does not exist on that side of the change."""
MAX_DISPLAY = 100
"""Longest display string; longer values are cut and end with ``…``."""
SUPPORTED_FORMAT_MAJORS = (0, 1)
"""``format_version`` majors this module reads (0.x: Terraform 0.12-1.0, 1.x: Terraform >= 1.1)."""

_FORMAT_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")
_MAX_SUBSTRING_SECRETS = 256
_MAX_PROBLEM = 500


class Action(StrEnum):
    """What Terraform will do to one resource instance (or output)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"
    """``["delete", "create"]`` or ``["create", "delete"]`` (create_before_destroy); also
    ``["create", "forget"]`` (Terraform >= 1.7: the old object is forgotten, not destroyed)."""
    READ = "read"
    NO_OP = "no-op"
    """Nothing changes on the object; kept only when it moves or is imported."""
    FORGET = "forget"
    """Removed from state without being destroyed (Terraform >= 1.7 ``removed`` blocks)."""
    OTHER = "other"
    """An action list this version does not know: a change is present, see ``actions``."""


_ACTIONS: dict[tuple[str, ...], Action] = {
    ("no-op",): Action.NO_OP,
    ("create",): Action.CREATE,
    ("read",): Action.READ,
    ("update",): Action.UPDATE,
    ("delete", "create"): Action.REPLACE,
    ("create", "delete"): Action.REPLACE,
    ("delete",): Action.DELETE,
    ("forget",): Action.FORGET,
    ("create", "forget"): Action.REPLACE,
}

# Order of changes_destructive_first: deletes, replaces, then the rest.
_RANK = {Action.DELETE: 0, Action.REPLACE: 1, Action.OTHER: 2, Action.UPDATE: 3, Action.CREATE: 4,
         Action.FORGET: 5, Action.READ: 6, Action.NO_OP: 7}


class FrozenMap(Mapping[str, str]):
    """A read-only, hashable, picklable ``str -> str`` mapping (a resource's tags)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(data or {})

    @classmethod
    def _own(cls, data: dict[str, str]) -> FrozenMap:
        new = cls.__new__(cls)
        new._data = data
        return new

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))


@dataclass(frozen=True, slots=True)
class AttributeChange:
    """One attribute that differs between before and after, as display strings.

    ``before``/``after`` are short (at most :data:`MAX_DISPLAY` characters) JSON-style renderings;
    :data:`ABSENT` (``""``) means null or not present, :data:`SENSITIVE` a masked value,
    :data:`UNKNOWN` a value known only after apply. ``sensitive`` is true when the value is masked
    for any reason (marked sensitive, credential-looking, secret-ish name); ``unknown`` when the
    after value is known only after apply.
    """

    path: str
    before: str
    after: str
    sensitive: bool = False
    unknown: bool = False
    forces_replacement: bool = False


class _Secrets:
    """The plan's sensitive string values, shared by the lazy attribute diffs of one plan."""

    __slots__ = ("exact", "substrings")

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.substrings: tuple[str, ...] = ()

    def freeze(self) -> None:
        long = sorted((s for s in self.exact if len(s) >= MIN_KNOWN_SECRET_LENGTH), key=len,
                      reverse=True)
        self.substrings = tuple(long[:_MAX_SUBSTRING_SECRETS])

    def masks(self, text: str) -> bool:
        if text in self.exact:
            return True
        return any(s in text for s in self.substrings)


_NO_SECRETS = _Secrets()


class _LazyAttributes:
    """The attribute diff of one resource change: computed on first use, then only the result kept.

    Compares by the computed attributes; pickles as the computed (masked) attributes only.
    """

    __slots__ = ("_change", "_secrets", "_value")

    def __init__(self, change: Mapping[str, Any] | None, secrets: _Secrets | None,
                 value: tuple[AttributeChange, ...] | None = None) -> None:
        self._change = change
        self._secrets = secrets
        self._value = value

    def get(self) -> tuple[AttributeChange, ...]:
        value = self._value
        if value is None:
            change = self._change
            value = () if change is None else _diff_attributes(change, self._secrets or _NO_SECRETS)
            self._value = value
            self._change = None
            self._secrets = None
        return value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _LazyAttributes):
            return NotImplemented
        return self.get() == other.get()

    def __hash__(self) -> int:
        return hash(self.get())

    def __reduce__(self) -> tuple[Any, ...]:
        return (_LazyAttributes, (None, None, self.get()))

    def __repr__(self) -> str:
        return "<attributes>"


@dataclass(frozen=True, slots=True)
class ResourceChange:
    """One resource instance Terraform plans to change (or found drifted).

    ``module_address`` is ``""`` for the root module. ``previous_address`` is set when the object
    moves (a ``moved`` block, Terraform >= 1.1); ``importing`` when it is imported first
    (``import_id`` is the ID given, None when Terraform did not say, or it looks secret);
    ``replace_paths`` are the attribute paths that force a replacement. ``address_rebuilt`` is true
    when Terraform wrote no address (see the module docstring). ``takes_tags`` says whether the
    resource type
    has a ``tags``/``tags_all`` attribute at all. ``tags_after`` are the effective tags after the
    change (``tags_all``, which includes provider default tags, else ``tags``; for a delete, the
    tags before), without the keys whose values are unknown until apply: those are in
    ``tags_unknown``. ``tags_after`` is None when the type takes no tags or when the whole tag map
    is unknown until apply.
    """

    address: str
    type: str
    name: str
    action: Action
    module_address: str = ""
    mode: str = "managed"
    index: int | str | None = None
    provider: str = ""
    action_reason: str | None = None
    actions: tuple[str, ...] = ()
    previous_address: str | None = None
    deposed: str | None = None
    importing: bool = False
    import_id: str | None = None
    generated_config: bool = False
    replace_paths: tuple[str, ...] = ()
    address_rebuilt: bool = False
    takes_tags: bool = False
    tags_after: FrozenMap | None = None
    tags_unknown: frozenset[str] = frozenset()
    _attributes: _LazyAttributes = field(default_factory=lambda: _LazyAttributes(None, None, ()),
                                         repr=False)

    @property
    def attributes(self) -> tuple[AttributeChange, ...]:
        """The attributes that differ, flattened, in path order (computed once, on first use)."""
        return self._attributes.get()

    @property
    def moved(self) -> bool:
        """True when the object moves from ``previous_address`` to ``address``."""
        return self.previous_address is not None and self.previous_address != self.address

    @property
    def is_destructive(self) -> bool:
        """True for deletes and replaces (and unknown action lists that contain a delete).

        A ``["create", "forget"]`` replacement is not: the old object is left in place
        (``destroy = false``), as Terraform says.
        """
        if self.action is Action.DELETE:
            return True
        return self.action in (Action.REPLACE, Action.OTHER) and "delete" in self.actions

    @property
    def create_before_destroy(self) -> bool:
        """True for a replace that creates the new object before destroying the old one."""
        return self.actions == ("create", "delete")


@dataclass(frozen=True, slots=True)
class OutputChange:
    """One root module output that changes; values as display strings (see AttributeChange)."""

    name: str
    action: Action
    sensitive: bool
    before: str
    after: str
    unknown: bool = False


@dataclass(frozen=True, slots=True)
class Counts:
    """How many resource instances each action touches.

    Replacements are counted ONLY in ``replace``: ``add`` counts pure creates and ``destroy``
    pure deletes. Terraform's own "Plan: X to add, Y to change, Z to destroy" counts a replace in
    both add and destroy; :attr:`terraform_add` and :attr:`terraform_destroy` give those numbers.
    ``read`` counts data sources read during apply; ``forget`` resources removed from state only;
    ``other`` action lists this version does not know; ``no_op`` objects whose only change is a
    move or an import. ``imports`` and ``moves`` count the objects imported and moved, whatever
    else happens to them (so they overlap the other counts), like Terraform's "N to import".
    """

    add: int = 0
    change: int = 0
    destroy: int = 0
    replace: int = 0
    read: int = 0
    forget: int = 0
    other: int = 0
    no_op: int = 0
    imports: int = 0
    moves: int = 0

    @property
    def terraform_add(self) -> int:
        """Creates including replacements, as Terraform counts "to add"."""
        return self.add + self.replace

    @property
    def terraform_destroy(self) -> int:
        """Deletes including replacements, as Terraform counts "to destroy"."""
        return self.destroy + self.replace

    @property
    def total(self) -> int:
        """Every resource change (reads, moves and imports included), each object once."""
        return (self.add + self.change + self.destroy + self.replace + self.read + self.forget
                + self.other + self.no_op)

    def summary(self) -> str:
        """``"1 to add, 2 to change, 0 to destroy, 1 to replace"`` (plus reads etc. when non-zero).

        Imports come first, as in Terraform's own ``Plan: 1 to import, ...`` line.
        """
        text = (f"{self.add} to add, {self.change} to change, {self.destroy} to destroy, "
                f"{self.replace} to replace")
        if self.imports:
            text = f"{self.imports} to import, {text}"
        for label, n in (("to read", self.read), ("to forget", self.forget),
                         ("to move", self.moves), ("other", self.other)):
            if n:
                text += f", {n} {label}"
        return text


@dataclass(frozen=True, slots=True)
class DeferredChange:
    """A change Terraform could not plan yet (``deferred_changes``, Terraform >= 1.8 with
    deferred actions): another plan and apply will be needed after this one."""

    address: str
    reason: str
    actions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check that did not pass (``checks``, Terraform >= 1.5): a ``check`` block, a
    precondition/postcondition of a resource or output, or a variable validation.

    ``status`` is ``fail``, ``error`` or ``unknown`` (not decidable until apply); ``problems`` are
    the error messages (masked like attribute values).
    """

    address: str
    kind: str
    status: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """A parsed ``terraform show -json`` plan.

    ``changes`` holds every resource change except no-ops that neither move nor import, in the
    document's order (Terraform sorts by address); ``drift`` the objects changed outside Terraform
    (``resource_drift``, no-ops and unchanged entries dropped); ``outputs`` the output changes
    (no-ops dropped); ``deferred`` the changes left for a later plan; ``checks`` the checks that
    did not pass. ``applyable``/``complete`` are None when the format (older than 1.2) does not
    say.
    """

    format_version: str
    terraform_version: str
    changes: tuple[ResourceChange, ...] = ()
    drift: tuple[ResourceChange, ...] = ()
    outputs: tuple[OutputChange, ...] = ()
    counts: Counts = Counts()
    applyable: bool | None = None
    complete: bool | None = None
    errored: bool = False
    deferred: tuple[DeferredChange, ...] = ()
    checks: tuple[CheckResult, ...] = ()

    @property
    def has_changes(self) -> bool:
        """True if applying would change anything: a resource change other than a read (moves
        and imports included: Terraform applies them), or an output change. (Data source reads
        alone are not changes.)"""
        return bool(self.outputs) or any(c.action is not Action.READ for c in self.changes)

    @property
    def has_drift(self) -> bool:
        """True if Terraform found objects changed outside Terraform."""
        return bool(self.drift)

    @property
    def is_destroy(self) -> bool:
        """True if the plan deletes and does nothing else (a destroy plan); reads ignored."""
        acting = [c for c in self.changes if c.action is not Action.READ]
        return bool(acting) and all(c.action is Action.DELETE for c in acting)

    @property
    def destructive(self) -> tuple[ResourceChange, ...]:
        """Deletes then replaces (see :attr:`ResourceChange.is_destructive`), each in plan order."""
        return tuple(c for c in self.changes_destructive_first if c.is_destructive)

    @property
    def changes_destructive_first(self) -> tuple[ResourceChange, ...]:
        """All changes ordered deletes, replaces, updates, creates, forgets, reads, then moves and
        imports that change nothing else (stable)."""
        return tuple(sorted(self.changes, key=lambda c: _RANK[c.action]))


# --------------------------------------------------------------------------------------------
# parsing


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and parse a ``terraform show -json`` file; unreadable or invalid JSON → PlanParseError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as ex:
        raise PlanParseError(f"cannot read plan file {os.fspath(path)!r}: {ex.strerror}") from ex
    try:
        doc = json.loads(data)
    except ValueError as ex:
        raise PlanParseError(f"plan file {os.fspath(path)!r} is not valid JSON: {ex}") from ex
    return parse_plan(doc)


def parse_plan(doc: Mapping[str, Any]) -> Plan:
    """Parse a decoded ``terraform show -json`` document into a :class:`Plan`.

    The document is not copied: do not mutate it afterwards (attribute diffs are computed lazily).
    """
    if not isinstance(doc, Mapping):
        raise PlanParseError(
            f"a plan must be a JSON object (terraform show -json), got {type(doc).__name__}")
    format_version = _format_version(doc)
    terraform_version = _optional(doc, "terraform_version", str, "plan") or ""
    secrets = _Secrets()
    changes = _parse_resources(doc, "resource_changes", secrets)
    drift = _parse_resources(doc, "resource_drift", secrets)
    outputs = _parse_outputs(doc, secrets)
    deferred = _parse_deferred(doc)
    secrets.freeze()
    return Plan(
        format_version=format_version,
        terraform_version=terraform_version,
        changes=changes,
        drift=drift,
        outputs=tuple(_output_change(name, change, secrets) for name, change in outputs),
        counts=count_changes(changes),
        applyable=_optional(doc, "applyable", bool, "plan"),
        complete=_optional(doc, "complete", bool, "plan"),
        errored=bool(_optional(doc, "errored", bool, "plan")),
        deferred=deferred,
        checks=_parse_checks(doc, secrets),
    )


def _format_version(doc: Mapping[str, Any]) -> str:
    version = doc.get("format_version")
    if not isinstance(version, str):
        raise PlanParseError(
            "plan has no string 'format_version': not a `terraform show -json` plan document")
    match = _FORMAT_VERSION.fullmatch(version)
    if not match:
        raise PlanParseError(f"plan format_version {version!r} is not MAJOR.MINOR")
    if int(match.group(1)) not in SUPPORTED_FORMAT_MAJORS:
        supported = ", ".join(f"{m}.x" for m in SUPPORTED_FORMAT_MAJORS)
        raise PlanParseError(
            f"unsupported plan format_version {version!r}: this version reads {supported}")
    return version


def _optional(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise PlanParseError(f"{where}: {key!r} must be a {kind.__name__}, "
                             f"got {type(value).__name__}")
    return value


def _parse_resources(doc: Mapping[str, Any], key: str,
                     secrets: _Secrets) -> tuple[ResourceChange, ...]:
    entries = doc.get(key)
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise PlanParseError(f"plan {key!r} must be a list, got {type(entries).__name__}")
    drift = key == "resource_drift"
    addresses: _Addresses | None = None
    out: list[ResourceChange] = []
    append = out.append
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PlanParseError(f"{key}[{i}] must be an object, got {type(entry).__name__}")
        address = entry.get("address")
        rebuilt = False
        if address is None and drift:
            # Terraform 0.15.4-1.0.0 wrote drift entries without an address.
            addresses = addresses or _Addresses(doc)
            address, rebuilt = addresses.rebuild(entry, f"{key}[{i}]"), True
        elif not isinstance(address, str) or not address:
            raise PlanParseError(f"{key}[{i}] has no string 'address'")
        change = entry.get("change")
        if not isinstance(change, dict):
            raise PlanParseError(f"{key}[{i}] ({address}): 'change' must be an object")
        raw_actions = change.get("actions")
        if not isinstance(raw_actions, list) or not raw_actions:
            raise PlanParseError(
                f"{key}[{i}] ({address}): 'change.actions' must be a non-empty list")
        actions = tuple(raw_actions)
        action = _ACTIONS.get(actions)
        if action is None:
            if not all(isinstance(a, str) for a in actions):
                raise PlanParseError(
                    f"{key}[{i}] ({address}): 'change.actions' must hold strings")
            action = Action.OTHER
        previous = _str_or(entry.get("previous_address"), None)
        importing = change.get("importing")
        if action is Action.NO_OP and (drift or not (
                (previous is not None and previous != address) or isinstance(importing, dict))):
            continue  # nothing to apply (a move seen by a refresh-only plan is not drift either)
        type_ = entry.get("type")
        name = entry.get("name")
        if not isinstance(type_, str) or not isinstance(name, str):
            raise PlanParseError(f"{key}[{i}] ({address}): 'type' and 'name' must be strings")
        where = f"{key}[{i}] ({address})"
        before = change.get("before")
        after = change.get("after")
        if before is not None and not isinstance(before, dict):
            raise PlanParseError(f"{where}: 'change.before' must be an object or null")
        if after is not None and not isinstance(after, dict):
            raise PlanParseError(f"{where}: 'change.after' must be an object or null")
        if (drift and action is Action.UPDATE and before == after
                and change.get("before_sensitive") == change.get("after_sensitive")):
            continue  # Terraform <= 1.0.0 listed every resource as drift, changed or not
        _collect_sensitive(before, change.get("before_sensitive"), secrets.exact)
        _collect_sensitive(after, change.get("after_sensitive"), secrets.exact)
        if after is None:  # delete, forget: the tags the object had
            takes_tags, tags, tags_unknown = _tags(before, None)
        else:
            takes_tags, tags, tags_unknown = _tags(after, change.get("after_unknown"))
        import_id = importing.get("id") if isinstance(importing, dict) else None
        if not isinstance(import_id, str) or not import_id or looks_like_secret(import_id):
            import_id = None
        replace_paths = change.get("replace_paths")
        append(ResourceChange(
            address=address,
            type=type_,
            name=name,
            action=action,
            module_address=_str_or(entry.get("module_address"), ""),
            mode=_str_or(entry.get("mode"), "managed"),
            index=entry.get("index"),
            provider=_str_or(entry.get("provider_name"), ""),
            action_reason=_str_or(entry.get("action_reason"), None),
            actions=actions,
            previous_address=previous,
            deposed=_str_or(entry.get("deposed"), None),
            importing=isinstance(importing, dict),
            import_id=import_id,
            generated_config=bool(_str_or(change.get("generated_config"), "")),
            replace_paths=tuple(dict.fromkeys(
                _path_string(p) for p in replace_paths if isinstance(p, list) and p
            )) if isinstance(replace_paths, list) else (),
            address_rebuilt=rebuilt,
            takes_tags=takes_tags,
            tags_after=tags,
            tags_unknown=tags_unknown,
            _attributes=_LazyAttributes(change, secrets),
        ))
    return tuple(out)


class _Addresses:
    """Rebuilds the address of a drift entry Terraform wrote without one (0.15.4-1.0.0).

    Those entries carry ``module_address`` (omitted for the root module), ``mode``, ``type`` and
    ``name`` but no instance key. The key comes from ``prior_state`` (the refreshed state): the
    one object of that resource whose values equal the entry's ``after``. A resource with no key in
    ``prior_state`` keeps its bare address; an instance that cannot be told apart is
    ``<resource>[?N]``, N counting such entries, so that no two drift entries share an address.
    """

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self._state: dict[str, list[tuple[str, Any]]] = {}
        self._unresolved: dict[str, int] = {}
        prior = doc.get("prior_state")
        values = prior.get("values") if isinstance(prior, dict) else None
        root = values.get("root_module") if isinstance(values, dict) else None
        self._walk(root)

    def _walk(self, module: Any) -> None:
        if not isinstance(module, dict):
            return
        for res in module.get("resources") or ():
            if isinstance(res, dict) and isinstance(res.get("address"), str):
                base = _base_address(res.get("address"), res.get("index"))
                self._state.setdefault(base, []).append((res["address"], res.get("values")))
        for child in module.get("child_modules") or ():
            self._walk(child)

    def rebuild(self, entry: Mapping[str, Any], where: str) -> str:
        type_, name = entry.get("type"), entry.get("name")
        if not isinstance(type_, str) or not type_ or not isinstance(name, str) or not name:
            raise PlanParseError(f"{where} has no 'address', nor 'type' and 'name' to rebuild it")
        module = _str_or(entry.get("module_address"), "")
        mode = "data." if entry.get("mode") == "data" else ""
        base = f"{module + '.' if module else ''}{mode}{type_}.{name}"
        index = entry.get("index")
        if isinstance(index, (int, str)) and not isinstance(index, bool):
            return base + _index_text(index)
        known = self._state.get(base, [])
        if all(address == base for address, _ in known):
            return base  # no count or for_each as far as the state tells
        change = entry.get("change")
        after = change.get("after") if isinstance(change, dict) else None
        if after is not None:
            matches = [address for address, values in known if values == after]
            if len(matches) == 1:
                return matches[0]
        n = self._unresolved.get(base, 0) + 1
        self._unresolved[base] = n
        return f"{base}[?{n}]"


def _index_text(index: int | str) -> str:
    return f"[{index}]" if isinstance(index, int) else f"[{json.dumps(index)}]"


def _base_address(address: str, index: Any) -> str:
    """``address`` without its trailing instance key (``index`` as Terraform wrote it)."""
    if isinstance(index, (int, str)) and not isinstance(index, bool):
        suffix = _index_text(index)
        if address.endswith(suffix):
            return address[: -len(suffix)]
    return address


def _parse_deferred(doc: Mapping[str, Any]) -> tuple[DeferredChange, ...]:
    entries = doc.get("deferred_changes")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise PlanParseError(f"plan 'deferred_changes' must be a list, got "
                             f"{type(entries).__name__}")
    out = []
    for i, entry in enumerate(entries):
        change = entry.get("resource_change") if isinstance(entry, dict) else None
        if not isinstance(change, dict) or not isinstance(change.get("address"), str):
            raise PlanParseError(f"deferred_changes[{i}] has no 'resource_change.address'")
        inner = change.get("change")
        actions = inner.get("actions") if isinstance(inner, dict) else None
        out.append(DeferredChange(
            address=change["address"],
            reason=_str_or(entry.get("reason"), "unknown"),
            actions=tuple(a for a in actions if isinstance(a, str))
            if isinstance(actions, list) else (),
        ))
    return tuple(out)


def _parse_checks(doc: Mapping[str, Any], secrets: _Secrets) -> tuple[CheckResult, ...]:
    """The checks whose status is not ``pass``: ``checks`` (Terraform >= 1.4) or
    ``condition_results`` (Terraform 1.2-1.3)."""
    entries = doc.get("checks")
    if entries is None:
        return _parse_condition_results(doc, secrets)
    if not isinstance(entries, list):
        raise PlanParseError(f"plan 'checks' must be a list, got {type(entries).__name__}")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PlanParseError(f"checks[{i}] must be an object")
        status = _str_or(entry.get("status"), "unknown")
        if status == "pass":
            continue
        address = entry.get("address")
        address = address if isinstance(address, dict) else {}
        problems: list[str] = []
        for instance in entry.get("instances") or ():
            if not isinstance(instance, dict):
                continue
            for problem in instance.get("problems") or ():
                message = problem.get("message") if isinstance(problem, dict) else None
                if isinstance(message, str) and message:
                    masked = secrets.masks(message) or looks_like_secret(message)
                    problems.append(SENSITIVE if masked else message[:_MAX_PROBLEM])
        out.append(CheckResult(
            address=_str_or(address.get("to_display"), f"checks[{i}]"),
            kind=_str_or(address.get("kind"), ""),
            status=status,
            problems=tuple(dict.fromkeys(problems)),
        ))
    return tuple(out)


def _parse_condition_results(doc: Mapping[str, Any],
                             secrets: _Secrets) -> tuple[CheckResult, ...]:
    entries = doc.get("condition_results")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise PlanParseError("plan 'condition_results' must be a list, got "
                             f"{type(entries).__name__}")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PlanParseError(f"condition_results[{i}] must be an object")
        if entry.get("unknown") is True:
            status = "unknown"
        elif entry.get("result") is False:
            status = "fail"
        else:
            continue
        message = entry.get("error_message")
        problems: tuple[str, ...] = ()
        if isinstance(message, str) and message:
            masked = secrets.masks(message) or looks_like_secret(message)
            problems = (SENSITIVE if masked else message[:_MAX_PROBLEM],)
        out.append(CheckResult(address=_str_or(entry.get("address"), f"condition_results[{i}]"),
                               kind=_str_or(entry.get("condition_type"), ""), status=status,
                               problems=problems))
    return tuple(out)


def _str_or(value: Any, default: Any) -> Any:
    return value if isinstance(value, str) else default


def _parse_outputs(doc: Mapping[str, Any],
                   secrets: _Secrets) -> list[tuple[str, Mapping[str, Any]]]:
    outputs = doc.get("output_changes")
    if outputs is None:
        return []
    if not isinstance(outputs, dict):
        raise PlanParseError(f"plan 'output_changes' must be an object, got "
                             f"{type(outputs).__name__}")
    kept: list[tuple[str, Mapping[str, Any]]] = []
    for name in sorted(outputs):
        change = outputs[name]
        if not isinstance(change, dict):
            raise PlanParseError(f"output_changes[{name!r}] must be an object")
        actions = change.get("actions")
        if not isinstance(actions, list) or not actions:
            raise PlanParseError(f"output_changes[{name!r}]: 'actions' must be a non-empty list")
        if tuple(actions) == ("no-op",):
            continue
        _collect_sensitive(change.get("before"), change.get("before_sensitive"), secrets.exact)
        _collect_sensitive(change.get("after"), change.get("after_sensitive"), secrets.exact)
        kept.append((name, change))
    return kept


def _output_change(name: str, change: Mapping[str, Any], secrets: _Secrets) -> OutputChange:
    action = _ACTIONS.get(tuple(change["actions"]), Action.OTHER)
    sensitive = bool(change.get("before_sensitive")) or bool(change.get("after_sensitive"))
    unknown = change.get("after_unknown") is True
    secret_name = is_secret_name(name)
    before, b_masked = _display(change.get("before"), sensitive or secret_name, secrets)
    if unknown:
        after, a_masked = UNKNOWN, False
    else:
        after, a_masked = _display(change.get("after"), sensitive or secret_name, secrets)
    return OutputChange(name=name, action=action, sensitive=sensitive or b_masked or a_masked,
                        before=before, after=after, unknown=unknown)


def count_changes(changes: Iterable[ResourceChange]) -> Counts:
    """The :class:`Counts` of some resource changes (a plan's, or a subset of them)."""
    n = dict.fromkeys(Action, 0)
    imports = moves = 0
    for change in changes:
        n[change.action] += 1
        imports += change.importing
        moves += change.moved
    return Counts(add=n[Action.CREATE], change=n[Action.UPDATE], destroy=n[Action.DELETE],
                  replace=n[Action.REPLACE], read=n[Action.READ], forget=n[Action.FORGET],
                  other=n[Action.OTHER], no_op=n[Action.NO_OP], imports=imports, moves=moves)


def _tags(values: Any, unknown: Any) -> tuple[bool, FrozenMap | None, frozenset[str]]:
    """(takes_tags, effective tags, keys with unknown values) from one side of a change."""
    if not isinstance(values, dict):
        return False, None, frozenset()
    unknown = unknown if isinstance(unknown, dict) else {}
    if not ("tags" in values or "tags_all" in values or "tags" in unknown
            or "tags_all" in unknown):
        return False, None, frozenset()
    for key in ("tags_all", "tags"):
        marker = unknown.get(key)
        if marker is True:
            continue  # the whole map is unknown until apply: fall back
        value = values.get(key)
        if not isinstance(value, dict) and not isinstance(marker, dict):
            continue  # null or absent: fall back
        known = {k: ("" if v is None else v if isinstance(v, str) else json.dumps(v))
                 for k, v in (value or {}).items()}
        unknown_keys = (frozenset(k for k, flag in marker.items() if flag is True)
                        if isinstance(marker, dict) else frozenset())
        return True, FrozenMap._own(known), unknown_keys
    if unknown.get("tags") is True or unknown.get("tags_all") is True:
        return True, None, frozenset()
    return True, FrozenMap._own({}), frozenset()


def sensitive_strings(doc: Mapping[str, Any]) -> set[str]:
    """Every string value the plan document marks sensitive anywhere: resource changes (no-ops
    included), drift, output changes and the prior state. For the scrubber's registry, so such a
    value is masked in every encoding wherever it appears, however a plan prints it."""
    found: set[str] = set()
    for key in ("resource_changes", "resource_drift"):
        for entry in doc.get(key) or ():
            change = entry.get("change") if isinstance(entry, dict) else None
            if isinstance(change, dict):
                _collect_sensitive(change.get("before"), change.get("before_sensitive"), found)
                _collect_sensitive(change.get("after"), change.get("after_sensitive"), found)
    outputs = doc.get("output_changes")
    for change in (outputs.values() if isinstance(outputs, dict) else ()):
        if isinstance(change, dict):
            _collect_sensitive(change.get("before"), change.get("before_sensitive"), found)
            _collect_sensitive(change.get("after"), change.get("after_sensitive"), found)
    prior = doc.get("prior_state")
    values = prior.get("values") if isinstance(prior, dict) else None
    modules = [values.get("root_module")] if isinstance(values, dict) else []
    while modules:
        module = modules.pop()
        if not isinstance(module, dict):
            continue
        for resource in module.get("resources") or ():
            if isinstance(resource, dict):
                _collect_sensitive(resource.get("values"), resource.get("sensitive_values"), found)
        modules.extend(module.get("child_modules") or ())
    return found


def _collect_sensitive(value: Any, marker: Any, into: set[str]) -> None:
    """Add every string under a sensitive marker (``true`` leaf or container) to ``into``."""
    if not marker or value is None:
        return
    if marker is True:
        _collect_strings(value, into)
    elif isinstance(marker, dict) and isinstance(value, dict):
        for key, sub in marker.items():
            if sub:
                _collect_sensitive(value.get(key), sub, into)
    elif isinstance(marker, list) and isinstance(value, list):
        for sub, item in zip(marker, value):
            if sub:
                _collect_sensitive(item, sub, into)


def _collect_strings(value: Any, into: set[str]) -> None:
    if isinstance(value, str):
        if value:
            into.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_strings(item, into)
    elif isinstance(value, list):
        for item in value:
            _collect_strings(item, into)


# --------------------------------------------------------------------------------------------
# attribute diff


def _diff_attributes(change: Mapping[str, Any], secrets: _Secrets) -> tuple[AttributeChange, ...]:
    out: list[AttributeChange] = []
    replace_paths = change.get("replace_paths")
    _walk("", change.get("before"), change.get("after"), change.get("after_unknown"),
          change.get("before_sensitive"), change.get("after_sensitive"), False, secrets, out)
    if replace_paths and isinstance(replace_paths, list):
        forced = {_path_string(p) for p in replace_paths if isinstance(p, list)}
        if forced:
            out = [
                AttributeChange(a.path, a.before, a.after, a.sensitive, a.unknown, True)
                if any(a.path == f or a.path.startswith((f + ".", f + "[")) for f in forced)
                else a
                for a in out
            ]
    return tuple(out)


def _path_string(steps: list[Any]) -> str:
    text = ""
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text = f"{text}.{step}" if text else str(step)
    return text


def _child(marker: Any, key: str | int) -> Any:
    if marker is True:
        return True
    if isinstance(key, str):
        return marker.get(key) if isinstance(marker, dict) else None
    if isinstance(marker, list) and key < len(marker):
        return marker[key]
    return None


def _walk(path: str, before: Any, after: Any, unknown: Any, b_sens: Any, a_sens: Any,
          secret_name: bool, secrets: _Secrets, out: list[AttributeChange]) -> None:
    if unknown is True:
        masked = secret_name or b_sens is True or a_sens is True
        text, was_masked = _display(before, masked, secrets)
        out.append(AttributeChange(path, text, UNKNOWN, masked or was_masked, True))
        return
    if b_sens is True or a_sens is True:
        if before != after:
            out.append(AttributeChange(path, SENSITIVE if before is not None else ABSENT,
                                       SENSITIVE if after is not None else ABSENT, True, False))
        return
    b_dict, a_dict = isinstance(before, dict), isinstance(after, dict)
    if (b_dict or a_dict) and (b_dict or before is None) and (a_dict or after is None):
        if before == after and not unknown:
            return
        b_map = before or {}
        a_map = after or {}
        u_map = unknown if isinstance(unknown, dict) else {}
        keys = set(b_map)
        keys.update(a_map)
        keys.update(u_map)
        if not keys:
            return  # {} vs null: nothing worth showing
        prefix = f"{path}." if path else ""
        for key in sorted(keys):
            _walk(prefix + key, b_map.get(key), a_map.get(key), u_map.get(key),
                  _child(b_sens, key), _child(a_sens, key),
                  secret_name or is_secret_name(key), secrets, out)
        return
    b_list, a_list = isinstance(before, list), isinstance(after, list)
    if (b_list or a_list) and (b_list or before is None) and (a_list or after is None):
        u_list = unknown if isinstance(unknown, list) else []
        if before == after and not any(u_list):
            return
        b_seq = before or []
        a_seq = after or []
        for i in range(max(len(b_seq), len(a_seq), len(u_list))):
            _walk(f"{path}[{i}]", b_seq[i] if i < len(b_seq) else None,
                  a_seq[i] if i < len(a_seq) else None, u_list[i] if i < len(u_list) else None,
                  _child(b_sens, i), _child(a_sens, i), secret_name, secrets, out)
        return
    if before == after and type(before) is type(after):
        return
    b_text, b_masked = _display(before, secret_name, secrets)
    a_text, a_masked = _display(after, secret_name, secrets)
    if b_masked != a_masked:  # one side masked: mask both so a change can't hint at the value
        b_text = SENSITIVE if before is not None else ABSENT
        a_text = SENSITIVE if after is not None else ABSENT
    out.append(AttributeChange(path, b_text, a_text, b_masked or a_masked, False))


def _display(value: Any, masked: bool, secrets: _Secrets) -> tuple[str, bool]:
    """(display string, whether it was masked) for one value."""
    if value is None:
        return ABSENT, masked
    if masked:
        return SENSITIVE, True
    if isinstance(value, str):
        if secrets.masks(value) or looks_like_secret(value):
            return SENSITIVE, True
        if value.isprintable() and '"' not in value and "\\" not in value:
            text = f'"{value}"'
        else:
            text = json.dumps(value, ensure_ascii=False)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        if isinstance(value, (dict, list)) and (looks_like_secret(text) or secrets.masks(text)):
            return SENSITIVE, True
    if len(text) > MAX_DISPLAY:
        text = text[: MAX_DISPLAY - 1] + "…"
    return text, False
