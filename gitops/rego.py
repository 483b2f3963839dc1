"""Rego policies, the conftest way, on a plan's ``terraform show -json``; and their own tests.

    PolicySet.load(directory, environment)   which files apply, their package, level, generation
    PolicySet.evaluate(input_json)           -> CheckReport per checked package (+ one per `warn`)
    PolicySet.run_tests()                    -> TestResult per `test_*` rule, as `opa test`
    check_plan(...), run_policy_tests(...)   the same in a CHILD PROCESS with a timeout

The engine is behind one small interface (:class:`RegoEngine`: add a module, add data, set the
input, evaluate one rule); :class:`RegorusEngine` implements it with PyPI ``gordon-to-regorus``
(a fork of Microsoft's Rust ``regorus``), chosen by measured conformance (see
tests/fixtures/policies/SOURCES.md). Another engine is one class.

Layout of a policies directory (the *default branch's*, never a pull request's)::

    policies/*.rego, policies/<any>/*.rego     every environment
    policies/env/<name>/**/*.rego              environment <name> only
    policies/**/*_test.rego                    tests only (``policy test``), never evaluated on plans
    policies/**/*.json                         data, merged at the root of ``data`` (as conftest)

Conventions (conftest's): in package ``main`` (or any package whose file says its level), the
rules ``deny``, ``violation`` and ``deny_*``/``violation_*`` are failures at the file's level;
``warn``/``warn_*`` are advisory. A rule's value is a set (or array) of strings or of objects with
a string ``msg`` (``address``/``resource`` name the resource), or a boolean. ``data.gitops`` holds
``{"environment": <name>}``.

Level: a comment line ``# gitops-flows: level = soft-mandatory`` (``advisory``,
``soft-mandatory``, ``hard-mandatory``; default hard-mandatory, conftest's meaning of ``deny``).
Files of one package must not disagree.

Both Rego generations: a file is parsed as Rego v1, and, when that fails, as v0 (pre-1.0 OPA
``deny[msg] { ... }``). Never a silent wrong answer: a file that parses in neither, a rule that
errors at run time, a built-in the engine answers wrongly without an error (``http.send``,
refused wherever it is written), a rule whose value is not a conftest shape (notably an
*object*: in v1 and in this engine ``deny[msg] if { ... }`` defines one) is an error report
naming file:line, and an error report always blocks. Pure but for the child-process runner at
the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gitops.checks import CheckLevel, CheckReport, Finding
from gitops.errors import PolicyError

__all__ = ["ENGINE", "UNDEFINED", "PolicyFile", "PolicySet", "RegoEngine", "RegoError",
           "RegorusEngine", "TestResult", "check_plan", "run_policy_tests"]

ENGINE = "gordon-to-regorus 0.13.0 (regorus, Rust)"
UNDEFINED: Any = object()
"""What :meth:`RegoEngine.eval_rule` returns for a rule that is undefined."""

_LEVEL = re.compile(r"^\s*#\s*gitops-flows:\s*level\s*[=:]\s*(\S+)\s*$", re.M)
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.M)
_RULE_HEAD = re.compile(r"^(?:default\s+)?([A-Za-z_]\w*)\s*(?=\[|\{|=|:=|\(|contains\b|if\b|$)",
                        re.M)
_CONFTEST = re.compile(r"^(deny|violation|warn)(_\w+)?$")
_LOCATION = re.compile(r"-->\s*([^:\s]+):(\d+):(\d+)")


class RegoError(Exception):
    """The engine refused a module or a rule: ``file:line: message``."""

    def __init__(self, message: str, file: str = "", line: int | None = None) -> None:
        self.message, self.file, self.line = message, file, line
        where = file + (f":{line}" if line else "")
        super().__init__(f"{where}: {message}" if where else message)


class RegoEngine(Protocol):
    """The one interface a Rego engine implements (every method may raise RegoError)."""

    def add_module(self, name: str, source: str, *, v0: bool) -> None: ...

    def add_data(self, data_json: str) -> None: ...

    def set_input(self, input_json: str) -> None: ...

    def eval_rule(self, path: str) -> Any:
        """The rule's value as JSON-decoded Python (sets as lists), or UNDEFINED."""
        ...


def _engine_error(exc: BaseException, default_file: str = "") -> RegoError:
    text = str(exc).split("Stack backtrace:")[0].strip()
    match = _LOCATION.search(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("error:", "warning:"))]
    message = "; ".join(ln.removeprefix("error:").strip() for ln in lines
                        if not ln.startswith("warning:")) or text.splitlines()[-1] if text else ""
    if match:
        return RegoError(message, match.group(1), int(match.group(2)))
    return RegoError(message or type(exc).__name__, default_file)


