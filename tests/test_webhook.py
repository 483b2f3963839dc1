"""The webhook receiver: every contract payload signed and sent over real HTTP, plus routing
rules, refusals, and a fuzz test that nothing unsigned ever launches and nothing answers 5xx."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from webhook_fakes import FakeLauncher

from deployments.emulators.server import BackgroundServer
from gitops.errors import WebhookError
from gitops.receiver import (
    DEPLOY_MAIN_DEPLOYMENT,
    PR_CLOSED_DEPLOYMENT,
    PR_PLAN_DEPLOYMENT,
    PingEvent,
    PullRequestEvent,
    PushEvent,
    UnhandledEvent,
    create_app,
    parse_event,
    route,
    signature_for,
    verify_signature,
)

CONTRACTS = Path(__file__).resolve().parent / "contracts" / "github"
MANIFEST: list[dict[str, Any]] = json.loads((CONTRACTS / "manifest.json").read_text())["files"]
SECRET = b"test-webhook-secret"
ALLOWLIST = frozenset(entry["facts"]["repository_full_name"] for entry in MANIFEST
                      if "repository_full_name" in entry["facts"])


def kind_of(entry: dict[str, Any]) -> str:
    return entry["file"].split(".")[1]


def payload(name: str) -> bytes:
    return (CONTRACTS / name).read_bytes()


def headers(body: bytes, event: str, *, delivery: str | None = None,
            secret: bytes = SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature_for(secret, body),
            "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/test"}


@dataclass
class Receiver:
    url: str
    launcher: FakeLauncher

    def deliver(self, name: str, *, body: bytes | None = None, **kwargs: Any) -> httpx.Response:
        event = name.split(".")[0]
        data = payload(name) if body is None else body
        return httpx.post(f"{self.url}/webhooks/github", content=data,
                          headers=headers(data, event, **kwargs))


def serve(app: Starlette, launcher: FakeLauncher) -> Iterator[Receiver]:
    with BackgroundServer(app) as server:
        yield Receiver(server.url, launcher)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    launcher = FakeLauncher()
    yield from serve(create_app(secret=SECRET, launcher=launcher, allowlist=ALLOWLIST), launcher)


# -- every contract payload, over HTTP -----------------------------------------------------------


def expected(entry: dict[str, Any], *, allow_forks: bool) -> tuple[str, dict[str, Any] | None]:
    """(deployment or "ignore"/"pong", parameters) the manifest facts call for."""
    facts, kind = entry["facts"], kind_of(entry)
    if kind in ("opened", "synchronize"):
        if facts["head_repo_is_fork"] and not allow_forks:
            return "ignore", None
        return PR_PLAN_DEPLOYMENT, {"repository": facts["repository_full_name"],
                                    "pr_number": facts["number"], "head_sha": facts["head_sha"],
                                    "base_ref": facts["base_ref"]}
    if kind == "closed-unmerged":
        return PR_CLOSED_DEPLOYMENT, {"repository": facts["repository_full_name"],
                                      "pr_number": facts["number"]}
    if kind == "default-branch":
        return DEPLOY_MAIN_DEPLOYMENT, {"repository": facts["repository_full_name"],
                                        "sha": facts["after"], "ref": facts["ref"]}
    if entry["x_github_event"] == "ping":
        return "pong", None
    return "ignore", None  # closed-merged, tag, other-branch, created-pr, created-issue


@pytest.mark.parametrize("allow_forks", [False, True], ids=["forks-ignored", "forks-allowed"])
def test_every_contract_payload_routes_as_its_manifest_kind(allow_forks: bool) -> None:
    assert len(MANIFEST) == 20
    launcher = FakeLauncher()
    app = create_app(secret=SECRET, launcher=launcher, allowlist=ALLOWLIST,
                     allow_forks=allow_forks)
    for receiver in serve(app, launcher):
        for entry in MANIFEST:
            want, parameters = expected(entry, allow_forks=allow_forks)
            before = len(launcher.calls)
            response = receiver.deliver(entry["file"])
            answer = response.json()
            if want == "pong":
                assert (response.status_code, answer) == (200, {"decision": "ignore",
                                                                 "reason": "pong"})
            elif want == "ignore":
                assert response.status_code == 202, entry["file"]
                assert answer["decision"] == "ignore" and answer["reason"]
            else:
                assert response.status_code == 202, (entry["file"], answer)
                decision = launcher.calls[-1]
                assert (decision.deployment, decision.parameters) == (want, parameters)
                assert answer["run_id"] == launcher.runs[decision.idempotency_key or ""]
                assert answer["deployment"] == want
            assert len(launcher.calls) == before + (want not in ("ignore", "pong"))


def test_contract_payloads_match_the_manifest() -> None:
    import hashlib

    names = {p.name for p in CONTRACTS.glob("*.json")} - {"manifest.json"}
    assert names == {entry["file"] for entry in MANIFEST}
    for entry in MANIFEST:
        assert hashlib.sha256(payload(entry["file"])).hexdigest() == entry["sha256"]


# -- signatures ----------------------------------------------------------------------------------


def test_signature_test_vector_from_the_github_docs() -> None:
    secret, body = b"It's a Secret to Everybody", b"Hello, World!"
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_for(secret, body) == header
    verify_signature(secret, body, header)
    for wrong in (None, "", "sha1=" + header[7:], header[:-1] + "0", header + "0", "sha256=",
                  "sha256=ZZ" + header[9:], "sha256=é" + header[8:]):
        with pytest.raises(WebhookError) as caught:
            verify_signature(secret, body, wrong)
        assert caught.value.status_code == 401
    with pytest.raises(WebhookError):
        verify_signature(secret, body + b" ", header)


@pytest.mark.parametrize("variant", ["missing", "wrong-secret", "tampered-body", "sha1-only",
                                     "garbage"])
def test_bad_signature_is_401_and_launches_nothing(receiver: Receiver, variant: str) -> None:
    body = payload("pull_request.opened.1.json")
    sent = headers(body, "pull_request")
    if variant == "missing":
        del sent["X-Hub-Signature-256"]
    elif variant == "wrong-secret":
        sent["X-Hub-Signature-256"] = signature_for(b"another-secret", body)
    elif variant == "tampered-body":
        body = body.replace(b'"opened"', b'"reopened"', 1)
    elif variant == "sha1-only":
        sent["X-Hub-Signature"] = "sha1=" + sent.pop("X-Hub-Signature-256")[7:47]
    else:
        sent["X-Hub-Signature-256"] = "sha256=not-hex"
    response = httpx.post(f"{receiver.url}/webhooks/github", content=body, headers=sent)
    assert response.status_code == 401
    assert receiver.launcher.calls == []


def test_signature_is_checked_before_anything_else(receiver: Receiver) -> None:
    response = httpx.post(f"{receiver.url}/webhooks/github", content=b"not json",
                          headers={"X-Hub-Signature-256": "sha256=00"})
    assert response.status_code == 401  # not 400: unsigned input is not even parsed


# -- idempotency ---------------------------------------------------------------------------------


def test_redeliveries_and_duplicate_events_start_one_run(receiver: Receiver) -> None:
    delivery = str(uuid.uuid4())
    answers = [receiver.deliver("pull_request.opened.1.json", delivery=delivery),
               receiver.deliver("pull_request.opened.1.json", delivery=delivery),   # redelivery
               receiver.deliver("pull_request.opened.2.json"),    # same PR, same head
               receiver.deliver("pull_request.synchronize.1.json")]  # same head sha again
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert len(receiver.launcher.runs) == 1

    newer = json.loads(payload("pull_request.synchronize.1.json"))
    newer["pull_request"]["head"]["sha"] = "f" * 40
    answer = receiver.deliver("pull_request.synchronize.1.json",
                              body=json.dumps(newer).encode())
    assert answer.status_code == 202 and answer.json()["run_id"] not in {
        a.json()["run_id"] for a in answers}
    assert len(receiver.launcher.runs) == 2

    pushes = [receiver.deliver("push.default-branch.2.json") for _ in range(2)]
    assert pushes[0].json()["run_id"] == pushes[1].json()["run_id"]
    assert len(receiver.launcher.runs) == 3


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b'"a string"', b"\xff\xfe\x00",
                                  b'{"action": "opened"}', b'{"action": 1, "pull_request": []}',
                                  b"[" * 100_000])
def test_malformed_bodies_are_400(receiver: Receiver, body: bytes) -> None:
    response = receiver.deliver("pull_request.opened.1.json", body=body)
    assert response.status_code == 400
    assert receiver.launcher.calls == []


def test_wrong_field_types_are_400(receiver: Receiver) -> None:
    data = json.loads(payload("push.default-branch.2.json"))
    data["after"] = "; rm -rf /"
    assert receiver.deliver("push.default-branch.2.json",
                            body=json.dumps(data).encode()).status_code == 400
    data = json.loads(payload("pull_request.opened.1.json"))
    data["pull_request"]["head"]["sha"] = 12
    assert receiver.deliver("pull_request.opened.1.json",
                            body=json.dumps(data).encode()).status_code == 400
    assert receiver.launcher.calls == []


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_event_or_delivery_header_is_400(receiver: Receiver, missing: str) -> None:
    body = payload("push.default-branch.1.json")
    sent = headers(body, "push")
    del sent[missing]
    response = httpx.post(f"{receiver.url}/webhooks/github", content=body, headers=sent)
    assert response.status_code == 400
    assert receiver.launcher.calls == []


def test_repository_not_on_the_allowlist_is_403() -> None:
    launcher = FakeLauncher()
    app = create_app(secret=SECRET, launcher=launcher, allowlist=["octo-org/infra"])
    for receiver in serve(app, launcher):
        response = receiver.deliver("push.default-branch.1.json")
        assert response.status_code == 403
        assert "Codertocat/Hello-World" in response.json()["error"]
        assert receiver.deliver("ping.1.json").status_code == 200  # ping answers anyway
    assert launcher.calls == []


def test_oversize_body_is_413_by_content_length_and_while_streaming() -> None:
    launcher = FakeLauncher()
    app = create_app(secret=SECRET, launcher=launcher, allowlist=ALLOWLIST, max_body_bytes=4096)
    for receiver in serve(app, launcher):
        big = payload("push.default-branch.1.json")
        assert len(big) > 4096
        assert receiver.deliver("push.default-branch.1.json").status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
            for start in range(0, len(big), 1024):
                yield big[start:start + 1024]

        response = httpx.post(f"{receiver.url}/webhooks/github", content=chunks(),
                              headers=headers(big, "push"))
        assert response.status_code == 413
        assert receiver.deliver("ping.2.json").status_code == 200  # 2,768 bytes: fits
    assert launcher.calls == []


def test_launcher_failure_is_503_with_a_safe_message() -> None:
    launcher = FakeLauncher(fail=True)
    app = create_app(secret=SECRET, launcher=launcher, allowlist=ALLOWLIST)
    for receiver in serve(app, launcher):
        response = receiver.deliver("push.default-branch.2.json")
        assert response.status_code == 503
        assert "hunter2" not in response.text and "Prefect" not in response.text
    assert len(launcher.calls) == 1


def test_healthz_and_methods(receiver: Receiver) -> None:
    assert httpx.get(f"{receiver.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{receiver.url}/webhooks/github").status_code == 405


def test_create_app_refuses_an_empty_secret_or_allowlist() -> None:
    with pytest.raises(ValueError, match="secret"):
        create_app(secret=b"", launcher=FakeLauncher(), allowlist=ALLOWLIST)
    with pytest.raises(ValueError, match="allowlist"):
        create_app(secret=SECRET, launcher=FakeLauncher(), allowlist=[" "])
    with pytest.raises(TypeError):
        create_app(secret=SECRET, launcher=FakeLauncher(), allowlist="octo-org/infra")


# -- routing rules (pure) ------------------------------------------------------------------------


def parsed(name: str, **changes: Any) -> Any:
    return _edited(json.loads(payload(name)), name, changes)


def _edited(data: dict, name: str, changes: dict[str, Any]) -> Any:
    """``data`` with ``a__b=value`` changes applied, parsed as the event ``name`` names."""
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = data
        for key in parents:
            target = target[key]
        target[leaf] = value
    return parse_event(name.split(".")[0], json.dumps(data).encode())


def decide(event: Any, **kwargs: Any) -> Any:
    return route(event, delivery_id="d-1", allowlist=ALLOWLIST, **kwargs)


def test_push_rules() -> None:
    deleted = parsed("push.default-branch.2.json", deleted=True, after="0" * 40)
    assert decide(deleted).reason.startswith("branch deleted")
    other = parsed("push.other-branch.1.json")
    assert isinstance(other, PushEvent)
    assert decide(other).decision == "ignore"
    anywhere = decide(other, default_branch_only=False)
    assert (anywhere.decision, anywhere.parameters["ref"]) == ("run",
                                                                "refs/heads/bkeepers-patch-3")
    tag = parsed("push.tag.2.json")
    assert decide(tag, default_branch_only=False).reason.startswith("tag push")


def test_pull_request_rules() -> None:
    labeled = parsed("pull_request.opened.1.json", action="labeled")
    assert decide(labeled).decision == "ignore"
    deleted_fork = parsed("pull_request.opened.1.json", pull_request__head__repo=None)
    assert isinstance(deleted_fork, PullRequestEvent) and deleted_fork.from_fork
    assert decide(deleted_fork).decision == "ignore"
    assert decide(deleted_fork, allow_forks=True).decision == "run"
    other_base = parsed("pull_request.opened.1.json",
                        pull_request__base__repo__full_name="Codertocat/Upstream",
                        pull_request__base__repo__id=1)
    assert decide(other_base).decision == "ignore"
    merged = decide(parsed("pull_request.closed-merged.1.json"))
    assert (merged.decision, merged.deployment) == ("ignore", None)
    assert "push to the default branch" in merged.reason
    reopened = decide(parsed("pull_request.opened.1.json", action="reopened"))
    opened = decide(parsed("pull_request.opened.1.json"))
    assert reopened.idempotency_key == opened.idempotency_key
    assert opened.delivery_id == "d-1"


def test_ping_pongs_and_unknown_events_are_ignored() -> None:
    ping = parse_event("ping", payload("ping.2.json"))
    assert isinstance(ping, PingEvent)
    assert route(ping, delivery_id="d", allowlist=frozenset()).reason == "pong"
    other = parse_event("release", payload("push.tag.1.json"))
    assert isinstance(other, UnhandledEvent)
    assert decide(other).decision == "ignore"
    org_level = parse_event("membership", payload("ping.2.json"))  # no "repository" key
    assert decide(org_level).decision == "ignore"
    with pytest.raises(WebhookError) as caught:
        parse_event("", payload("ping.1.json"))
    assert caught.value.status_code == 400


# -- fuzz ----------------------------------------------------------------------------------------

_BASES = [(entry["x_github_event"], payload(entry["file"])) for entry in MANIFEST]
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=6)


# Printable ASCII without surrounding whitespace: what an HTTP client can send at all.
_header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                         max_size=80).map(str.strip)


def _paths(value: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[Any, ...]]:
    if depth > 3:
        return []
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else [])
    for key, child in items:
        found.append(prefix + (key,))
        found.extend(_paths(child, prefix + (key,), depth + 1))
    return found


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[bytes, dict[str, str], bool]:
    """(body, headers, signed with the right secret)."""
    event, body = draw(st.sampled_from(_BASES))
    mutation = draw(st.sampled_from(["none", "field", "delete", "bytes", "truncate", "random"]))
    if mutation in ("field", "delete"):
        data = json.loads(body)
        path = draw(st.sampled_from(_paths(data)))
        target = data
        for key in path[:-1]:
            target = target[key]
        if mutation == "delete":
            del target[path[-1]]
        else:
            target[path[-1]] = draw(_json_values)
        body = json.dumps(data).encode()
    elif mutation == "bytes":
        position = draw(st.integers(0, len(body) - 1))
        body = body[:position] + draw(st.binary(min_size=1, max_size=4)) + body[position + 1:]
    elif mutation == "truncate":
        body = body[:draw(st.integers(0, len(body)))]
    elif mutation == "random":
        body = draw(st.binary(max_size=64))
    event = draw(st.sampled_from([event, event, "pull_request", "push", "ping", "issue_comment",
                                  "", "PUSH", "release", "x" * 80]))
    sent = headers(body, event, delivery=str(draw(st.uuids())))
    signing = draw(st.sampled_from(["valid", "valid", "valid", "missing", "wrong", "garbage",
                                    "upper", "prefix"]))
    if signing == "missing":
        del sent["X-Hub-Signature-256"]
    elif signing == "wrong":
        sent["X-Hub-Signature-256"] = signature_for(b"wrong", body)
    elif signing == "garbage":
        sent["X-Hub-Signature-256"] = draw(_header_values)
    elif signing == "upper":
        sent["X-Hub-Signature-256"] = sent["X-Hub-Signature-256"].upper()
    elif signing == "prefix":
        sent["X-Hub-Signature-256"] = sent["X-Hub-Signature-256"][:-2]
    if draw(st.booleans()):
        sent["X-GitHub-Delivery"] = draw(_header_values)
    return body, sent, signing == "valid"


@dataclass
class InProcessReceiver:
    """The app called in-process through httpx's ASGI transport (fast enough for 2,000 cases)."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    launcher: FakeLauncher

    def post(self, body: bytes, sent: dict[str, str]) -> httpx.Response:
        return self.loop.run_until_complete(
            self.client.post("/webhooks/github", content=body, headers=sent))


