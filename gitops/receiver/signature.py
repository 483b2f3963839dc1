"""GitHub's delivery signature: `X-Hub-Signature-256`, an HMAC-SHA256 of the raw body.

The header names a delivery carries live here too. A wrong or missing signature is refused
with 401 before anything else happens.
"""

from __future__ import annotations

import hashlib
import hmac

from gitops.errors import WebhookError

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"


def signature_for(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Check `X-Hub-Signature-256` against the raw body; raise WebhookError(..., 401) if wrong."""
    if not secret:
        raise ValueError("webhook secret is empty")
    if header is None or not header.strip():
        raise WebhookError(f"missing {SIGNATURE_HEADER} header", 401)
    expected = signature_for(secret, body).encode("ascii")
    provided = header.strip()
    if not provided.startswith("sha256="):
        raise WebhookError(f"{SIGNATURE_HEADER} must start with 'sha256='", 401)
    candidate = ("sha256=" + provided[len("sha256="):].lower()).encode("utf-8", "replace")
    if not hmac.compare_digest(expected, candidate):
        raise WebhookError("signature does not match the body", 401)