class RegorusEngine:
    """:class:`RegoEngine` on PyPI ``gordon-to-regorus`` (module ``regorus``)."""

    def __init__(self) -> None:
        os.environ["RUST_BACKTRACE"] = "0"
        import regorus

        self._engine = regorus.Engine()

    def add_module(self, name: str, source: str, *, v0: bool) -> None:
        self._engine.set_rego_v0(v0)
        try:
            self._engine.add_policy(name, source)
        except RuntimeError as exc:
            raise _engine_error(exc, name) from None

    def add_data(self, data_json: str) -> None:
        try:
            self._engine.add_data_json(data_json)
        except RuntimeError as exc:
            raise _engine_error(exc) from None

    def set_input(self, input_json: str) -> None:
        try:
            self._engine.set_input_json(input_json)
        except RuntimeError as exc:
            raise _engine_error(exc) from None

    def eval_rule(self, path: str) -> Any:
        try:
            value = json.loads(self._engine.eval_rule_as_json(path))
        except RuntimeError as exc:
            raise _engine_error(exc) from None
        return UNDEFINED if value == "<undefined>" else value


_SILENT_BUILTINS = {
    "http.send": "the engine's `http.send` is a stub that is always undefined (it sends nothing), "
                 "where OPA sends the request: every rule reaching it would silently find "
                 "nothing",
}
"""Built-ins this engine has but answers wrongly *without an error*: refused wherever they are
written (a call that is never reached would be harmless, but which are is input-dependent)."""
_BUILTIN_CALL = re.compile(r"(?<![\w.])(" + "|".join(
    re.escape(name).replace(r"\.", r"\s*\.\s*") for name in _SILENT_BUILTINS) + r")\s*\(")


def _code_only(source: str) -> str:
    """``source`` with comments and string literals blanked (newlines kept: lines still count)."""
    out, i, n = [], 0, len(source)
    while i < n:
        c = source[i]
        if c == "#":
            j = source.find("\n", i)
            j = n if j < 0 else j
        elif c in "\"`":
            j = i + 1
            while j < n and source[j] != c and not (c == '"' and source[j] == "\n"):
                j += 2 if c == '"' and source[j] == "\\" else 1
            j = min(j + 1, n)
        else:
            out.append(c)
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", source[i:j]))
        i = j
    return "".join(out)


def unsupported_construct(policy: PolicyFile) -> RegoError | None:
    """The first construct of ``policy`` this engine would answer wrongly without an error."""
    match = _BUILTIN_CALL.search(_code_only(policy.source))
    if not match:
        return None
    name = re.sub(r"\s+", "", match.group(1))
    return RegoError(f"`{name}` is not supported: {_SILENT_BUILTINS[name]}", policy.path,
                     policy.source.count("\n", 0, match.start()) + 1)


def parses(engine_factory: type, name: str, source: str) -> tuple[bool, RegoError | None,
                                                                  RegoError | None]:
    """(v0?, v1 error, v0 error): v1 first, then v0; both errors when neither parses."""
    try:
        engine_factory().add_module(name, source, v0=False)
        return False, None, None
    except RegoError as v1_error:
        try:
            engine_factory().add_module(name, source, v0=True)
            return True, v1_error, None
        except RegoError as v0_error:
            return False, v1_error, v0_error


@dataclass(frozen=True)
class PolicyFile:
    """One ``.rego`` file: where it is (relative to the repository), its package and level."""

    path: str
    source: str
    package: str
    level: CheckLevel | None = None
    """Declared in the file's header; None: not declared."""
    level_error: str | None = None
    is_test: bool = False

    def rules(self) -> Iterator[tuple[str, int]]:
        """(rule name, line) of every rule head at the start of a line."""
        for match in _RULE_HEAD.finditer(self.source):
            name = match.group(1)
            if name in ("package", "import", "default", "else"):
                continue
            yield name, self.source.count("\n", 0, match.start()) + 1

    @classmethod
    def read(cls, path: Path, rel: str) -> PolicyFile:
        source = path.read_text(encoding="utf-8", errors="replace")
        package = _PACKAGE.search(source)
        level: CheckLevel | None = None
        level_error = None
        header = _LEVEL.search(source)
        if header:
            try:
                level = CheckLevel.parse(header.group(1))
            except ValueError as exc:
                line = source.count("\n", 0, header.start()) + 1
                level_error = f"{rel}:{line}: {exc}"
        return cls(rel, source, package.group(1) if package else "", level, level_error,
                   is_test=path.name.endswith("_test.rego"))


