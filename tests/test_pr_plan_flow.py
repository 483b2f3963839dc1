"""End to end on the sandbox: signed GitHub deliveries → the webhook receiver → the pr-plan flow
(run in-process by a test launcher) → real git, terraform, moto, Prefect → a GitHub emulator.

Each test gets its own GitHub emulator in this process (same token as the sandbox's), so it reads
only the comments and statuses it caused; GITOPS_GITHUB_API_URL points the flows at it for the
test only.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.sandbox.launcher import SandboxState
from deployments.emulators.github import GitHubEmulator
from deployments.emulators.server import BackgroundServer
from gitops.git import commit_all, run_git
from gitops.codehost import Comment
from gitops.pr_report import MARKER
from gitops.receiver import (
    DEPLOY_MAIN_DEPLOYMENT,
    PR_CLOSED_DEPLOYMENT,
    PR_PLAN_DEPLOYMENT,
    Decision,
    create_app,
    signature_for,
)
from tests.infra_repo import InfraRepo

pytestmark = pytest.mark.slow

CONTRACTS = Path(__file__).resolve().parent / "contracts" / "github"
REPO = "acme/infrastructure"  # GITOPS_REPOSITORY in the sandbox


class InProcessLauncher:
    """A `gitops.receiver.Launcher` that runs the PR flows right here (no worker) and only records
    what it would start for other deployments."""

    def __init__(self) -> None:
        self.calls: list[Decision] = []
        self.states: list[Any] = []
        self._lock = threading.Lock()

    def launch(self, decision: Decision) -> str:
        """Run pr-plan / pr-closed to completion; return the flow run id."""
        from flows.pr_plan import pr_closed, pr_plan

        with self._lock:
            self.calls.append(decision)
        flows = {PR_PLAN_DEPLOYMENT: pr_plan, PR_CLOSED_DEPLOYMENT: pr_closed}
        if decision.deployment not in flows:
            return f"recorded-{uuid.uuid4()}"
        state = flows[decision.deployment](**decision.parameters, return_state=True)
        with self._lock:
            self.states.append(state)
        return str(state.state_details.flow_run_id)

    def wake(self, decision: Decision) -> list[str]:
        """Record the call; no PR flow waits for an approval, so nothing is woken."""
        with self._lock:
            self.calls.append(decision)
        return []


@dataclass
class Receiver:
    url: str
    secret: bytes
    launcher: InProcessLauncher

    def deliver(self, event: str, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        return httpx.post(f"{self.url}/webhooks/github", content=body, timeout=300, headers={
            "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature_for(self.secret, body),
            "Content-Type": "application/json"})


@pytest.fixture()
def github(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubEmulator]:
    token = SandboxState.load(sandbox.state_file).tokens["github"]
    emulator = GitHubEmulator(token=token)
    with BackgroundServer(emulator.app) as server:
        monkeypatch.setenv("GITOPS_GITHUB_API_URL", server.url)
        yield emulator


@pytest.fixture()
def receiver(github: GitHubEmulator) -> Iterator[Receiver]:
    secret = secrets.token_bytes(16)
    launcher = InProcessLauncher()
    app = create_app(secret=secret, launcher=launcher, allowlist=[REPO])
    with BackgroundServer(app) as server:
        yield Receiver(server.url, secret, launcher)


@pytest.fixture()
def infra(sandbox: Any, tmp_path: Path) -> InfraRepo:
    return InfraRepo(os.environ["GITOPS_REPOSITORY_URL"], tmp_path / "infra")


def push_branch(infra: InfraRepo, branch: str, message: str) -> str:
    sha = commit_all(infra.path, message, author="Dev Eloper", email="dev@example.com")
    run_git(["push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}"], cwd=infra.path)
    return sha


def pull_request(kind: str, *, number: int, head_sha: str, branch: str) -> dict[str, Any]:
    """A GitHub example payload, rewritten to this repository, PR and commit."""
    data = json.loads((CONTRACTS / f"pull_request.{kind}.1.json").read_text())
    data["number"] = number
    data["repository"].update(full_name=REPO, name="infrastructure", default_branch="main")
    pr = data["pull_request"]
    pr["number"] = number
    pr["head"].update(sha=head_sha, ref=branch)
    pr["base"]["ref"] = "main"
    for side in ("head", "base"):
        pr[side]["repo"].update(full_name=REPO, fork=False, default_branch="main")
    return data


def plan_comments(github: GitHubEmulator, number: int) -> list[Comment]:
    return [c for c in github.comments(REPO, number) if MARKER in c.body]


def statuses(github: GitHubEmulator, sha: str) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for status in github.statuses(REPO, sha):
        found.setdefault(status.context, []).append((status.state, status.description))
    return found


def artifact_markdown(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return str(found[0].data)


def test_pull_request_plans_affected_environments_into_one_comment(receiver, github, infra):
    infra.add_environment("pr-a")
    infra.add_environment("pr-b")
    base = infra.push("Add the pr-a and pr-b environments")
    run_git(["checkout", "--quiet", "-b", "feature/scale"], cwd=infra.path)

    # 1. opened: only pr-a changes.
    infra.set_var("pr-a", "replicas", "3")
    first = push_branch(infra, "feature/scale", "Scale pr-a")
    answer = receiver.deliver("pull_request", pull_request("opened", number=101, head_sha=first,
                                                           branch="feature/scale"))
    assert answer.status_code == 202, answer.text
    assert receiver.launcher.states[-1].is_completed(), receiver.launcher.states[-1].message

    comments = plan_comments(github, 101)
    assert len(comments) == 1
    body = comments[0].body
    assert body.startswith(MARKER) and "| Environment |" in body and first[:12] in body
    assert "`pr-a`" in body and "`pr-b`" not in body
    assert "/artifacts/artifact/" in body  # the full plan is linked
    # A new environment: everything is created.
    assert statuses(github, first) == {
        "gitops/plan: pr-a": [("pending", "planning…"),
                              ("success", "4 to add, 0 to change, 0 to destroy, 0 to replace")]}
    report = receiver.launcher.states[-1].result()
    assert [e.env for e in report.environments] == ["pr-a"] and report.passed

    # 2. synchronize: pr-b gets an empty Owner (tag policy): same comment, edited in place.
    infra.set_var("pr-b", "owner", '""')
    second = push_branch(infra, "feature/scale", "Clear pr-b's owner")
    answer = receiver.deliver("pull_request", pull_request(
        "synchronize", number=101, head_sha=second, branch="feature/scale"))
    assert answer.status_code == 202, answer.text

    comments = plan_comments(github, 101)
    assert len(comments) == 1 and comments[0].id == report.comment_id
    body = comments[0].body
    assert second[:12] in body and "`pr-a`" in body and "`pr-b`" in body
    assert "violation" in body
    got = statuses(github, second)
    assert set(got) == {"gitops/plan: pr-a", "gitops/plan: pr-b"}
    assert [s for s, _ in got["gitops/plan: pr-a"]] == ["pending", "success"]
    assert [s for s, _ in got["gitops/plan: pr-b"]] == ["pending", "failure"]
    assert got["gitops/plan: pr-b"][-1][1].startswith("tag policy:")

    # Sensitive values appear nowhere: not in the comment, not in the artifacts.
    for env in ("pr-a", "pr-b"):
        password = f"test-db-password-{env}"
        assert password not in body
        assert password not in artifact_markdown(f"pr-101-plan-{env}")

    # 3. closed without merge: the comment says the plans were discarded.
    answer = receiver.deliver("pull_request", pull_request(
        "closed-unmerged", number=101, head_sha=second, branch="feature/scale"))
    assert answer.status_code == 202, answer.text
    comments = plan_comments(github, 101)
    assert len(comments) == 1 and "closed without merging" in comments[0].body

    # 4. a push to main starts deploy-main/deploy-main with the commit.
    push = json.loads((CONTRACTS / "push.default-branch.1.json").read_text())
    push.update(ref="refs/heads/main", before=base, after=second)
    push["repository"].update(full_name=REPO, default_branch="main", master_branch="main")
    answer = receiver.deliver("push", push)
    assert answer.status_code == 202, answer.text
    started = receiver.launcher.calls[-1]
    assert started.deployment == DEPLOY_MAIN_DEPLOYMENT
    assert started.parameters == {"repository": REPO, "sha": second, "ref": "refs/heads/main"}


def test_pull_request_touching_no_environment_says_so_without_statuses(receiver, github, infra):
    run_git(["checkout", "--quiet", "-b", "docs/readme"], cwd=infra.path)
    (infra.path / "README.md").write_text("How this repository works.\n")
    (infra.path / ".github").mkdir(exist_ok=True)
    (infra.path / ".github" / "CODEOWNERS").write_text("* @acme/platform\n")
    sha = push_branch(infra, "docs/readme", "Docs only")

    answer = receiver.deliver("pull_request", pull_request("opened", number=102, head_sha=sha,
                                                           branch="docs/readme"))
    assert answer.status_code == 202, answer.text
    comments = plan_comments(github, 102)
    assert len(comments) == 1
    assert "No environment is affected" in comments[0].body
    assert "`README.md`" in comments[0].body
    assert github.statuses(REPO, sha) == []


def test_an_environment_whose_config_does_not_load_fails_its_status(receiver, github, infra):
    run_git(["checkout", "--quiet", "-b", "feature/broken-env"], cwd=infra.path)
    folder = infra.path / "terraform" / "environments" / "pr-bad"
    folder.mkdir(parents=True)
    (folder / "environment.toml").write_text('stack = "terraform/stacks/sandbox"\nnot_a_setting = 1\n')
    sha = push_branch(infra, "feature/broken-env", "Add a broken environment")

    answer = receiver.deliver("pull_request", pull_request("opened", number=103, head_sha=sha,
                                                           branch="feature/broken-env"))
    assert answer.status_code == 202, answer.text
    state = receiver.launcher.states[-1]
    assert state.is_completed(), state.message  # a bad environment is an outcome, not a crash
    got = statuses(github, sha)
    assert [s for s, _ in got["gitops/plan: pr-bad"]] == ["pending", "failure"]
    assert got["gitops/plan: pr-bad"][-1][1].startswith("not planned: configuration does not load")
    (comment,) = plan_comments(github, 103)
    assert "`pr-bad`" in comment.body and "❌ error" in comment.body


def test_broken_tfvars_and_a_held_lock_are_reported_per_environment(receiver, github, infra,
                                                                    sandbox):
    """One environment's tfvars do not parse, another's state is locked, a third plans fine: each
    gets its own row and status, and the run still ends with one comment."""
    from deployments.sandbox.launcher import SANDBOX_BACKEND

    for env in ("pr-tfv", "pr-lck", "pr-ok"):
        infra.add_environment(env)
    toml = infra.path / "terraform/environments/pr-lck/environment.toml"
    toml.write_text(toml.read_text().replace("lock_timeout_seconds = 30",
                                             "lock_timeout_seconds = 2"))
    infra.push("Add pr-tfv, pr-lck and pr-ok")
    run_git(["checkout", "--quiet", "-b", "feature/three"], cwd=infra.path)
    tfvars = infra.path / "terraform/environments/pr-tfv/pr-tfv.tfvars"
    tfvars.write_text(tfvars.read_text() + 'replicas = "3\n')  # unterminated string
    infra.set_var("pr-lck", "replicas", "3")
    infra.set_var("pr-ok", "replicas", "3")
    sha = push_branch(infra, "feature/three", "Touch three environments, one badly")

    lock_id = f"{SANDBOX_BACKEND.bucket}/expense/pr-lck/terraform.tfstate"
    info = {"ID": "6a1b2c3d-0000-4000-8000-000000000042", "Operation": "OperationTypeApply",
            "Info": "", "Who": "carol@laptop", "Version": "1.0.3",
            "Created": "2026-11-26T10:00:00Z", "Path": lock_id}
    dynamodb = sandbox.aws_client("dynamodb")  # as the sandbox admin
    dynamodb.put_item(TableName=SANDBOX_BACKEND.lock_table,
                      Item={"LockID": {"S": lock_id}, "Info": {"S": json.dumps(info)}})
    try:
        answer = receiver.deliver("pull_request", pull_request(
            "opened", number=104, head_sha=sha, branch="feature/three"))
    finally:
        dynamodb.delete_item(TableName=SANDBOX_BACKEND.lock_table, Key={"LockID": {"S": lock_id}})
    assert answer.status_code == 202, answer.text
    state = receiver.launcher.states[-1]
    assert state.is_completed(), state.message

    got = statuses(github, sha)
    assert [s for s, _ in got["gitops/plan: pr-ok"]] == ["pending", "success"]
    assert [s for s, _ in got["gitops/plan: pr-tfv"]] == ["pending", "failure"]
    assert [s for s, _ in got["gitops/plan: pr-lck"]] == ["pending", "failure"]
    assert "locked" in got["gitops/plan: pr-lck"][-1][1]
    (comment,) = plan_comments(github, 104)
    body = comment.body
    assert "carol@laptop" in body  # who holds the lock
    # Which file does not parse, as a path in the repository (not the worker's run directory).
    assert "on terraform/environments/pr-tfv/pr-tfv.tfvars line 6" in body
    assert os.environ["GITOPS_WORKDIR"] not in body
    assert "| `pr-ok` | 4 | 0 | 0 | 0 | ✅ passed |" in body  # planned normally


MIN_REPLICAS = """# gitops-flows: level = hard-mandatory
package gitops.min_replicas

