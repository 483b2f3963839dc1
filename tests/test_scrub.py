"""gitops.scrub: every value the pipeline loaded is masked, in every encoding, wherever it lands;
unrelated text is left alone; logs (also the ones Prefect ships to its API) are scrubbed."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import threading
import uuid
from collections import namedtuple
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gitops.redact import MASK, MIN_KNOWN_SECRET_LENGTH, redact_text
from gitops.scrub import (
    MIN_SEPARATED_LENGTH,
    ScrubFilter,
    SecretRegistry,
    install_log_scrubber,
    uninstall_log_scrubber,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Printable characters of every kind: letters and digits of any script, punctuation, symbols,
# marks, spaces (no control characters, no lone surrogates).
PRINTABLE = st.characters(categories=("L", "M", "N", "P", "S", "Zs"))
# (A part of the mask itself, "(redacte", is never searched for: it is in every masked text.)
secrets_ = st.text(PRINTABLE, min_size=MIN_SEPARATED_LENGTH, max_size=40).filter(
    lambda s: s not in MASK)
filler = st.text(st.characters(categories=("L", "N", "P", "S", "Zs", "Cc")), max_size=60)


def touches_the_mask(secret: str) -> bool:
    """Whether a masked text could spell ``secret`` out of the mask and its neighbours
    (``)abc`` after ``(redacted)`` followed by ``abc``): a coincidence no scrubber can avoid."""
    return any(secret.startswith(MASK[-k:]) or secret.endswith(MASK[:k])
               for k in range(1, len(MASK) + 1)) or MASK in secret or secret in MASK


def registry_with(*values: str) -> SecretRegistry:
    registry = SecretRegistry()
    registry.register_all(values)
    return registry


def utf8(value: str) -> bytes:
    return value.encode("utf-8")


# -- the encodings, each as the producer would write it -------------------------------------------

ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "reversed": lambda s: s[::-1],
    "base64": lambda s: base64.b64encode(utf8(s)).decode(),
    "base64-unpadded": lambda s: base64.b64encode(utf8(s)).decode().rstrip("="),
    "base64-urlsafe": lambda s: base64.urlsafe_b64encode(utf8(s)).decode(),
    "base64-urlsafe-unpadded": lambda s: base64.urlsafe_b64encode(utf8(s)).decode().rstrip("="),
    "hex": lambda s: utf8(s).hex(),
    "HEX": lambda s: utf8(s).hex().upper(),
    "hex-colons": lambda s: utf8(s).hex(":"),
    "quote": lambda s: quote(s),
    "quote-safe-none": lambda s: quote(s, safe=""),
    "quote_plus": lambda s: quote_plus(s),
    "quote-lowercase-hex": lambda s: _lower_percent(quote(s, safe="")),
    "every-byte-percent": lambda s: "".join(f"%{b:02X}" for b in utf8(s)),
    "every-byte-percent-lower": lambda s: "".join(f"%{b:02x}" for b in utf8(s)),
    "json": lambda s: json.dumps(s),
    "json-unicode": lambda s: json.dumps(s, ensure_ascii=False),
    "json-in-json": lambda s: json.dumps(json.dumps({"password": s})),
    "python-repr": lambda s: repr(s),
    "python-ascii": lambda s: ascii(s),
    "bytes-repr": lambda s: repr(utf8(s)),
    "html": lambda s: html.escape(s),
    "one-per-line": lambda s: "\n".join(s),
    "crlf-per-line": lambda s: "\r\n".join(s),
    "dashes": lambda s: "-".join(s),
    "spaces": lambda s: " ".join(s),
    "list-of-chars-repr": lambda s: ", ".join(s),
}


def _lower_percent(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "%":
            out.append(text[i:i + 3].lower())
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def base64_runs(text: str) -> Iterator[bytes]:
    """Every decoding of every base64-looking run of ``text``, at each of its 4 char offsets."""
    import re

    for run in re.findall(r"[A-Za-z0-9+/=_-]{4,}", text):
        for offset in range(4):
            chunk = run[offset:].rstrip("=").replace("-", "+").replace("_", "/")
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            try:
                yield base64.b64decode(chunk)
            except ValueError:
                continue


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secrets_, left=filler, right=filler)
def test_every_encoding_is_masked_anywhere_in_text(encoding, secret, left, right):
    encoded = ENCODINGS[encoding](secret)
    assume(not touches_the_mask(secret) and not touches_the_mask(encoded))
    registry = registry_with(secret)
    out = registry.scrub(left + encoded + right)
    assert MASK in out
    assert encoded not in out
    assert secret not in out


@example(secret="00000000", before=b"\x00\x00\x00\x00\x00p", after=b"", urlsafe=False,
         padded=False, left="", right="")
@settings(max_examples=150, deadline=None)
@given(secret=secrets_, before=st.binary(max_size=40), after=st.binary(max_size=40),
       urlsafe=st.booleans(), padded=st.booleans(), left=filler, right=filler)
def test_a_value_inside_a_larger_base64_blob_is_masked_at_any_offset(
        secret, before, after, urlsafe, padded, left, right):
    data = before + utf8(secret) + after
    assume(data.find(utf8(secret)) == len(before) and data.find(utf8(secret), len(before) + 1) < 0)
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    blob = encode(data).decode()
    if not padded:
        blob = blob.rstrip("=")
    registry = registry_with(secret)
    out = registry.scrub(f"{left} {blob} {right}")
    assert MASK in out
    # Nothing left in the text decodes back to the value, from any alignment.
    assert not any(utf8(secret) in decoded for decoded in base64_runs(out))
    # One mask covers the characters that carry the value's bits; of the others, at most two
    # on each side go with it: a character whose bits happen to match the value's too, and, for
    # a value that repeats itself ("00000000"), a neighbour byte that reads as its first or last
    # (b"p" and b"0" share their low six bits): a match one byte over.
    start, end = len(before), len(before) + len(utf8(secret))
    first_char, after_last = start * 4 // 3, -(-end * 4 // 3)
    head, _, tail = registry.mask(blob).partition(MASK)
    assert MASK not in tail
    assert blob[:first_char].startswith(head) and len(head) >= first_char - 2
    rest = blob[after_last:]
    assert rest.endswith(tail) and len(tail) >= len(rest.rstrip("=")) - 2


@settings(max_examples=100, deadline=None)
@given(secret=secrets_, sep=st.text(st.characters(), min_size=1, max_size=3),
       left=filler, right=filler)
def test_characters_separated_by_any_fixed_separator_are_masked(secret, sep, left, right):
    spaced = sep.join(secret)
    out = registry_with(secret).scrub(left + spaced + right)
    assert MASK in out
    assert spaced not in out


def test_separated_forms_need_the_minimum_length():
    short = "k7#Qz!p"  # 7 characters: spaced forms of it would match ordinary text by chance
    assert len(short) < MIN_SEPARATED_LENGTH
    registry = registry_with(short)
    assert registry.scrub(f"x {short} y") == f"x {MASK} y"
    assert registry.scrub("-".join(short)) == "-".join(short)


def test_values_shorter_than_the_minimum_are_not_searched():
    registry = registry_with("abc", "1", "", None)  # type: ignore[arg-type]
    assert len(registry) == 0
    assert registry.scrub("abc 1 abcabc") == "abc 1 abcabc"
    four = "q9!z"
    assert len(four) == MIN_KNOWN_SECRET_LENGTH
    assert registry_with(four).scrub(f"({four})") == f"({MASK})"


def test_the_stripped_value_is_registered_too():
    registry = registry_with("  s3cr3t-value-from-a-file\n")
    assert registry.scrub("TF_VAR_x=s3cr3t-value-from-a-file;") == f"TF_VAR_x={MASK};"


def test_bytes_and_secretstr_values_are_accepted():
    from pydantic import SecretStr

    registry = SecretRegistry()
    assert registry.register(b"webhook-secret-bytes") == b"webhook-secret-bytes"
    token = SecretStr("argocd-token-value")
    assert registry.register(token) is token
    assert registry.scrub("webhook-secret-bytes argocd-token-value") == f"{MASK} {MASK}"
    with pytest.raises(TypeError):
        registry.register(12345678)


def test_an_undecodable_bytes_value_is_still_found_encoded():
    raw = bytes([0xFF, 0xFE, 0x00, 0x80]) + b"binary-key"
    registry = SecretRegistry()
    registry.register(raw)
    out = registry.scrub("key=" + base64.b64encode(raw).decode() + " hex " + raw.hex())
    assert base64.b64encode(raw).decode() not in out and raw.hex() not in out


def test_credential_looking_strings_are_masked_too():
    registry = SecretRegistry()
    assert registry.scrub("db_password = hunter22") == redact_text("db_password = hunter22")
    assert MASK in registry.scrub("db_password = hunter22")


@settings(max_examples=50, deadline=None)
@given(secret=secrets_, text=filler)
def test_scrubbing_twice_changes_nothing_more(secret, text):
    registry = registry_with(secret)
    once = registry.scrub(text + secret + text)
    assert registry.scrub(once) == once


# -- no false positives ---------------------------------------------------------------------------


def corpus() -> str:
    """Ordinary text the pipeline emits: README, terraform errors, plan JSON and its stream."""
    files = [ROOT / "README.md", *sorted((FIXTURES / "stderr").glob("*.txt")),
             FIXTURES / "plans" / "update.json", FIXTURES / "plans" / "create.plan-stream.jsonl"]
    return "\n".join(path.read_text() for path in files)


CORPUS = corpus()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secrets=st.lists(secrets_, min_size=1, max_size=5))
def test_unrelated_text_is_left_alone(secrets):
    # A value whose raw form occurs in the text is not unrelated; nor is a value of a few
    # repeated characters (its separated form would be in any table border).
    for secret in secrets:
        assume(secret not in CORPUS and secret.strip() not in CORPUS)
        assume(len(set(secret)) >= 5)
    assert registry_with(*secrets).mask(CORPUS) == CORPUS


@pytest.mark.parametrize("secret", [
    "changeme-123", "8f14e45f-ceea-467f-a9c3-1b2c3d4e5f60", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
    "Summer2026!", "hunter2hunter2", "correct horse battery staple",
])
def test_realistic_values_do_not_mask_ordinary_text(secret):
    assert secret not in CORPUS
    assert registry_with(secret).mask(CORPUS) == CORPUS


# -- overlap --------------------------------------------------------------------------------------


def test_a_value_containing_another_is_masked_whole():
    registry = registry_with("hunter2!", "xx-hunter2!-yy")
    assert registry.scrub("a xx-hunter2!-yy b hunter2! c") == f"a {MASK} b {MASK} c"


def test_overlapping_values_leave_nothing_of_either():
    first, second = "abcdefgh1234", "1234wxyz9876"
    registry = registry_with(first, second)
    assert registry.scrub(f"<{first}wxyz9876>") == f"<{MASK}>"
    assert registry.scrub(f"<abcdefgh{second}>") == f"<{MASK}>"
    blob = base64.b64encode(utf8(f"x{first}wxyz9876y")).decode()
    assert not any(utf8(first) in d or utf8(second) in d for d in base64_runs(registry.scrub(blob)))


@settings(max_examples=50, deadline=None)
@given(outer=secrets_, cut=st.integers(0, 40), size=st.integers(MIN_SEPARATED_LENGTH, 40))
def test_any_value_inside_another_is_masked_whole(outer, cut, size):
    inner = outer[cut:cut + size]
    assume(len(inner) >= MIN_KNOWN_SECRET_LENGTH)
    registry = registry_with(inner, outer)
    out = registry.scrub(f"[{outer}]")
    assert out == f"[{MASK}]"


def test_adjacent_values_become_one_mask():
    registry = registry_with("first-secret", "second-secret")
    assert registry.scrub("first-secretsecond-secret!") == f"{MASK}!"


# -- payloads -------------------------------------------------------------------------------------


Pair = namedtuple("Pair", "name value")


def test_scrub_obj_scrubs_every_string_and_keeps_the_shape():
    secret = "tok-" + uuid.uuid4().hex
    registry = registry_with(secret)
    payload = {"message": f"failed with {secret}", secret: 1, "n": 3, "none": None,
               "items": [secret, ("x", secret), Pair("p", secret), {secret}],
               "nested": {"deeper": [{"b64": base64.b64encode(utf8(secret)).decode()}]}}
    original = json.dumps(payload, default=repr)
    out = registry.scrub_obj(payload)
    assert secret not in json.dumps(out, default=repr)
    assert out["message"] == f"failed with {MASK}" and out[MASK] == 1
    assert out["n"] == 3 and out["none"] is None
    assert out["items"][1] == ("x", MASK) and out["items"][2] == Pair("p", MASK)
    assert out["items"][3] == {MASK}
    assert out["nested"]["deeper"][0]["b64"] == MASK
    assert json.dumps(payload, default=repr) == original  # the input is untouched


# -- threads --------------------------------------------------------------------------------------


def test_registration_is_thread_safe_and_scrubbing_never_waits_for_it():
    registry = SecretRegistry()
    values = [[f"thread{t}-value{i}-{uuid.uuid4().hex[:8]}" for i in range(25)] for t in range(6)]
    start = threading.Barrier(len(values) + 2)
    errors: list[BaseException] = []

    def add(batch: list[str]) -> None:
        start.wait()
        for value in batch:
            registry.register(value)

    def read() -> None:
        start.wait()
        try:
            for _ in range(200):
                registry.scrub(" ".join(values[0]))
        except BaseException as ex:  # noqa: BLE001 - reported below
            errors.append(ex)

    threads = [threading.Thread(target=add, args=(batch,)) for batch in values]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    everything = [value for batch in values for value in batch]
    assert len(registry) == len(everything)
    out = registry.scrub("|".join(everything))
    assert out == "|".join([MASK] * len(everything))


# -- logging --------------------------------------------------------------------------------------


@pytest.fixture()
def scrubbed_logger() -> Iterator[tuple[logging.Logger, io.StringIO, SecretRegistry]]:
    """A logger with its own handler, and a registry whose filter is installed everywhere."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test-scrub-{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    registry = SecretRegistry()
    try:
        yield logger, stream, registry
    finally:
        uninstall_log_scrubber(registry)
        logger.removeHandler(handler)