@pytest.fixture(scope="module")
def fuzz_receiver() -> Iterator[InProcessReceiver]:
    launcher = FakeLauncher()
    app = create_app(secret=SECRET, launcher=launcher, allowlist=ALLOWLIST, max_body_bytes=40_000)
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                               base_url="http://receiver.test")
    try:
        yield InProcessReceiver(loop, client, launcher)
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.data_too_large])
@given(delivery=deliveries())
def test_fuzz_never_5xx_and_never_launches_unsigned(
        fuzz_receiver: InProcessReceiver,
        delivery: tuple[bytes, dict[str, str], bool]) -> None:
    launcher = fuzz_receiver.launcher
    body, sent, signed = delivery
    before = len(launcher.calls)
    response = fuzz_receiver.post(body, sent)
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, response.text
    if not signed:
        assert response.status_code == 401
        assert len(launcher.calls) == before
    if len(launcher.calls) > before:
        assert response.status_code == 202 and response.json()["decision"] == "run"


# -- deliveries beyond the contract set (tests/fixtures/github/SOURCES.md) ------------------------

MORE = Path(__file__).resolve().parent / "fixtures" / "github"
MORE_REPOS = frozenset({"runatlantis/atlantis-tests", "Codertocat/Hello-World",
                        "company-company/acme-rest-api-framework", "mhart/test-ci-project"})


