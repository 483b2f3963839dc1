"""Saved plans that wait for approval outside the worker: encrypted objects in the state bucket.

A deploy that suspends for approval leaves no process and no disk behind; whichever worker
resumes it applies the plan it reads back from here. One object per (environment, flow run,
plan file):

    s3://<state bucket>/gitops-plans/<environment>/<flow run id>/<plan sha256>.tfplan.enc

The body is the plan file and the ``terraform show -json`` it was read as, sealed together with
AES-256-GCM under a key from a Prefect Secret block (the object key is the associated data, so an
object copied under another name does not open), and S3 encrypts it at rest as well. The JSON is
sealed beside the file so that a resumed run need not ask terraform to read the plan again; it
is as authentic as the file (one authenticated message) and no more trusted than it: today's
policies judge it again, and the file's sha256 is checked against the approved fingerprint.
Objects of the first format (the plan file alone, ``GOPS1``) still open, without JSON. Only the environment's apply credentials may read or write the
prefix (the platform's IAM policy; the sandbox's in deployments/sandbox/iam.py). What comes
back is checked against the approved fingerprint's sha256 before anyone may apply it.

No Prefect here: the S3 client comes in the constructor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.errors import ConfigError, GitopsError

PREFIX = "gitops-plans"
_MAGIC_V1 = b"GOPS1"  # the plan file alone
_MAGIC = b"GOPS2"     # 8-byte length, the plan file, zlib(the plan's show -json)
_MAGICS = (_MAGIC, _MAGIC_V1)
_NONCE = 12
_LENGTH = struct.Struct(">Q")


class PlanStoreError(GitopsError):
    """A stored plan is missing, does not open, or is not the plan that was approved."""


def plan_key_from_text(text: str) -> bytes:
    """The 32-byte key from its Secret block's text (base64, as `sandbox up` writes it)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("the plan encryption key is not base64") from exc
    if len(key) != 32:
        raise ConfigError(f"the plan encryption key has {len(key)} bytes; AES-256 needs 32 "
                          "(make one with: python -c 'import os,base64;"
                          "print(base64.b64encode(os.urandom(32)).decode())')")
    return key


def new_plan_key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class StoredPlan:
    """Where one saved plan is kept."""

    bucket: str
    key: str
    plan_sha256: str


@dataclass(frozen=True)
class RestoredPlan:
    """A saved plan read back: its file, and the ``show -json`` sealed with it (None for an
    object of the first format: ask terraform)."""

    path: Path
    plan_json: bytes | None


class PlanStore:
    """Put, get and delete saved plans of one state bucket (see the module docstring)."""

    def __init__(self, s3: Any, bucket: str, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._s3 = s3
        self._bucket = bucket
        self._aead = AESGCM(key)

    def location(self, environment: str, run_id: str, plan_sha256: str) -> StoredPlan:
        return StoredPlan(self._bucket, f"{PREFIX}/{environment}/{run_id}/{plan_sha256}.tfplan.enc",
                          plan_sha256)

    def put(self, environment: str, run_id: str, plan_file: Path, plan_sha256: str,
            plan_json: bytes) -> StoredPlan:
        """Seal ``plan_file`` with ``plan_json`` (its ``show -json``, as bytes) under
        :meth:`location`."""
        data = Path(plan_file).read_bytes()
        if hashlib.sha256(data).hexdigest() != plan_sha256:
            raise PlanStoreError(f"{environment}: the plan file is not plan {plan_sha256[:12]}")
        where = self.location(environment, run_id, plan_sha256)
        nonce = os.urandom(_NONCE)
        message = _LENGTH.pack(len(data)) + data + zlib.compress(plan_json, 1)
        sealed = _MAGIC + nonce + self._aead.encrypt(nonce, message, where.key.encode())
        self._s3.put_object(Bucket=where.bucket, Key=where.key, Body=sealed,
                            ServerSideEncryption="AES256",
                            Metadata={"plan-sha256": plan_sha256})
        return where

    def get(self, where: StoredPlan, dest: Path) -> RestoredPlan:
        """Read ``where`` back: the plan file into ``dest`` (owner-only), checked against its
        sha256, and the JSON sealed with it."""
        from cryptography.exceptions import InvalidTag

        try:
            body = self._s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - botocore's NoSuchKey, AccessDenied, ...
            raise PlanStoreError(f"the saved plan s3://{where.bucket}/{where.key} cannot be "
                                 f"read: {exc}") from exc
        magic = body[:len(_MAGIC)]
        if magic not in _MAGICS or len(body) < len(_MAGIC) + _NONCE + 16:
            raise PlanStoreError(f"s3://{where.bucket}/{where.key} is not a sealed plan")
        nonce = body[len(_MAGIC):len(_MAGIC) + _NONCE]
        try:
            message = self._aead.decrypt(nonce, body[len(_MAGIC) + _NONCE:], where.key.encode())
        except InvalidTag as exc:
            raise PlanStoreError(f"s3://{where.bucket}/{where.key} does not open with the plan "
                                 "key (another key, or the object was changed or moved)") from exc
        data, plan_json = _unpack(message, where) if magic == _MAGIC else (message, None)
        if hashlib.sha256(data).hexdigest() != where.plan_sha256:
            raise PlanStoreError(f"s3://{where.bucket}/{where.key} is not the approved plan "
                                 f"{where.plan_sha256[:12]}")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return RestoredPlan(dest, plan_json)

    def runs(self, environment: str) -> list[str]:
        """The flow run ids that have saved plans of ``environment`` here."""
        found = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=f"{PREFIX}/{environment}/",
                                         Delimiter="/").get("CommonPrefixes", [])
        return [p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in found]

    def delete_run(self, environment: str, run_id: str) -> int:
        """Delete every saved plan of ``run_id`` for ``environment``; how many there were."""
        prefix = f"{PREFIX}/{environment}/{run_id}/"
        found = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=prefix).get("Contents", [])
        for item in found:
            self._s3.delete_object(Bucket=self._bucket, Key=item["Key"])
        return len(found)


def _unpack(message: bytes, where: StoredPlan) -> tuple[bytes, bytes]:
    """The plan file and its JSON out of an opened ``GOPS2`` message."""
    if len(message) < _LENGTH.size:
        raise PlanStoreError(f"s3://{where.bucket}/{where.key} is not a sealed plan")
    (size,) = _LENGTH.unpack_from(message)
    end = _LENGTH.size + size
    if end > len(message):
        raise PlanStoreError(f"s3://{where.bucket}/{where.key} is not a sealed plan")
    try:
        return message[_LENGTH.size:end], zlib.decompress(message[end:])
    except zlib.error as exc:
        raise PlanStoreError(f"s3://{where.bucket}/{where.key}: the plan's JSON does not "
                             f"decompress: {exc}") from exc