def test_log_messages_arguments_and_exceptions_are_scrubbed(scrubbed_logger):
    logger, stream, registry = scrubbed_logger
    secret = "pw-" + uuid.uuid4().hex
    registry.register(secret)
    assert install_log_scrubber(registry) >= 1
    assert install_log_scrubber(registry) == 0  # idempotent
    logger.info("connecting with %s (%s)", secret, base64.b64encode(utf8(secret)).decode())
    try:
        raise RuntimeError(f"terraform said: password {secret!r} is wrong")
    except RuntimeError:
        logger.exception("plan failed")
    logger.warning("extra", extra={"detail": {"token": secret}})
    logger.error("bad format %s %s", secret)  # one argument too few
    text = stream.getvalue()
    assert secret not in text and base64.b64encode(utf8(secret)).decode() not in text
    assert text.count(MASK) >= 3
    assert "Traceback" in text and "RuntimeError: terraform said" in text
    assert "did not match the format" in text


def test_the_filter_leaves_nothing_raw_on_the_record(scrubbed_logger):
    _, _, registry = scrubbed_logger
    secret = "pw-" + uuid.uuid4().hex
    registry.register(secret)
    try:
        raise ValueError(secret)
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "value %s", (secret,),
                                   sys.exc_info())
    record.detail = [secret]
    assert ScrubFilter(registry).filter(record) is True
    assert record.getMessage() == f"value {MASK}" and record.args == ()
    assert record.exc_info is None  # no formatter can render the raw exception
    assert record.exc_text and secret not in record.exc_text and MASK in record.exc_text
    assert record.detail == [MASK]
    # Every formatter, including Prefect's JSON one, now sees only scrubbed text.
    from prefect.logging.formatters import JsonFormatter

    for formatter in (logging.Formatter(), JsonFormatter("default", "", "%")):
        assert secret not in formatter.format(record)


