"""big_plan: a 10,000-resource ``terraform show -json`` document through the PR-comment path.

The document comes from ``tests/plan_factory.make_plan_doc`` (the generator the big-plan tests
use: format 0.2 as Terraform 1.0.3 writes it, with ``planned_values``, ``prior_state`` and
``configuration``), cycling create / update / delete / replace, written to a temporary file.

* **load** (baseline): read the file, ``json.loads``.
* **pipeline**: read the file, ``json.loads``, ``parse_plan``, ``check_tags``,
  ``render_pr_comment`` (one environment; the comment must fit GitHub's 65,536 characters).

Alternating, ``ROUNDS`` rounds after a warm-up, medians. Targets: pipeline <= 3x load; the
tracemalloc peak of parse + policy + render (the document already loaded) <= 4x the file size.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench._report import Result, heading, median, say, spread
from gitops.plan import parse_plan
from gitops.policy import tag_check
from gitops.render import GITHUB_COMMENT_LIMIT, EnvReport, render_pr_comment

NAME = "big_plan"
RESOURCES = 10_000
ACTIONS = ("create", "update", "delete", "replace")
ROUNDS = 5
TIME_TARGET = 3.0
MEMORY_TARGET = 4.0
TESTS = Path(__file__).resolve().parent.parent / "tests"


def write_plan(path: Path) -> int:
    """Write the synthetic plan document to ``path``; its size in bytes."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from plan_factory import make_plan_doc

    path.write_text(json.dumps(make_plan_doc(RESOURCES, ACTIONS)))
    return path.stat().st_size


def load(path: Path) -> dict:
    return json.loads(path.read_bytes())


def parse_and_render(doc: dict) -> str:
    plan = parse_plan(doc)
    policy = (tag_check(plan),)
    return render_pr_comment([EnvReport("dev", plan, policy)],
                             header="### Terraform plan for this pull request")


def pipeline(path: Path) -> str:
    return parse_and_render(load(path))


def run() -> Result:
    result = Result(NAME)
    heading(NAME, f"{RESOURCES:,}-resource show -json: load vs load + parse + policy + comment")
    with tempfile.TemporaryDirectory(prefix="bench-big-plan-") as tmp:
        path = Path(tmp) / "plan.json"
        size = write_plan(path)
        say(f"plan file: {size:,} bytes ({size / 2**20:.1f} MiB), {RESOURCES:,} resource changes")
        comment = pipeline(path)  # warm-up, and the size check
        assert len(comment) <= GITHUB_COMMENT_LIMIT, f"comment has {len(comment)} characters"
        say(f"PR comment: {len(comment):,} characters (limit {GITHUB_COMMENT_LIMIT:,}): OK")

        variants = {"load": lambda: load(path), "pipeline": lambda: pipeline(path)}
        times: dict[str, list[float]] = {name: [] for name in variants}
        for i in range(ROUNDS):
            for name in (list(variants) if i % 2 == 0 else list(variants)[::-1]):
                gc.collect()
                start = time.perf_counter()
                out = variants[name]()
                times[name].append(time.perf_counter() - start)
                del out

        doc = load(path)
        gc.collect()
        tracemalloc.start()
        try:
            parse_and_render(doc)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        del doc

    for name in variants:
        say(f"{name:8s} {spread(times[name])}")
    say(f"parse + policy + render alone: "
        f"{median(times['pipeline']) - median(times['load']):.3f} s (difference of medians)")
    say(f"tracemalloc peak of parse + policy + render: {peak:,} bytes "
        f"({peak / 2**20:.1f} MiB) for a {size / 2**20:.1f} MiB file")
    result.check("pipeline/load time", median(times["pipeline"]) / median(times["load"]),
                 TIME_TARGET)
    result.check("peak memory/file size", peak / size, MEMORY_TARGET)
    return result
