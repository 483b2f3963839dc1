"""Markdown for humans: the PR plan comment, the approval text and the full plan artifact. PURE.

* :func:`render_pr_comment`: one comment for all environments of a PR, ALWAYS at most ``limit``
  characters (GitHub's limit is 65,536 characters, measured with ``len``). Layout: the hidden
  marker (so the comment can be found and updated), the header, a summary table (one row per
  environment), the destructive changes, then one ``<details>`` block per environment.
  When everything does not fit, the environments share the space fairly (an environment that
  needs little keeps all of it, the others split the rest) and each one degrades on its own:
  all attribute changes → some attribute changes (destructive resources first) → addresses only
  → as many addresses as fit → counts only (the table), always with a note
  "N resources not shown — full plan: <artifact url>".
* :func:`render_plan_summary`: a short text for the approval form (counts, destructive changes
  first, drift, every check's report, plan fingerprint).
* :func:`render_plan_markdown`: everything, for a Prefect artifact (no size budget).

Each resource change is described the way Terraform's own plan output does (:func:`describe_change`:
moves, imports, forgets, why a resource is replaced or destroyed), and the state of the plan
(errored, incomplete, not applyable, failed checks) is said in words (:func:`plan_notes`).

Every piece of text goes through :func:`gitops.redact.redact_text` (the plan model already masks
sensitive and credential-looking values). Every ``<details>`` and code fence opened is closed;
text from the plan cannot close a fence or break a table row.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from gitops.plan import ABSENT, Action, AttributeChange, OutputChange, Plan, ResourceChange
from gitops.checks import CheckLevel, CheckReport
from gitops.redact import redact_text

__all__ = [
    "DEFAULT_MARKER", "GITHUB_COMMENT_LIMIT", "EnvReport", "describe_change", "plan_notes",
    "render_plan_markdown", "render_plan_summary", "render_pr_comment",
]

DEFAULT_MARKER = "<!-- gitops-flows:plan -->"
"""Hidden first line of the PR comment: how the comment is found again to be updated."""
GITHUB_COMMENT_LIMIT = 65536
"""GitHub's maximum comment body, in characters."""

MAX_ATTRIBUTES_PER_RESOURCE = 40
"""Attribute lines shown per resource in a PR comment (the artifact shows all)."""
MAX_DESTRUCTIVE_LISTED = 100
"""Destructive changes listed above the details in a PR comment (the details list them all)."""
MAX_LISTED = 10
"""Tag violations, drifted resources and outputs listed per environment in a PR comment."""
MAX_LISTED_ADDRESS = 200
"""Longest address in the lists of the approval form and the destructive-changes section (cut in
the middle: a ``for_each`` key can be kilobytes long); the details and the artifact show it all."""

_SIGIL = {Action.CREATE: "+", Action.DELETE: "-", Action.UPDATE: "~", Action.REPLACE: "-/+",
          Action.READ: "<=", Action.FORGET: ".", Action.OTHER: "?", Action.NO_OP: " "}
_VERB = {Action.CREATE: "create", Action.DELETE: "destroy", Action.UPDATE: "update in-place",
         Action.REPLACE: "replace", Action.READ: "read during apply",
         Action.FORGET: "forget: no longer managed by Terraform, but not destroyed",
         Action.OTHER: "other", Action.NO_OP: "no-op"}
# Terraform's action_reason values (internal/command/jsonplan), in the words of its own plan output.
_REPLACE_VERB = {"replace_because_tainted": "replace (tainted)",
                 "replace_by_request": "replace, as requested",
                 "replace_by_triggers": "replace, due to changes in replace_triggered_by"}
_READ_WHY = {"read_because_config_unknown": "config refers to values not yet known",
             "read_because_dependency_pending":
                 "depends on a resource or a module with changes pending",
             "read_because_check_nested": "config will be reloaded to verify a check block"}
_KNOWN_REASONS = frozenset({*_REPLACE_VERB, *_READ_WHY, "replace_because_cannot_update",
                            "delete_because_no_resource_config", "delete_because_no_move_target",
                            "delete_because_no_module", "delete_because_wrong_repetition",
                            "delete_because_count_index", "delete_because_each_key"})
_DEFERRED_WHY = {"instance_count_unknown": "the number of instances is not known yet",
                 "resource_config_unknown": "its configuration is not known yet",
                 "provider_config_unknown": "its provider's configuration is not known yet",
                 "absent_prereq": "something it depends on does not exist yet",
                 "deferred_prereq": "something it depends on is deferred"}
_NO_ATTRIBUTES = frozenset({Action.DELETE, Action.READ, Action.FORGET, Action.NO_OP})


