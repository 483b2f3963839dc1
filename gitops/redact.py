"""Mask secrets in text before it leaves the process (PR comments, artifacts, approval forms, logs).

Two kinds of secret are masked:

* **known secrets**: values the caller knows are secret (for example every value Terraform marked
  sensitive in a plan). Each occurrence is replaced, wherever it appears in the text.
* **credential-looking strings**, even when nobody said they were secret: AWS access key ids
  (``AKIA…``/``ASIA…``), 40-character secret keys next to a secret-ish name, GitHub tokens
  (``ghp_…``, ``github_pat_…``), Slack/Stripe/Google API keys, PEM ``PRIVATE KEY`` blocks, JWTs,
  ``Bearer``/``Basic`` credentials, URLs with ``user:password@``, and ``name=value`` /
  ``name: value`` pairs whose name ends in password, secret, token, api key, private key, ...

Every mask is the plain string ``(redacted)`` (safe in markdown, tables and code blocks). For a
pair or a URL only the value is masked, so the reader still sees *what* was hidden.

This module is pure and deterministic; it never logs what it masks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "MIN_KNOWN_SECRET_LENGTH", "is_secret_name", "looks_like_secret", "redact_text"]

MASK = "(redacted)"
"""What every masked value is replaced with."""

MIN_KNOWN_SECRET_LENGTH = 4
"""Known secrets shorter than this are not searched for inside text (they would mask ordinary
words and numbers); callers still mask such values when they are a whole attribute value."""

# Names whose value is a secret: the name ENDS with one of these (``db_password``, ``client_secret``,
# ``GITHUB_TOKEN``, ``aws_secret_access_key``); ``token_ttl`` or ``secret_arn`` do not match.
_SECRET_NAME_SUFFIX = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|secret[_-]?key|secret[_-]?access[_-]?key|token"
    r"|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|authorization|auth[_-]?token"
    r"|session[_-]?token|client[_-]?secret|signing[_-]?key|encryption[_-]?key|connection[_-]?string)"
)
_SECRET_NAME = re.compile(rf"(?i)^(?:[\w.-]*[_.-])?{_SECRET_NAME_SUFFIX}$")

# Values that are already masks or placeholders: never re-masked.
_PLACEHOLDER = r"(?:\(redacted\)|\(sensitive\)|\(known after apply\)|\*{3,}|null)"

_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\:,.-]*)",
    re.DOTALL,
)
_AWS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_GITHUB = re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{30,255})")
_SLACK = re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}")
_STRIPE = re.compile(r"(?<![A-Za-z0-9])(?:sk|rk)_live_[A-Za-z0-9]{16,}")
_GOOGLE = re.compile(r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}")
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_BEARER = re.compile(r"\b([Bb]earer|BEARER|Basic|BASIC)([ \t]+)([A-Za-z0-9._~+/-]{8,}=*)")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"<>]*:)(?!" + _PLACEHOLDER + r")([^/\s@'\"<>]+)(@)")
# A 40-character AWS-style secret access key right after a secret-ish name (any separator).
_AWS_SECRET_NEAR_NAME = re.compile(
    r"(?i)((?:secret|private|aws)[\w-]*[\"']?[ \t]*(?:[:=]|=>|->)?[ \t]*[\"']?)"
    r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
# name=value, name: value, "name": "value", name => value (one line only) where the name itself is
# secret-ish, so a secret pair inside another pair's value ("failed: password=...") is still found.
_PAIR = re.compile(
    rf"(?i)(?<![\w.:/-])((?:[\w.-]*[_.-])?{_SECRET_NAME_SUFFIX})([\"']?[ \t]*+(?:=>|[:=])[ \t]*+)"
    r"(\"(?:[^\"\\\n]|\\.)+\"|'[^'\n]+'|[^\s,;&'\"}\])]+)"
)
_PLACEHOLDER_PREFIXES = ("(redacted", "(sensitive", "(known", "***")
_NOT_A_VALUE = frozenset({"null", "bearer", "basic", "none", "true", "false"})
# A bare 40-character mixed-case string with a digit (AWS secret-key shape), for whole values only.
_BARE_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")

# Cheap first look: a value with none of these fragments cannot match any pattern above.
_CANDIDATE = re.compile(
    r"(?i)AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|gh[pousr]_|github_pat_|xox|_live_|AIza|eyJ"
    r"|bearer|basic|://|PRIVATE KEY|pass|pwd|secret|token|key|credential|authorization"
    r"|connection|aws"
)

_WHOLE_MATCH_PATTERNS = (_PEM, _AWS_KEY_ID, _GITHUB, _SLACK, _STRIPE, _GOOGLE, _JWT)


def is_secret_name(name: str) -> bool:
    """True if an attribute/variable/header name says its value is a secret (``db_password``)."""
    return bool(_SECRET_NAME.match(name))


def looks_like_secret(value: str) -> bool:
    """True if ``value`` is, or contains, something shaped like a credential.

    Besides the patterns :func:`redact_text` masks, a whole value that is a bare 40-character
    AWS-style secret key (upper, lower case and digits, no separators) counts too.
    """
    if not value or len(value) < 8:
        return False
    if _CANDIDATE.search(value) is None:
        return len(value) == 40 and _bare_aws_secret(value)
    for pattern in _WHOLE_MATCH_PATTERNS:
        if pattern.search(value):
            return True
    if any(_is_credential_word(m.group(3)) for m in _BEARER.finditer(value)):
        return True
    if _URL_USERINFO.search(value) or _AWS_SECRET_NEAR_NAME.search(value):
        return True
    if any(_secret_pair(m) for m in _PAIR.finditer(value)):
        return True
    return len(value) == 40 and _bare_aws_secret(value)


def _bare_aws_secret(value: str) -> bool:
    return (_BARE_AWS_SECRET.fullmatch(value) is not None and any(c.isupper() for c in value)
            and any(c.islower() for c in value) and any(c.isdigit() for c in value))


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with known secrets and credential-looking strings replaced by ``(redacted)``.

    Known secrets shorter than :data:`MIN_KNOWN_SECRET_LENGTH` characters are ignored (see there).
    Longer known secrets are replaced first, longest first, so a secret that contains another is
    masked whole.
    """
    if not text:
        return text
    secrets = sorted(
        {s for s in known_secrets if isinstance(s, str) and len(s) >= MIN_KNOWN_SECRET_LENGTH},
        key=len, reverse=True,
    )
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _WHOLE_MATCH_PATTERNS:
        text = pattern.sub(MASK, text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    text = _BEARER.sub(_mask_bearer, text)
    text = _AWS_SECRET_NEAR_NAME.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _PAIR.sub(_mask_pair, text)
    return text


def _secret_pair(match: re.Match[str]) -> bool:
    """True if a ``name=value`` match has a secret-ish name and a value that is not a placeholder."""
    if not is_secret_name(match.group(1)):
        return False
    value = match.group(3).strip("\"'")
    return (bool(value) and not value.startswith(_PLACEHOLDER_PREFIXES)
            and value.lower() not in _NOT_A_VALUE)


def _mask_pair(match: re.Match[str]) -> str:
    if not _secret_pair(match):
        return match.group(0)
    value = match.group(3)
    if value.startswith(('"', "'")):
        return f"{match.group(1)}{match.group(2)}{value[0]}{MASK}{value[0]}"
    return f"{match.group(1)}{match.group(2)}{MASK}"


def _is_credential_word(word: str) -> bool:
    """A word after ``Bearer``/``Basic`` that is a credential, not prose (``Basic authentication``)."""
    return any(c.isdigit() or c in "._~+/=-" for c in word) or any(c.isupper() for c in word[1:])


def _mask_bearer(match: re.Match[str]) -> str:
    if not _is_credential_word(match.group(3)):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{MASK}"
