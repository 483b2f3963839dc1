"""scrub: ``gitops.scrub.scrub`` on 5 MB of pipeline text with 30 registered secret values.

Text: plan JSON (``tests/plan_factory.make_plan_doc``), terraform error output
(``tests/fixtures/stderr``), Prefect-style log lines and base64 blobs, repeated to 5,000,000
characters; each of the 30 values (16-48 random characters, punctuation included) is planted 10
times in various encodings (raw, base64 inside a larger blob, hex, URL-encoded, JSON-escaped,
dash-separated). The run asserts that every planted form is gone.

* **baseline**: ``gitops.redact.redact_text`` (the credential-shape patterns alone), which
  ``scrub`` applies after masking the registered values.
* **mask**: ``SecretRegistry.mask`` (the registered values and their encodings alone).
* **scrub**: both, as call sites use it.

Also printed: the time to register the 30 values one by one (each compiles the search) and the
cost of scrubbing one 100-character log line. ``ROUNDS`` alternating rounds, medians.
Targets: mask >= 5 MB/s; scrub <= 1.6x the baseline.

    .venv/bin/python -m bench.scrub
"""

from __future__ import annotations

import base64
import json
import random
import string
import sys
import time
from pathlib import Path
from urllib.parse import quote

from bench._report import Result, heading, median, say, spread
from gitops.redact import redact_text
from gitops.scrub import SecretRegistry

NAME = "scrub"
SIZE = 5_000_000
SECRETS = 30
ROUNDS = 3
MASK_TARGET_MB_S = 5.0
SCRUB_TARGET = 1.6
TESTS = Path(__file__).resolve().parent.parent / "tests"
LOG_LINE = ("12:00:01.123 | INFO    | Flow run 'amber-fox' - terraform plan finished for prod: "
            "3 to add, 0 to change\n")


def make_secrets(rng: random.Random) -> list[str]:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*()-_=+/:.~"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(16, 48)))
            for _ in range(SECRETS)]


def planted(secret: str, rng: random.Random) -> list[str]:
    data = secret.encode()
    blob = base64.b64encode(rng.randbytes(rng.randint(0, 30)) + data + rng.randbytes(9)).decode()
    return [secret, blob, data.hex(), quote(secret, safe=""), json.dumps(secret), "-".join(secret),
            f"TF_VAR_db_password={secret}", base64.urlsafe_b64encode(data).decode(),
            data.hex().upper(), repr(secret)]


def make_text(secrets: list[str], rng: random.Random) -> tuple[str, list[str]]:
    """About SIZE characters of pipeline text, with every secret planted in its forms."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from plan_factory import make_plan_doc

    parts = [json.dumps(make_plan_doc(200, ("create", "update", "delete", "replace")), indent=2)]
    parts += [p.read_text() for p in sorted((TESTS / "fixtures" / "stderr").glob("*.txt"))]
    parts += [LOG_LINE.replace("prod", f"env-{i}") for i in range(200)]
    parts += [base64.b64encode(rng.randbytes(600)).decode() + "\n" for _ in range(20)]
    chunk = "".join(parts)
    body = (chunk * (SIZE // len(chunk) + 1))[:SIZE]
    forms = [form for secret in secrets for form in planted(secret, rng)]
    step = len(body) // (len(forms) + 1)
    pieces, pos = [], 0
    for i, form in enumerate(forms):
        cut = body.rfind("\n", 0, (i + 1) * step) + 1 or (i + 1) * step
        pieces += [body[pos:cut], f"error: {form}\n"]
        pos = cut
    pieces.append(body[pos:])
    return "".join(pieces), forms


def run() -> Result:
    result = Result(NAME)
    heading(NAME, f"scrub {SIZE / 1e6:.0f} MB of pipeline text, {SECRETS} registered values")
    rng = random.Random(20261201)
    secrets = make_secrets(rng)
    registry = SecretRegistry()
    start = time.perf_counter()
    for secret in secrets:
        registry.register(secret)
    registering = time.perf_counter() - start
    say(f"register {SECRETS} values one by one: {registering:.3f} s in all")
    text, forms = make_text(secrets, rng)
    say(f"text: {len(text):,} characters, {len(forms)} planted forms")

    out = registry.scrub(text)
    leaked = [form for form in forms if form in out]
    assert not leaked, f"{len(leaked)} planted forms survived, e.g. {leaked[0][:20]!r}..."
    say("every planted form is masked: OK")

    variants = {"redact_text": lambda: redact_text(text), "mask": lambda: registry.mask(text),
                "scrub": lambda: registry.scrub(text)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(ROUNDS):
        for name in (list(variants) if i % 2 == 0 else list(variants)[::-1]):
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        say(f"{name:12s} {spread(values)}: {len(text) / 1e6 / median(values):.1f} MB/s")

    lines = 5000
    start = time.perf_counter()
    for _ in range(lines):
        registry.scrub(LOG_LINE)
    per_line = (time.perf_counter() - start) / lines
    say(f"one {len(LOG_LINE)}-character log line: {per_line * 1e6:.0f} µs")

    result.check("mask throughput", len(text) / 1e6 / median(times["mask"]), MASK_TARGET_MB_S,
                 at_most=False, unit=" MB/s")
    result.check("scrub / redact_text", median(times["scrub"]) / median(times["redact_text"]),
                 SCRUB_TARGET, unit="x")
    return result


if __name__ == "__main__":
    run()