def more(name: str, **changes: Any) -> Any:
    return _edited(json.loads((MORE / name).read_bytes()), name, changes)


def decide_more(event: Any, **kwargs: Any) -> Any:
    return route(event, delivery_id="d-2", allowlist=MORE_REPOS, **kwargs)


def test_a_pull_request_inside_a_repository_that_is_a_fork_is_planned() -> None:
    """head.repo.fork is true because atlantis-tests is a fork of another repository; the PR
    itself is between two branches of that one repository."""
    opened = more("pull_request.opened.repo-is-a-fork.json")
    assert not opened.from_fork
    decision = decide_more(opened)
    assert (decision.decision, decision.deployment) == ("run", PR_PLAN_DEPLOYMENT)
    assert decision.parameters["head_sha"] == "c31fd9ea6f557ad2ea659944c3844a059b83bc5d"
    closed = decide_more(more("pull_request.closed.repo-is-a-fork.json"))
    assert (closed.decision, closed.deployment) == ("run", PR_CLOSED_DEPLOYMENT)


def test_a_pull_request_from_another_repository_is_a_fork_whatever_its_fork_flag() -> None:
    real_fork = parse_event("pull_request", payload("pull_request.opened.3.json"))  # KaTeX-bot
    assert real_fork.from_fork and decide(real_fork).decision == "ignore"
    unflagged = parsed("pull_request.opened.3.json", pull_request__head__repo__fork=False)
    assert unflagged.from_fork and decide(unflagged).decision == "ignore"


