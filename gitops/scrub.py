"""PLACEHOLDER until the scrub branch lands: the registry API the product calls."""
from __future__ import annotations

import threading

from gitops.redact import redact_text

_LOCK = threading.Lock()
_VALUES: set[str] = set()


def register_secret(value: str) -> None:
    if isinstance(value, str) and value:
        with _LOCK:
            _VALUES.add(value)


def scrub(text: str) -> str:
    with _LOCK:
        known = tuple(_VALUES)
    return redact_text(text, known)


def scrub_obj(obj):
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(scrub_obj(v) for v in obj)
    return obj


import logging


class _Filter(logging.Filter):
    def filter(self, record):
        msg = record.getMessage()
        record.msg, record.args = scrub(msg), ()
        return True


def install_log_scrubber():
    f = _Filter()
    loggers = [logging.getLogger()] + [l for l in logging.Logger.manager.loggerDict.values() if isinstance(l, logging.Logger)]
    for lg in loggers:
        for h in lg.handlers:
            if not any(isinstance(x, _Filter) for x in h.filters):
                h.addFilter(f)
