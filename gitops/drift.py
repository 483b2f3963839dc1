"""Drift detection: what changed outside Terraform, what is merely not applied yet. PURE.

Two plans of one environment at one commit are compared:

* the ``-refresh-only`` plan: its ``resource_drift`` (and, for Terraform versions that list them
  there, its resource changes) is **drift**: the world changed outside Terraform;
* the normal plan: its changes that do *not* just undo that drift are **pending**: the code on the
  default branch changed but was not applied.

:func:`classify` turns the two plans into a :class:`DriftReport`; :func:`skipped` and
:func:`errored` build the reports of environments that could not be checked. :func:`fingerprint`
is a stable hash of the drift content (addresses, attribute paths and *new* values, masked), so a
scheduled run can tell new drift from drift it already reported; :func:`notification` decides what
to tell people. :func:`render_drift_issue`, :func:`render_drift_resolved` and
:func:`render_drift_table` produce the GitHub issue and the Prefect table artifact.

No secret leaves this module in clear: values come already masked from :mod:`gitops.plan` and are
passed through :func:`gitops.redact.redact_text` again. Only the environment name, addresses,
attribute paths and masked values are ever hashed or rendered.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from gitops.models import LockInfo
from gitops.plan import Action, Counts, Plan, ResourceChange, count_changes
from gitops.redact import redact_text

__all__ = [
    "ISSUE_LABEL", "MAX_ISSUE_CHARS", "DriftReport", "DriftedAttribute", "EnvDriftStatus", "Notice",
    "NoticeKind", "ResourceDrift", "classify", "drift_marker", "errored", "fingerprint",
    "notification", "observed_before", "render_drift_issue", "render_drift_resolved",
    "render_drift_table", "skipped",
]

ISSUE_LABEL = "drift"
"""Label put on drift issues."""
MAX_ISSUE_CHARS = 60_000
"""Budget for an issue body (GitHub's limit is 65,536 characters)."""


class EnvDriftStatus(StrEnum):
    """What the drift check found in one environment."""

    IN_SYNC = "in_sync"
    DRIFTED = "drifted"
    """Objects changed outside Terraform."""
    PENDING_CHANGES = "pending_changes"
    """No drift, but the code on the default branch is not applied."""
    DRIFTED_AND_PENDING = "drifted_and_pending"
    SKIPPED = "skipped"
    """Not checked: a deploy holds the environment's slot, or the state lock is held."""
    ERROR = "error"
    """The check failed (see ``reason``)."""

    @property
    def has_drift(self) -> bool:
        """True for drifted and drifted_and_pending."""
        return self in (EnvDriftStatus.DRIFTED, EnvDriftStatus.DRIFTED_AND_PENDING)

    @property
    def checked(self) -> bool:
        """True when both plans ran (not skipped, not error)."""
        return self not in (EnvDriftStatus.SKIPPED, EnvDriftStatus.ERROR)


class DriftedAttribute(NamedTuple):
    """One attribute changed outside Terraform: ``old`` in the state, ``new`` in the cloud.

    Display strings as in :class:`gitops.plan.AttributeChange` (masked; ``""`` = absent).
    """

    path: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ResourceDrift:
    """One resource instance changed outside Terraform.

    ``action`` is what the refresh saw: ``update`` (attributes changed) or ``delete`` (the object
    is gone). ``attributes`` are in path order.
    """

    address: str
    action: str
    attributes: tuple[DriftedAttribute, ...] = ()


class NoticeKind(StrEnum):
    """What to tell people after one check of one environment."""

    NEW = "new"
    """Drift found where none was reported: open an issue, emit ``gitops.drift.detected``."""
    CHANGED = "changed"
    """Drift differs from what was reported: update the issue, emit ``gitops.drift.detected``."""
    UNCHANGED = "unchanged"
    """The same drift as reported last time: say nothing."""
    RESOLVED = "resolved"
    """Reported drift is gone: close the issue, emit ``gitops.drift.resolved``."""
    NONE = "none"
    """Nothing to report (in sync, pending only, or not checked)."""
    SUPERSEDED = "superseded"
    """A check that observed the environment later already ran: say nothing, keep its record."""


@dataclass(frozen=True, slots=True)
class Notice:
    """The notification decision; ``remember`` is the fingerprint to store afterwards."""

    kind: NoticeKind
    fingerprint: str | None
    """The current drift's fingerprint (None without drift)."""
    previous: str | None
    """The fingerprint notified last time (None if nothing is reported)."""

    @property
    def notify(self) -> bool:
        """True for new, changed and resolved."""
        return self.kind in (NoticeKind.NEW, NoticeKind.CHANGED, NoticeKind.RESOLVED)

    @property
    def remember(self) -> str | None:
        """What to store as 'last notified' once the notification went out."""
        if self.kind in (NoticeKind.NEW, NoticeKind.CHANGED):
            return self.fingerprint
        if self.kind is NoticeKind.RESOLVED:
            return None
        return self.previous


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The drift check of one environment at one commit.

    ``pending`` counts the normal plan's changes not explained by drift (``pending_addresses``
    names them), ``pending_outputs`` the output changes not explained by drift. ``reason`` says
    why an environment was skipped or failed; ``lock`` is the state lock holder when it was
    skipped for a held lock. ``notice`` is filled in by the flow once it decided what to tell.
    ``observed_at`` orders two checks of one environment that overlap (see :func:`notification`).
    """

    environment: str
    status: EnvDriftStatus
    commit: str = ""
    drifted: tuple[ResourceDrift, ...] = ()
    pending: Counts = Counts()
    pending_addresses: tuple[str, ...] = ()
    pending_outputs: tuple[str, ...] = ()
    reason: str = ""
    lock: LockInfo | None = None
    notice: NoticeKind | None = None
    observed_at: str = ""
    """When the ``-refresh-only`` plan read the world (ISO 8601, UTC); empty when not checked."""

    @property
    def has_drift(self) -> bool:
        """True if objects changed outside Terraform."""
        return bool(self.drifted)

    @property
    def drifted_attributes(self) -> int:
        """How many attributes (or deleted objects) drifted, in all."""
        return sum(len(r.attributes) or 1 for r in self.drifted)


# --------------------------------------------------------------------------------------------
# classification


def classify(refresh_only: Plan, normal: Plan, *, environment: str, commit: str) -> DriftReport:
    """Compare a ``-refresh-only`` plan and a normal plan of one environment at ``commit``.

    A normal-plan change is explained by drift (so not pending) when it only puts drifted
    attributes back to their state values (values known only after apply ignored), re-creates an
    object deleted out of band, or, while a drifted object is being replaced, only touches values
    unknown until apply (dependents of the replacement). Output changes are pending unless the
    refresh-only plan changes the same output (or, during such a replacement, they are unknown).
    """
    drifted = _drift(refresh_only)
    by_address = {d.address: d for d in drifted}
    replaced_drift = any(c.address in by_address and c.action is Action.REPLACE
                         for c in normal.changes)
    pending = [c for c in normal.changes
               if c.action is not Action.READ and not _explained(c, by_address, replaced_drift)]
    drift_outputs = {o.name for o in refresh_only.outputs}
    pending_outputs = tuple(o.name for o in normal.outputs if o.name not in drift_outputs
                            and not (replaced_drift and o.unknown))
    counts = count_changes(pending)
    has_pending = bool(pending) or bool(pending_outputs)
    if drifted:
        status = EnvDriftStatus.DRIFTED_AND_PENDING if has_pending else EnvDriftStatus.DRIFTED
    else:
        status = EnvDriftStatus.PENDING_CHANGES if has_pending else EnvDriftStatus.IN_SYNC
    return DriftReport(environment=environment, status=status, commit=commit, drifted=drifted,
                       pending=counts, pending_addresses=tuple(c.address for c in pending),
                       pending_outputs=pending_outputs)


def skipped(environment: str, commit: str, reason: str,
            lock: LockInfo | None = None) -> DriftReport:
    """The report of an environment not checked (deploy running, state locked)."""
    return DriftReport(environment=environment, status=EnvDriftStatus.SKIPPED, commit=commit,
                       reason=redact_text(reason), lock=lock)


def errored(environment: str, commit: str, reason: str) -> DriftReport:
    """The report of an environment whose check failed."""
    return DriftReport(environment=environment, status=EnvDriftStatus.ERROR, commit=commit,
                       reason=redact_text(reason))


def _drift(plan: Plan) -> tuple[ResourceDrift, ...]:
    """The drift of a refresh-only plan: ``resource_drift``, plus changes listed as changes."""
    seen: dict[str, ResourceDrift] = {}
    for change in (*plan.drift, *plan.changes):
        if change.action in (Action.READ, Action.NO_OP) or change.address in seen:
            continue
        seen[change.address] = _resource_drift(change)
    return tuple(seen[a] for a in sorted(seen))


def _resource_drift(change: ResourceChange) -> ResourceDrift:
    if change.action is Action.DELETE:
        return ResourceDrift(change.address, "delete", ())
    attrs = tuple(DriftedAttribute(a.path, redact_text(a.before), redact_text(a.after))
                  for a in change.attributes)
    return ResourceDrift(change.address, str(change.action), attrs)


def _explained(change: ResourceChange, drift: dict[str, ResourceDrift],
               replaced_drift: bool) -> bool:
    """Whether a normal-plan change only undoes drift (so it is not a pending code change)."""
    found = drift.get(change.address)
    if found is None:
        # A dependent of a drifted object that must be replaced: only values unknown until apply.
        return (replaced_drift and change.action in (Action.UPDATE, Action.REPLACE)
                and bool(change.attributes)
                and all(a.unknown for a in change.attributes))
    if found.action == "delete":
        return change.action is Action.CREATE
    if change.action not in (Action.UPDATE, Action.REPLACE):
        return False
    drifted = {a.path: a for a in found.attributes}
    for attr in change.attributes:
        if attr.unknown:
            continue
        was = drifted.get(attr.path)
        if was is None:
            return False
        if redact_text(attr.after) != was.old:
            return False
    return True


# --------------------------------------------------------------------------------------------
# fingerprint and notification


def fingerprint(report: DriftReport) -> str | None:
    """A stable hash of the drift content, or None when there is no drift.

    It covers the environment, each drifted address, its action, and each attribute's path and
    *new* value (masked): not the commit, not the time, not the old values (a deploy that moves
    the state under unchanged drift is the same drift). Order does not matter.
    """
    if not report.drifted:
        return None
    content = {
        "environment": report.environment,
        "drift": sorted(
            [r.address, r.action, sorted([a.path, redact_text(a.new)] for a in r.attributes)]
            for r in report.drifted
        ),
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def notification(previous_fingerprint: str | None, report: DriftReport, *,
                 last_observed: str = "") -> Notice:
    """What to tell, given the fingerprint notified last time (None if none is open) and when
    the check that last recorded it observed the environment (``last_observed``, ISO 8601).

    Skipped and failed checks say nothing and keep what was reported: a held lock must not
    close a drift issue. A check that observed the environment *before* the recorded one
    (two checks overlapped and the later observation was recorded first) is superseded: it says
    nothing and keeps the newer record.
    """
    if not report.status.checked:
        return Notice(NoticeKind.NONE, None, previous_fingerprint)
    current = fingerprint(report)
    if observed_before(report.observed_at, last_observed):
        return Notice(NoticeKind.SUPERSEDED, current, previous_fingerprint)
    if current is None:
        kind = NoticeKind.NONE if previous_fingerprint is None else NoticeKind.RESOLVED
    elif previous_fingerprint is None:
        kind = NoticeKind.NEW
    elif previous_fingerprint == current:
        kind = NoticeKind.UNCHANGED
    else:
        kind = NoticeKind.CHANGED
    return Notice(kind, current, previous_fingerprint)


def observed_before(observed_at: str, recorded: str) -> bool:
    """Whether an observation at ``observed_at`` is older than the ``recorded`` one (both ISO
    8601 with a time zone; an empty or unreadable time orders nothing)."""
    try:
        return datetime.fromisoformat(observed_at) < datetime.fromisoformat(recorded)
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# rendering


def drift_marker(environment: str) -> str:
    """The hidden line that identifies an environment's drift issue."""
    return f"<!-- gitops-flows:drift:{environment} -->"


