"""Exact-value scrubbing: mask every secret value this process loaded, in every common encoding.

`gitops.redact` masks strings that *look* like credentials. This module remembers the values the
pipeline itself injects or reads (Secret blocks, AWS keys, GitHub and Argo CD tokens, the webhook
secret) and masks them wherever they turn up in text that leaves a run, whatever they look like:

    register(value)       remember a secret value (returns it, so ``x = register(load(...))``);
                          also ``register_secret``, and ``register_all(values)`` for several
    scrub(text)           mask every registered value and its encodings, then `redact_text`
    scrub_obj(obj)        the same over nested dict/list/tuple/set/str payloads (events, results)
    ScrubFilter           a logging.Filter that scrubs a record's message, exception and extras
    install_log_scrubber  attach the filter to every handler that exists now (idempotent)

Each registered value is searched for, anywhere inside larger text, as:

* the raw value, and the value reversed;
* base64, standard and URL-safe alphabets, with and without padding, also when the value sits at
  any offset inside a larger base64 blob (for each of the three byte alignments the characters
  that depend on the value alone are searched, plus the one mixed character on each side);
* hex, lower and upper case; also its bytes separated by one fixed separator (``68:75:6e``);
* URL-encoding: any mix of literal and percent-encoded characters (``quote``, ``quote_plus``,
  every byte encoded), either hex case, ``+`` or ``%20`` for a space;
* JSON and Python string escaping (``json.dumps`` with and without ``ensure_ascii``, ``\\/``,
  ``repr``/``ascii`` of the str and of its UTF-8 bytes, JSON inside JSON), HTML escaping and the
  markdown-cell escapes this project's renderers use (``&#124;``, ``&#96;``, ``\\|``);
* its characters separated by one fixed separator of 1-3 characters, any characters
  (``h-u-n-t-e-r``, ``h u n t e r``, one per line), for values of at least 8 characters.

Everything found is replaced by `gitops.redact.MASK` (overlapping or adjacent finds become one
mask), then `gitops.redact.redact_text` masks whatever merely looks like a credential.

Values shorter than `gitops.redact.MIN_KNOWN_SECRET_LENGTH` are never searched for: a 1-3
character value occurs in ordinary words and numbers, so masking it would garble every message,
and the pattern of masks would itself tell a reader where (and so what) the value is. Encoded
forms shorter than 6 characters and separated forms of values under 8 characters are skipped for
the same reason (they match unrelated text by chance).

Cost: the literal forms of all registered values are compiled, on register, into one regex shaped
as a prefix tree, and the pattern forms (separated, URL-encoded) into a second one dispatched on
their first character; a scrub is two linear scans of the text plus `redact_text`.

What scrubbing cannot catch
---------------------------
Scrubbing recognises a secret's own characters and a fixed list of encodings of them. It cannot
catch:

* arbitrary transforms: encryption, xor, compression, hashing, custom or chained encodings
  (base64 of hex, URL-encoding of base64, ...), base32/base85, UTF-16, character arithmetic
  (ROT13, every code point shifted);
* reversing combined with separators or encodings, mixed or alternating case, a value with
  characters inserted, dropped or repeated;
* a value split across lines or messages (wrapped base64, a secret logged one piece per line,
  text truncated so only part of the value remains);
* values shorter than the minimum length (see above);
* timing and other side channels (how long a comparison took, the length of a masked message,
  whether a step failed);
* secrets this process never loaded: values read by terraform providers or by a subprocess on
  their own, credentials minted at run time (STS sessions, OIDC tokens), another run's secrets.

Scrubbing is a safety net for mistakes, not a boundary against someone who wants a secret out: any
code that can read a value can print it transformed. The real defence is least-privilege
credentials (a plan role that cannot write, short-lived tokens scoped to one repository), so that a
value that does leak is worth little.

This module imports no Prefect; it never logs what it masks.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from gitops.redact import MASK, MIN_KNOWN_SECRET_LENGTH, redact_text

__all__ = [
    "MIN_ENCODED_LENGTH",
    "MIN_SEPARATED_LENGTH",
    "REGISTRY",
    "ScrubFilter",
    "SecretRegistry",
    "install_log_scrubber",
    "register",
    "register_all",
    "register_secret",
    "scrub",
    "scrub_obj",
    "uninstall_log_scrubber",
]

MIN_ENCODED_LENGTH = 6
"""An encoded form (a base64 fragment) shorter than this is not searched for."""

MIN_SEPARATED_LENGTH = 8
"""Values shorter than this are not searched for with separators between their characters."""

MAX_SEPARATOR = 3
"""The longest separator between a value's characters that is recognised."""

