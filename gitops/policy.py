"""The cost-tag policy: every resource a plan creates, updates or replaces carries the required tags.

The check reads the *effective* tags of each resource after the change
(:attr:`gitops.plan.ResourceChange.tags_after`: ``tags_all``, which includes the provider's
``default_tags``, else ``tags``), so a tag set once in the provider counts.

Checked: managed resources being created, updated or replaced (and unknown action lists that
contain ``create`` or ``update``). Skipped: deletes and forgets (the object goes away), data sources, and resource types
that have no ``tags`` attribute.

A required key is

* **missing** when it is not in the effective tags. If the whole tag map is unknown until apply,
  every required key counts as missing (the policy cannot be verified: fail closed);
* **empty** when its value is blank (``""`` or whitespace);
* fine when its value is unknown until apply but the key is present.

The result is a value (:class:`PolicyReport`); :func:`tag_check` gives it as the
:class:`gitops.checks.CheckReport` every renderer and gate iterates over (``TAG_CHECK``,
hard-mandatory: an untagged resource cannot be attributed to anyone's budget, and the fix is one
line). Stopping a deploy is the caller's decision. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gitops.checks import CheckLevel, CheckReport, Finding
from gitops.plan import Action, Plan, ResourceChange

__all__ = ["REQUIRED_TAGS", "TAG_CHECK", "PolicyReport", "TagViolation", "check_resource_tags",
           "check_tags", "tag_check"]

REQUIRED_TAGS: tuple[str, ...] = ("Environment", "Application", "Owner")
"""The cost tags every taggable resource must carry."""
TAG_CHECK = "tag policy"
"""The name of the tag policy's CheckReport."""

_CHECKED_ACTIONS = frozenset({Action.CREATE, Action.UPDATE, Action.REPLACE, Action.OTHER})


@dataclass(frozen=True, slots=True)
class TagViolation:
    """One resource that misses required tags (``missing``) or has them blank (``empty``).

    ``tags_unknown`` is true when the resource's whole tag map is only known after apply.
    """

    address: str
    missing: tuple[str, ...] = ()
    empty: tuple[str, ...] = ()
    tags_unknown: bool = False

    def describe(self) -> str:
        """``"missing Owner; empty Application"`` (for messages and comments)."""
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        if self.empty:
            parts.append("empty " + ", ".join(self.empty))
        if self.tags_unknown:
            parts.append("tags unknown until apply")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """The outcome of the tag policy on one plan: ``passed`` iff there are no violations."""

    passed: bool
    violations: tuple[TagViolation, ...] = ()
    required: tuple[str, ...] = REQUIRED_TAGS
    checked: int = 0
    """How many resources the policy looked at."""

    def summary(self) -> str:
        """One line: ``"passed (3 resources checked)"`` or ``"2 resources without the required tags (...)"``."""
        if self.passed:
            return f"passed ({self.checked} resource{'s' if self.checked != 1 else ''} checked)"
        n = len(self.violations)
        return (f"{n} resource{'s' if n != 1 else ''} without the required tags "
                f"({', '.join(self.required)})")

    def as_check(self) -> CheckReport:
        """This report as a hard-mandatory :class:`CheckReport` (one finding per resource)."""
        findings = tuple(Finding(v.describe(), address=v.address, rule="required tags")
                         for v in self.violations)
        return CheckReport(TAG_CHECK, CheckLevel.HARD_MANDATORY, findings, checked=self.checked,
                           headline=None if self.passed else self.summary(),
                           source="gitops.policy (built in)")


def check_resource_tags(change: ResourceChange,
                        required: Sequence[str] = REQUIRED_TAGS) -> TagViolation | None:
    """The violation of one resource change, or None if it complies or is not checked."""
    if not _is_checked(change):
        return None
    tags = change.tags_after
    if tags is None:  # the whole tag map is unknown until apply
        return TagViolation(change.address, missing=tuple(required), tags_unknown=True)
    unknown = change.tags_unknown
    missing = tuple(k for k in required if k not in tags and k not in unknown)
    empty = tuple(k for k in required if k in tags and not tags[k].strip())
    if missing or empty:
        return TagViolation(change.address, missing=missing, empty=empty)
    return None


def check_tags(plan: Plan, required: Sequence[str] = REQUIRED_TAGS) -> PolicyReport:
    """Check the effective tags of every created/updated/replaced taggable resource in ``plan``."""
    required = tuple(required)
    violations = []
    checked = 0
    for change in plan.changes:
        if not _is_checked(change):
            continue
        checked += 1
        violation = check_resource_tags(change, required)
        if violation is not None:
            violations.append(violation)
    return PolicyReport(passed=not violations, violations=tuple(violations), required=required,
                        checked=checked)


def _is_checked(change: ResourceChange) -> bool:
    if not change.takes_tags or change.mode != "managed" or change.action not in _CHECKED_ACTIONS:
        return False
    if change.action is Action.OTHER:  # an unknown action list: checked if it creates or updates
        return "create" in change.actions or "update" in change.actions
    return True


def tag_check(plan: Plan, required: Sequence[str] = REQUIRED_TAGS) -> CheckReport:
    """The tag policy on ``plan`` as a :class:`CheckReport`."""
    return check_tags(plan, required).as_check()