@dataclass(frozen=True, slots=True)
class EnvReport:
    """What one environment's plan run produced, for the PR comment.

    ``plan`` is None when planning failed (then ``error`` says why, already free of secrets as
    far as the caller knows; it is redacted again anyway) or did not run. ``checks`` are the
    reports that judge the plan; ``proposed_checks`` what the pull request's own policies would
    report instead (for display only; None: not evaluated).
    """

    env: str
    plan: Plan | None = None
    checks: tuple[CheckReport, ...] = ()
    error: str | None = None
    artifact_url: str | None = None
    run_url: str | None = None
    proposed_checks: tuple[CheckReport, ...] | None = None


# --------------------------------------------------------------------------------------------
# small markdown helpers


def _fence_safe(text: str) -> str:
    """Text that cannot end a ``` code fence."""
    return text.replace("```", "`\u200b``") if "```" in text else text


def _code(text: str, *, table: bool = False) -> str:
    """``text`` as an inline code span (escaped for a table cell when ``table``)."""
    text = text.replace("\n", " ")
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{ticks}{pad}{text}{pad}{ticks}"
    return span.replace("|", "\\|") if table else span


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _redact_lines(lines: list[str]) -> list[str]:
    """Redact many one-line strings with one pass (falls back to one by one if lines merge)."""
    if not lines:
        return lines
    joined = "\n".join(lines)
    redacted = redact_text(joined)
    if redacted is joined or redacted == joined:
        return lines
    out = redacted.split("\n")
    if len(out) == len(lines):
        return out
    return [redact_text(line).replace("\n", " ") for line in lines]


def _full_plan_ref(report: EnvReport) -> str:
    if report.artifact_url:
        return report.artifact_url
    if report.run_url:
        return report.run_url
    return "see the plan run's artifacts"


def _not_shown_note(n: int, report: EnvReport) -> str:
    return f"_{_plural(n, 'resource')} not shown — full plan: {_full_plan_ref(report)}_\n"


def _attrs_not_shown_note(n: int, report: EnvReport) -> str:
    return (f"_Attribute changes of {_plural(n, 'resource')} not shown — full plan: "
            f"{_full_plan_ref(report)}_\n")


# --------------------------------------------------------------------------------------------
# resource and attribute lines (unredacted; callers redact)


def describe_change(change: ResourceChange, *, drift: bool = False) -> str:
    """What happens to one resource instance, in the words of Terraform's plan output (no
    address): ``"update in-place (moved from aws_s3_bucket.old)"``, ``"replace (forced by: ami)"``,
    ``"destroy (because aws_instance.web is not in configuration)"``, ``"import (id "i-1")"``.
    ``drift`` describes an entry of ``resource_drift`` (changed or deleted outside Terraform)."""
    action, reason = change.action, change.action_reason
    why: list[str] = []
    if drift:
        verb = ("deleted outside Terraform" if action is Action.DELETE
                else "changed outside Terraform")
        if change.address_rebuilt:
            why.append("address rebuilt: this Terraform version wrote none")
    elif action is Action.NO_OP:  # kept only because it moves or is imported
        verb = f"moved from {change.previous_address}" if change.moved else "import"
    elif action is Action.OTHER:
        verb = "+".join(change.actions)
    elif action is Action.REPLACE and "forget" in change.actions:
        verb = "replace, but the existing object will not be destroyed (destroy = false)"
    elif action is Action.REPLACE:
        verb = _REPLACE_VERB.get(reason or "", "replace")
        if change.replace_paths:
            why.append("forced by: " + ", ".join(change.replace_paths[:5])
                       + (f" and {len(change.replace_paths) - 5} more"
                          if len(change.replace_paths) > 5 else ""))
    else:
        verb = _VERB[action]
        if action is Action.FORGET:
            why.append("destroy = false is set in the configuration")
    if not drift:
        why += _delete_why(change) if action is Action.DELETE else []
        if action is Action.READ and reason in _READ_WHY:
            why.append(_READ_WHY[reason])
        if reason and reason not in _KNOWN_REASONS:
            why.append(reason)  # a reason this version does not know: shown as Terraform wrote it
    if change.deposed:
        why.append(f"deposed object {change.deposed}, left over from a failed replacement")
    if change.moved and action is not Action.NO_OP:
        why.append(f"moved from {change.previous_address}")
    if change.importing and not drift:
        if action is Action.NO_OP and not change.moved:
            why.append(f'id "{change.import_id}"' if change.import_id else "id not shown")
        else:
            why.append(f'imported from "{change.import_id}"' if change.import_id
                       else "imported first")
        if change.generated_config:
            why.append("config will be generated")
        if change.is_destructive:
            why.append("warning: this destroys the imported object")
    return f"{verb} ({'; '.join(why)})" if why else verb