_B64_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

T = TypeVar("T")


# -- the forms of one value -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Widen:
    """Characters next to a base64 fragment that mix the value's bits with their neighbours'."""

    left: str = ""
    """Alphabet of the one character before the fragment that also carries the value's bits."""
    right: str = ""
    """Alphabet of the one character after it."""

    def union(self, other: _Widen) -> _Widen:
        """Widen where either would (the same fragment can come from both alphabets)."""
        return _Widen("".join(sorted(set(self.left) | set(other.left))),
                      "".join(sorted(set(self.right) | set(other.right))))


_NO_WIDEN = _Widen()


def _to_bytes(value: str) -> bytes:
    """UTF-8 bytes of ``value``; lone surrogates (from undecodable bytes) as the original bytes."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass")


def _base64_forms(data: bytes) -> dict[str, _Widen]:
    """Base64 of ``data`` alone (padded and not), and its stable fragments at the 3 alignments."""
    forms: dict[str, _Widen] = {}
    n = len(data)
    for alphabet, encode in ((_B64_STD, base64.b64encode), (_B64_URL, base64.urlsafe_b64encode)):
        whole = encode(data).decode("ascii")
        forms.setdefault(whole, _NO_WIDEN)
        forms.setdefault(whole.rstrip("="), _NO_WIDEN)
        for align in range(3):
            # ``align`` unknown bytes precede the value in the blob. Characters of the first group
            # that depend on them are dropped (0, 2 or 3 of them; the last of those mixes), and
            # so is the last character of a partial final group (it mixes with what follows).
            encoded = encode(bytes(align) + data).decode("ascii").rstrip("=")
            head = (0, 2, 3)[align]
            tail = (align + n) % 3
            end = 4 * ((align + n) // 3) + (0, 1, 2)[tail]
            fragment = encoded[head:end]
            if len(fragment) < MIN_ENCODED_LENGTH:
                continue
            widen = _Widen(left=alphabet if align else "", right=alphabet if tail else "")
            forms[fragment] = forms.get(fragment, _NO_WIDEN).union(widen)
    return forms


def _escaped_forms(value: str) -> list[str]:
    """The value as JSON, Python, HTML and markdown-cell text would spell it."""
    data = _to_bytes(value)
    json_ascii = json.dumps(value)[1:-1]
    json_plain = json.dumps(value, ensure_ascii=False)[1:-1]
    html_plain = html.escape(value, quote=False)
    forms = [
        json_ascii, json_plain,
        json_ascii.replace("/", "\\/"), json_plain.replace("/", "\\/"),
        json.dumps(json_ascii)[1:-1], json.dumps(json_plain, ensure_ascii=False)[1:-1],
        repr(value)[1:-1], ascii(value)[1:-1], repr(data)[2:-1],
        value.encode("unicode_escape", "surrogatepass").decode("ascii"),
        html.escape(value), html_plain,
        html_plain.replace("|", "&#124;").replace("`", "&#96;"),
        value.replace("|", "\\|"),
    ]
    return forms


def _literal_forms(value: str) -> dict[str, _Widen]:
    """Every fixed spelling of ``value`` to search for, with how far to widen a find."""
    data = _to_bytes(value)
    every_byte = "".join(f"%{byte:02X}" for byte in data)
    forms: dict[str, _Widen] = {value: _NO_WIDEN, value[::-1]: _NO_WIDEN,
                                data.hex(): _NO_WIDEN, data.hex().upper(): _NO_WIDEN,
                                every_byte: _NO_WIDEN, every_byte.lower(): _NO_WIDEN}
    for form in _escaped_forms(value):
        forms.setdefault(form, _NO_WIDEN)
    for form, widen in _base64_forms(data).items():
        forms[form] = forms.get(form, _NO_WIDEN).union(widen)
    return {form: widen for form, widen in forms.items() if len(form) >= MIN_KNOWN_SECRET_LENGTH}


def _hex_digit_class(digit: str) -> str:
    return f"[{digit}{digit.lower()}]" if digit.isalpha() else digit


def _percent(char: str) -> str:
    """A regex for ``char`` percent-encoded as UTF-8, either hex case."""
    return "".join("%" + "".join(_hex_digit_class(d) for d in f"{byte:02X}")
                   for byte in _to_bytes(char))


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _url_char(char: str) -> str:
    """A regex for ``char`` as some URL encoder wrote it: literal or percent-encoded."""
    if char in _UNRESERVED:  # no encoder escapes these (except "every byte", a literal form)
        return re.escape(char)
    alternatives = [re.escape(char), _percent(char)]
    if char == " ":
        alternatives.append(r"\+")
    return "(?:" + "|".join(alternatives) + ")"


def _pattern_forms(value: str, group: Iterator[str]) -> list[tuple[str, str]]:
    """Forms that need a regex, as (first character, regex for the rest) pairs.

    ``group`` yields fresh group names (backreferences need names unique in the combined regex).
    """
    forms: list[tuple[str, str]] = []
    # URL-encoding: each reserved character literal or percent-encoded (either hex case), so
    # whatever set of characters an encoder leaves alone (quote's `safe`, encodeURIComponent).
    if any(c not in _UNRESERVED for c in value):
        rest = "".join(_url_char(c) for c in value[1:])
        forms.append((value[0], rest))
        if value[0] not in _UNRESERVED:
            forms.append(("%", _percent(value[0])[1:] + rest))
            if value[0] == " ":
                forms.append(("+", rest))
    if len(value) >= MIN_SEPARATED_LENGTH:
        name = next(group)
        sep = f"(?P<{name}>.{{1,{MAX_SEPARATOR}}})"
        forms.append((value[0], sep + f"(?P={name})".join(re.escape(c) for c in value[1:])))
    data = _to_bytes(value)
    if len(data) >= 2:
        for digits in (data.hex(), data.hex().upper()):
            name = next(group)
            pairs = [digits[i:i + 2] for i in range(0, len(digits), 2)]
            sep = f"(?P<{name}>.{{1,{MAX_SEPARATOR}}})"
            forms.append((pairs[0][0], pairs[0][1] + sep + f"(?P={name})".join(pairs[1:])))
    return forms


# -- the combined regexes -------------------------------------------------------------------------


def _trie_regex(literals: Iterable[str]) -> str:
    """One regex matching any of ``literals``, the longest one where several start at a place.

    Built as a prefix tree (``ab(?:c|d)``), so a scan checks each position against the distinct
    first characters, not against every literal.
    """
    root: dict[str, Any] = {}
    for literal in literals:
        node = root
        for char in literal:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = []
        for char, child in node.items():
            if char == "":
                continue
            chain = [char]
            while "" not in child and len(child) == 1:  # single-child chain: emit it flat
                (next_char, child), = child.items()
                chain.append(next_char)
            rest = "" if list(child) == [""] else build(child)
            branches.append(re.escape("".join(chain)) + rest)
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a literal may end here: the longer continuations are tried first
            return f"(?:{body})?" if len(branches) == 1 else body + "?"
        return body

    return build(root) if root else ""


@dataclass(frozen=True)
class _Matcher:
    """The compiled search for one snapshot of the registry (immutable, shared across threads)."""

    literal: re.Pattern[str] | None
    patterns: re.Pattern[str] | None
    widen: dict[str, _Widen]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Merged (start, end) spans of ``text`` covered by any form of any registered value."""
        found: list[tuple[int, int]] = []
        for regex in (self.literal, self.patterns):
            if regex is not None:
                found.extend(self._spans(regex, text))
        if not found:
            return []
        found.sort()
        merged = [found[0]]
        for start, end in found[1:]:
            last_start, last_end = merged[-1]
            if start <= last_end:
                if end > last_end:
                    merged[-1] = (last_start, end)
            else:
                merged.append((start, end))
        return merged

    def _widened(self, match: re.Match[str], text: str) -> tuple[int, int]:
        start, end = match.span()
        widen = self.widen.get(match.group())
        if widen is not None:
            if widen.left and start > 0 and text[start - 1] in widen.left:
                start -= 1
            if widen.right and end < len(text) and text[end] in widen.right:
                end += 1
        return start, end

    def _spans(self, regex: re.Pattern[str], text: str) -> Iterator[tuple[int, int]]:
        pos = 0
        while (match := regex.search(text, pos)) is not None:
            start, end = self._widened(match, text)
            # A form starting inside this find may reach past its end (one value containing or
            # overlapping another): extend the span until no form starting inside it does.
            at = match.start() + 1
            while at < end:
                inner = regex.match(text, at)
                if inner is not None:
                    end = max(end, self._widened(inner, text)[1])
                at += 1
            yield start, end
            pos = max(end, match.start() + 1)