_repo_ids = st.none() | st.integers(1, 5)
_repo_names = st.sampled_from(["runatlantis/atlantis-tests", "RunAtlantis/Atlantis-Tests",
                               "someone/atlantis-tests"])


@settings(max_examples=300, deadline=None)
@given(head=st.none() | st.tuples(_repo_ids, _repo_names),
       base=st.none() | st.tuples(_repo_ids, _repo_names), top_id=_repo_ids)
def test_fork_rule_holds_for_every_shape_of_head_and_base(
        head: tuple[int | None, str] | None, base: tuple[int | None, str] | None,
        top_id: int | None) -> None:
    """head/base repositories present or null, with or without ids, same or other name: a PR
    is from a fork exactly when its head repository is missing or is not the base repository
    (ids decide when both are known, else names without case); `fork` flags never matter."""
    data = json.loads((MORE / "pull_request.opened.repo-is-a-fork.json").read_bytes())
    pr = data["pull_request"]
    for side, value in (("head", head), ("base", base)):
        if value is None:
            pr[side]["repo"] = None
        else:
            pr[side]["repo"]["id"], pr[side]["repo"]["full_name"] = value
            pr[side]["repo"]["fork"] = True
    data["repository"]["id"] = top_id
    event = parse_event("pull_request", json.dumps(data).encode())
    base_id = base[0] if base is not None else top_id
    base_name = base[1] if base is not None else data["repository"]["full_name"]
    if head is None:
        expected = True
    elif head[0] is not None and base_id is not None:
        expected = head[0] != base_id
    else:
        expected = head[1].lower() != base_name.lower()
    assert event.from_fork is expected
    assert decide_more(event).decision == ("ignore" if expected else "run")
    assert decide_more(event, allow_forks=True).decision == "run"


