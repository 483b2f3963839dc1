"""GitHubClient against the GitHub emulator over real HTTP on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from deployments.emulators.github import EmulatorControl, GitHubEmulator
from deployments.emulators.server import BackgroundServer, bind_socket
from gitops.codehost import CodeHost, CommitInfo
from gitops.errors import GitHubError, GitHubUnavailable
from gitops.github import MAX_COMMENT_CHARS, GitHubClient

TOKEN = "ghs_test-token-not-a-secret"
REPO = "octo-org/infra"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
MARKER = "<!-- gitops-flows:pr-plan -->"
REPO_ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """The emulator's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def emulator(clock: Clock) -> GitHubEmulator:
    return GitHubEmulator(token=TOKEN, clock=clock)


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
    assert methods == ["GET", "POST", "GET", "GET", "PATCH"]  # + GET /user: whose comment it is


def test_upsert_never_takes_over_a_comment_someone_else_marked(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    """Anyone can paste the hidden marker into a comment of theirs; it is not ours to edit."""
    emulator.seed_comment(REPO, 8, f"{MARKER}\nfake plan: no changes", login="mallory")
    ours = github.upsert_marked_comment(REPO, 8, f"{MARKER}\nplan: 1 to add", MARKER)
    bodies = [c.body for c in emulator.comments(REPO, 8)]
    assert bodies == [f"{MARKER}\nfake plan: no changes", f"{MARKER}\nplan: 1 to add"]
    assert ours.user_login == emulator.login


def test_upsert_adds_the_marker_and_skips_a_no_op_edit(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    github.upsert_marked_comment(REPO, 3, "no changes", MARKER)
    github.upsert_marked_comment(REPO, 3, "no changes", MARKER)

    assert [c.body for c in emulator.comments(REPO, 3)] == [f"{MARKER}\nno changes"]
    assert [r.method for r in emulator.requests()] == ["GET", "POST", "GET", "GET"]


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
            with EmulatorControl(f"http://127.0.0.1:{port}", TOKEN) as control:
                control.add_user(ALICE, ALICE_TOKEN)
            with GitHubClient.from_token(ALICE_TOKEN,
                                         base_url=f"http://127.0.0.1:{port}") as alice:
                assert alice.authenticated_login() == ALICE
        finally:
            process.terminate()
            process.wait(timeout=10)


# -- approvals: the routes behind CodeHost ------------------------------------------------------

ALICE, BOB = "alice", "bob-reviewer"
ALICE_TOKEN, BOB_TOKEN = "ghp_alice-test-token", "ghp_bob-test-token"


@pytest.fixture()
def users(emulator: GitHubEmulator) -> GitHubEmulator:
    emulator.add_user(ALICE, ALICE_TOKEN, email="alice@example.org")
    emulator.add_user(BOB, BOB_TOKEN, email="bob@example.org")
    return emulator


def client_for(server: BackgroundServer, token: str) -> GitHubClient:
    return GitHubClient.from_token(token, base_url=server.url, timeout=5.0)


def test_github_client_is_a_code_host(github: GitHubClient) -> None:
    assert isinstance(github, CodeHost)


def test_comments_record_their_author_and_utc_timestamps(
        server: BackgroundServer, users: GitHubEmulator, clock: Clock,
        github: GitHubClient) -> None:
    with client_for(server, ALICE_TOKEN) as alice:
        posted = alice.create_comment(REPO, 12, "/gitops approve prod abc123")

    fetched = github.get_comment(REPO, posted.id)
    assert fetched.user_login == ALICE
    assert fetched.created_at == fetched.updated_at == clock.now
    assert fetched.created_at is not None and fetched.created_at.utcoffset() == timedelta(0)
    assert [c.user_login for c in github.list_comments(REPO, 12)] == [ALICE]


def test_an_edited_comment_shows_a_later_updated_at(
        server: BackgroundServer, users: GitHubEmulator, clock: Clock,
        github: GitHubClient) -> None:
    created = clock.now
    with client_for(server, ALICE_TOKEN) as alice:
        posted = alice.create_comment(REPO, 12, "/gitops approve dev abc123")
        clock.now = created + timedelta(minutes=5)
        alice.update_comment(REPO, posted.id, "/gitops approve prod abc123")

    edited = github.get_comment(REPO, posted.id)
    assert (edited.body, edited.created_at, edited.updated_at) == (
        "/gitops approve prod abc123", created, created + timedelta(minutes=5))


def test_only_the_author_may_edit_a_comment(
        server: BackgroundServer, users: GitHubEmulator, github: GitHubClient) -> None:
    with client_for(server, ALICE_TOKEN) as alice:
        posted = alice.create_comment(REPO, 12, "/gitops approve prod abc123")
    with client_for(server, BOB_TOKEN) as bob, pytest.raises(GitHubError) as caught:
        bob.update_comment(REPO, posted.id, "/gitops approve prod f00d")
    assert caught.value.status_code == 403
    with pytest.raises(GitHubError) as by_bot:
        github.update_comment(REPO, posted.id, "rewritten by the bot")
    assert by_bot.value.status_code == 403
    assert github.get_comment(REPO, posted.id).body == "/gitops approve prod abc123"


def test_get_comment_of_another_repository_is_a_404(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    seeded = emulator.seed_comment(REPO, 1, "hello")
    with pytest.raises(GitHubError) as caught:
        github.get_comment("octo-org/other", seeded.id)
    assert caught.value.status_code == 404


def test_commit_comments_are_posted_listed_and_paginated(
        server: BackgroundServer, users: GitHubEmulator, github: GitHubClient,
        clock: Clock) -> None:
    for i in range(120):
        github.create_commit_comment(REPO, SHA, f"note {i}")
    with client_for(server, BOB_TOKEN) as bob:
        approval = bob.create_commit_comment(REPO, SHA, "/gitops approve prod abc123")

    listed = github.list_commit_comments(REPO, SHA)
    assert [c.body for c in listed] == [f"note {i}" for i in range(120)] + [approval.body]
    assert (listed[-1].user_login, listed[-1].created_at) == (BOB, clock.now)
    assert listed[0].user_login == "gitops-flows[bot]"
    pages = [r for r in users.requests() if r.method == "GET"]
    assert len(pages) == 2
    assert github.list_commit_comments(REPO, "0" * 40) == []
    assert github.list_comments(REPO, 1) == []  # commit comments are not issue comments


def git(repo: Path, *args: str, author: tuple[str, str], committer: tuple[str, str]) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
           "GIT_COMMITTER_NAME": committer[0], "GIT_COMMITTER_EMAIL": committer[1],
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo)}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def git_repo(tmp_path: Path) -> tuple[Path, str, str]:
    """A real repository: one commit by Alice (committed by Bob), one by an unknown address."""
    repo = tmp_path / "infra"
    repo.mkdir()
    alice, bob = ("Alice", "Alice@Example.org"), ("Bob", "bob@example.org")
    stranger = ("Mallory", "mallory@elsewhere.invalid")
    git(repo, "init", "-q", "-b", "main", author=alice, committer=alice)
    (repo / "main.tf").write_text("# one\n")
    git(repo, "add", "main.tf", author=alice, committer=alice)
    git(repo, "commit", "-q", "-m", "first", author=alice, committer=bob)
    first = git(repo, "rev-parse", "HEAD", author=alice, committer=alice)
    (repo / "main.tf").write_text("# two\n")
    git(repo, "commit", "-q", "-am", "second", author=stranger, committer=stranger)
    second = git(repo, "rev-parse", "HEAD", author=alice, committer=alice)
    return repo, first, second


def test_get_commit_reads_a_real_git_repository_and_maps_emails_to_logins(
        users: GitHubEmulator, github: GitHubClient, git_repo: tuple[Path, str, str]) -> None:
    repo_dir, first, second = git_repo
    users.attach_git(REPO, repo_dir)

    assert github.get_commit(REPO, first) == CommitInfo(sha=first, author_login=ALICE,
                                                        committer_login=BOB)
    assert github.get_commit(REPO, second) == CommitInfo(sha=second, author_login=None,
                                                         committer_login=None)
    assert github.get_commit(REPO, "main").sha == second
    with pytest.raises(GitHubError) as caught:
        github.get_commit(REPO, "f" * 40)
    assert caught.value.status_code == 422
    assert f"No commit found for SHA: {'f' * 40}" in str(caught.value)
    with pytest.raises(GitHubError) as unattached:
        github.get_commit("octo-org/no-git", first)
    assert unattached.value.status_code == 404


def test_pulls_for_commit_find_the_pull_by_head_or_merge_commit(
        users: GitHubEmulator, github: GitHubClient) -> None:
    head, merge = "a" * 40, "b" * 40
    users.add_pull(REPO, 5, ALICE, head_sha=head, merge_commit_sha=merge, merged=True)
    users.add_pull(REPO, 6, BOB, head_sha="c" * 40)

    by_head = github.pulls_for_commit(REPO, head)
    assert by_head == github.pulls_for_commit(REPO, merge)
    assert [(p.number, p.author_login, p.merged, p.state, p.merge_commit_sha) for p in by_head] \
        == [(5, ALICE, True, "closed", merge)]
    assert github.pulls_for_commit(REPO, "d" * 40) == []
    assert github.get_pull(REPO, 6).merged is False
    assert github.get_pull(REPO, 5) == by_head[0]
    with pytest.raises(GitHubError) as caught:
        github.get_pull(REPO, 99)
    assert caught.value.status_code == 404


def test_simple_pulls_carry_no_merged_field_like_github(
        server: BackgroundServer, users: GitHubEmulator) -> None:
    users.add_pull(REPO, 5, ALICE, head_sha="a" * 40, merge_commit_sha="b" * 40, merged=True)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listed = httpx.get(f"{server.url}/repos/{REPO}/commits/{'a' * 40}/pulls", headers=auth).json()
    full = httpx.get(f"{server.url}/repos/{REPO}/pulls/5", headers=auth).json()
    assert "merged" not in listed[0] and listed[0]["merged_at"] is not None
    assert full["merged"] is True and full["user"]["login"] == ALICE


def test_reviews_are_listed_with_pagination_and_posted_with_a_users_token(
        server: BackgroundServer, users: GitHubEmulator, github: GitHubClient,
        clock: Clock) -> None:
    users.add_pull(REPO, 7, ALICE, head_sha="a" * 40)
    for i in range(110):
        users.add_review(REPO, 7, BOB, "COMMENTED", f"nit {i}")
    posted = httpx.post(f"{server.url}/repos/{REPO}/pulls/7/reviews",
                        headers={"Authorization": f"Bearer {BOB_TOKEN}"},
                        json={"event": "APPROVE", "body": "/gitops approve prod abc123"})
    assert posted.status_code == 200

    reviews = github.list_reviews(REPO, 7)
    assert len(reviews) == 111
    last = reviews[-1]
    assert (last.user_login, last.state, last.commit_id, last.submitted_at) == (
        BOB, "APPROVED", "a" * 40, clock.now)
    assert last.id == posted.json()["id"]


def test_an_author_cannot_approve_their_own_pull(
        server: BackgroundServer, users: GitHubEmulator) -> None:
    users.add_pull(REPO, 7, ALICE, head_sha="a" * 40)
    refused = httpx.post(f"{server.url}/repos/{REPO}/pulls/7/reviews",
                         headers={"Authorization": f"Bearer {ALICE_TOKEN}"},
                         json={"event": "APPROVE"})
    assert refused.status_code == 422
    assert refused.json()["errors"] == ["Can not approve your own pull request"]
    pending = httpx.post(f"{server.url}/repos/{REPO}/pulls/7/reviews",
                         headers={"Authorization": f"Bearer {ALICE_TOKEN}"}, json={})
    assert pending.json()["state"] == "PENDING" and "submitted_at" not in pending.json()
    assert [r.state for r in users.reviews(REPO, 7)] == ["PENDING"]


def test_permission_is_read_from_github_and_a_404_means_none(
        users: GitHubEmulator, github: GitHubClient) -> None:
    users.set_permission(REPO, ALICE, "write")
    assert github.permission(REPO, ALICE) == "write"
    assert github.permission(REPO, BOB) == "none"  # a known user without a grant: 200 "none"
    assert github.permission(REPO, "nobody-at-all") == "none"  # 404
    assert github.permission("octo-org/other", ALICE) == "none"
    assert [r.path for r in users.requests()][-2:] == [
        f"/repos/{REPO}/collaborators/nobody-at-all/permission",
        "/repos/octo-org/other/collaborators/alice/permission"]


def test_team_membership_counts_only_when_active(
        users: GitHubEmulator, github: GitHubClient) -> None:
    users.add_team_member("octo-org", "platform", ALICE)
    users.add_team_member("octo-org", "platform", BOB, state="pending")
    assert github.is_team_member("octo-org", "platform", ALICE) is True
    assert github.is_team_member("octo-org", "platform", BOB) is False
    assert github.is_team_member("octo-org", "security", ALICE) is False


def test_authenticated_login_is_the_tokens_account(
        server: BackgroundServer, users: GitHubEmulator, github: GitHubClient) -> None:
    assert github.authenticated_login() == "gitops-flows[bot]"
    with client_for(server, BOB_TOKEN) as bob:
        assert bob.authenticated_login() == BOB


def test_new_routes_keep_auth_and_fault_injection(
        server: BackgroundServer, users: GitHubEmulator, github: GitHubClient) -> None:
    assert httpx.get(f"{server.url}/user").status_code == 401
    with client_for(server, "ghp_unknown") as stranger, pytest.raises(GitHubError) as caught:
        stranger.permission(REPO, ALICE)
    assert caught.value.status_code == 401  # not swallowed as "none"
    users.fail_next(1, status_code=503)
    with pytest.raises(GitHubUnavailable):
        github.is_team_member("octo-org", "platform", ALICE)
    assert github.is_team_member("octo-org", "platform", ALICE) is False


def test_new_methods_refuse_bad_input_before_any_request(
        github: GitHubClient, emulator: GitHubEmulator) -> None:
    for call in (lambda: github.list_commit_comments(REPO, "not-a-sha"),
                 lambda: github.get_commit(REPO, "-n1"),
                 lambda: github.get_commit(REPO, "main..evil"),
                 lambda: github.permission(REPO, "../../user"),
                 lambda: github.is_team_member("octo-org", "a/b", ALICE),
                 lambda: github.get_pull(REPO, 0)):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(GitHubError, match="65536"):
        github.create_commit_comment(REPO, SHA, "x" * (MAX_COMMENT_CHARS + 1))
    assert emulator.requests() == []


def test_control_api_seeds_the_emulator_over_http(
        server: BackgroundServer, emulator: GitHubEmulator, github: GitHubClient,
        git_repo: tuple[Path, str, str]) -> None:
    repo_dir, first, _ = git_repo
    with EmulatorControl(server.url, TOKEN) as control:
        control.add_user(ALICE, ALICE_TOKEN, email="alice@example.org")
        control.set_permission(REPO, ALICE, "admin")
        control.add_team_member("octo-org", "platform", ALICE)
        pull = control.add_pull(REPO, 3, BOB, head_sha=first)
        review = control.add_review(REPO, 3, ALICE, "APPROVED", "ok")
        control.attach_git(REPO, repo_dir)

    assert pull["number"] == 3 and review["state"] == "APPROVED"
    assert github.permission(REPO, ALICE) == "admin"
    assert github.is_team_member("octo-org", "platform", ALICE)
    assert [p.number for p in github.pulls_for_commit(REPO, first)] == [3]
    assert [(r.user_login, r.state) for r in github.list_reviews(REPO, 3)] == [(ALICE, "APPROVED")]
    assert github.get_commit(REPO, first).author_login == ALICE
    with client_for(server, ALICE_TOKEN) as alice:
        assert alice.authenticated_login() == ALICE
    assert not any(r.path.startswith("/_emulator/") for r in emulator.requests())


def test_control_api_takes_only_the_bots_token_and_valid_bodies(
        server: BackgroundServer, users: GitHubEmulator) -> None:
    url = f"{server.url}/_emulator/permissions"
    body = {"repo": REPO, "login": ALICE, "permission": "admin"}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body,
                      headers={"Authorization": f"Bearer {ALICE_TOKEN}"}).status_code == 403
    bad = httpx.post(url, json={**body, "permission": "owner"},
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and "permission" in bad.json()["message"]
    with EmulatorControl(server.url, TOKEN) as control, pytest.raises(httpx.HTTPStatusError):
        control.add_review(REPO, 404, ALICE, "APPROVED")
    users.fail_next(1)
    with EmulatorControl(server.url, TOKEN) as control:  # faults are for the API, not control
        control.set_permission(REPO, ALICE, "read")
