"""`sandbox up / down / status`: idempotent, loopback only, stops only what it started."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from deployments.sandbox.launcher import Sandbox, SandboxState

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("moto", "argocd", "github")


def test_up_is_idempotent_status_tells_and_down_stops_only_its_own(tmp_path: Path):
    box = Sandbox(tmp_path / "sb", source=REPO_ROOT)
    try:
        env = box.up(services=SERVICES, register_blocks=False)
        pids = {n: s.pid for n, s in SandboxState.load(box.state_file).services.items()}
        box.up(services=SERVICES, register_blocks=False)  # again: nothing restarted
        assert {n: s.pid for n, s in SandboxState.load(box.state_file).services.items()} == pids

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


def test_a_fresh_moto_resets_the_sandbox_cloud(tmp_path: Path):
    box = Sandbox(tmp_path / "sb", source=REPO_ROOT)
    try:
        box.up(services=("moto",), register_blocks=False)
        (box.cloud_dir / "service").mkdir()
        (box.cloud_dir / "service" / "svc-1.json").write_text("{}")
        box.up(services=("moto",), register_blocks=False)  # moto still up: nothing reset
        assert not box.reset_world and (box.cloud_dir / "service" / "svc-1.json").exists()
        box.down()
        box.up(services=("moto",), register_blocks=False)  # new, empty moto
        assert box.reset_world
        assert list(box.cloud_dir.iterdir()) == []
    finally:
        box.down()
