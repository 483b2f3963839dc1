"""`sandbox up / down / status`: idempotent, loopback only, stops only what it started."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from deployments.sandbox import iam
from deployments.sandbox.launcher import Sandbox, SandboxState

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("moto", "argocd", "github")


def test_up_is_idempotent_status_tells_and_down_stops_only_its_own(tmp_path: Path):
    box = Sandbox(tmp_path / "sb", source=REPO_ROOT)
    try:
        env = box.up(services=SERVICES, register_blocks=False)
        first = SandboxState.load(box.state_file)
        pids = {n: s.pid for n, s in first.services.items()}
        box.up(services=SERVICES, register_blocks=False)  # again: nothing restarted
        again = SandboxState.load(box.state_file)
        assert {n: s.pid for n, s in again.services.items()} == pids
        assert again.tokens == first.tokens  # the same moto, the same IAM keys
        moto = again.services["moto"].url
        for block in iam.sandbox_blocks():
            arn = iam.caller_arn(moto, box.aws_key(block))
            assert arn.endswith(f":user/{iam.user_name(block)}")
        assert box.aws_client("s3").list_objects_v2(Bucket="gitops-tfstate")["KeyCount"] == 0

        rows = {name: (status, url) for name, status, url in box.status()}
        for name in SERVICES:
            assert rows[name][0] == "running"
            assert rows[name][1].startswith("http://127.0.0.1:")
        assert rows["prefect"][0] == "not started"

        # settings point at the sandbox; tokens stay in the owner-only state file
        assert json.loads(box.env_file.read_text()) == env
        tokens = SandboxState.load(box.state_file).tokens
        assert not any(t in box.env_file.read_text() for t in tokens.values())
        assert stat.S_IMODE(os.stat(box.state_file).st_mode) == 0o600
        assert Path(env["GITOPS_GRANT_FILE"]).is_file() and Path(env["GITOPS_PROVIDER_MIRROR"]).is_dir()
        assert env["GITOPS_REPOSITORY_URL"].startswith("file://")
    finally:
        stopped = box.down()
    assert sorted(stopped) == sorted(SERVICES)
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert {status for _, status, _ in box.status()} == {"not started"}
    assert box.down() == []  # nothing left to stop


def test_a_fresh_moto_resets_the_sandbox_cloud_and_gets_new_iam_keys(tmp_path: Path):
    box = Sandbox(tmp_path / "sb", source=REPO_ROOT)
    try:
        box.up(services=("moto",), register_blocks=False)
        old = SandboxState.load(box.state_file).tokens
        (box.cloud_dir / "service").mkdir()
        (box.cloud_dir / "service" / "svc-1.json").write_text("{}")
        box.up(services=("moto",), register_blocks=False)  # moto still up: nothing reset
        assert not box.reset_world and (box.cloud_dir / "service" / "svc-1.json").exists()
        box.down()
        box.up(services=("moto",), register_blocks=False)  # new, empty moto
        assert box.reset_world
        assert list(box.cloud_dir.iterdir()) == []
        # bootstrapped again: every user has a new key, and the old ones are unknown to it
        moto = SandboxState.load(box.state_file).services["moto"].url
        for block in iam.sandbox_blocks():
            new_key, old_key = box.aws_key(block), iam.key_from_tokens(old, block)
            assert new_key.access_key_id != old_key.access_key_id
            assert iam.caller_arn(moto, old_key) is None
            assert iam.caller_arn(moto, new_key).endswith(f":user/{iam.user_name(block)}")
        assert box.aws_client("s3").list_objects_v2(Bucket="gitops-tfstate")["KeyCount"] == 0
    finally:
        box.down()


def test_a_running_moto_that_does_not_know_the_admin_is_replaced(tmp_path: Path):
    """E.g. a moto started before the sandbox enforced IAM, or a state file that lost its keys:
    `up` stops that moto (its own) and sets up a new one, rather than signing with keys nobody
    checks."""
    box = Sandbox(tmp_path / "sb", source=REPO_ROOT)
    try:
        box.up(services=("moto",), register_blocks=False)
        state = SandboxState.load(box.state_file)
        old_pid = state.services["moto"].pid
        for name in list(state.tokens):
            if name.startswith(iam.ADMIN_BLOCK + "."):
                del state.tokens[name]
        state.save(box.state_file)

        box.up(services=("moto",), register_blocks=False)
        moto = SandboxState.load(box.state_file).services["moto"]
        assert moto.pid != old_pid and moto.alive()
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)
        assert iam.is_admin_key(moto.url, box.aws_key())
    finally:
        box.down()
