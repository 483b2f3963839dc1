"""GitHubClient against the GitHub emulator over real HTTP on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deployments.emulators.github import GitHubEmulator
from deployments.emulators.server import BackgroundServer, bind_socket
from gitops.errors import GitHubError, GitHubUnavailable
from gitops.github import MAX_COMMENT_CHARS, GitHubClient

TOKEN = "ghs_test-token-not-a-secret"
REPO = "octo-org/infra"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
MARKER = "<!-- gitops-flows:pr-plan -->"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def emulator() -> GitHubEmulator:
    return GitHubEmulator(token=TOKEN)


@pytest.fixture()
def server(emulator: GitHubEmulator) -> Iterator[BackgroundServer]:
    with BackgroundServer(emulator.app) as running:
        yield running


@pytest.fixture()
def github(server: BackgroundServer) -> Iterator[GitHubClient]:
    with GitHubClient.from_token(TOKEN, base_url=server.url, timeout=5.0) as client:
        yield client


# -- comments ------------------------------------------------------------------------------------


def test_upsert_marked_comment_edits_one_comment_in_place(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    emulator.seed_comment(REPO, 7, "LGTM")
    first = github.upsert_marked_comment(REPO, 7, f"{MARKER}\nplan: 1 to add", MARKER)
    second = github.upsert_marked_comment(REPO, 7, f"{MARKER}\nplan: 2 to add", MARKER)

    comments = emulator.comments(REPO, 7)
    assert [c.body for c in comments] == ["LGTM", f"{MARKER}\nplan: 2 to add"]
    assert first.id == second.id == comments[1].id
    methods = [r.method for r in emulator.requests()]
    assert methods == ["GET", "POST", "GET", "PATCH"]


def test_upsert_adds_the_marker_and_skips_a_no_op_edit(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    github.upsert_marked_comment(REPO, 3, "no changes", MARKER)
    github.upsert_marked_comment(REPO, 3, "no changes", MARKER)

    assert [c.body for c in emulator.comments(REPO, 3)] == [f"{MARKER}\nno changes"]
    assert [r.method for r in emulator.requests()] == ["GET", "POST", "GET"]


def test_upsert_edits_the_first_marked_comment_only(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    older = emulator.seed_comment(REPO, 4, f"{MARKER}\nold", login="gitops-flows[bot]")
    emulator.seed_comment(REPO, 4, f"{MARKER}\nduplicate", login="gitops-flows[bot]")

    updated = github.upsert_marked_comment(REPO, 4, f"{MARKER}\nnew", MARKER)

    assert updated.id == older.id
    assert [c.body for c in emulator.comments(REPO, 4)] == [f"{MARKER}\nnew",
                                                            f"{MARKER}\nduplicate"]


def test_comment_limit_is_refused_locally_before_any_request(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    too_long = "x" * (MAX_COMMENT_CHARS + 1)
    with pytest.raises(GitHubError, match="65536"):
        github.create_comment(REPO, 1, too_long)
    with pytest.raises(GitHubError, match="65536"):
        github.upsert_marked_comment(REPO, 1, "x" * MAX_COMMENT_CHARS, MARKER)  # + marker
    assert emulator.requests() == []

    exact = github.create_comment(REPO, 1, "y" * MAX_COMMENT_CHARS)
    assert len(emulator.comments(REPO, 1)[0].body) == MAX_COMMENT_CHARS == len(exact.body)


def test_emulator_answers_422_like_github_when_the_limit_is_bypassed(
        server: BackgroundServer, emulator: GitHubEmulator) -> None:
    response = httpx.post(f"{server.url}/repos/{REPO}/issues/1/comments",
                          json={"body": "x" * (MAX_COMMENT_CHARS + 1)},
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 422
    assert response.json()["message"] == "Validation Failed"
    assert response.json()["errors"] == [{
        "resource": "IssueComment", "code": "custom", "field": "body",
        "message": "body is too long (maximum is 65536 characters)"}]
    assert emulator.comments(REPO, 1) == []


def test_list_comments_follows_link_pagination(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    for i in range(250):
        emulator.seed_comment(REPO, 9, f"comment {i}")
    emulator.seed_comment(REPO, 9, f"{MARKER}\nours", login="gitops-flows[bot]")

    comments = github.list_comments(REPO, 9)
    assert [c.body for c in comments[:250]] == [f"comment {i}" for i in range(250)]
    gets = [r for r in emulator.requests() if r.method == "GET"]
    assert len(gets) == 3 and "per_page=100" in gets[0].query

    github.upsert_marked_comment(REPO, 9, f"{MARKER}\nedited", MARKER)
    assert len(emulator.comments(REPO, 9)) == 251
    assert emulator.comments(REPO, 9)[-1].body == f"{MARKER}\nedited"


def test_pagination_link_to_another_host_is_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=[], headers={
            "Link": '<https://evil.example/repos/o/r/issues/1/comments?page=2>; rel="next"'})

    with GitHubClient.from_token(TOKEN, base_url="https://api.github.com",
                                 transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(GitHubError, match="another host"):
            client.list_comments("o/r", 1)
    assert len(seen) == 1 and seen[0].startswith("https://api.github.com/")


def test_update_of_an_unknown_comment_is_a_404(github: GitHubClient) -> None:
    with pytest.raises(GitHubError) as caught:
        github.update_comment(REPO, 4242, "body")
    assert caught.value.status_code == 404
    assert "Not Found" in str(caught.value)
    assert not isinstance(caught.value, GitHubUnavailable)


# -- statuses ------------------------------------------------------------------------------------


def test_statuses_are_recorded_and_descriptions_trimmed(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    github.create_status(REPO, SHA, "pending", "gitops/plan", "planning",
                         target_url="http://127.0.0.1:4200/runs/1")
    status = github.create_status(REPO, SHA, "success", "gitops/plan", "d" * 500)

    recorded = emulator.statuses(REPO, SHA)
    assert [(s.state, s.context) for s in recorded] == [("pending", "gitops/plan"),
                                                       ("success", "gitops/plan")]
    assert recorded[0].target_url == "http://127.0.0.1:4200/runs/1"
    assert len(recorded[1].description) == 140 == len(status.description)


def test_statuses_are_listed_newest_first_like_github(
        github: GitHubClient, server: BackgroundServer) -> None:
    for state in ("pending", "failure", "success"):
        github.create_status(REPO, SHA, state, "gitops/plan: dev")
    url = f"{server.url}/repos/{REPO}/commits/{SHA}/statuses"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listed = httpx.get(url, headers=auth, params={"per_page": 2})
    assert [s["state"] for s in listed.json()] == ["success", "failure"]
    assert 'rel="next"' in listed.headers["Link"]
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{server.url}/repos/{REPO}/commits/{'0' * 40}/statuses",
                     headers=auth).json() == []


def test_status_state_is_checked_locally(github: GitHubClient) -> None:
    with pytest.raises(ValueError):
        github.create_status(REPO, SHA, "passed", "gitops/plan")  # type: ignore[arg-type]


# -- issues --------------------------------------------------------------------------------------


def test_drift_issue_is_found_updated_and_closed(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    marker = "<!-- gitops-flows:drift:prod -->"
    assert github.find_open_issue(REPO, marker, labels=["drift"]) is None
    created = github.create_issue(REPO, "Drift in prod", f"{marker}\n2 changes", ["drift"])
    github.create_issue(REPO, "Unrelated", "hello", ["bug"])

    found = github.find_open_issue(REPO, marker, labels=["drift"])
    assert found is not None and found.number == created.number
    assert github.find_open_issue(REPO, "Drift in prod") == found

    github.update_issue(REPO, created.number, body=f"{marker}\n3 changes")
    github.update_issue(REPO, created.number, state="closed")
    assert github.find_open_issue(REPO, marker, labels=["drift"]) is None
    stored = {i.number: i for i in emulator.issues(REPO)}[created.number]
    assert (stored.state, stored.body, stored.labels) == ("closed", f"{marker}\n3 changes",
                                                          ("drift",))


def test_validation_errors_carry_githubs_message(github: GitHubClient) -> None:
    with pytest.raises(GitHubError) as caught:
        github.create_issue(REPO, "", "no title")
    assert caught.value.status_code == 422
    assert "Validation Failed" in str(caught.value)


# -- failures ------------------------------------------------------------------------------------


def test_5xx_is_unavailable_and_the_next_call_succeeds(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    emulator.fail_next(2, status_code=503)
    for _ in range(2):
        with pytest.raises(GitHubUnavailable) as caught:
            github.create_comment(REPO, 1, "hello")
        assert caught.value.status_code == 503
    github.create_comment(REPO, 1, "hello")
    assert [c.body for c in emulator.comments(REPO, 1)] == ["hello"]


def test_bad_token_is_a_401_and_the_token_is_not_in_the_message(server: BackgroundServer) -> None:
    wrong = "ghp_wrong-token-value"
    with GitHubClient.from_token(wrong, base_url=server.url) as client:
        with pytest.raises(GitHubError) as caught:
            client.create_comment(REPO, 1, "hello")
    assert caught.value.status_code == 401
    assert "Bad credentials" in str(caught.value)
    assert wrong not in str(caught.value) and TOKEN not in str(caught.value)

    assert httpx.post(f"{server.url}/repos/{REPO}/issues/1/comments",
                      json={"body": "x"}).status_code == 401


def test_connection_refused_is_unavailable() -> None:
    sock = bind_socket()  # bound, never listening: connections are refused
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with GitHubClient.from_token(TOKEN, base_url=url, timeout=2.0) as client:
            with pytest.raises(GitHubUnavailable, match="could not reach GitHub"):
                client.list_comments(REPO, 1)
    finally:
        sock.close()


def test_timeout_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with GitHubClient.from_token(TOKEN, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(GitHubUnavailable, match="timed out"):
            client.create_status(REPO, SHA, "pending", "gitops/plan")


def test_rate_limit_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "API rate limit exceeded"},
                              headers={"x-ratelimit-remaining": "0"})

    with GitHubClient.from_token(TOKEN, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(GitHubUnavailable, match="rate limit"):
            client.create_comment(REPO, 1, "hello")


def test_from_token_sends_a_bearer_token_and_refuses_an_empty_one() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": 1, "body": "hi"})

    with GitHubClient.from_token(TOKEN, transport=httpx.MockTransport(handler)) as client:
        client.create_comment(REPO, 5, "hi")
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert str(seen[0].url) == f"https://api.github.com/repos/{REPO}/issues/5/comments"
    with pytest.raises(ValueError):
        GitHubClient.from_token("  ")


# -- standalone emulator -------------------------------------------------------------------------


def test_emulator_runs_standalone_from_the_command_line() -> None:
    sock = bind_socket()
    port = sock.getsockname()[1]
    sock.close()
    with subprocess.Popen(
            [sys.executable, "-m", "deployments.emulators.github", "--port", str(port),
             "--token", TOKEN],
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    with GitHubClient.from_token(TOKEN,
                                                 base_url=f"http://127.0.0.1:{port}") as client:
                        comment = client.create_comment(REPO, 1, "from the CLI")
                    break
                except GitHubUnavailable:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            assert comment.id == 1
        finally:
            process.terminate()
            process.wait(timeout=10)