def test_ready_for_review_plans_the_head_once() -> None:
    ready = decide_more(more("pull_request.ready_for_review.json"))
    opened = decide(parse_event("pull_request", payload("pull_request.opened.1.json")))
    assert (ready.decision, ready.deployment) == ("run", PR_PLAN_DEPLOYMENT)
    assert ready.reason == "pull request #2 ready for review"
    # the same head was planned when it was pushed as a draft: the same run, not a second one
    assert ready.idempotency_key == opened.idempotency_key


@pytest.mark.parametrize(("name", "words"), [
    ("pull_request.converted_to_draft.json", "converted to draft"),
    ("pull_request.labeled.json", "'labeled' does not change the code"),
    ("pull_request.edited-title.json", "edited (title or body)"),
])
def test_pull_request_actions_that_change_no_code_are_ignored_with_a_reason(
        name: str, words: str) -> None:
    decision = decide_more(more(name))
    assert decision.decision == "ignore" and words in decision.reason


def test_a_base_branch_change_plans_again() -> None:
    event = more("pull_request.edited-base.json")
    decision = decide_more(event)
    assert (decision.decision, decision.deployment) == ("run", PR_PLAN_DEPLOYMENT)
    assert decision.parameters["base_ref"] == event.base_ref == "4.3"  # was develop
    assert decision.reason.endswith("base branch changed")
    synchronize_key = (f"{PR_PLAN_DEPLOYMENT}:company-company/acme-rest-api-framework"
                       f"#{event.number}@{event.head_sha}")
    assert decision.idempotency_key == synchronize_key + ":base-edited:d-2"  # not the old run