def _delete_why(change: ResourceChange) -> list[str]:
    reason, index = change.action_reason, change.index
    if reason == "delete_because_no_resource_config":
        return [f"because {change.type}.{change.name} is not in configuration"]
    if reason == "delete_because_no_move_target":
        return [f"because {change.previous_address} was moved to {change.address}, which is "
                "not in configuration"]
    if reason == "delete_because_no_module":
        return [f"because {change.module_address} is not in configuration"]
    if reason == "delete_because_wrong_repetition":
        return ["because resource uses count or for_each" if index is None else
                "because resource does not use count" if isinstance(index, int) else
                "because resource does not use for_each"]
    if reason == "delete_because_count_index":
        return [f"because index [{index}] is out of range for count"]
    if reason == "delete_because_each_key":
        return [f'because key ["{index}"] is not in for_each map']
    return []


def _resource_line(change: ResourceChange, *, drift: bool = False) -> str:
    sigil = "+/-" if change.create_before_destroy else _SIGIL[change.action]
    return _fence_safe(f"{sigil} {change.address}  # {describe_change(change, drift=drift)}")


def plan_notes(plan: Plan, *, cap: int | None = None) -> list[str]:
    """Markdown lines saying what the counts do not: an errored, incomplete or not applyable
    plan, and the checks that did not pass (at most ``cap`` listed; None: all)."""
    notes = []
    if plan.errored:
        notes.append("❌ **Planning failed**: Terraform stopped with an error, so this plan "
                     "cannot be applied; the changes listed are those planned before the error.")
    elif plan.applyable is False and plan.has_changes:
        notes.append("⚠️ **Not applyable**: Terraform marked this plan as one that cannot be "
                     "applied.")
    if plan.deferred or plan.complete is False and not plan.errored:
        why = sorted({_DEFERRED_WHY.get(d.reason, d.reason) for d in plan.deferred})
        notes.append("⚠️ **Incomplete plan**: "
                     + (f"{_plural(len(plan.deferred), 'change')} deferred ({'; '.join(why)}): "
                        if plan.deferred else "")
                     + "another plan and apply will be needed after this one.")
    if plan.checks:
        failed = [c for c in plan.checks if c.status in ("fail", "error")]
        unknown = len(plan.checks) - len(failed)
        parts = ([f"{len(failed)} failed"] if failed else []) + (
            [f"{unknown} not known until apply"] if unknown else [])
        notes.append(f"{'❌' if failed else '⚠️'} **Checks:** {', '.join(parts)}")
        shown = plan.checks if cap is None else plan.checks[:cap]
        for check in shown:
            problem = "; ".join(check.problems) if check.problems else "no message"
            notes.append(f"- {_code(check.address)} {check.status}: {problem}")
        if len(shown) < len(plan.checks):
            notes.append(f"- … and {len(plan.checks) - len(shown)} more")
    return notes


def _attribute_line(attr: AttributeChange) -> str:
    if attr.before == ABSENT:
        text = f"+     {attr.path} = {attr.after}"
    elif attr.after == ABSENT:
        text = f"-     {attr.path} = {attr.before}"
    else:
        text = f"~     {attr.path} = {attr.before} -> {attr.after}"
    if attr.forces_replacement:
        text += "  # forces replacement"
    return _fence_safe(text)


def _attribute_lines(change: ResourceChange, cap: int | None) -> list[str]:
    if change.action in _NO_ATTRIBUTES:
        return []
    attrs = change.attributes
    lines = [_attribute_line(a) for a in (attrs if cap is None else attrs[:cap])]
    if cap is not None and len(attrs) > cap:
        lines.append(f"      … {len(attrs) - cap} more attribute changes")
    return lines


def _output_line(output: OutputChange) -> str:
    name = f"output.{output.name}"
    if output.action is Action.CREATE:
        return _fence_safe(f"+ {name} = {output.after}")
    if output.action is Action.DELETE:
        return _fence_safe(f"- {name} = {output.before}")
    return _fence_safe(f"~ {name} = {output.before or 'null'} -> {output.after or 'null'}")


# --------------------------------------------------------------------------------------------
# PR comment


