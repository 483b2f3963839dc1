"""`gitops-flows`: the command line. Runs the flows in-process against the configured Prefect API.

When a sandbox is up (``.sandbox/env.json`` exists), its settings are used for whatever the
environment does not set, so every command works on the sandbox with no extra flags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from deployments.sandbox.launcher import Sandbox, project_root


def _load_sandbox_env() -> None:
    env_file = Path(os.environ.get("GITOPS_SANDBOX_DIR", project_root() / ".sandbox")) / "env.json"
    if env_file.is_file():
        for key, value in json.loads(env_file.read_text()).items():
            os.environ.setdefault(key, value)


def _sandbox() -> Sandbox:
    return Sandbox(Path(os.environ["GITOPS_SANDBOX_DIR"]) if os.environ.get("GITOPS_SANDBOX_DIR")
                   else None)


def cmd_tamper(args: argparse.Namespace) -> int:
    """Change a sandbox object behind Terraform's back (what a console click does)."""
    from deployments.sandbox.cloud import SandboxCloud

    cloud = SandboxCloud(_sandbox().cloud_dir)
    name = f"expense-{args.environment}-{args.name}"
    matches = [o for o in cloud.list(args.kind) if o.get("name") == name]
    if not matches:
        known = ", ".join(sorted(o.get("name", "?") for o in cloud.list(args.kind))) or "none"
        print(f"error: no {args.kind} named {name} (known: {known})", file=sys.stderr)
        return 2
    changes = {}
    for pair in args.changes:
        key, _, raw = pair.partition("=")
        try:
            changes[key] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key] = raw
    cloud.tamper(args.kind, matches[0]["id"], changes)
    print(f"changed {args.kind} {name} outside Terraform: {changes}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    box = _sandbox()
    if args.action == "up":
        env = box.up()
        print(f"sandbox is up in {box.root}")
        if box.reset_world:
            print("  AWS (moto) started empty, so the sandbox cloud and the deploy/drift records "
                  "were reset to match")
        for name, status, url in box.status():
            print(f"  {name:<8} {status:<12} {url}")
        print(f"  infra repo  {env['GITOPS_REPOSITORY_URL']}")
        print(f"  settings    {box.env_file}")
        if "GITOPS_PREFECT_UI_URL" in env:
            print(f"  Prefect UI  {env['GITOPS_PREFECT_UI_URL']}")
    elif args.action == "provision":
        if not args.environment:
            print("sandbox provision needs an environment name", file=sys.stderr)
            return 2
        _load_sandbox_env()
        plan, apply = box.provision_environment(args.environment)
        print(f"{args.environment}: IAM users and AwsCredentials blocks {plan}, {apply} "
              "(the platform's step for an environment of its own)")
    elif args.action == "token":
        if not args.environment:
            print("sandbox token needs a sandbox GitHub login (alice, erin, bob, dev, mallory)",
                  file=sys.stderr)
            return 2
        print(box.github_token(args.environment))
    elif args.action == "down":
        stopped = box.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        for name, status, url in box.status():
            print(f"{name:<8} {status:<12} {url}")
    return 0


def _final(state) -> int:
    print(f"{state.name}: {state.message}" if state.message else state.name)
    return 0 if state.is_completed() else 1


def cmd_deploy(args: argparse.Namespace) -> int:
    from flows.deploy import deploy

    return _final(deploy(args.environment, sha=args.sha, return_state=True))


def cmd_plan(args: argparse.Namespace) -> int:
    from flows.plan import plan

    state = plan(args.environment, sha=args.sha, return_state=True)
    if state.is_completed():
        print(state.result())
    return _final(state)


def cmd_rollback(args: argparse.Namespace) -> int:
    from flows.rollback import rollback

    state = rollback(args.environment, to=args.to, return_state=True)
    if state.is_completed():
        for line in state.result():
            print(f"rolled back {line}")
    return _final(state)


def cmd_unlock(args: argparse.Namespace) -> int:
    from flows.unlock import unlock

    state = unlock(args.environment, args.lock_id, by=args.as_, reason=args.reason,
                   return_state=True)
    if state.is_completed():
        print(state.result())
    return _final(state)


def cmd_drift(args: argparse.Namespace) -> int:
    from flows.drift import drift

    state = drift(list(args.environments) or None, return_state=True)
    if state.is_completed():
        for report in state.result():
            notice = f" [{report.notice}]" if report.notice else ""
            detail = report.reason or ", ".join(
                f"{r.address} ({', '.join(a.path for a in r.attributes) or 'gone'})"
                for r in report.drifted)
            print(f"{report.environment:<12} {report.status:<20}{notice} {detail}")
    return _final(state)


def cmd_approve(args: argparse.Namespace) -> int:
    """Answer a waiting approval: as your GitHub account (a verified answer) when a token is
    set, else as a typed name in the Prefect form (declared); then report what the run made of it."""
    from deployments.approvals import (
        answers_so_far,
        deliver,
        post_answer,
        resolve_paused_run,
        run_verdict,
        waiting_request,
    )

    run_id = resolve_paused_run(args.target)
    token = next((os.environ[v] for v in ("GITOPS_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")
                  if os.environ.get(v)), None)
    before = answers_so_far(run_id)
    if args.override is not None and args.as_ is not None:
        print("error: an override counts only from a policy owner's GitHub account: set "
              "GITOPS_GITHUB_TOKEN, not --as", file=sys.stderr)
        return 2
    if args.as_ is None and token is None:
        print("error: set GITOPS_GITHUB_TOKEN to answer as your GitHub account, or give --as NAME "
              "for a declared (unverified) answer", file=sys.stderr)
        return 2
    if args.as_ is None:
        from gitops.github import GitHubClient
        from gitops.settings import load_settings

        request = waiting_request(run_id)
        with GitHubClient.from_token(token, base_url=load_settings().github_api_url) as host:
            who = host.authenticated_login()
            where = post_answer(host, request, approve=not args.reject, reason=args.reason or "",
                                override=args.override)
        verb = "override" if args.override else "reject" if args.reject else "approve"
        print(f"posted /gitops {verb} {request.environment} as @{who}: {where}")
        deliver(run_id, {"check_github": True, "approve": False, "approver": "",
                         "reason": f"gitops-flows approve by @{who}"})
    else:
        who = args.as_
        deliver(run_id, {"approve": not args.reject, "approver": args.as_,
                         "reason": args.reason or ""})
    verdict = run_verdict(run_id, before, timeout=args.wait)
    if verdict is None:
        print(f"delivered to flow run {run_id}; it said nothing within {args.wait:.0f}s "
              "(see its logs)")
        return 1
    if verdict["verdict"] == "ended":
        print(f"flow run {run_id} took no answer: {verdict['progress']}", file=sys.stderr)
        return 1
    refused = [r for r in verdict.get("refused", []) if who.lower() in r.lower()]
    state = verdict["verdict"]
    wanted = "rejected" if args.reject else "approved"
    counted = state == wanted or (not args.reject and who.lower() in
                                  [a.lower() for a in verdict.get("approvals", [])]) or (
        args.override is not None
        and f"{args.override} overridden by @{who.lower()}" in verdict.get("progress", "").lower())
    if refused and not counted:
        print(f"refused by flow run {run_id}: " + "; ".join(refused), file=sys.stderr)
        return 1
    print(f"flow run {run_id}: {state}: {verdict.get('progress', '')}")
    return 0 if counted else 1


def cmd_approvals(args: argparse.Namespace) -> int:
    from deployments.approvals import paused_approvals

    waiting = paused_approvals(descriptions=args.plans)
    if not waiting:
        print("no run is waiting for approval")
    for p in waiting:
        expires = f"expires {p.expires:%Y-%m-%d %H:%M} UTC" if p.expires else "no expiry"
        commit = p.sha[:12] or "branch head"
        print(f"{p.environment or '-':<12} {p.run_name:<24} {commit:<12} {p.state_name:<10} "
              f"{expires}  {p.run_id}")
        if args.plans:
            for line in p.description.splitlines():
                print(f"    {line}")
            print()
    return 0


def cmd_install_automations(args: argparse.Namespace) -> int:
    from deployments.automations import NAME, WITHIN_SECONDS, ensure_zombie_automation

    automation_id = ensure_zombie_automation()
    print(f"automation {NAME!r} ({automation_id}): a run silent for {WITHIN_SECONDS} s is "
          "marked Crashed; runs need PREFECT_FLOWS_HEARTBEAT_FREQUENCY (prefect.yaml sets 30)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from deployments.demo import run_demo

    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gitops-flows", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="local stand-in for the cloud (loopback only)")
    sb.add_argument("action", choices=["up", "down", "status", "provision", "token"])
    sb.add_argument("environment", nargs="?", metavar="NAME",
                    help="with provision: the new environment; with token: a sandbox GitHub login "
                         "(prints its emulator token, for GITOPS_GITHUB_TOKEN)")
    sb.set_defaults(func=cmd_sandbox)

    tp = sub.add_parser("tamper", help="sandbox: change an object outside Terraform (makes drift)")
    tp.add_argument("environment")
    tp.add_argument("kind", choices=["network", "service", "load_balancer", "database"])
    tp.add_argument("name", help="name suffix, e.g. web for expense-<env>-web")
    tp.add_argument("changes", nargs="+", help="KEY=VALUE (VALUE as JSON when it parses)")
    tp.set_defaults(func=cmd_tamper)

    dr = sub.add_parser("drift", help="check environments for drift (default: all)")
    dr.add_argument("environments", nargs="*")
    dr.set_defaults(func=cmd_drift)

    for name, func, helptext in (("plan", cmd_plan, "plan one environment (no apply)"),
                                 ("deploy", cmd_deploy, "the full deploy pipeline"),
                                 ("apply", cmd_deploy, "same as deploy")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("environment")
        p.add_argument("--sha", default=None, help="commit (default: head of the default branch)")
        p.set_defaults(func=func)

    rb = sub.add_parser("rollback", help="roll an environment back (default: last good commit)")
    rb.add_argument("environment")
    rb.add_argument("--to", default=None)
    rb.set_defaults(func=cmd_rollback)

    ul = sub.add_parser("unlock", help="release a stuck state lock by its ID (never automatic)")
    ul.add_argument("environment")
    ul.add_argument("lock_id", help="the ID the failed run reported")
    ul.add_argument("--as", dest="as_", metavar="NAME", required=True,
                    help="who releases it (recorded)")
    ul.add_argument("--reason", required=True, help="why it is safe (recorded)")
    ul.set_defaults(func=cmd_unlock)

    ap = sub.add_parser("approve", help="approve or reject a waiting deploy: as your GitHub "
                                        "account (GITOPS_GITHUB_TOKEN), or --as NAME (declared)")
    ap.add_argument("target", metavar="ENV_OR_RUN_ID",
                    help="the environment (its one paused run) or a flow run ID")
    ap.add_argument("--as", dest="as_", metavar="NAME", default=None,
                    help="answer the Prefect form under a typed name (counts only where the "
                         "environment allows declared approvals)")
    ap.add_argument("--wait", type=float, default=60.0,
                    help="seconds to wait for the run's verdict (default 60)")
    ap.add_argument("--reject", action="store_true")
    ap.add_argument("--override", metavar="CHECK", default=None,
                    help="as a policy owner: override the soft-mandatory check CHECK (its key, as "
                         "the request shows it) for the waiting plan")
    ap.add_argument("--reason", default="")
    ap.set_defaults(func=cmd_approve)

    aw = sub.add_parser("approvals", help="list the runs waiting for approval")
    aw.add_argument("--plans", action="store_true",
                    help="also print each run's plan summary, as the approval form shows it")
    aw.set_defaults(func=cmd_approvals)

    ia = sub.add_parser("install-automations",
                        help="create the Prefect automation that marks a run whose process died "
                             "(its heartbeats stopped) as Crashed, on the server of PREFECT_API_URL")
    ia.set_defaults(func=cmd_install_automations)

    from deployments.webhook_server import add_webhook_commands

    add_webhook_commands(sub)

    pol = sub.add_parser("policy", help="the Rego policies: their own tests, or a check of a plan")
    pol_sub = pol.add_subparsers(dest="policy_action", required=True)
    pt = pol_sub.add_parser("test", help="run the policies' test_* rules (as `opa test`)")
    pt.add_argument("--policies", default="policies", help="policies directory (default: policies)")
    pt.set_defaults(func=cmd_policy_test)
    pc = pol_sub.add_parser("check", help="evaluate the policies on a `terraform show -json` file")
    pc.add_argument("plan_json")
    pc.add_argument("--policies", default="policies", help="policies directory (default: policies)")
    pc.add_argument("--env", default="", help="environment (its env/<ENV>/ policies apply too)")
    pc.add_argument("--timeout", type=float, default=60.0)
    pc.set_defaults(func=cmd_policy_check)

    dm = sub.add_parser("demo", help="what `make run` runs: staging end to end on the sandbox")
    dm.set_defaults(func=cmd_demo)
    return parser


def cmd_policy_test(args: argparse.Namespace) -> int:
    """`policy test`: every test_* rule; exit 1 if one fails or errors."""
    from pathlib import Path

    from gitops.errors import PolicyError
    from gitops.rego import run_policy_tests

    policies = Path(args.policies)
    if not policies.is_dir():
        raise PolicyError(f"{policies}: no policies directory")
    results = run_policy_tests(policies, root=policies.parent)
    for r in results:
        mark = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}[r.outcome]
        print(f"{mark}  {r.file}:{r.line} data.{r.package}.{r.name}"
              + (f"  ({r.message})" if r.message else ""))
    bad = sum(r.outcome != "passed" for r in results)
    print(f"{len(results) - bad} passed, {bad} failed")
    return 1 if bad or not results else 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    """`policy check PLAN_JSON`: findings by level; exit 1 if a report blocks."""
    from pathlib import Path

    from gitops.checks import CheckLevel, blocking
    from gitops.errors import PolicyError
    from gitops.plan import parse_plan
    from gitops.policy import tag_check
    from gitops.rego import check_plan

    policies = Path(args.policies)
    if not policies.is_dir():
        raise PolicyError(f"{policies}: no policies directory")
    text = Path(args.plan_json).read_text()
    import json

    reports = (tag_check(parse_plan(json.loads(text))),
               *check_plan(policies, text, environment=args.env, root=policies.parent,
                           timeout_seconds=args.timeout))
    for level in (CheckLevel.HARD_MANDATORY, CheckLevel.SOFT_MANDATORY, CheckLevel.ADVISORY):
        shown = [r for r in reports if r.level is level]
        if not shown:
            continue
        print(f"== {level.value}")
        for r in shown:
            print(f"{r.status.upper():8} {r.name}: {r.summary()}")
            if r.error:
                print(f"         {r.error}")
            for f in r.findings:
                print(f"         - {f.describe()}  [{f.source}]")
    stopped = blocking(reports)
    print(f"{len(stopped)} blocking report(s)" if stopped else "nothing blocks")
    return 1 if stopped else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "sandbox":
        _load_sandbox_env()
    from gitops.errors import GitopsError

    try:
        return int(args.func(args) or 0)
    except GitopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
