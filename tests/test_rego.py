"""gitops.rego: conftest conventions, both Rego generations, and refusals with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.checks import CheckLevel
from gitops.rego import PolicySet, check_plan, run_policy_tests
from plan_factory import make_change, plan_doc_of

PLAN = json.dumps(plan_doc_of([make_change("null_resource", "a", ["create"], {})]))


def policies(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "policies"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def evaluate(tmp_path: Path, files: dict[str, str], env: str = "dev", plan: str = PLAN):
    return PolicySet.load(policies(tmp_path, files), env).evaluate(plan)


V0 = ('package main\ndeny[msg] {\n  r := input.resource_changes[_]\n  r.type == "null_resource"\n'
      '  msg := sprintf("%s is a null resource", [r.address])\n}\n')
V1 = ('package main\nimport rego.v1\nwarn contains {"msg": "look", "address": "null_resource.a"}'
      ' if { true }\n')


def test_v0_and_v1_in_one_package_as_conftest_reads_them(tmp_path: Path) -> None:
    reports = evaluate(tmp_path, {"a.rego": V0, "b.rego": V1})
    deny, warn = reports
    assert deny.level is CheckLevel.HARD_MANDATORY and deny.blocks
    assert deny.findings[0].address == "null_resource.a"  # found in the string message
    assert deny.findings[0].source == "policies/a.rego:2 deny"
    assert warn.level is CheckLevel.ADVISORY and not warn.blocks
    assert warn.findings[0].message == "look"


def test_level_header_and_other_packages(tmp_path: Path) -> None:
    soft = "# gitops-flows: level = soft-mandatory\n" + V0.replace("package main", "package x")
    lib = "package lib\nimport rego.v1\ndeny contains 1 if true\n"  # not checked: a library
    (report,) = evaluate(tmp_path, {"soft.rego": soft, "lib.rego": lib})
    assert report.level is CheckLevel.SOFT_MANDATORY and report.blocks
    assert "until a policy owner overrides it" in report.summary()


def test_env_folders_apply_to_their_environment_only(tmp_path: Path) -> None:
    files = {"env/prod/p.rego": V0}
    assert evaluate(tmp_path, files, "dev") == []
    assert evaluate(tmp_path / "2", files, "prod")[0].findings


@pytest.mark.parametrize("source, why", [
    ("package main\ndeny[msg] {\n  msg := \n}\n", "parses neither as Rego v1"),
    ("package main\nimport future.keywords.if\ndeny[msg] if { msg := \"x\" }\n",
     "is an object, not a set"),
    ('package main\nimport rego.v1\ndeny contains msg if {\n  msg := to_number("x")\n}\n',
     "could not parse string as number"),
    ("package main\nimport rego.v1\ndeny := 3\n", "expected a set of messages"),
    ("package main\nimport rego.v1\ndeny contains 3 if true\n", "a message must be a string"),
    ("# gitops-flows: level = mandatory\npackage main\n", "unknown level"),
])
def test_refused_with_file_and_line_and_blocking(tmp_path: Path, source: str, why: str) -> None:
    (report,) = evaluate(tmp_path, {"bad.rego": source})
    assert report.error is not None and why in report.error, report.error
    assert "policies/bad.rego:" in report.error
    assert report.blocks and not report.passed


def test_check_plan_runs_in_a_child_process(tmp_path: Path) -> None:
    reports = check_plan(policies(tmp_path, {"a.rego": V0}), PLAN)
    assert [r.status for r in reports] == ["blocked"]
    assert check_plan(tmp_path / "none", PLAN) == ()


def test_python_files_beside_the_policies_never_run(tmp_path: Path) -> None:
    """The child runs in the policies directory (a pull request's, for the comparison): modules
    placed there must not shadow the engine or gitops."""
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\n"
    root = policies(tmp_path, {"a.rego": V0, "regorus.py": code, "gitops/__init__.py": code,
                               "gitops/rego.py": code})
    reports = check_plan(root, PLAN)
    assert [r.status for r in reports] == ["blocked"]
    assert not marker.exists()


@pytest.mark.parametrize("engine, why", [("rego_fakes:CrashingEngine", "killed by SIGSEGV"),
                                         ("rego_fakes:HangingEngine", "longer than 2s")])
def test_a_crash_or_a_hang_is_a_blocking_report_naming_the_file(tmp_path: Path, engine: str,
                                                                 why: str, monkeypatch) -> None:
    monkeypatch.setattr("gitops.rego._child_env", _env_with_tests)
    (report,) = check_plan(policies(tmp_path, {"a.rego": V0}), PLAN, engine=engine,
                           timeout_seconds=2)
    assert report.blocks and why in report.error and "policies/a.rego:2 main.deny" in report.error
    assert report.replaces_set


def _env_with_tests() -> dict[str, str]:
    import os

    root = Path(__file__).resolve().parent
    return {"PATH": os.environ.get("PATH", ""), "RUST_BACKTRACE": "0",
            "PYTHONPATH": f"{root.parent}:{root}"}


def test_policy_tests_run_as_opa_test(tmp_path: Path) -> None:
    test = ('package main\ntest_denies { count(deny) == 1 with input as {"resource_changes": '
            '[{"address": "n", "type": "null_resource"}]} }\ntest_wrong { count(deny) == 2 }\n')
    results = run_policy_tests(policies(tmp_path, {"a.rego": V0, "a_test.rego": test}))
    assert [(r.name, r.outcome) for r in results] == [("test_denies", "passed"),
                                                       ("test_wrong", "failed")]


def _workspace(tmp_path: Path, trusted: Path, proposed: Path | None):  # -> EnvWorkspace
    from gitops.config import Environment
    from gitops.grant import EnvironmentGrant
    from gitops.settings import GitopsSettings
    from gitops.workspace import EnvWorkspace

    env = Environment(name="dev", stack="s", var_file="s/dev.tfvars", backend_config="s/b.hcl")
    grant = EnvironmentGrant("dev", None, None, None, frozenset(), frozenset(), frozenset(), {})
    return EnvWorkspace(GitopsSettings(policy_timeout_seconds=20), env, tmp_path, "0" * 40,
                        tmp_path / "envs", grant, policies=trusted, proposed_policies=proposed)


def test_a_pull_requests_policies_are_evaluated_beside_the_trusted_ones(tmp_path: Path) -> None:
    from tasks.terraform import policy_checks

    trusted = policies(tmp_path / "main", {"a.rego": V0})
    proposed = policies(tmp_path / "pr", {"a.rego": "package main\ndeny[msg] {\n  msg := \n}\n"})
    plan = json.loads(PLAN)
    assert policy_checks(_workspace(tmp_path, trusted, None), plan)[1] is None
    judged, shown = policy_checks(_workspace(tmp_path, trusted, proposed), plan)
    assert [r.status for r in judged] == ["blocked"]
    assert [r.status for r in shown] == ["error"] and "policies/a.rego:" in shown[0].error
    _, deleted = policy_checks(_workspace(tmp_path, trusted, tmp_path / "pr" / "gone"), plan)
    assert deleted == ()  # the PR deleted its policies: nothing would report


# Found explaining the suites' failed results (tests/fixtures/policies/SOURCES.md, "one by one").

HTTP_SEND = ('package main\nimport rego.v1\n# http.send(x) in a comment is fine\n'
             'deny contains msg if {\n  r := http . send({"method": "GET", "url": "http://x"})\n'
             '  r.status_code != 200\n  msg := "the service is down: http.send(...)"\n}\n')


def test_http_send_is_refused_where_it_is_written(tmp_path: Path) -> None:
    """regorus's http.send is a stub, always undefined: this rule would silently find nothing."""
    (report,) = evaluate(tmp_path, {"bad.rego": HTTP_SEND})
    assert report.blocks and report.error is not None
    assert "policies/bad.rego:5: `http.send` is not supported" in report.error
    (result,) = run_policy_tests(policies(tmp_path / "t", {
        "bad.rego": HTTP_SEND, "bad_test.rego": "package main\ntest_x { count(deny) == 0 }\n"}))
    assert result.outcome == "error" and "policies/bad.rego:5" in result.message
    assert "not all the policies loaded" in result.message  # count(deny) == 0 would pass


def test_http_send_in_comments_and_strings_only_is_fine(tmp_path: Path) -> None:
    source = ('package main\nimport rego.v1\n# http.send({})\n'
              'deny contains "http.send(1) and `x`" if { true }\n'
              'warn contains `raw http.send({})` if { true }\n')
    deny, warn = evaluate(tmp_path, {"ok.rego": source})
    assert deny.error is None and deny.findings[0].message == "http.send(1) and `x`"
    assert warn.findings[0].message == "raw http.send({})"


def test_a_test_name_defined_twice_is_an_error_not_an_or(tmp_path: Path) -> None:
    """opa test runs test_x and test_x#01 apart; evaluating the rule would pass if either did."""
    test = ('package main\ntest_x { count(deny) == 1 with input as {"resource_changes": '
            '[{"address": "n", "type": "null_resource"}]} }\ntest_x { count(deny) == 2 }\n'
            'test_y { true }\n')
    results = run_policy_tests(policies(tmp_path, {"a.rego": V0, "a_test.rego": test}))
    assert [(r.name, r.outcome) for r in results] == [("test_x", "error"), ("test_y", "passed")]
    assert "defined 2 times (policies/a_test.rego:2, policies/a_test.rego:3)" in results[0].message