def _cell(text: str) -> str:
    """A value for a markdown table cell: masked, escaped, in a code element; absent → ``—``."""
    text = redact_text(text)
    if not text:
        return "—"
    text = html.escape(text.replace("\n", " "), quote=False).replace("|", "&#124;")
    return f"<code>{text.replace('`', '&#96;')}</code>"


def _plain(text: str) -> str:
    return html.escape(redact_text(text).replace("\n", " "), quote=False).replace("|", "&#124;")


def _pending_line(report: DriftReport) -> str:
    parts = []
    if report.pending.total:
        parts.append(report.pending.summary())
    if report.pending_outputs:
        parts.append(f"{len(report.pending_outputs)} output(s) to change")
    return "; ".join(parts)


def render_drift_issue(report: DriftReport, *, run_url: str | None = None,
                       limit: int = MAX_ISSUE_CHARS) -> tuple[str, str]:
    """Title and body of the GitHub issue for a drifted environment (body within ``limit``)."""
    env = report.environment
    title = f"Infrastructure drift in {env}"
    head = [
        drift_marker(env),
        f"## Infrastructure drift in `{_plain(env)}`",
        "",
        f"The scheduled drift check found **{len(report.drifted)} resource(s)** changed outside "
        f"Terraform (commit `{report.commit[:12]}` of the default branch).",
        f"Fingerprint: `{fingerprint(report)}`"
        + (f" · [drift run]({run_url})" if run_url else ""),
        "",
        "| Resource | Change | Attribute | In Terraform state | Now in the cloud |",
        "|---|---|---|---|---|",
    ]
    tail = [""]
    pending = _pending_line(report)
    if pending:
        tail.append(f"Also **not yet applied** from the default branch: {pending} "
                    f"({', '.join(_cell(a) for a in report.pending_addresses[:10])}"
                    f"{', …' if len(report.pending_addresses) > 10 else ''}).")
        tail.append("")
    tail += [
        "### What to do",
        "- Intended? Put the change into the Terraform code and merge it.",
        f"- Not intended? Deploy `{_plain(env)}` again (its last good commit) to put it back.",
        "",
        "_This issue is updated when the drift changes and closed when it is gone. "
        "Unchanged drift is not reported twice._",
    ]
    rows: list[str] = []
    for r in report.drifted:
        if r.action == "delete":
            rows.append(f"| {_cell(r.address)} | deleted | — | exists | gone |")
            continue
        for a in r.attributes:
            rows.append(f"| {_cell(r.address)} | {_plain(r.action)} | {_cell(a.path)} "
                        f"| {_cell(a.old)} | {_cell(a.new)} |")
    fixed = len("\n".join(head + tail)) + 200
    shown: list[str] = []
    used = fixed
    for row in rows:
        if used + len(row) + 1 > limit:
            break
        shown.append(row)
        used += len(row) + 1
    if len(shown) < len(rows):
        shown.append(f"| … | | {len(rows) - len(shown)} more rows: see the drift run's artifact "
                     "| | |")
    body = "\n".join(head + shown + tail)
    return title, body[:limit]


