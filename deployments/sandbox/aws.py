"""AWS on loopback for the sandbox and the tests: a moto server and the state backend it holds.

The moto server is a real HTTP server (S3, DynamoDB, Route53) bound to 127.0.0.1 only. The same
boto3 calls that set up a real account's state bucket set up the sandbox's.

The sandbox's moto (``moto_command(..., enforce_iam=True)`` with ``moto_environment(N)``)
enforces IAM: it answers the first N requests unauthenticated (``deployments.sandbox.iam`` spends
them creating the admin user), then checks every request's signature and the signing user's
policies. It runs through ``moto_iam_server.py`` (moto plus one fix to its signature check). The
tests' generic `MotoServer` does not enforce IAM.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.errors import SandboxError

LOOPBACK = "127.0.0.1"
SANDBOX_REGION = "us-east-1"
# A moto server that does not enforce IAM accepts any credentials; these are fixed dummies, never
# real keys. A server that enforces IAM refuses them.
SANDBOX_ACCESS_KEY = "sandbox-access-key"
SANDBOX_SECRET_KEY = "sandbox-secret-key"
_IAM_SERVER = Path(__file__).with_name("moto_iam_server.py")


@dataclass(frozen=True)
class AccessKey:
    """An access key pair that signs requests to moto (the secret never shows in a repr)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


DUMMY_KEY = AccessKey(SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 20.0,
                  process: subprocess.Popen | None = None) -> None:
    """Block until something accepts TCP connections on host:port, or raise SandboxError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SandboxError(f"process for {host}:{port} exited early with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SandboxError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


def moto_command(host: str, port: int, *, enforce_iam: bool = False) -> list[str]:
    """The command line of a moto server on host:port (IAM-enforcing: the patched server)."""
    if enforce_iam:
        # -I: the script's folder (which holds aws.py, iam.py...) must not shadow any import.
        return [sys.executable, "-I", str(_IAM_SERVER), "-H", host, "-p", str(port)]
    return [*_moto_command(), "-H", host, "-p", str(port)]


def moto_environment(iam_bootstrap_requests: int | None) -> dict[str, str]:
    """The process environment of a moto server: IAM enforced after the first N requests."""
    env = dict(os.environ)
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    if iam_bootstrap_requests is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(int(iam_bootstrap_requests))
    return env


def _moto_command() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    return [sys.executable, "-m", "moto.server"]


@dataclass
class MotoServer:
    """A moto server process on loopback (any credentials pass); `start()` returns once it
    answers."""

    port: int = 0
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        if self.port == 0:
            self.port = free_port()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                moto_command(LOOPBACK, self.port),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=moto_environment(None), start_new_session=True,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        wait_for_port(LOOPBACK, self.port, timeout, self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sandbox_client(service: str, endpoint: str, key: AccessKey = DUMMY_KEY) -> Any:
    """A boto3 client for one service of the moto server at ``endpoint``, signing with ``key``.

    The dummy key suits a moto that does not enforce IAM; the sandbox's moto needs a real key
    (``Sandbox.aws_client`` signs with the admin's).
    """
    import boto3

    return boto3.client(
        service, endpoint_url=endpoint, region_name=SANDBOX_REGION,
        aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
    )


@dataclass(frozen=True)
class StateBackend:
    """Where Terraform state and its lock live."""

    bucket: str
    lock_table: str
    region: str = SANDBOX_REGION


def ensure_state_backend(s3: Any, dynamodb: Any, backend: StateBackend) -> None:
    """Create the versioned state bucket and the lock table if missing (idempotent)."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if backend.bucket not in existing:
        s3.create_bucket(Bucket=backend.bucket)
    # Versioning keeps every state version: nothing a crash does can lose the previous state.
    s3.put_bucket_versioning(Bucket=backend.bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    tables = dynamodb.list_tables().get("TableNames", [])
    if backend.lock_table not in tables:
        dynamodb.create_table(
            TableName=backend.lock_table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def ensure_hosted_zone(route53: Any, zone: str) -> str:
    """Create the hosted zone if missing; return its id (idempotent)."""
    name = zone.rstrip(".") + "."
    for hz in route53.list_hosted_zones().get("HostedZones", []):
        if hz["Name"] == name:
            return str(hz["Id"]).split("/")[-1]
    created = route53.create_hosted_zone(Name=name, CallerReference=f"gitops-{name}-{os.getpid()}")
    return str(created["HostedZone"]["Id"]).split("/")[-1]