@pytest.mark.parametrize("default_branch_only", [True, False])
def test_a_push_that_deletes_a_branch_never_deploys(default_branch_only: bool) -> None:
    deleted = more("push.branch-deleted.json")
    assert deleted.deleted and deleted.forced
    assert decide_more(deleted, default_branch_only=default_branch_only).decision == "ignore"
    on_default = more("push.branch-deleted.json", ref="refs/heads/master")
    decision = decide_more(on_default, default_branch_only=default_branch_only)
    assert decision.decision == "ignore" and decision.reason.startswith("branch deleted")


def test_a_force_push_deploys_its_new_head_even_when_that_was_deployed_before() -> None:
    forced = more("push.forced.json")
    decision = decide_more(forced, default_branch_only=False)
    assert (decision.decision, decision.deployment) == ("run", DEPLOY_MAIN_DEPLOYMENT)
    assert decision.parameters["sha"] == "a0c794a979e29d44b7ef889c12d1703089f3e474"
    assert decision.reason == "force-push to mhart-patch-1 (replacing f5c50fa625e0)"
    ordinary = decide_more(more("push.forced.json", forced=False), default_branch_only=False)
    assert ordinary.idempotency_key != decision.idempotency_key
    assert decide_more(more("push.forced.json"),
                       default_branch_only=False).idempotency_key == decision.idempotency_key