def _table(reports: Sequence[EnvReport]) -> str:
    rows = ["| Environment | Add | Change | Destroy | Replace | Checks | Status |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in reports:
        plan = r.plan
        if plan is None:
            counts = ["—"] * 4
        else:
            c = plan.counts
            counts = [str(c.add), str(c.change), str(c.destroy), str(c.replace)]
        policy = _checks_cell(r.checks)
        status = _status(r)
        if r.run_url:
            status = f"[{status}]({r.run_url})"
        rows.append(f"| {_code(r.env, table=True)} | {' | '.join(counts)} | {policy} | {status} |")
    return "\n".join(_redact_lines(rows)) + "\n"


_CHECK_ICON = {"passed": "✅", "advisory": "⚠️", "blocked": "❌", "error": "❌"}


def _checks_cell(checks: Sequence[CheckReport]) -> str:
    """The table's Checks cell: ``✅ passed``, or each check that found something."""
    if not checks:
        return "—"
    if all(c.passed for c in checks):
        return "✅ passed"
    parts = []
    for c in checks:
        if c.passed:
            continue
        what = "error" if c.error is not None else _plural(len(c.findings), "violation")
        parts.append(f"{_CHECK_ICON[c.status]} {c.name}: {what}")
    return "; ".join(parts)


def _check_lines(check: CheckReport, cap: int | None, *, source: bool = False) -> list[str]:
    """One check's report: its headline, then its findings (at most ``cap``), or its error."""
    level = "" if check.level is CheckLevel.HARD_MANDATORY else f" ({check.level.value})"
    name = check.name[:1].upper() + check.name[1:]
    lines = [f"**{name}**{level}: {_CHECK_ICON[check.status]} {check.summary()}"]
    if source and check.source:
        lines[0] += f" · {_code(check.source)}"
    if check.error is not None:
        error = check.error if len(check.error) <= 2000 else check.error[:2000] + " …"
        lines += ["", "```", _fence_safe(error), "```"]
    shown = check.findings if cap is None else check.findings[:cap]
    if shown:
        lines.append("")
    for f in shown:
        text = f"{_code(_short(f.address, MAX_LISTED_ADDRESS))}: " if f.address else ""
        lines.append(f"- {text}{f.message.replace(chr(10), ' ')}")
    if cap is not None and len(check.findings) > cap:
        lines.append(f"- … and {len(check.findings) - cap} more")
    return lines


def _status(r: EnvReport) -> str:
    if r.error is not None:
        return "❌ error"
    plan = r.plan
    if plan is None:
        return "not planned"
    if plan.errored:
        text = "❌ plan errored"
    elif plan.deferred or plan.complete is False:
        text = "⚠️ incomplete plan"
    elif plan.destructive:
        text = "⚠️ destructive changes"
    elif plan.has_changes:
        text = "changes"
    else:
        text = "✅ no changes"
    if plan.drift:
        text += f" · drift: {len(plan.drift)}"
    failed = sum(c.status in ("fail", "error") for c in plan.checks)
    if failed:
        text += f" · checks failed: {failed}"
    return text


def _destructive_section(reports: Sequence[EnvReport], budget: int) -> str:
    entries = [(r, c) for r in reports if r.plan is not None for c in r.plan.destructive]
    if not entries or budget <= 0:
        return ""
    title = f"**⚠️ Destructive changes ({len(entries)})**\n\n"
    listed = _redact_lines([
        f"- {_code(r.env)} {_code(_short(c.address, MAX_LISTED_ADDRESS))}: "
        f"**{describe_change(c)}**"
        for r, c in entries[:MAX_DESTRUCTIVE_LISTED]
    ])
    total = len(entries)
    out = title
    shown = 0
    for line in listed:
        rest = total - shown - 1
        tail = _more_destructive(rest) if rest else ""
        if len(out) + len(line) + 1 + len(tail) + 1 > budget:
            break
        out += line + "\n"
        shown += 1
    if shown < total:
        out += _more_destructive(total - shown)
    return out + "\n" if len(out) + 1 <= budget else ""


def _more_destructive(n: int) -> str:
    return f"- … and {n} more (see details below)\n"


class _EnvBlock:
    """One environment's ``<details>`` block, rendered to fit a budget."""

    def __init__(self, report: EnvReport) -> None:
        self.report = report
        plan = report.plan
        self.changes: tuple[ResourceChange, ...] = (
            plan.changes_destructive_first if plan is not None else ())
        self._headers: list[str] | None = None
        self._attrs: dict[int, list[str]] = {}
        self._full: str | None = None

    @property
    def needed(self) -> bool:
        r = self.report
        if r.error is not None:
            return True
        plan = r.plan
        if plan is None:
            return False
        return bool(plan.changes or plan.drift or plan.outputs or plan_notes(plan, cap=0)
                    or any(not c.passed for c in r.checks))

    def _open(self) -> str:
        r = self.report
        if r.plan is not None:
            counts = r.plan.counts.summary()
        elif r.error is not None:
            counts = "plan failed"
        else:
            counts = "not planned"
        summary = redact_text(f"<b>{html.escape(r.env)}</b>: {html.escape(counts)}")
        return f"<details><summary>{summary}</summary>\n\n"

    _CLOSE = "</details>\n\n"

    def headers(self) -> list[str]:
        if self._headers is None:
            self._headers = _redact_lines([_resource_line(c) for c in self.changes])
        return self._headers

    def attrs(self, i: int) -> list[str]:
        lines = self._attrs.get(i)
        if lines is None:
            lines = _redact_lines(_attribute_lines(self.changes[i], MAX_ATTRIBUTES_PER_RESOURCE))
            self._attrs[i] = lines
        return lines

    def _extras(self, cap: int) -> tuple[str, str]:
        """(text before the resource list, text after it) with at most ``cap`` items per list."""
        r = self.report
        before = ""
        if r.error is not None:
            error = r.error if len(r.error) <= 3000 else r.error[:3000] + "\n… (truncated)"
            if cap < MAX_LISTED:
                error = error[:300] + ("…" if len(error) > 300 else "")
            before += f"**Error:**\n\n```\n{_fence_safe(redact_text(error))}\n```\n\n"
        for check in r.checks:
            if check.passed:
                continue
            lines = _check_lines(check, cap)
            before += "".join(f"{line}\n" for line in _redact_lines(lines)) + "\n"
        plan = r.plan
        if plan is not None:
            notes = plan_notes(plan, cap=cap)
            if notes:
                before += "".join(f"{line}\n" for line in _redact_lines(notes)) + "\n"
        if plan is not None and plan.drift:
            names = ", ".join(_code(d.address) for d in plan.drift[:cap])
            more = f", … and {len(plan.drift) - cap} more" if len(plan.drift) > cap else ""
            sep = ": " if names else ""
            before += redact_text(
                f"**Drift:** {_plural(len(plan.drift), 'resource')} changed outside Terraform"
                f"{sep}{names}{more}\n\n")
        after = ""
        if plan is not None and plan.outputs and cap:
            lines = [_output_line(o) for o in plan.outputs[:cap]]
            if len(plan.outputs) > cap:
                lines.append(f"  … and {len(plan.outputs) - cap} more outputs")
            after = "**Outputs:**\n\n```diff\n" + "".join(
                f"{line}\n" for line in _redact_lines(lines)) + "```\n\n"
        return before, after

    def minimal(self) -> str:
        n = len(self.changes)
        note = _not_shown_note(n, self.report) if n else ""
        if self.report.error is not None and not n:
            before, _ = self._extras(0)
            text = self._open() + before + self._CLOSE
            if len(text) <= 700:
                return text
            return self._open() + "**Error:** see the run.\n\n" + self._CLOSE
        return self._open() + (note + "\n" if note else "") + self._CLOSE

    def full_length_hint(self, ceiling: int) -> int:
        """Length of the full block, or ``ceiling + 1`` if it clearly exceeds ``ceiling``."""
        if sum(len(h) + 1 for h in self.headers()) > ceiling:
            return ceiling + 1
        return len(self.full())

    def full(self) -> str:
        if self._full is None:
            body = []
            for i, header in enumerate(self.headers()):
                body.append(header)
                body.extend(self.attrs(i))
            self._full = self._assemble(body, MAX_LISTED, note="")
        return self._full

    def _assemble(self, lines: list[str], cap: int, note: str) -> str:
        before, after = self._extras(cap)
        resources = ("```diff\n" + "".join(f"{line}\n" for line in lines) + "```\n\n"
                     if lines else "")
        return self._open() + before + resources + after + (note + "\n" if note else "") + \
            self._CLOSE

    def render(self, budget: int) -> str:
        """The most detailed block that fits ``budget`` (the minimal block if none does).

        In order: everything; every address with attribute changes for as many resources as fit
        (destructive first); as many addresses as fit; the minimal block. Tag violations, drifted
        resources and outputs are listed up to 10, then 3, then not at all.
        """
        if self.full_length_hint(budget) <= budget:
            return self.full()
        headers = self.headers()
        n = len(headers)
        header_size = sum(len(h) + 1 for h in headers)
        for cap in (MAX_LISTED, 3, 0):
            if not n:
                break
            # "x" stands for the resource lines: "x\n" is 2 characters
            frame = len(self._assemble(["x"], cap, _attrs_not_shown_note(n, self.report))) - 2
            room = budget - frame - header_size
            if room < 0:
                continue
            body: list[str] = []
            omitted = 0
            for i, header in enumerate(headers):
                body.append(header)
                if self.changes[i].action in _NO_ATTRIBUTES:
                    continue
                attrs = self.attrs(i) if room > 20 else None
                size = sum(len(a) + 1 for a in attrs) if attrs is not None else room + 1
                if size <= room:
                    body.extend(attrs or ())
                    room -= size
                else:
                    omitted += 1
            note = _attrs_not_shown_note(omitted, self.report) if omitted else ""
            text = self._assemble(body, cap, note)
            if len(text) <= budget:
                return text
        for cap in (MAX_LISTED, 3, 0):
            frame = len(self._assemble(["x"], cap, _not_shown_note(n, self.report))) - 2
            room = budget - frame
            if room < 0:
                continue
            shown: list[str] = []
            for header in headers:
                if len(header) + 1 > room:
                    break
                shown.append(header)
                room -= len(header) + 1
            if n and not shown:
                continue
            note = _not_shown_note(n - len(shown), self.report) if len(shown) < n else ""
            text = self._assemble(shown, cap, note)
            if len(text) <= budget:
                return text
        return self.minimal()


def render_pr_comment(reports: Sequence[EnvReport], *, header: str,
                      marker: str = DEFAULT_MARKER, limit: int = GITHUB_COMMENT_LIMIT,
                      footer: str = "") -> str:
    """The PR comment for all environments, at most ``limit`` characters (see module doc)."""
    budget = limit
    for _ in range(4):
        text = redact_text(_compose(reports, header, marker, budget, footer))
        if len(text) <= limit:
            return text
        budget -= len(text) - limit + 64  # redaction grew the text: aim lower
    return _last_resort(reports, marker, limit)


def _compose(reports: Sequence[EnvReport], header: str, marker: str, budget: int,
             footer: str) -> str:
    head = f"{marker}\n"
    if header:
        head += redact_text(header).rstrip("\n") + "\n\n"
    head += _table(reports) + "\n"
    foot = redact_text(footer).rstrip("\n") + "\n" if footer else ""
    room = budget - len(head) - len(foot)
    if room < 0:
        return _last_resort(reports, marker, budget)
    blocks = [_EnvBlock(r) for r in reports]
    blocks = [b for b in blocks if b.needed]
    minimal = [len(b.minimal()) for b in blocks]
    slack = room - sum(minimal)
    if slack < 0:  # not even one summary line per environment: the table has to do
        note = "_Details not shown (comment size limit) — full plans: see the linked runs._\n\n"
        destructive = _destructive_section(reports, (room - len(note)) // 2)
        if len(destructive) + len(note) > room:
            note = ""
        if len(destructive) + len(note) > room:
            destructive = ""
        return head + destructive + note + foot
    destructive = _destructive_section(reports, max(slack // 3, min(slack, 2000)))
    room -= len(destructive)
    rendered: dict[int, str] = {}
    # fair shares: the cheapest environments first, each gets its minimum plus an equal part of
    # what is left; what one does not use goes to the next
    order = sorted(range(len(blocks)), key=lambda i: blocks[i].full_length_hint(room))
    min_left = sum(minimal)
    remaining = room
    for k, i in enumerate(order):
        left = len(order) - k
        slack_now = remaining - min_left
        share = minimal[i] + max(0, slack_now) // left
        text = blocks[i].render(share)
        if len(text) > share:
            text = blocks[i].minimal()
        rendered[i] = text
        remaining -= len(text)
        min_left -= minimal[i]
    body = "".join(rendered[i] for i in range(len(blocks)))
    return head + destructive + body + foot


def _last_resort(reports: Sequence[EnvReport], marker: str, limit: int) -> str:
    """Marker, table and a note, cut to ``limit`` at a line boundary (the header/footer are dropped)."""
    text = f"{marker}\n" + _table(reports) + "\n_Details not shown (comment size limit)._\n"
    text = redact_text(text)
    if len(text) <= limit:
        return text
    text = f"{marker}\n_Plan summary not shown (comment size limit)._\n"
    return text if len(text) <= limit else marker[:limit]


# --------------------------------------------------------------------------------------------
# approval summary and full artifact


def relative_to_checkout(text: str, checkout: str) -> str:
    """``text`` (a terraform error, say) with the worker's checkout path cut off its file paths,
    so a PR reader sees ``terraform/environments/prod/prod.tfvars``, not the run directory."""
    root = checkout.rstrip("/") + "/"
    return text.replace(root, "") if len(root) > 1 else text


def render_plan_summary(plan: Plan, checks: Sequence[CheckReport],
                        fingerprint_short: str | None, *, limit: int = 3000) -> str:
    """A short text for the approval form: counts, destructive changes first, drift, every
    check's report and the plan fingerprint; at most ``limit`` characters."""
    for cap in (20, 10, 5, 0):
        text = redact_text(_summary(plan, checks, fingerprint_short, cap))
        if len(text) <= limit:
            return text
    return text[: max(0, limit - 1)] + "…" if limit else ""


def _summary(plan: Plan, checks: Sequence[CheckReport], fingerprint: str | None,
             cap: int) -> str:
    lines = [f"**Plan:** {_headline(plan)}"]
    notes = plan_notes(plan, cap=cap)
    if notes:
        lines += ["", *notes]
    destructive = plan.destructive
    if destructive:
        lines += ["", f"**⚠️ Destructive changes ({len(destructive)}):**", ""]
        for change in destructive[:cap]:
            lines.append(f"- {_code(_short(change.address, MAX_LISTED_ADDRESS))}: "
                         f"{describe_change(change)}")
        if len(destructive) > cap:
            lines.append(f"- … and {len(destructive) - cap} more")
    others = [ch for ch in plan.changes_destructive_first if not ch.is_destructive]
    if others and cap:
        lines += ["", f"**Other changes ({len(others)}):**", ""]
        for change in others[:cap]:
            detail = ""
            if change.action is Action.UPDATE:
                detail = "; ".join(f"{a.path}: {_short(a.before)} → {_short(a.after)}"
                                   for a in change.attributes[:3])
                if len(change.attributes) > 3:
                    detail += f"; +{len(change.attributes) - 3} more"
            lines.append(f"- {_code(_short(change.address, MAX_LISTED_ADDRESS))}: "
                         f"{describe_change(change)}"
                         + (f" ({_code(detail)})" if detail else ""))
        if len(others) > cap:
            lines.append(f"- … and {len(others) - cap} more")
    if plan.drift:
        lines += ["", f"**Drift:** {_plural(len(plan.drift), 'resource')} changed outside "
                  "Terraform"]
    for check in checks:
        lines += ["", *_check_lines(check, cap)]
    if fingerprint:
        lines += ["", f"**Plan fingerprint:** {_code(fingerprint)}"]
    return "\n".join(lines) + "\n"


def _headline(plan: Plan) -> str:
    """The counts, or what stands for them when nothing is counted (Terraform's wording)."""
    c = plan.counts
    if plan.has_changes or c.total:
        return c.summary()
    if plan.errored:
        return "planning failed: Terraform encountered an error while generating this plan"
    if plan.deferred:
        return "no current changes: this plan requires another plan to be applied first"
    return "no changes"


def _short(value: str, width: int = 40) -> str:
    """An attribute value cut to ``width`` characters for one-line summaries ("" = null).

    The middle goes, so both the start and the end (often a version tag) stay readable.
    """
    value = value or "null"
    if len(value) <= width:
        return value
    head = (width - 1) // 2
    return value[:head] + "…" + value[len(value) - (width - 1 - head):]


def render_plan_markdown(env: str, plan: Plan, checks: Sequence[CheckReport]) -> str:
    """The whole plan as markdown (every resource and attribute change), for a Prefect artifact."""
    c = plan.counts
    out = [f"# Terraform plan: {_code(env)}", ""]
    meta = f"Terraform {plan.terraform_version or 'unknown'} · plan format {plan.format_version}"
    if plan.errored:
        meta += " · **plan errored (cannot be applied)**"
    out += [meta, ""]
    if plan.has_changes or c.total:
        imports = f"{c.imports} to import, " if c.imports else ""
        out.append(f"**{c.summary()}** (Terraform's count: {imports}{c.terraform_add} to add, "
                   f"{c.change} to change, {c.terraform_destroy} to destroy)")
    elif plan.errored or plan.deferred:
        out.append(f"**{_headline(plan).capitalize()}.**")
    else:
        out.append("**No changes.** The infrastructure matches the configuration.")
    out.append("")
    notes = plan_notes(plan)
    if notes:
        out += [*notes, ""]
    if plan.destructive:
        out += [f"## ⚠️ Destructive changes ({len(plan.destructive)})", ""]
        for change in plan.destructive:
            out.append(f"- {_code(change.address)}: **{describe_change(change)}**")
        out.append("")
    if checks:
        out += ["## Checks", ""]
        for check in checks:
            out += [*_check_lines(check, None, source=True), ""]
    if plan.changes:
        out += ["## Resource changes", "", "```diff"]
        for change in plan.changes_destructive_first:
            out.append(_resource_line(change))
            out += _attribute_lines(change, None)
        out += ["```", ""]
    if plan.drift:
        out += ["## Drift: changed outside Terraform", "", "```diff"]
        for change in plan.drift:
            out.append(_resource_line(change, drift=True))
            out += [_attribute_line(a) for a in change.attributes]
        out += ["```", ""]
    if plan.outputs:
        out += ["## Outputs", "", "```diff"]
        out += [_output_line(o) for o in plan.outputs]
        out += ["```", ""]
    if plan.deferred:
        out += [f"## Deferred ({len(plan.deferred)})", ""]
        out += [f"- {_code(d.address)} ({'+'.join(d.actions) or 'change'}): "
                f"{_DEFERRED_WHY.get(d.reason, d.reason)}" for d in plan.deferred]
        out.append("")
    return "\n".join(_redact_lines(out)) + "\n"



# -- the approval request ---------------------------------------------------------------------


def approval_marker(environment: str, run_id: str, fingerprint: str) -> str:
    """The hidden marker of one request for approval (one run, one plan)."""
    return f"<!-- gitops-flows:approval {environment} {run_id} {fingerprint} -->"


@dataclass(frozen=True)
class ApprovalText:
    """What an approver reads: on the code host, and above the Prefect form."""

    environment: str
    fingerprint: str
    commit: str
    subject: str
    plan_summary: str
    needed: int
    approvers: tuple[str, ...]
    allow_author: bool
    allow_declared: bool
    deadline: str
    why: str = ""
    run_url: str = ""
    overrides: tuple[str, ...] = ()
    """Keys of the soft-mandatory checks that need a policy owner's override."""
    policy_owners: tuple[str, ...] = ()


def _how_to_approve(t: ApprovalText) -> list[str]:
    who = (", ".join(f"`{a}`" for a in t.approvers) + " (with write access)" if t.approvers
           else "anyone with write access to the repository")
    author = "" if t.allow_author else "; not the change's author"
    lines: list[str] = []
    if t.needed:
        lines += [f"Needs **{t.needed}** approval(s) from distinct accounts: {who}{author}. "
                  f"Approve on the pull request (or the commit) with a new comment or review:",
                  "", f"    /gitops approve {t.environment} {t.fingerprint}", ""]
    if t.overrides:
        owners = (", ".join(f"`{o}`" for o in t.policy_owners) if t.policy_owners
                  else "nobody: this environment names no `policy_owners`")
        lines += [f"Soft-mandatory check(s) block this plan until a policy owner ({owners}"
                  f"{author}) overrides each, with a new comment:", ""]
        lines += [f"    /gitops override {t.environment} {key} {t.fingerprint} <reason>"
                  for key in t.overrides] + [""]
    return lines + [
        f"Reject with `/gitops reject {t.environment} <reason>`. From a shell, "
        f"`gitops-flows approve {t.environment}` posts that comment as your GitHub account.",
        "The Prefect UI form accepts a rejection from anyone; "
        + ("an approval there counts as **declared** (a typed name, unverified)."
           if t.allow_declared else
           "an approval there is a typed name and does **not** count here."),
        f"An approval for another plan, an edited comment or one given before this request does "
        f"not count. Waits until {t.deadline}.",
    ]


def render_approval_request(t: ApprovalText, status: str, marker: str) -> str:
    """The code-host comment that asks for approval; ``status`` is its last line (edited as
    answers come)."""
    lines = [marker, f"### gitops-flows: {t.environment} waits for approval of plan "
                     f"`{t.fingerprint}`", ""]
    if t.why:
        lines += [f"**Approval is needed because {redact_text(t.why)}.**", ""]
    lines += [f"Commit `{t.commit[:12]}`: {redact_text(t.subject)}", "",
              "```", redact_text(t.plan_summary).replace("```", "'''"), "```", ""]
    lines += _how_to_approve(t)
    if t.run_url:
        lines += ["", f"Run: {t.run_url}"]
    lines += ["", f"**Status:** {status}"]
    return "\n".join(lines)


def render_approval_form(t: ApprovalText, status: str) -> str:
    """The markdown above the Prefect UI form (rendered by the run from the plan it holds)."""
    lines = [f"## Approve the {t.environment} deploy?", ""]
    if t.why:
        lines += [f"**Approval is needed because {redact_text(t.why)}.**", ""]
    lines += [f"Commit `{t.commit[:12]}`: {redact_text(t.subject)}", "",
              redact_text(t.plan_summary), "",
              f"Approving applies **exactly** this plan (fingerprint `{t.fingerprint}`); if the "
              "state moves before apply, the deploy re-plans and asks again.", ""]
    lines += _how_to_approve(t) + ["", f"**So far:** {status}"]
    return "\n".join(lines)
