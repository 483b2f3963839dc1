"""What a pull request's plan tells GitHub, around :func:`gitops.render.render_pr_comment`. PURE.

* :func:`verdict`: one environment's commit status (``gitops/plan: <env>``): success when the plan
  was made and no check blocks (changes or not; advisory findings do not fail it), failure for a
  plan error, a blocking check report (a finding of a mandatory check, or a check that could not
  be evaluated), a held state lock or a configuration that does not load. The description is short
  (GitHub allows 140 characters) and redacted.
* :func:`plan_comment`: the PR comment for the affected environments (header, table, details,
  why each environment is affected, what happens next).
* :func:`no_environments_comment`, :func:`closed_comment`: the comment when the PR touches no
  environment, and when it is closed without merge.

Every comment starts with :data:`MARKER`, so the next run edits the same comment in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gitops.affected import AffectedSet, Reason
from gitops.checks import blocking
from gitops.redact import redact_text
from gitops.render import DEFAULT_MARKER, EnvReport, render_pr_comment

__all__ = ["MARKER", "ConfigNotice", "Verdict", "closed_comment", "no_environments_comment",
           "plan_comment", "refused_comment", "render_config_notices", "verdict"]

MARKER = DEFAULT_MARKER
"""Hidden first line of the PR plan comment."""
MAX_DESCRIPTION = 140
MAX_LISTED_PATHS = 20

VerdictState = Literal["success", "failure"]

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
                 limit: int = 65536, notices: Sequence[ConfigNotice] = ()) -> str:
    """The PR comment: the plans of the affected environments, at most ``limit`` characters."""
    section = render_config_notices(notices)
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
                            base_ref: str, run_url: str | None = None) -> str:
    """The comment for a PR that changes no environment (nothing planned, no statuses)."""
    shown = list(changed_paths[:MAX_LISTED_PATHS])
    listing = "\n".join(f"- `{p}`" for p in shown)
    if len(changed_paths) > len(shown):
        listing += f"\n- … and {len(changed_paths) - len(shown)} more"
    n = len(changed_paths)
    body = (f"{MARKER}\n{_header(head_sha, pr_number, base_ref, run_url)}\n\n"
            f"**No environment is affected**: nothing to plan. None of the {n} changed "
            f"file{'s' if n != 1 else ''} is in an environment folder, a stack, a module a stack "
            f"uses, or an Argo CD overlay.\n")
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