@dataclass(frozen=True)
class TestResult:
    """One ``test_*`` rule: ``passed``, ``failed`` (false or undefined) or ``error``."""

    __test__ = False  # not a pytest class

    package: str
    name: str
    file: str
    line: int
    outcome: str
    message: str = ""


@dataclass
class PolicySet:
    """The policy files that apply to one environment, loaded into an engine."""

    root: Path
    files: list[PolicyFile]
    data: list[tuple[str, str]] = field(default_factory=list)
    environment: str = ""
    engine_factory: type = RegorusEngine
    problems: dict[str, RegoError] = field(default_factory=dict)
    """Files that could not be loaded: path -> why (file:line)."""
    generations: dict[str, str] = field(default_factory=dict)

    # ---------------------------------------------------------------------------------- load

    @classmethod
    def load(cls, directory: Path, environment: str = "", *, root: Path | None = None,
             tests: bool = False, engine_factory: type = RegorusEngine) -> PolicySet:
        """The files of ``directory`` that apply to ``environment`` (all envs' files when "")."""
        if not directory.is_dir():
            raise PolicyError(f"{directory}: no policies directory")
        root = root or directory.parent
        files, data = [], []
        for path in sorted(directory.rglob("*")):
            parts = path.relative_to(directory).parts
            if not path.is_file() or any(p.startswith(".") for p in parts):
                continue
            if parts[0] == "env" and len(parts) > 2 and environment and parts[1] != environment:
                continue
            rel = path.relative_to(root).as_posix()
            if path.suffix == ".rego":
                policy = PolicyFile.read(path, rel)
                if policy.is_test and not tests:
                    continue
                files.append(policy)
            elif path.suffix == ".json":
                data.append((rel, path.read_text(encoding="utf-8")))
        return cls(root, files, data, environment, engine_factory)

    def _engine(self) -> RegoEngine:
        engine = self.engine_factory()
        for policy in self.files:
            refused = unsupported_construct(policy)
            if refused is not None:
                self.problems[policy.path] = refused
                continue
            v0, v1_error, v0_error = parses(self.engine_factory, policy.path, policy.source)
            if v1_error is not None and v0_error is not None:
                self.problems[policy.path] = RegoError(
                    f"parses neither as Rego v1 ({v1_error}) nor as v0 ({v0_error})",
                    policy.path, v1_error.line or v0_error.line)
                continue
            try:
                engine.add_module(policy.path, policy.source, v0=v0)
                self.generations[policy.path] = "v0" if v0 else "v1"
            except RegoError as exc:  # conflicts with another module
                self.problems[policy.path] = exc
        for rel, text in self.data:
            try:
                json.loads(text)
                engine.add_data(text)
            except (ValueError, RegoError) as exc:
                self.problems[rel] = RegoError(f"data file does not load: {exc}", rel)
        engine.add_data(json.dumps({"gitops": {"environment": self.environment}}))
        return engine

    # ------------------------------------------------------------------------------ evaluate

    def packages(self) -> dict[str, list[PolicyFile]]:
        """The checked packages: ``main`` and every package a file declares a level for."""
        by_package: dict[str, list[PolicyFile]] = {}
        for policy in self.files:
            if not policy.is_test:
                by_package.setdefault(policy.package, []).append(policy)
        return {pkg: fs for pkg, fs in by_package.items()
                if pkg == "main" or any(f.level is not None or f.level_error for f in fs)}

    def evaluate(self, input_json: str, progress: Any = None) -> list[CheckReport]:
        """One report per checked package (its deny/violation rules at its level) and one
        advisory report per package with ``warn`` rules that found something."""
        engine = self._engine()
        addresses = _addresses(input_json)
        engine.set_input(input_json)
        reports: list[CheckReport] = []
        for package, files in self.packages().items():
            name = _check_name(package, files, self.root)
            source = ", ".join(f.path for f in files)
            level, problem = _package_level(files)
            broken = [self.problems[f.path] for f in files if f.path in self.problems]
            if problem or broken:
                reports.append(CheckReport(name, level, error="; ".join(
                    ([problem] if problem else []) + [str(b) for b in broken]), source=source))
                continue
            found: dict[bool, list[Finding]] = {True: [], False: []}
            error = None
            for rule, file, line in _conftest_rules(files):
                if progress is not None:
                    progress(f"{file}:{line} {package}.{rule}")
                try:
                    value = engine.eval_rule(f"data.{package}.{rule}")
                    messages = _messages(value, rule, file, line)
                except RegoError as exc:
                    error = str(exc if exc.file else RegoError(exc.message, file, line))
                    break
                advisory = rule.startswith("warn")
                for text, address in messages:
                    found[advisory].append(Finding(text, address or _find_address(text, addresses),
                                                   policy=file, rule=rule, line=line))
            if error is not None:
                reports.append(CheckReport(name, level, error=error, source=source))
                continue
            reports.append(CheckReport(name, level, tuple(found[False]), source=source))
            if found[True]:
                reports.append(CheckReport(f"{name} (warn)", CheckLevel.ADVISORY,
                                           tuple(found[True]), source=source))
        for rel, problem in self.problems.items():  # data files and non-checked libraries
            if not any(rel in r.source.split(", ") for r in reports):
                reports.append(CheckReport(f"policy {rel}", CheckLevel.HARD_MANDATORY,
                                           error=str(problem), source=rel))
        return reports

    # ---------------------------------------------------------------------------------- test

    def tests(self) -> list[tuple[str, str, str, int]]:
        """(package, rule, file, line) of every ``test_*`` rule (``todo_*`` are skipped)."""
        seen: set[tuple[str, str]] = set()
        out = []
        for policy in self.files:
            for rule, line in policy.rules():
                if rule.startswith("test_") and (policy.package, rule) not in seen:
                    seen.add((policy.package, rule))
                    out.append((policy.package, rule, policy.path, line))
        return out

    def duplicate_tests(self) -> dict[tuple[str, str], list[str]]:
        """(package, rule) -> its ``file:line``s, for every test defined more than once."""
        where: dict[tuple[str, str], list[str]] = {}
        for policy in self.files:
            for rule, line in policy.rules():
                if rule.startswith("test_"):
                    where.setdefault((policy.package, rule), []).append(f"{policy.path}:{line}")
        return {key: places for key, places in where.items() if len(places) > 1}

    def run_tests(self, skip: int = 0, progress: Any = None) -> Iterator[TestResult]:
        """Every test as ``opa test`` runs it: passes iff the rule is ``true``.

        A test name defined twice is an error: ``opa test`` runs each definition as a test of
        its own (``test_x``, ``test_x#01``); the engine can only evaluate the rule, true when
        *any* definition is, so a failing definition would pass unseen."""
        engine = self._engine()
        engine.set_input("{}")
        duplicates = self.duplicate_tests()
        for package, rule, file, line in self.tests()[skip:]:
            if file in self.problems:
                yield TestResult(package, rule, file, line, "error", str(self.problems[file]))
                continue
            if self.problems:  # a test of an incomplete set could pass for that very reason
                yield TestResult(package, rule, file, line, "error", "not all the policies "
                                 "loaded, so no test is run: " + "; ".join(
                                     str(why) for why in self.problems.values()))
                continue
            if (package, rule) in duplicates:
                places = duplicates[(package, rule)]
                yield TestResult(package, rule, file, line, "error", str(RegoError(
                    f"`{rule}` is defined {len(places)} times ({', '.join(places)}): `opa test` "
                    f"runs each definition as its own test ({rule}, {rule}#01...), this engine "
                    f"only the rule, which is true when any one of them is: give each a name of "
                    f"its own", file, line)))
                continue
            if progress is not None:
                progress(f"{file}:{line} {package}.{rule}")
            try:
                value = engine.eval_rule(f"data.{package}.{rule}")
            except RegoError as exc:
                yield TestResult(package, rule, file, line, "error", str(exc))
                continue
            outcome = "passed" if value is True else "failed"
            yield TestResult(package, rule, file, line, outcome,
                             "" if value is True else f"got {_show(value)}")