import rego.v1

deny contains msg if {
\tsome rc in input.resource_changes
\trc.type == "sandbox_service"
\trc.change.after.replicas < 3
\tmsg := sprintf("%s: at least 3 replicas", [rc.address])
}
"""


def test_a_pull_request_changing_policies_shows_their_effect_but_main_judges_it(receiver, github,
                                                                               infra):
    """pr-loose bills its resources to another environment (cost_tags.rego blocks that) while
    the PR makes cost_tags.rego advisory; pr-strict scales down while the PR adds a policy that
    forbids it. The comment shows both sets' difference; the statuses are main's."""
    infra.add_environment("pr-loose")
    infra.add_environment("pr-strict")
    infra.push("Add the pr-loose and pr-strict environments")
    run_git(["checkout", "--quiet", "-b", "feature/policies"], cwd=infra.path)
    infra.set_var("pr-loose", "environment", '"shared"')
    infra.set_var("pr-strict", "replicas", "1")
    cost_tags = infra.path / "policies" / "cost_tags.rego"
    cost_tags.write_text(cost_tags.read_text().replace("level = hard-mandatory",
                                                       "level = advisory"))
    strict = infra.path / "policies" / "env" / "pr-strict" / "min_replicas.rego"
    strict.parent.mkdir(parents=True)
    strict.write_text(MIN_REPLICAS)
    sha = push_branch(infra, "feature/policies", "Bill pr-loose to shared, loosen cost_tags")

    answer = receiver.deliver("pull_request", pull_request("opened", number=105, head_sha=sha,
                                                           branch="feature/policies"))
    assert answer.status_code == 202, answer.text
    state = receiver.launcher.states[-1]
    assert state.is_completed(), state.message

    got = statuses(github, sha)  # main's policies judge: cost_tags blocks, min_replicas is not
    assert [s for s, _ in got["gitops/plan: pr-loose"]] == ["pending", "failure"]
    assert got["gitops/plan: pr-loose"][-1][1].startswith("policy cost_tags.rego:")
    assert [s for s, _ in got["gitops/plan: pr-strict"]] == ["pending", "success"]

    (comment,) = plan_comments(github, 105)
    body = comment.body
    warning = body[body.index("> [!WARNING]"):body.index("| Environment |")]
    assert ("**This pull request would stop blocking** what the default branch's policies "
            "block: `pr-loose` (`policy cost_tags.rego`)") in warning
    assert "`policies/cost_tags.rego`" in warning
    assert "`policies/env/pr-strict/min_replicas.rego`" in warning
    assert "The default branch's policies judge this pull request" in warning
    assert ("- `pr-loose`: **blocked** under the default branch's policies, would pass under "
            "this pull request's") in warning
    assert "`policy cost_tags.rego`: hard-mandatory → **advisory** (4 findings)" in warning
    assert ("    - `policy cost_tags.rego` (hard-mandatory): `module.web.sandbox_service.this`: "
            '`tag Environment is "shared", but this is environment "pr-loose"`') in warning
    assert ("- `pr-strict`: passes under the default branch's policies, **would block** under "
            "this pull request's") in warning
    assert "at least 3 replicas" in warning and "policy added" in warning