def test_a_pull_request_from_github_enterprise_server_is_planned() -> None:
    event = more("pull_request.opened.ghes-35.json")
    assert not event.from_fork and event.head_repository_id == event.base_repository_id == 118
    assert decide_more(event).decision == "run"


# -- approval comments wake the waiting run ------------------------------------------------------

COMMENT_ON_PR = "issue_comment.created-pr.1.json"  # chhsia0/knative-route-demo, PR #3
FINGERPRINT = "9f2c" * 16


@pytest.mark.parametrize(("body", "command", "environment"), [
    (f"/gitops approve prod {FINGERPRINT}", "approve", "prod"),
    (f"\n  \n   /gitops   approve\tstaging-eu {FINGERPRINT}\nlooks good", "approve", "staging-eu"),
    ("/gitops reject prod", "reject", "prod"),
    ("/gitops reject prod the plan deletes the database", "reject", "prod"),
])
def test_an_approval_command_wakes_the_runs_waiting_for_its_environment(
        body: str, command: str, environment: str) -> None:
    decision = decide(parsed(COMMENT_ON_PR, comment__body=body))
    assert (decision.decision, decision.deployment, decision.delivery_id) == ("wake", None, "d-1")
    assert decision.parameters == {"repository": "chhsia0/knative-route-demo",
                                   "environment": environment, "issue_number": 3,
                                   "comment_id": 546616131, "command": command}
    assert f"/gitops {command} {environment}" in decision.reason


@pytest.mark.parametrize(("body", "words"), [
    ("/build", "no /gitops approve|reject <env> command"),                 # the payload's own
    (f"/gitops merge prod {FINGERPRINT}", "no /gitops approve|reject"),    # unknown command
    (f"/gitops approve Prod {FINGERPRINT}", "no /gitops approve|reject"),  # not an env name
    (f"/gitops approve prod;rm {FINGERPRINT}", "no /gitops approve|reject"),
    (f"/gitops approve {'p' * 32} {FINGERPRINT}", "no /gitops approve|reject"),  # too long
    ("/gitops approve", "no /gitops approve|reject"),
    (f"/gitopsapprove prod {FINGERPRINT}", "no /gitops approve|reject"),
    (f"LGTM\n/gitops approve prod {FINGERPRINT}", "on its first line"),  # not the first line
    ("", "no /gitops approve|reject"),
])
def test_other_comments_are_ignored_with_a_reason(body: str, words: str) -> None:
    decision = decide(parsed(COMMENT_ON_PR, comment__body=body))
    assert decision.decision == "ignore" and words in decision.reason


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_an_edited_or_deleted_approval_comment_never_wakes(action: str) -> None:
    decision = decide(parsed(COMMENT_ON_PR, action=action,
                             comment__body=f"/gitops approve prod {FINGERPRINT}"))
    assert decision.decision == "ignore"
    assert f"{action}: only a new comment wakes" in decision.reason


