"""What a pull request's plan tells GitHub, around :func:`gitops.render.render_pr_comment`. PURE.

* :func:`verdict`: one environment's commit status (``gitops/plan: <env>``): success when the plan
  was made and no check blocks (changes or not; advisory findings do not fail it), failure for a
  plan error, a blocking check report (a finding of a mandatory check, or a check that could not
  be evaluated), a held state lock or a configuration that does not load. The description is short
  (GitHub allows 140 characters) and redacted.
* :func:`plan_comment`: the PR comment for the affected environments (header, table, details,
  why each environment is affected, what happens next).
* :func:`render_policy_comparison`: for a PR that changes the policies, what its own policies
  would report on each plan compared with the default branch's (which judge it), size-budgeted.
* :func:`no_environments_comment`, :func:`closed_comment`: the comment when the PR touches no
  environment, and when it is closed without merge.

Every comment starts with :data:`MARKER`, so the next run edits the same comment in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from gitops.affected import AffectedSet, Reason
from gitops.checks import CheckReport, ChecksDiff, Finding, blocking, compare_checks
from gitops.redact import redact_text
from gitops.render import DEFAULT_MARKER, EnvReport, _code, _plural, render_pr_comment

__all__ = ["MARKER", "ConfigNotice", "Verdict", "closed_comment", "no_environments_comment",
           "plan_comment", "refused_comment", "render_config_notices", "render_policy_comparison",
           "verdict"]

MARKER = DEFAULT_MARKER
"""Hidden first line of the PR plan comment."""
MAX_DESCRIPTION = 140
MAX_LISTED_PATHS = 20

VerdictState = Literal["success", "failure"]
T = TypeVar("T")

_REASON_TEXT = {Reason.ENVIRONMENT: "its folder", Reason.STACK: "its stack",
                Reason.MODULE: "a module its stack uses", Reason.OVERLAY: "its Argo CD overlay"}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One environment's commit status after its plan."""

    env: str
    state: VerdictState
    description: str


def _short(text: str, limit: int = MAX_DESCRIPTION) -> str:
    line = redact_text(text.strip().splitlines()[0] if text.strip() else "").strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class ConfigNotice:
    """How one environment was planned, where that differs from what the PR asks for.

    The plan always runs with the *trusted* configuration (the default branch's); ``changes``
    lists what the PR would change in it (taking effect only once merged), ``new`` marks an
    environment the default branch does not have, ``withheld`` the secret variables the plan did
    not receive (placeholders instead), ``refusal`` why the platform grant would refuse it.
    """

    env: str
    changes: tuple[str, ...] = ()
    new: bool = False
    withheld: tuple[str, ...] = ()
    refusal: str | None = None

    @property
    def loud(self) -> bool:
        """Whether the comment must call this out above the plans."""
        return bool(self.changes or self.new or self.refusal)


_SENSITIVE_SETTINGS = ("backend", "backend_config", "approval", "secret_variables",
                       "lock_timeout_seconds", "remediate")
"""The rules (gitops.config.RULE_FIELDS): their changes are shown in bold."""


def render_config_notices(notices: Sequence[ConfigNotice]) -> str:
    """The loud section about configuration changes, new environments and withheld secrets."""
    loud = [n for n in notices if n.loud]
    quiet = [n for n in notices if not n.loud and n.withheld]
    lines: list[str] = []
    if loud:
        lines += ["> [!WARNING]", "> **This pull request changes how environments are run.** "
                  "The plans below use the rules on the default branch (in bold: backend, "
                  "secrets, approval); these take effect only once merged, and deserve a careful "
                  "review.", ">"]
        for notice in loud:
            if notice.new:
                lines.append(f"> - **new environment `{notice.env}`**: planned against an empty "
                             "state with the platform's new-environment plan credentials and no "
                             "secrets" + (f" (withheld: {', '.join(notice.withheld)})"
                                          if notice.withheld else ""))
            if notice.refusal:
                lines.append(f"> - `{notice.env}`: **refused once merged**: {notice.refusal}")
            for change in notice.changes:
                key, _, values = change.partition(": ")
                text = f"`{key}`: {values}"  # the key in code: a secret-ish name masks nothing
                if key.split(".", 1)[0] in _SENSITIVE_SETTINGS:
                    text = f"**{text}**"
                lines.append(f"> - `{notice.env}` {text}")
        lines.append("")
    for notice in quiet:
        lines.append(f"_`{notice.env}` was planned without its secret variables "
                     f"{', '.join(f'`{v}`' for v in notice.withheld)} (a pull request's plan does "
                     "not receive them; placeholders were used, so changes that depend on them "
                     "are not real)._")
    return redact_text("\n".join(lines).rstrip())