def _show(value: Any) -> str:
    return "undefined" if value is UNDEFINED else json.dumps(value)[:200]


def _check_name(package: str, files: Sequence[PolicyFile], root: Path) -> str:
    if len(files) == 1:
        return f"policy {files[0].path.split('/', 1)[-1]}"
    return f"policy {package} ({len(files)} files)"


def _package_level(files: Sequence[PolicyFile]) -> tuple[CheckLevel, str | None]:
    errors = [f.level_error for f in files if f.level_error]
    if errors:
        return CheckLevel.HARD_MANDATORY, "; ".join(errors)
    levels = {f.level for f in files if f.level is not None}
    if len(levels) > 1:
        return CheckLevel.HARD_MANDATORY, (
            "files of one package declare different levels: " + ", ".join(
                f"{f.path} {f.level.value}" for f in files if f.level is not None))
    return (levels.pop() if levels else CheckLevel.HARD_MANDATORY), None


def _conftest_rules(files: Sequence[PolicyFile]) -> list[tuple[str, str, int]]:
    seen: dict[str, tuple[str, str, int]] = {}
    for policy in files:
        for rule, line in policy.rules():
            if _CONFTEST.match(rule) and rule not in seen:
                seen[rule] = (rule, policy.path, line)
    return list(seen.values())


