"""policies: the shipped Rego policies over a 10,000-resource plan, against ``json.loads`` of it.

The plan is ``tests/plan_factory.make_plan_doc(10_000, ...)`` written to a file (realistic
sections included, ~20 MB); the policies are ``deployments/infra-repo/policies`` for ``prod``
(every shipped policy applies), evaluated as the pipeline does: ``gitops.rego.check_plan``, a
child process (start-up, engine load, input parse, every rule, answer) on the file's text.

* **baseline**: ``json.loads`` of the same file's text.
* **policies**: ``check_plan`` on that text.

Target: policies <= 10x the baseline. ``ROUNDS`` rounds, medians.

    .venv/bin/python -m bench.policies
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench._report import Result, heading, median, say, spread

NAME = "policies"
ROUNDS = 3
TARGET = 10.0
ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "deployments" / "infra-repo" / "policies"


def run() -> Result:
    sys.path.insert(0, str(ROOT / "tests"))
    from plan_factory import make_plan_doc

    from gitops.rego import check_plan

    result = Result(NAME)
    heading(NAME, "shipped Rego policies over a 10,000-resource plan vs json.loads")
    doc = make_plan_doc(10_000, ("create", "update", "delete", "replace"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.json"
        path.write_text(json.dumps(doc))
        text = path.read_text()
    say(f"plan: {len(text) / 1e6:.1f} MB, {len(doc['resource_changes'])} resource changes")
    loads, policies = [], []
    reports = ()
    for _ in range(ROUNDS):
        start = time.perf_counter()
        json.loads(text)
        loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        reports = check_plan(POLICIES, text, environment="prod", timeout_seconds=300)
        policies.append(time.perf_counter() - start)
    assert reports and not any(r.error for r in reports), [r.error for r in reports]
    found = sum(len(r.findings) for r in reports)
    say(f"{len(reports)} reports, {found} findings (expected: the plan is tagged for dev, checked "
        "as prod, and destroys databases)")
    say(f"json.loads  {spread(loads)}")
    say(f"policies    {spread(policies)}")
    result.check("policies / json.loads", median(policies) / median(loads), TARGET, unit="x")
    return result


if __name__ == "__main__":
    raise SystemExit(0 if run().met else 1)