# ---------------------------------------------------------------------------------------------
# a pull request's own policies against the default branch's

MAX_POLICY_TEXT = 300
"""Longest message or error quoted in the policy comparison (the plan artifact has all of it)."""
_POLICY_CAPS = (10, 3, 0)
"""Findings listed per kind and environment, from the first that fits down to counts only."""
_JUDGES = ("The default branch's policies judge this pull request (its statuses and what "
           "blocks); the ones it proposes take effect once merged.")


def _quote(text: str) -> str:
    """Text written by a policy (or its author): one line, cut, in code so it cannot format."""
    line = " ".join(text.split())
    return _code(line if len(line) <= MAX_POLICY_TEXT else line[:MAX_POLICY_TEXT - 1] + "…")


def _finding_text(report: CheckReport, finding: Finding | None) -> str:
    check = f"{_code(report.name)} ({report.level.value})"
    if finding is None:
        return f"{check}: could not be evaluated"
    where = f"{_code(finding.address)}: " if finding.address else ""
    return f"{check}: {where}{_quote(finding.message)}"


def _items(label: str, items: Sequence[T], cap: int, show: Callable[[T], str],
           noun: str = "finding") -> list[str]:
    """``  - label:`` then up to ``cap`` items as ``show`` says; ``cap`` 0: only how many."""
    if not items:
        return []
    if cap == 0:
        return [f"  - {label}: {_plural(len(items), noun)}"]
    if len(items) == 1:
        return [f"  - {label}: {show(items[0])}"]
    lines = [f"  - {label}:"] + [f"    - {show(item)}" for item in items[:cap]]
    if len(items) > cap:
        lines.append(f"    - … and {len(items) - cap} more")
    return lines


def _found(item: tuple[CheckReport, Finding | None]) -> str:
    return _finding_text(*item)


def _named(report: CheckReport) -> str:
    return _code(report.name)


def _outcome(diff: ChecksDiff) -> str:
    if diff.failed is not None:
        return ""
    now = "**blocked**" if diff.blocked else "passes"
    then = "**would block**" if diff.would_block else "would pass"
    return f": {now} under the default branch's policies, {then} under this pull request's"


def _diff_lines(diff: ChecksDiff, cap: int) -> list[str]:
    env = _code(diff.env)
    if diff.failed is not None:
        side = ("this pull request's" if diff.failed in diff.proposed
                else "the default branch's")
        return [f"- {env}: ❌ {side} policies could not be evaluated on this plan, so nothing "
                f"is compared: {_quote(diff.failed.error or '')}"]
    if diff.same:
        return [f"- {env}: no difference"]
    lines = [f"- {env}{_outcome(diff)}"]
    stopping = diff.stops_blocking
    listed = {(r.name, f) for r, f in stopping}
    lines += _items("⛔ **would stop blocking**", stopping, cap, _found)
    lines += _items("❌ could not be evaluated under this pull request's policies", diff.errors,
                    cap, lambda r: f"{_code(r.name)}: {_quote(r.error or '')}", "check")
    lines += _items("➕ only under this pull request's policies", diff.appeared, cap, _found)
    lines += _items("➖ no longer reported",
                    [(r, f) for r, f in diff.disappeared if (r.name, f) not in listed], cap,
                    _found)
    lines += _items("level changed", diff.relevelled, cap, lambda pair: (
        f"{_code(pair[0].name)}: {pair[0].level.value} → **{pair[1].level.value}** "
        f"({_plural(len(pair[1].findings), 'finding')})"), "check")
    lines += _items("policy added", diff.added, cap, _named, "check")
    lines += _items("policy removed", diff.removed, cap, _named, "check")
    lines += _items("✅ evaluated under this pull request's policies (not under the default "
                    "branch's)", diff.repaired, cap, _named, "check")
    return lines