def _messages(value: Any, rule: str, file: str, line: int) -> list[tuple[str, str | None]]:
    """The findings of one conftest rule value; RegoError for a value conftest would not read."""
    if value is UNDEFINED or value is False:
        return []
    if value is True:
        return [(f"{rule} is true", None)]
    if isinstance(value, dict):
        raise RegoError(f"`{rule}` is an object, not a set: in Rego v1 (and in this engine) "
                        f"`{rule}[msg] if {{ ... }}` defines an object; write "
                        f"`{rule} contains msg if {{ ... }}`", file, line)
    if not isinstance(value, list):
        raise RegoError(f"`{rule}` is {_show(value)}: expected a set of messages", file, line)
    out = []
    for item in value:
        if isinstance(item, str):
            out.append((item, None))
        elif isinstance(item, dict) and isinstance(item.get("msg"), str):
            address = item.get("address") or item.get("resource")
            out.append((item["msg"], address if isinstance(address, str) else None))
        else:
            raise RegoError(f"`{rule}` holds {_show(item)}: a message must be a string or an "
                            "object with a string `msg`", file, line)
    return out


def _addresses(input_json: str) -> frozenset[str]:
    try:
        doc = json.loads(input_json)
    except ValueError:
        return frozenset()
    changes = doc.get("resource_changes") if isinstance(doc, dict) else None
    return frozenset(c["address"] for c in changes or () if isinstance(c, dict)
                     and isinstance(c.get("address"), str))


_TOKEN = re.compile(r"[^\s`'\"(),;]+")


def _find_address(message: str, addresses: frozenset[str]) -> str | None:
    """The plan resource a string message names, if it names exactly one."""
    found = {t.rstrip(".:") for t in _TOKEN.findall(message)} & addresses
    return found.pop() if len(found) == 1 else None


# ------------------------------------------------------------------------------------------
# the child process: a crash or a hang of the engine is a report, never the flow's end

CHILD_MODULE = "gitops.rego_child"
_CHILD_FLAGS = ("-P",)
"""``-P``: the child's working directory (the policies directory, which may be a pull request's)
is not put on ``sys.path``, so no ``regorus.py`` or ``gitops/`` shipped beside the policies can
shadow the engine or this package: a policies directory holds Rego and data, never code."""


def _child_env() -> dict[str, str]:
    code_root = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME")}
    env.update(PYTHONPATH=code_root, RUST_BACKTRACE="0", PYTHONHASHSEED="0")
    return env


def check_plan(policies: Path, input_json: str, *, environment: str = "",
               root: Path | None = None, timeout_seconds: float = 60.0,
               engine: str = "") -> tuple[CheckReport, ...]:
    """The policies of ``policies`` on ``input_json``, evaluated in a child process.

    A timeout, a crash or unreadable output is one blocking error report naming the file and
    rule being evaluated when it happened (``replaces_set``: it stands for every check).
    """
    if not policies.is_dir():
        return ()
    policies, root = policies.resolve(), root.resolve() if root else None
    args = [sys.executable, *_CHILD_FLAGS, "-m", CHILD_MODULE, "check", str(policies),
            "--root", str(root or policies.parent), "--env", environment]
    if engine:
        args += ["--engine", engine]
    name = f"policies {policies.name}/"
    try:
        done = subprocess.run(args, input=input_json.encode(), capture_output=True,
                              timeout=timeout_seconds, env=_child_env(), cwd=str(policies))
    except subprocess.TimeoutExpired as exc:
        return (CheckReport(name, CheckLevel.HARD_MANDATORY, error=(
            f"the policies took longer than {timeout_seconds:g}s (stopped) while evaluating "
            f"{_last_progress(exc.stderr)}"), source=str(policies), replaces_set=True),)
    if done.returncode != 0:
        return (CheckReport(name, CheckLevel.HARD_MANDATORY, error=(
            f"the Rego engine failed ({_exit(done.returncode)}) while evaluating "
            f"{_last_progress(done.stderr)}: {_tail(done.stderr)}"), source=str(policies),
            replaces_set=True),)
    try:
        return tuple(_report_from_json(r) for r in json.loads(done.stdout)["reports"])
    except (ValueError, KeyError, TypeError) as exc:
        return (CheckReport(name, CheckLevel.HARD_MANDATORY,
                            error=f"unreadable answer from the policy process: {exc}",
                            replaces_set=True),)