def test_an_approval_command_on_a_plain_issue_wakes_too() -> None:
    event = parsed("issue_comment.created-issue.1.json", comment__body="/gitops reject prod")
    assert not event.on_pull_request
    decision = decide(event)
    assert (decision.decision, decision.parameters["issue_number"]) == ("wake", 1)


def test_an_approval_command_from_a_repository_off_the_allowlist_is_403() -> None:
    event = parsed(COMMENT_ON_PR, comment__body=f"/gitops approve prod {FINGERPRINT}")
    with pytest.raises(WebhookError) as caught:
        route(event, delivery_id="d-1", allowlist=frozenset({"octo-org/infra"}))
    assert caught.value.status_code == 403


def test_the_app_answers_a_wake_with_the_runs_woken_or_that_nothing_waits() -> None:
    launcher = FakeLauncher(waiting={"prod": ["run-p1", "run-p2"], "staging": ["run-s1"]})
    app = create_app(secret=SECRET, launcher=launcher, allowlist=ALLOWLIST)
    approve = json.loads(payload(COMMENT_ON_PR))
    approve["comment"]["body"] = f"/gitops approve prod {FINGERPRINT}"
    body = json.dumps(approve).encode()
    for receiver in serve(app, launcher):
        woke = receiver.deliver(COMMENT_ON_PR, body=body, delivery="d-wake-1")
        assert woke.status_code == 202, woke.text
        assert woke.json() == {"decision": "wake", "reason": launcher.wake_calls[0].reason,
                               "environment": "prod", "run_ids": ["run-p1", "run-p2"]}
        again = receiver.deliver(COMMENT_ON_PR, body=body, delivery="d-wake-2")
        assert again.status_code == 200
        assert again.json() == {"decision": "wake", "reason": "nothing waits for prod",
                                "environment": "prod", "run_ids": []}
    assert [d.delivery_id for d in launcher.wake_calls] == ["d-wake-1", "d-wake-2"]
    assert launcher.calls == []  # a wake never starts a run


def test_a_wake_the_launcher_cannot_do_is_503_with_a_safe_message() -> None:
    launcher = FakeLauncher(fail=True)
    app = create_app(secret=SECRET, launcher=launcher, allowlist=ALLOWLIST)
    data = json.loads(payload(COMMENT_ON_PR))
    data["comment"]["body"] = "/gitops reject prod"
    for receiver in serve(app, launcher):
        response = receiver.deliver(COMMENT_ON_PR, body=json.dumps(data).encode())
        assert response.status_code == 503
        assert "hunter2" not in response.text and "Prefect" not in response.text
    assert len(launcher.wake_calls) == 1


def test_an_approval_command_on_a_commit_wakes_with_the_commit() -> None:
    """`commit_comment` (a commit no pull request brought): the fields GitHub's "Webhook events
    and payloads" page lists for it (action, comment.id/body/commit_id/user, repository)."""
    from gitops.receiver import CommitCommentEvent, parse_event

    repo = json.loads(payload(COMMENT_ON_PR))["repository"]
    body = json.dumps({"action": "created", "repository": repo, "comment": {
        "id": 77, "body": f"/gitops approve prod {FINGERPRINT}", "commit_id": "ab" * 20,
        "user": {"login": "alice"}}}).encode()
    event = parse_event("commit_comment", body)
    assert isinstance(event, CommitCommentEvent) and event.author == "alice"
    decision = decide(event)
    assert decision.decision == "wake"
    assert decision.parameters == {"repository": "chhsia0/knative-route-demo",
                                   "environment": "prod", "commit": "ab" * 20, "comment_id": 77,
                                   "command": "approve"}