def test_run_logs_sent_to_the_prefect_api_are_scrubbed(prefect_api):
    from prefect import flow, get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler, APILogWorker

    registry = SecretRegistry()
    secret = registry.register("db-pass-" + uuid.uuid4().hex)
    encoded = base64.b64encode(utf8(secret)).decode()

    @flow(name="scrub-probe", persist_result=False)
    def leaky() -> None:
        logger = get_run_logger()
        logger.info("probe: TF_VAR_db_password=%s", secret)
        logger.info("probe: header %s", encoded)
        raise ValueError(f"terraform echoed {secret}")

    install_log_scrubber(registry)
    try:
        api_handlers = [h for name in ("prefect.flow_runs", "prefect.task_runs")
                        for h in logging.getLogger(name).handlers if isinstance(h, APILogHandler)]
        assert api_handlers and all(
            any(isinstance(f, ScrubFilter) for f in h.filters) for h in api_handlers)
        state = leaky(return_state=True)
        APILogWorker.drain_all(timeout=10)
    finally:
        uninstall_log_scrubber(registry)
    assert state.is_failed()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    messages = [log.message for log in logs]
    assert any("probe: TF_VAR_db_password=" in m for m in messages), messages
    assert any("terraform echoed" in m for m in messages), messages  # the exception's log
    assert not any(secret in m or encoded in m for m in messages)
    assert sum(MASK in m for m in messages) >= 3