def run_policy_tests(policies: Path, *, root: Path | None = None, timeout_seconds: float = 300.0,
                     engine: str = "") -> list[TestResult]:
    """Every ``test_*`` rule of ``policies``, in child processes: a crash fails the test that
    caused it, and the run goes on with the next one; a timeout fails the rest."""
    policies, root = policies.resolve(), root.resolve() if root else None
    results: list[TestResult] = []
    while True:
        args = [sys.executable, *_CHILD_FLAGS, "-m", CHILD_MODULE, "test", str(policies),
                "--root", str(root or policies.parent), "--skip", str(len(results))]
        if engine:
            args += ["--engine", engine]
        try:
            done = subprocess.run(args, capture_output=True, timeout=timeout_seconds,
                                  env=_child_env(), cwd=str(policies))
            out, err, code = done.stdout, done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            out, err, code = exc.stdout or b"", exc.stderr or b"", None
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("{"):
                results.append(TestResult(**json.loads(line)))
        if code == 0:
            return results
        where = _last_progress(err)
        file_line, _, rule = where.partition(" ")
        package, _, name = rule.rpartition(".")
        file, _, line = file_line.rpartition(":")
        line = line if line.isdigit() else "0"
        why = (f"took longer than {timeout_seconds:g}s (stopped)" if code is None
               else f"the Rego engine failed ({_exit(code)}): {_tail(err)}")
        results.append(TestResult(package, name, file, int(line or 0), "error", why))
        if code is None:
            return results


def _exit(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def _last_progress(stderr: bytes | None) -> str:
    for line in reversed((stderr or b"").decode(errors="replace").splitlines()):
        if line.startswith("@ "):
            return line[2:]
    return "the policies (before any rule)"


def _tail(stderr: bytes | None) -> str:
    lines = [ln for ln in (stderr or b"").decode(errors="replace").splitlines()
             if ln.strip() and not ln.startswith("@ ")]
    return " ".join(lines[-3:])[-500:] or "no message"


def _report_to_json(report: CheckReport) -> dict[str, Any]:
    return {"name": report.name, "level": report.level.value, "error": report.error,
            "source": report.source,
            "findings": [{"message": f.message, "address": f.address, "policy": f.policy,
                          "rule": f.rule, "line": f.line} for f in report.findings]}


def _report_from_json(doc: Mapping[str, Any]) -> CheckReport:
    return CheckReport(doc["name"], CheckLevel(doc["level"]),
                       tuple(Finding(**f) for f in doc["findings"]), error=doc["error"],
                       source=doc.get("source", ""))


def _engine_class(spec: str) -> type:
    if not spec:
        return RegorusEngine
    module, _, name = spec.partition(":")
    import importlib

    return getattr(importlib.import_module(module), name)


def _main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gitops.rego_child")
    parser.add_argument("command", choices=("check", "test"))
    parser.add_argument("policies", type=Path)
    parser.add_argument("--root", type=Path)
    parser.add_argument("--env", default="")
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--engine", default="")
    args = parser.parse_args(argv)

    def progress(text: str) -> None:
        sys.stderr.write(f"@ {text}\n")
        sys.stderr.flush()

    policies = PolicySet.load(args.policies, args.env, root=args.root,
                              tests=args.command == "test",
                              engine_factory=_engine_class(args.engine))
    if args.command == "check":
        reports = policies.evaluate(sys.stdin.read(), progress)
        sys.stdout.write(json.dumps({"reports": [_report_to_json(r) for r in reports]}))
        return 0
    for result in policies.run_tests(args.skip, progress):
        sys.stdout.write(json.dumps(result.__dict__) + "\n")
        sys.stdout.flush()
    return 0

