"""A bounded load generator for the webhook benchmark, run in its own process.

    python -m bench._load < spec.json > result.json

It runs in a separate process so that its own Python work does not share the GIL with the
receiver under test (GitHub is not in the receiver's process either). The spec says where to send
(a loopback URL only), how many signed deliveries (``n``, after ``warmup`` unrecorded ones), over
how many concurrent clients (one ``httpx.AsyncClient`` each, created before anything is timed,
keep-alive connections opened by the warm-up), and the ``mode``:

* ``distinct``: every delivery new (its own delivery id and head commit), alternating a
  ``pull_request`` synchronize and a ``push`` to the default branch, from the GitHub contract
  payloads in ``tests/contracts/github``;
* ``redeliver``: the same pull_request delivery (same body, same delivery id) ``n`` times.

The result: per-request latencies (seconds), status counts, transport errors, run ids seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from gitops.receiver import signature_for

CONTRACTS = Path(__file__).resolve().parent.parent / "tests" / "contracts" / "github"
PULL_REQUEST = "pull_request.synchronize.1.json"
PUSH = "push.default-branch.1.json"
REPOSITORY = "Codertocat/Hello-World"
"""The repository of both payloads: the receiver's allowlist."""

Delivery = tuple[dict[str, str], bytes]


def _signed(secret: bytes, event: str, body: bytes, delivery_id: str) -> Delivery:
    return ({"X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id,
             "X-Hub-Signature-256": signature_for(secret, body),
             "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/bench"}, body)


def make_deliveries(secret: bytes, n: int, mode: str, seed: str) -> list[Delivery]:
    """``n`` signed deliveries (see the module docstring for the modes)."""
    pull = json.loads((CONTRACTS / PULL_REQUEST).read_text())
    push = json.loads((CONTRACTS / PUSH).read_text())
    if mode == "redeliver":
        return [_signed(secret, "pull_request", json.dumps(pull).encode(), f"{seed}-once")] * n
    out = []
    for i in range(n):
        sha = hashlib.sha1(f"{seed}-{i}".encode()).hexdigest()
        if i % 2 == 0:
            pull["pull_request"]["head"]["sha"] = sha
            out.append(_signed(secret, "pull_request", json.dumps(pull).encode(), str(uuid.uuid4())))
        else:
            push["after"] = sha
            out.append(_signed(secret, "push", json.dumps(push).encode(), str(uuid.uuid4())))
    return out


async def _client(client: httpx.AsyncClient, url: str, queue: list[Delivery], record: bool,
                  out: dict[str, Any]) -> None:
    while queue:
        headers, body = queue.pop()
        start = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as ex:
            if record:
                out["errors"].append(f"{type(ex).__name__}: {ex}")
            continue
        elapsed = time.perf_counter() - start
        if not record:
            continue
        out["latencies"].append(elapsed)
        out["statuses"][str(response.status_code)] += 1
        if response.status_code == 202 and response.content:
            run_id = response.json().get("run_id")
            if run_id:
                out["run_ids"][run_id] += 1


async def _pass(clients: list[httpx.AsyncClient], url: str, deliveries: list[Delivery],
                record: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "statuses": Counter(), "errors": [],
                           "run_ids": Counter()}
    queue = list(reversed(deliveries))
    start = time.perf_counter()
    await asyncio.gather(*(_client(c, url, queue, record, out) for c in clients))
    out["wall"] = time.perf_counter() - start
    return out


async def _load(url: str, warmup: list[Delivery], deliveries: list[Delivery],
                concurrency: int) -> dict[str, Any]:
    # Every client exists before the first request is timed: creating one (its SSL context,
    # even for http://) blocks the event loop for milliseconds, which would otherwise land in
    # the latency of the requests already in flight. The warm-up also opens the connections.
    clients = [httpx.AsyncClient(trust_env=False, timeout=30.0) for _ in range(concurrency)]
    try:
        if warmup:
            await _pass(clients, url, warmup, record=False)
        return await _pass(clients, url, deliveries, record=True)
    finally:
        for client in clients:
            await client.aclose()


def main() -> None:
    spec = json.load(sys.stdin)
    url = spec["url"]
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"loopback only, not {url}")
    secret = bytes.fromhex(spec["secret_hex"])
    warmup = make_deliveries(secret, spec["warmup"], "distinct", f"{spec['seed']}-warmup")
    deliveries = make_deliveries(secret, spec["n"], spec["mode"], spec["seed"])
    result = asyncio.run(_load(url, warmup, deliveries, spec["concurrency"]))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
