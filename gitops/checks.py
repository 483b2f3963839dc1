"""Checks on a plan, as data: every check (the tag policy, each Rego policy) gives a CheckReport. PURE.

A :class:`CheckReport` says which check ran (``name``), how much it weighs (``level``), what it
found (``findings``, each naming the resource address when there is one, and the policy file and
rule it comes from) and, when the check could not be evaluated at all, why (``error``).

Levels (:class:`CheckLevel`):

* **advisory**: findings are shown, nothing is blocked;
* **soft-mandatory**: findings block until an allowed policy owner overrides them, with an
  authenticated `/gitops override <env> <check key> <plan fingerprint>` (gitops.approval judges
  it; the environment's trusted rule names the owners, ``[approval] policy_owners``);
* **hard-mandatory**: findings block, with no override.

A check that failed to evaluate (an error) *always* blocks, whatever its level: a check that did
not run is never a pass. Renderers, commit statuses and the deploy gate iterate over the reports
(:func:`blocking`); none of them names a particular check.

:func:`compare_checks` says how one plan's reports differ under two sets of policies (the default
branch's, which judge it, and a pull request's own, shown for review): a :class:`ChecksDiff`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

__all__ = ["OVERRIDE_NEEDED", "CheckLevel", "CheckReport", "ChecksDiff", "Finding", "blocking",
           "compare_checks", "describe_blocking", "needs_override", "unoverridable"]

OVERRIDE_NEEDED = "blocks until a policy owner overrides it"
"""What every text says about a soft-mandatory finding."""


class CheckLevel(str, Enum):
    """How much a check's findings weigh."""

    ADVISORY = "advisory"
    SOFT_MANDATORY = "soft-mandatory"
    HARD_MANDATORY = "hard-mandatory"

    @classmethod
    def parse(cls, text: str) -> CheckLevel:
        """``"soft-mandatory"`` (also ``soft_mandatory``, any case) -> the level; ValueError else."""
        key = text.strip().lower().replace("_", "-")
        for level in cls:
            if level.value == key:
                return level
        raise ValueError(f"unknown level {text!r} (one of: "
                         f"{', '.join(level.value for level in cls)})")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found: about ``address`` (None: about the plan as a whole).

    ``policy`` is the file the rule is written in (repository-relative), ``rule`` the rule's name
    (``deny``, ``warn_public``...), ``line`` where the rule is, when known.
    """

    message: str
    address: str | None = None
    policy: str = ""
    rule: str = ""
    line: int | None = None

    def describe(self) -> str:
        """``"address: message"``, or just the message for a plan-wide finding."""
        return f"{self.address}: {self.message}" if self.address else self.message

    @property
    def source(self) -> str:
        """``"policies/x.rego:12 deny"`` (or less, as known)."""
        where = self.policy + (f":{self.line}" if self.policy and self.line else "")
        return " ".join(part for part in (where, self.rule) if part)


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The outcome of one check on one plan.

    ``checked`` is how many resources the check looked at, when it counts them. ``headline`` is
    the check's own one-line summary of its findings (the tag policy's "N resources without the
    required tags (...)"); without it a generic one is made.
    """

    name: str
    level: CheckLevel
    findings: tuple[Finding, ...] = ()
    error: str | None = None
    checked: int | None = None
    headline: str | None = None
    source: str = ""
    """Where the check is defined (a policy file), for people reading a report."""
    replaces_set: bool = False
    """This error stands for a whole set of checks that could not run at all (the policy engine
    timed out or crashed): the set's own reports do not exist."""

    @property
    def passed(self) -> bool:
        """Evaluated, and found nothing."""
        return self.error is None and not self.findings

    @property
    def key(self) -> str:
        """The check's name as one word, as an override names it (``stateful_resources.rego``)."""
        return re.sub(r"[^A-Za-z0-9_.:/-]+", "-", self.name.removeprefix("policy ")).strip("-")

    @property
    def overridable(self) -> bool:
        """Blocks, but a policy owner may override it: a soft-mandatory check's findings."""
        return (self.error is None and bool(self.findings)
                and self.level is CheckLevel.SOFT_MANDATORY)

    @property
    def blocks(self) -> bool:
        """Whether this report stops the plan from being applied (until fixed, or overridden
        when :attr:`overridable`)."""
        if self.error is not None:
            return True
        return bool(self.findings) and self.level is not CheckLevel.ADVISORY

    @property
    def status(self) -> str:
        """``passed`` | ``advisory`` (findings that do not block) | ``blocked`` | ``error``."""
        if self.error is not None:
            return "error"
        if not self.findings:
            return "passed"
        return "blocked" if self.blocks else "advisory"

    def summary(self) -> str:
        """One line: ``"passed (3 resources checked)"``, the findings' headline, or the error."""
        if self.error is not None:
            return f"could not be evaluated: {self.error.splitlines()[0] if self.error else ''}"
        if not self.findings:
            if self.checked is None:
                return "passed"
            return f"passed ({self.checked} resource{'s' if self.checked != 1 else ''} checked)"
        text = self.headline or (f"{len(self.findings)} finding"
                                 f"{'s' if len(self.findings) != 1 else ''}")
        if self.level is CheckLevel.SOFT_MANDATORY:
            text += f" (soft-mandatory: {OVERRIDE_NEEDED})"
        return text


def blocking(reports: Iterable[CheckReport]) -> tuple[CheckReport, ...]:
    """The reports that stop an apply: errors, and findings of mandatory checks."""
    return tuple(r for r in reports if r.blocks)


def needs_override(reports: Iterable[CheckReport]) -> tuple[CheckReport, ...]:
    """The reports that block until a policy owner overrides them."""
    return tuple(r for r in reports if r.overridable)


