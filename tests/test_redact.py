"""gitops.redact: known secrets and credential-looking strings never survive."""

from __future__ import annotations

import pytest

from gitops.redact import MASK, is_secret_name, looks_like_secret, redact_text

# Assembled at run time so secret scanners do not flag this file; the shapes are what matter.
GITHUB_TOKEN = "ghp_" + "0123456789abcdefghijklmnopqrstuvwxyz"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_STS_KEY_ID = "ASIA" + "Y34FZKBOKMUTVV7A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
       + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6\n"
       "sE2lqzXDBz0Eh6ycl8rPIYWZ+mvNbIHY=\n-----END RSA PRIVATE KEY-----")

CASES = [
    # (text, the secret part that must disappear)
    (f"export AWS_ACCESS_KEY_ID={AWS_KEY_ID}", AWS_KEY_ID),
    (f"key id {AWS_STS_KEY_ID} in use", AWS_STS_KEY_ID),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    (f'"SecretAccessKey": "{AWS_SECRET}"', AWS_SECRET),
    (f"remote: {GITHUB_TOKEN}", GITHUB_TOKEN),
    (f"token {GITHUB_PAT} expired", GITHUB_PAT),
    (f"key:\n{PEM}\nend", "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA", "b3BlbnNzaC1rZXktdjEAAAAA"),
    ("password=hunter2!", "hunter2!"),
    ("DB_PASSWORD: 'correct horse'", "correct horse"),
    ('{"api_key": "k-123456"}', "k-123456"),
    ("client_secret => abcdef123", "abcdef123"),
    ("token: s.abcdefgh", "s.abcdefgh"),
    (f"id_token={JWT}", JWT),
    (f"got {JWT} back", JWT),
    ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("git clone https://deploy:s3cr3tPass@git.example.com/repo.git", "s3cr3tPass"),
    ("postgres://app:pw-1234@db:5432/app", "pw-1234"),
]


@pytest.mark.parametrize(("text", "secret"), CASES)
def test_credentials_are_masked(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert MASK in redacted
    assert looks_like_secret(text)


@pytest.mark.parametrize("text", [
    "token_ttl = 3600",
    "secret_arn = arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
    "Basic authentication is disabled",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a git SHA is 40 hex chars, not a key
    "cidr = 10.0.0.0/16, port: 443",
    "password = (sensitive)",
    "password = (known after apply)",
    "the password is required",
    "https://example.com/path?x=1",
    "id = 7e2b4c1a-9f4e-4d5b-8c3a-1b2c3d4e5f60",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text
    assert not looks_like_secret(text)


def test_pair_keeps_the_name_and_masks_only_the_value() -> None:
    assert redact_text("db_password = hunter22") == f"db_password = {MASK}"
    assert redact_text('"password": "x y"') == f'"password": "{MASK}"'
    assert redact_text("https://bot:pw123456@h/x") == f"https://bot:{MASK}@h/x"


def test_known_secrets_masked_everywhere_longest_first() -> None:
    text = "a=abcd1234 b=xxabcd1234-tail c=abcd"
    out = redact_text(text, known_secrets=["abcd", "abcd1234", "abcd1234-tail"])
    assert "abcd" not in out
    assert out.count(MASK) == 3


def test_short_known_secrets_are_not_searched() -> None:
    assert redact_text("port 443 and 1", known_secrets=["1", "44"]) == "port 443 and 1"


def test_redaction_is_idempotent() -> None:
    once = redact_text("\n".join(text for text, _ in CASES))
    assert redact_text(once) == once


def test_bare_aws_secret_shape_is_a_secret_value() -> None:
    assert looks_like_secret(AWS_SECRET)
    assert not looks_like_secret("a" * 40)
    assert not looks_like_secret("")


@pytest.mark.parametrize(("name", "secret"), [
    ("password", True), ("db_password", True), ("DB_PASSWORD", True), ("client_secret", True),
    ("GITHUB_TOKEN", True), ("api-key", True), ("aws_secret_access_key", True),
    ("private_key", True), ("credentials", True),
    ("token_ttl", False), ("secret_arn", False), ("password_length", False), ("name", False),
    ("public_key", False), ("tags", False),
])
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_secret_pair_inside_another_pairs_value_is_masked() -> None:
    """An error line like "failed: password=..." must not hide the secret pair behind "failed:"."""
    out = redact_text("apply failed: password=hunter2-very-secret; retry")
    assert "hunter2" not in out
    assert "password=(redacted)" in out