def _stop_warning(diffs: Sequence[ChecksDiff]) -> list[str]:
    stopping = [(d.env, d.stops_blocking) for d in diffs if d.stops_blocking]
    if not stopping:
        return []
    where = "; ".join(
        f"{_code(env)} ({', '.join(_code(n) for n in dict.fromkeys(r.name for r, _ in items))})"
        for env, items in stopping)
    return ["> [!WARNING]",
            f"> **This pull request would stop blocking** what the default branch's policies "
            f"block: {where}. The policies on the default branch still judge it; once merged, "
            "plans like these would no longer be stopped.", ""]


def _policy_section(diffs: Sequence[ChecksDiff], changed: Sequence[str],
                    not_compared: Sequence[str], cap: int | None) -> str:
    """The section with ``cap`` items per list; ``cap`` None: the verdicts only."""
    shown = ", ".join(_code(p) for p in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    files = f" ({shown}{more})" if shown else ""
    unplanned = [f"- {_code(env)}: not planned, nothing to compare" for env in not_compared]
    if all(d.same for d in diffs):
        same = (f" On these plans, no difference from the default branch's policies "
                f"({', '.join(_code(d.env) for d in diffs)})." if diffs else "")
        return "\n".join([f"**This pull request changes the policies**{files}.{same} "
                          f"{_JUDGES}", *unplanned])
    lines = [*_stop_warning(diffs),
             f"**This pull request changes the policies**{files}. {_JUDGES} On the same plans, "
             "its policies would report:", ""]
    for diff in diffs:
        if cap is None:
            lines.append(f"- {_code(diff.env)}" + (": no difference" if diff.same else
                                                  _outcome(diff) or ": not compared"))
        else:
            lines += _diff_lines(diff, cap)
    if cap is None:
        lines.append("_Details not shown (comment size limit)._")
    return "\n".join(lines + unplanned)


def render_policy_comparison(diffs: Sequence[ChecksDiff], *, changed: Sequence[str] = (),
                             not_compared: Sequence[str] = (), limit: int = 16000) -> str:
    """What a pull request's own policies (``changed``: its policy files) would report on each
    plan, next to the default branch's, in at most ``limit`` characters: per environment, what
    would stop blocking (also as a warning on top), what only they report, what they would no
    longer report, level changes, policies added and removed, which of them could not be
    evaluated; "no difference" when nothing differs. ``not_compared``: environments not planned.
    """
    for cap in (*_POLICY_CAPS, None):
        text = redact_text(_policy_section(diffs, changed, not_compared, cap))
        if len(text) <= limit:
            return text
    text = redact_text("\n".join(_stop_warning(diffs) + [
        "**This pull request changes the policies.** " + _JUDGES
        + " _What they would report is not shown (comment size limit)._"]))
    return text if len(text) <= limit else text[:max(0, limit - 1)] + "…" if limit else ""


def policy_diffs(reports: Sequence[EnvReport]) -> tuple[list[ChecksDiff], list[str]]:
    """The comparison of each report evaluated under both policy sets, and the environments
    that were not (their plan was not made)."""
    diffs = [compare_checks(r.env, r.checks, r.proposed_checks) for r in reports
             if r.proposed_checks is not None]
    return diffs, [r.env for r in reports if r.proposed_checks is None]


def verdict(report: EnvReport) -> Verdict:
    """The commit status for one environment's :class:`EnvReport`."""
    if report.error is not None:
        return Verdict(report.env, "failure", _short(f"not planned: {report.error}"))
    plan = report.plan
    if plan is None:
        return Verdict(report.env, "failure", "not planned")
    if plan.errored:
        return Verdict(report.env, "failure", "terraform plan errored; see the PR comment")
    stopped = blocking(report.checks)
    if stopped:
        first = stopped[0]
        more = f" (+{len(stopped) - 1} more check{'s' if len(stopped) > 2 else ''})" \
            if len(stopped) > 1 else ""
        return Verdict(report.env, "failure", _short(f"{first.name}: {first.summary()}{more}"))
    failed = sum(c.status in ("fail", "error") for c in plan.checks)
    checks = f"; {failed} check{'s' if failed != 1 else ''} failed" if failed else ""
    if not plan.has_changes:
        return Verdict(report.env, "success", "no changes" + checks)
    return Verdict(report.env, "success", _short(plan.counts.summary() + checks))


def _header(head_sha: str, pr_number: int, base_ref: str, run_url: str | None) -> str:
    run = f" · [plan run]({run_url})" if run_url else ""
    return (f"### Terraform plan for `{head_sha[:12]}`{run}\n\n"
            f"Pull request #{pr_number} into `{base_ref}`.")


def _why(affected: AffectedSet) -> str:
    lines = ["<details><summary>Why these environments</summary>", ""]
    for env in affected.environments:
        reasons = sorted(affected.reasons(env), key=list(Reason).index)
        paths = [i.path for i in affected.impacts_on(env)]
        shown = ", ".join(f"`{p}`" for p in paths[:5])
        more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
        lines.append(f"- `{env}`: {', '.join(_REASON_TEXT[r] for r in reasons)} changed "
                     f"({shown}{more})")
    lines += ["", "</details>"]
    return "\n".join(lines)


def plan_comment(reports: Sequence[EnvReport], affected: AffectedSet, *, head_sha: str,
                 pr_number: int, base_ref: str, run_url: str | None = None,
                 limit: int = 65536, notices: Sequence[ConfigNotice] = (),
                 policy_paths: Sequence[str] = ()) -> str:
    """The PR comment: the plans of the affected environments, at most ``limit`` characters.

    ``policy_paths``: the policy files the PR changes; when there are any, a quarter of the
    comment at most says what its own policies would report (:func:`render_policy_comparison`).
    """
    section = render_config_notices(notices)
    if policy_paths:
        diffs, not_compared = policy_diffs(reports)
        policies = render_policy_comparison(diffs, changed=policy_paths,
                                            not_compared=not_compared, limit=limit // 4)
        section = f"{section}\n\n{policies}" if section else policies
    links = [f"[`{r.env}`]({r.artifact_url})" for r in reports if r.artifact_url]
    full = f"**Full plans** (Prefect artifacts): {' · '.join(links)}\n\n" if links else ""
    footer = (f"{full}{_why(affected)}\n\n"
              f"_Plans are for review: nothing is applied from a pull request. Merging into "
              f"`{base_ref}` starts the deploy, which plans again. This comment is updated on "
              f"every push._")
    header = _header(head_sha, pr_number, base_ref, run_url)
    if section:
        header = f"{header}\n\n{section}"
    return render_pr_comment(reports, header=header, marker=MARKER, limit=limit, footer=footer)


def no_environments_comment(changed_paths: Sequence[str], *, head_sha: str, pr_number: int,
                            base_ref: str, run_url: str | None = None,
                            policy_paths: Sequence[str] = ()) -> str:
    """The comment for a PR that changes no environment (nothing planned, no statuses);
    ``policy_paths``, the policy files it changes, are named: their effect is not shown."""
    shown = list(changed_paths[:MAX_LISTED_PATHS])
    listing = "\n".join(f"- `{p}`" for p in shown)
    if len(changed_paths) > len(shown):
        listing += f"\n- … and {len(changed_paths) - len(shown)} more"
    n = len(changed_paths)
    body = (f"{MARKER}\n{_header(head_sha, pr_number, base_ref, run_url)}\n\n"
            f"**No environment is affected**: nothing to plan. None of the {n} changed "
            f"file{'s' if n != 1 else ''} is in an environment folder, a stack, a module a stack "
            f"uses, or an Argo CD overlay.\n")
    if policy_paths:
        more = f" and {len(policy_paths) - 5} more" if len(policy_paths) > 5 else ""
        body += (f"\nIt changes the policies ({', '.join(_code(p) for p in policy_paths[:5])}"
                 f"{more}): with no plan made, their effect is not shown here. They judge "
                 "plans once merged.\n")
    if listing:
        body += f"\n<details><summary>Changed files</summary>\n\n{listing}\n\n</details>\n"
    return redact_text(body)


def refused_comment(why: str, *, head_sha: str, pr_number: int, base_ref: str,
                    run_url: str | None = None) -> str:
    """The comment when the commit itself is refused (before any environment is planned)."""
    return redact_text(f"{MARKER}\n{_header(head_sha, pr_number, base_ref, run_url)}\n\n"
                       f"> [!CAUTION]\n> **Not planned: this commit was refused.** {why}\n\n"
                       "_Nothing ran: no terraform command, no provider, no credentials. Remove "
                       "what is named above and push again._\n")


def closed_comment(pr_number: int) -> str:
    """The comment once the PR is closed without merge: its plans are discarded."""
    return (f"{MARKER}\n### Terraform plan\n\n"
            f"Pull request #{pr_number} was closed without merging: its plans were discarded "
            f"and nothing was applied. Reopening it plans again.\n")
