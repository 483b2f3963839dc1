"""The sealed plan store on a real moto S3: what goes in comes back only as the approved plan."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from deployments.sandbox.aws import sandbox_client
from gitops.errors import ConfigError
from gitops.planstore import (
    PREFIX,
    PlanStore,
    PlanStoreError,
    StoredPlan,
    new_plan_key_text,
    plan_key_from_text,
)

KEY = plan_key_from_text(new_plan_key_text())
PLAN_JSON = b'{"format_version": "1.2", "variables": {"db_password": {"value": "hunter2"}}}'


@pytest.fixture()
def s3(moto_server, state_backend):
    return sandbox_client("s3", moto_server.endpoint)


@pytest.fixture()
def plan_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "plan.tfplan"
    path.write_bytes(b"PK\x03\x04 a saved plan with a secret: hunter2" * 50)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_plan_comes_back_byte_for_byte_and_is_sealed_at_rest(s3, state_backend, plan_file,
                                                                 tmp_path):
    path, sha = plan_file
    store = PlanStore(s3, state_backend.bucket, KEY)
    where = store.put("prod", "run-1", path, sha, PLAN_JSON)

    assert where.key == f"{PREFIX}/prod/run-1/{sha}.tfplan.enc"
    raw = s3.get_object(Bucket=where.bucket, Key=where.key)
    body = raw["Body"].read()
    assert b"hunter2" not in body and not body.startswith(b"PK")
    assert raw["ServerSideEncryption"] == "AES256"
    back = store.get(where, tmp_path / "back" / "plan.tfplan")
    assert back.path.read_bytes() == path.read_bytes()
    assert back.path.stat().st_mode & 0o077 == 0
    assert back.plan_json == PLAN_JSON   # sealed with it: the resumed run needs no `show -json`


def test_an_object_of_the_first_format_still_opens_without_json(s3, state_backend, plan_file,
                                                                  tmp_path):
    """A run suspended before the upgrade resumes after it: its object has the plan alone."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    path, sha = plan_file
    store = PlanStore(s3, state_backend.bucket, KEY)
    where = store.location("prod", "run-old", sha)
    nonce = os.urandom(12)
    s3.put_object(Bucket=where.bucket, Key=where.key, Body=b"GOPS1" + nonce + AESGCM(KEY).encrypt(
        nonce, path.read_bytes(), where.key.encode()))

    back = store.get(where, tmp_path / "old.tfplan")
    assert back.path.read_bytes() == path.read_bytes() and back.plan_json is None


def test_a_changed_moved_or_foreign_object_is_refused(s3, state_backend, plan_file, tmp_path):
    path, sha = plan_file
    store = PlanStore(s3, state_backend.bucket, KEY)
    where = store.put("prod", "run-1", path, sha, PLAN_JSON)
    body = s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read()

    # Copied under another run's name: the object key is sealed in, it does not open there.
    moved = StoredPlan(where.bucket, f"{PREFIX}/prod/run-2/{sha}.tfplan.enc", sha)
    s3.put_object(Bucket=where.bucket, Key=moved.key, Body=body)
    with pytest.raises(PlanStoreError, match="does not open"):
        store.get(moved, tmp_path / "a")
    # One byte changed.
    s3.put_object(Bucket=where.bucket, Key=where.key, Body=body[:-1] + bytes([body[-1] ^ 1]))
    with pytest.raises(PlanStoreError, match="does not open"):
        store.get(where, tmp_path / "b")
    # Sealed with another key (another installation's, or an attacker's).
    other = PlanStore(s3, state_backend.bucket, plan_key_from_text(new_plan_key_text()))
    where = other.put("prod", "run-1", path, sha, PLAN_JSON)
    with pytest.raises(PlanStoreError, match="does not open"):
        store.get(where, tmp_path / "c")
    # Asked for another plan than the one stored there.
    wrong = StoredPlan(where.bucket, where.key, "0" * 64)
    with pytest.raises(PlanStoreError, match="does not open|not the approved plan"):
        PlanStore(s3, state_backend.bucket, KEY).get(wrong, tmp_path / "d")
    # Nothing there.
    with pytest.raises(PlanStoreError, match="cannot be read"):
        store.get(StoredPlan(where.bucket, f"{PREFIX}/prod/none/{sha}.tfplan.enc", sha),
                  tmp_path / "e")
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_only_the_plan_that_was_approved_is_stored(s3, state_backend, plan_file):
    path, _ = plan_file
    with pytest.raises(PlanStoreError, match="is not plan"):
        PlanStore(s3, state_backend.bucket, KEY).put("prod", "run-1", path, "f" * 64, PLAN_JSON)


def test_delete_run_removes_that_runs_plans_only(s3, state_backend, plan_file):
    path, sha = plan_file
    store = PlanStore(s3, state_backend.bucket, KEY)
    store.put("prod", "run-1", path, sha, PLAN_JSON)
    store.put("prod", "run-2", path, sha, PLAN_JSON)
    store.put("staging", "run-1", path, sha, PLAN_JSON)

    assert store.delete_run("prod", "run-1") == 1
    left = sorted(o["Key"] for o in s3.list_objects_v2(
        Bucket=state_backend.bucket, Prefix=PREFIX).get("Contents", []))
    assert left == [f"{PREFIX}/prod/run-2/{sha}.tfplan.enc",
                    f"{PREFIX}/staging/run-1/{sha}.tfplan.enc"]
    assert store.delete_run("prod", "run-1") == 0


@pytest.mark.parametrize("text, why", [("not base64!", "not base64"),
                                       ("c2hvcnQ=", "has 5 bytes")])
def test_a_bad_key_is_refused_with_how_to_make_one(text, why):
    with pytest.raises(ConfigError, match=why):
        plan_key_from_text(text)


def test_it_lists_the_runs_that_have_saved_plans(s3, state_backend, plan_file):
    path, sha = plan_file
    store = PlanStore(s3, state_backend.bucket, KEY)
    assert store.runs("prod") == []
    store.put("prod", "run-1", path, sha, PLAN_JSON)
    store.put("prod", "run-2", path, sha, PLAN_JSON)
    store.put("prod-eu", "run-3", path, sha, PLAN_JSON)
    assert sorted(store.runs("prod")) == ["run-1", "run-2"]