def render_drift_resolved(report: DriftReport, *, run_url: str | None = None) -> str:
    """Body of the drift issue once the drift is gone (the issue is then closed)."""
    env = report.environment
    lines = [
        drift_marker(env),
        f"## Resolved: no drift in `{_plain(env)}`",
        "",
        f"The scheduled drift check found no change outside Terraform at commit "
        f"`{report.commit[:12]}`" + (f" ([drift run]({run_url}))" if run_url else "") + ".",
    ]
    pending = _pending_line(report)
    if pending:
        lines += ["", f"Still not applied from the default branch: {pending}."]
    lines += ["", "_Closed automatically by gitops-flows._"]
    return "\n".join(lines)


def render_drift_table(reports: Sequence[DriftReport]) -> list[dict[str, str]]:
    """Rows for a Prefect table artifact: one per environment, masked."""
    rows = []
    for r in reports:
        attrs: list[str] = []
        for d in r.drifted:
            if d.action == "delete":
                attrs.append(f"{d.address}: deleted")
            attrs += [f"{d.address}.{a.path}: {a.old or '∅'} → {a.new or '∅'}"
                      for a in d.attributes]
        shown = "; ".join(attrs[:5]) + (f"; … {len(attrs) - 5} more" if len(attrs) > 5 else "")
        rows.append({
            "environment": r.environment,
            "status": str(r.status),
            "drifted resources": str(len(r.drifted)),
            "drift": redact_text(shown),
            "pending": _pending_line(r) or "-",
            "notice": str(r.notice) if r.notice else "-",
            "commit": r.commit[:12],
            "reason": redact_text(r.reason) or "-",
        })
    return rows