def _compile(values: Iterable[str]) -> _Matcher:
    widen: dict[str, _Widen] = {}
    first: dict[str, list[str]] = {}
    names = (f"s{i}" for i in range(10**9))
    for value in values:
        for form, how in _literal_forms(value).items():
            widen[form] = widen.get(form, _NO_WIDEN).union(how)
        for char, rest in _pattern_forms(value, names):
            first.setdefault(char, []).append(rest)
    literal = re.compile(_trie_regex(sorted(widen)), re.DOTALL) if widen else None
    patterns = None
    if first:
        dispatch = "|".join(re.escape(char) + (rests[0] if len(rests) == 1
                                               else "(?:" + "|".join(rests) + ")")
                            for char, rests in first.items())
        patterns = re.compile(dispatch, re.DOTALL)
    return _Matcher(literal, patterns, {f: w for f, w in widen.items() if w != _NO_WIDEN})


# -- the registry ---------------------------------------------------------------------------------


def _secret_text(value: Any) -> str | None:
    """The text of a secret: a str, UTF-8 bytes, or anything with ``get_secret_value()``."""
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    raise TypeError(f"a secret value must be str, bytes or a SecretStr, not {type(value).__name__}")


class SecretRegistry:
    """The secret values one process has loaded, and the compiled search for all of them.

    Thread-safe. When `register` returns, every later `scrub` (in any thread) masks the value:
    registration compiles the search and publishes it as one immutable object, and `scrub`
    reads whichever search is current without waiting. Registrations that arrive while a
    compile runs are folded into the next one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _values and _version
        self._compile_lock = threading.Lock()  # one compile at a time
        self._values: dict[str, None] = {}
        self._version = 0
        self._compiled_version = 0
        self._matcher: _Matcher | None = None

    def __len__(self) -> int:
        """How many distinct values are searched for."""
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and value in self._values

    def register(self, value: T) -> T:
        """Remember ``value`` (str, bytes or SecretStr) as secret and return it unchanged.

        None, values shorter than `MIN_KNOWN_SECRET_LENGTH` and parts of `MASK` itself
        (``redacted``) are accepted and not searched for. A value with surrounding whitespace is
        also remembered stripped.
        """
        self.register_all([value])
        return value

    def register_all(self, values: Iterable[Any]) -> None:
        """Remember several values at once (one compile)."""
        new = []
        for value in values:
            text = _secret_text(value)
            if text is None:
                continue
            new += [c for c in dict.fromkeys((text, text.strip()))
                    if len(c) >= MIN_KNOWN_SECRET_LENGTH and c not in MASK]
        if not new:
            return
        with self._lock:
            fresh = [v for v in dict.fromkeys(new) if v not in self._values]
            if fresh:
                self._values = {**self._values, **dict.fromkeys(fresh)}
                self._version += 1
            wanted = self._version
        if self._compiled_version >= wanted:
            return
        with self._compile_lock:
            if self._compiled_version >= wanted:  # another thread's compile covered it
                return
            with self._lock:
                values, version = self._values, self._version
            matcher = _compile(values)
            self._matcher, self._compiled_version = matcher, version

    def clear(self) -> None:
        """Forget every value (tests; a long-lived process between runs)."""
        with self._compile_lock, self._lock:
            self._values, self._matcher = {}, None
            self._version += 1
            self._compiled_version = self._version

    def mask(self, text: str) -> str:
        """``text`` with every registered value and its encodings replaced by `MASK` (only)."""
        matcher = self._matcher
        if not text or matcher is None:
            return text
        spans = matcher.spans(text)
        if not spans:
            return text
        parts, pos = [], 0
        for start, end in spans:
            parts.append(text[pos:start])
            parts.append(MASK)
            pos = end
        parts.append(text[pos:])
        return "".join(parts)

    def scrub(self, text: str) -> str:
        """`mask` the registered values, then `redact_text` the credential-looking rest."""
        if not text:
            return text
        return redact_text(self.mask(text))

    def scrub_obj(self, obj: T) -> T:
        """``obj`` with every string inside it (dict keys too) scrubbed; other leaves unchanged.

        Handles dict, list, tuple (named tuples too), set and frozenset, nested; returns new
        containers and leaves ``obj`` untouched.
        """
        return self._scrub_obj(obj, 0)

    def _scrub_obj(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, str):
            return self.scrub(obj)
        if depth > 200:  # a cycle or absurd nesting: refuse rather than leak or recurse forever
            return MASK
        if isinstance(obj, dict):
            return {self._scrub_obj(k, depth + 1): self._scrub_obj(v, depth + 1)
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._scrub_obj(item, depth + 1) for item in obj]
        if isinstance(obj, tuple):
            items = [self._scrub_obj(item, depth + 1) for item in obj]
            return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
        if isinstance(obj, set | frozenset):
            return type(obj)(self._scrub_obj(item, depth + 1) for item in obj)
        return obj


REGISTRY = SecretRegistry()
"""The process-wide registry the module-level functions use."""


def register(value: T) -> T:
    """Remember ``value`` as secret in the process registry; return it unchanged."""
    return REGISTRY.register(value)


def register_all(values: Iterable[Any]) -> None:
    """Remember several secret values in the process registry."""
    REGISTRY.register_all(values)


register_secret = register
"""Another name for `register` (the name `tasks.credentials` calls)."""


def scrub(text: str) -> str:
    """``text`` with every registered value (and its encodings) and credential-looking string
    masked as `gitops.redact.MASK`."""
    return REGISTRY.scrub(text)


def scrub_obj(obj: T) -> T:
    """`scrub` applied to every string inside a nested dict/list/tuple/set payload."""
    return REGISTRY.scrub_obj(obj)


# -- logging --------------------------------------------------------------------------------------

_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}
_SCRUBBED_BY = "_gitops_scrubbed_by"
_EXCEPTION_FORMATTER = logging.Formatter()
_DROPPED = "(log message withheld: it could not be scrubbed)"


class ScrubFilter(logging.Filter):
    """Scrubs a log record in place before a handler formats it; never drops a record.

    The final message (``msg % args``) replaces ``msg`` (``args`` emptied); the exception is
    formatted into ``exc_text`` and scrubbed, and ``exc_info`` cleared, so that no formatter can
    render the raw exception (whose arguments may hold a value) instead; ``stack_info`` and extra
    attributes (``extra=...``) that hold text are scrubbed too. A record is scrubbed once even
    when several handlers carry the filter. If scrubbing fails the message is withheld.
    """

    def __init__(self, registry: SecretRegistry | None = None) -> None:
        super().__init__()
        self.registry = REGISTRY if registry is None else registry

    def filter(self, record: logging.LogRecord) -> bool:
        done = record.__dict__.get(_SCRUBBED_BY, ())
        if id(self.registry) in done:
            return True
        try:
            self._scrub(record)
        except Exception:  # noqa: BLE001 - fail closed: never let the raw text through
            record.msg, record.args = _DROPPED, ()
            record.exc_info = record.exc_text = record.stack_info = None
            record.__dict__.pop("message", None)
        record.__dict__[_SCRUBBED_BY] = (*done, id(self.registry))
        return True

    def _scrub(self, record: logging.LogRecord) -> None:
        registry = self.registry
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - arguments do not fit the format string
            message = f"{record.msg} (log arguments did not match the format; not shown)"
        record.msg, record.args = registry.scrub(str(message)), ()
        if "message" in record.__dict__:
            record.message = record.msg
        if isinstance(record.exc_info, tuple) and record.exc_info[0] is not None \
                and not record.exc_text:
            record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = registry.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = registry.scrub(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES and key != _SCRUBBED_BY and \
                    isinstance(value, str | dict | list | tuple | set | frozenset):
                record.__dict__[key] = registry.scrub_obj(value)


def _handlers() -> list[logging.Handler]:
    """Every handler of the root logger and of every logger created so far (each once)."""
    seen: dict[int, logging.Handler] = {}
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in list(logging.Logger.manager.loggerDict.values())
                if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            seen.setdefault(id(handler), handler)
    if logging.lastResort is not None:
        seen.setdefault(id(logging.lastResort), logging.lastResort)
    return list(seen.values())


_INSTALLED: dict[int, ScrubFilter] = {}
_INSTALL_LOCK = threading.Lock()


def install_log_scrubber(registry: SecretRegistry | None = None) -> int:
    """Attach a `ScrubFilter` to every handler of the root logger and of every existing logger
    (Prefect's ``APILogHandler`` that ships run logs to the server, its console handler, ...).

    Idempotent: a handler that already has the filter for ``registry`` is left alone. Handlers
    created later are not covered: call it again after logging is (re)configured, e.g. at the
    start of each flow. Returns how many handlers got the filter now.
    """
    registry = REGISTRY if registry is None else registry
    with _INSTALL_LOCK:
        log_filter = _INSTALLED.setdefault(id(registry), ScrubFilter(registry))
        added = 0
        for handler in _handlers():
            if not any(isinstance(f, ScrubFilter) and f.registry is registry
                       for f in handler.filters):
                handler.addFilter(log_filter)
                added += 1
        return added


def uninstall_log_scrubber(registry: SecretRegistry | None = None) -> int:
    """Remove the `ScrubFilter` for ``registry`` from every handler; return how many lost it."""
    registry = REGISTRY if registry is None else registry
    with _INSTALL_LOCK:
        removed = 0
        for handler in _handlers():
            for f in list(handler.filters):
                if isinstance(f, ScrubFilter) and f.registry is registry:
                    handler.removeFilter(f)
                    removed += 1
        return removed