def unoverridable(reports: Iterable[CheckReport]) -> tuple[CheckReport, ...]:
    """The reports that block whatever anyone says: errors, hard-mandatory findings."""
    return tuple(r for r in reports if r.blocks and not r.overridable)


def describe_blocking(reports: Iterable[CheckReport], *, cap: int = 50) -> str:
    """A plain-text account of what blocks, one line per finding (for an exception message)."""
    lines: list[str] = []
    for report in blocking(reports):
        lines.append(f"{report.name} [{report.level.value}]: {report.summary()}")
        if report.error is not None:
            lines.append(f"  {report.error}")
        for finding in report.findings[:cap]:
            lines.append(f"  - {finding.describe()}")
        if len(report.findings) > cap:
            lines.append(f"  - ... and {len(report.findings) - cap} more")
    return "\n".join(lines)


FindingOf = tuple[CheckReport, Finding]
"""A finding with the report it is part of."""


def _key(finding: Finding) -> tuple[str | None, str]:
    return finding.address, finding.message


@dataclass(frozen=True, slots=True)
class ChecksDiff:
    """How one plan's check reports differ between the ``trusted`` policies (the default branch's:
    what judges the plan) and the ``proposed`` ones (a pull request's own, for display only).

    Reports are matched by check name; findings by check name, level, address and message. A
    check whose level changed is listed in ``relevelled`` (its findings are not listed again).
    ``failed`` is set when one side could not be evaluated at all: nothing else is compared.
    """

    env: str
    trusted: tuple[CheckReport, ...]
    proposed: tuple[CheckReport, ...]
    appeared: tuple[FindingOf, ...] = ()
    """Findings only the proposed policies report (with the proposed report)."""
    disappeared: tuple[FindingOf, ...] = ()
    """Findings the trusted policies report and the proposed would not (with the trusted report)."""
    relevelled: tuple[tuple[CheckReport, CheckReport], ...] = ()
    """(trusted, proposed) report of each check whose level changed."""
    added: tuple[CheckReport, ...] = ()
    """Checks only the proposed policies have (a policy added, or renamed)."""
    removed: tuple[CheckReport, ...] = ()
    """Checks only the trusted policies have (a policy deleted, or renamed)."""
    errors: tuple[CheckReport, ...] = ()
    """Proposed checks that could not be evaluated (where the trusted one did not fail alike);
    their findings are not compared."""
    repaired: tuple[CheckReport, ...] = ()
    """Trusted checks that could not be evaluated and are evaluated under the proposed policies."""
    failed: CheckReport | None = None
    """The report of a side that could not be evaluated at all (then nothing is compared)."""

    @property
    def same(self) -> bool:
        """Nothing differs."""
        return self.failed is None and not (self.appeared or self.disappeared or self.relevelled
                                             or self.added or self.removed or self.errors
                                             or self.repaired)

    @property
    def blocked(self) -> bool:
        """The trusted policies block this plan (what its status says)."""
        return bool(blocking(self.trusted))

    @property
    def would_block(self) -> bool:
        """The proposed policies would block this plan."""
        return bool(blocking(self.proposed))

    @property
    def stops_blocking(self) -> tuple[tuple[CheckReport, Finding | None], ...]:
        """What blocks under the trusted policies and would not under the proposed ones: each
        blocking finding (or, for a check that errors, the check with None) that no blocking
        proposed report keeps (matched by address and message, so a renamed policy that still
        blocks it does not count). A check that errors under the proposed policies still blocks
        everything it covers."""
        if self.failed is not None:
            return ()
        kept = {_key(f) for r in blocking(self.proposed) for f in r.findings}
        erring = {r.name for r in self.proposed if r.error is not None}  # blocks all it covers
        out: list[tuple[CheckReport, Finding | None]] = []
        for report in blocking(self.trusted):
            if report.name in erring:
                continue
            if report.error is not None:
                out.append((report, None))
                continue
            out += [(report, f) for f in report.findings if _key(f) not in kept]
        return tuple(out)


def compare_checks(env: str, trusted: Sequence[CheckReport],
                   proposed: Sequence[CheckReport]) -> ChecksDiff:
    """How ``proposed`` differs from ``trusted`` on one plan (see :class:`ChecksDiff`)."""
    trusted, proposed = tuple(trusted), tuple(proposed)
    failed = next((r for r in (*trusted, *proposed) if r.replaces_set), None)
    if failed is not None:
        return ChecksDiff(env, trusted, proposed, failed=failed)
    before = {r.name: r for r in reversed(trusted)}
    after = {r.name: r for r in reversed(proposed)}
    appeared: list[FindingOf] = []
    disappeared: list[FindingOf] = []
    relevelled, errors, repaired = [], [], []
    for new in proposed:
        old = before.get(new.name)
        if new.error is not None and (old is None or old.error != new.error):
            errors.append(new)
        if old is None:
            appeared += [(new, f) for f in new.findings]
            continue
        if old.error is not None and new.error is None:
            repaired.append(old)
        if old.level is not new.level:
            relevelled.append((old, new))
        if new.error is not None:  # its error is what it reports: listed in errors
            continue
        had = {_key(f) for f in old.findings}
        has = {_key(f) for f in new.findings}
        appeared += [(new, f) for f in new.findings if _key(f) not in had]
        disappeared += [(old, f) for f in old.findings if _key(f) not in has]
    removed = tuple(r for r in trusted if r.name not in after)
    for old in removed:
        disappeared += [(old, f) for f in old.findings]
    return ChecksDiff(env, trusted, proposed, tuple(appeared), tuple(disappeared),
                      tuple(relevelled), tuple(r for r in proposed if r.name not in before),
                      removed, tuple(errors), tuple(repaired))
