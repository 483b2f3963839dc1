"""webhook: the real receiver under 20 concurrent senders, and redeliveries of one delivery.

Server: ``gitops.receiver.create_app`` (signature check, parsing, routing, launcher call in the
thread pool) with ``tests/webhook_fakes.FakeLauncher`` (same run id per idempotency key, like
``run_deployment(idempotency_key=...)``), served by uvicorn on 127.0.0.1 through
``deployments.emulators.server.BackgroundServer``, in this process.

Senders: ``bench/_load.py`` in a separate process (so its Python work does not share the
receiver's GIL), 20 ``httpx.AsyncClient``s with keep-alive, ``WARMUP`` unrecorded deliveries
then ``DELIVERIES`` signed deliveries, each new (alternating pull_request synchronize and push to
the default branch, so every one starts a run). Latency = one POST, as the sender sees it.

* **baseline**: the same load against a trivial Starlette app (reads the body, answers 202) on the
  same server setup.
* **receiver**: the real app. Then ``REDELIVERIES`` redeliveries of ONE delivery (same body, same
  delivery id) from the same 20 clients: the launcher must have created exactly one run.

Targets: receiver p99 <= 50 ms, zero errors (any status but 202 or a transport error is one).
The p50/p99 ratios against the baseline are printed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench._report import Result, heading, ms, say
from deployments.emulators.server import BackgroundServer
from gitops.receiver import WEBHOOK_PATH, create_app

NAME = "webhook"
DELIVERIES = 1_000
REDELIVERIES = 200
CONCURRENCY = 20
WARMUP = 100
P99_TARGET = 0.050
TESTS = Path(__file__).resolve().parent.parent / "tests"


def trivial_app() -> Starlette:
    """The baseline: read the body, answer 202."""
    async def receive(request: Request) -> Response:
        await request.body()
        return Response(status_code=202)

    return Starlette(routes=[Route(WEBHOOK_PATH, receive, methods=["POST"])])


def send(url: str, secret: bytes, *, n: int, mode: str, warmup: int) -> dict[str, Any]:
    """Run the load generator against ``url`` in a child process; its result."""
    spec = {"url": url + WEBHOOK_PATH, "secret_hex": secret.hex(), "n": n, "mode": mode,
            "warmup": warmup, "concurrency": CONCURRENCY, "seed": secrets.token_hex(4)}
    done = subprocess.run([sys.executable, "-m", "bench._load"], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def describe(name: str, load: dict[str, Any]) -> tuple[float, float, int]:
    """Print one load's figures; (p50, p99, errors)."""
    lat = load["latencies"]
    errors = len(load["errors"]) + sum(c for s, c in load["statuses"].items() if s != "202")
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    say(f"{name:9s} n={len(lat)} p50 {ms(p50)}, p99 {ms(p99)}, max {ms(max(lat))}, "
        f"{len(lat) / load['wall']:.0f} req/s, statuses {dict(load['statuses'])}, "
        f"errors {errors}")
    for error in load["errors"][:3]:
        say(f"  transport error: {error}")
    return p50, p99, errors


def run() -> Result:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from webhook_fakes import FakeLauncher

    result = Result(NAME)
    heading(NAME, f"{DELIVERIES:,} signed deliveries from {CONCURRENCY} concurrent clients, "
                  f"then {REDELIVERIES} redeliveries of one")
    secret = secrets.token_bytes(32)
    with BackgroundServer(trivial_app()) as server:
        base = send(server.url, secret, n=DELIVERIES, mode="distinct", warmup=WARMUP)
    launcher = FakeLauncher()
    app = create_app(secret=secret, launcher=launcher, allowlist=["Codertocat/Hello-World"])
    with BackgroundServer(app) as server:
        real = send(server.url, secret, n=DELIVERIES, mode="distinct", warmup=WARMUP)
        runs_before = len(launcher.runs)
        again = send(server.url, secret, n=REDELIVERIES, mode="redeliver", warmup=0)
        runs_after = len(launcher.runs)

    b50, b99, _ = describe("baseline", base)
    r50, r99, errors = describe("receiver", real)
    say(f"ratio receiver/baseline: p50 {r50 / b50:.2f}x, p99 {r99 / b99:.2f}x")
    expected = WARMUP + DELIVERIES
    if runs_before != expected:
        raise AssertionError(f"{expected} distinct deliveries started {runs_before} runs")
    _, _, re_errors = describe("redeliver", again)
    new_runs = runs_after - runs_before
    run_ids = again["run_ids"]
    say(f"redeliveries: {REDELIVERIES} of one delivery id -> {new_runs} new run(s), "
        f"run ids answered {dict(run_ids)}")
    if new_runs != 1 or len(run_ids) != 1 or sum(run_ids.values()) != REDELIVERIES:
        raise AssertionError(f"redeliveries created {new_runs} runs (expected exactly 1), "
                             f"answered run ids {dict(run_ids)}")
    result.check("receiver p99", r99 * 1000, P99_TARGET * 1000, unit=" ms")
    result.check("errors", errors + re_errors, 0)
    return result

