"""Blocks as the flows read them (tasks/credentials.py), on the tests' Prefect server: one read
per flow run and block within the reuse window, never a value kept from another run."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow

BLOCK = f"test-reuse-{uuid.uuid4().hex[:8]}"


def _save(value: str) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save(BLOCK, overwrite=True)


@flow
def read_twice_around_a_rotation(new_value: str) -> tuple[str, str]:
    from tasks.credentials import load_secret

    first = load_secret(BLOCK)
    _save(new_value)             # rotated while this run goes on
    return first, load_secret(BLOCK)


def test_a_run_reads_a_block_once_and_the_next_run_reads_it_anew(prefect_api: None,
                                                                    monkeypatch: Any) -> None:
    from prefect.blocks.system import Secret

    reads: list[str] = []
    _save("first-secret-value-0123")
    original = Secret.load

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(Secret, "load", counting)

    first, again = read_twice_around_a_rotation("second-secret-value-4567")
    assert (first, again) == ("first-secret-value-0123", "first-secret-value-0123")
    assert reads == [BLOCK]      # the second read within the run came from the run's own copy

    first, again = read_twice_around_a_rotation("third-secret-value-89ab")
    assert first == "second-secret-value-4567"   # a new run never gets the old run's copy
    assert reads == [BLOCK, BLOCK]


def test_a_reused_value_is_registered_with_the_scrubber_on_every_use(prefect_api: None,
                                                                      monkeypatch: Any) -> None:
    """The registry may be new since the first read (cleared between runs of a long-lived
    process): a value handed out again is registered again."""
    import tasks.credentials as credentials

    registered: list[str] = []
    monkeypatch.setattr(credentials, "register_secret", registered.append)

    @flow
    def read_twice() -> None:
        credentials.load_secret(BLOCK)
        credentials.load_secret(BLOCK)

    _save("registered-each-time-1357")
    read_twice()
    assert registered == ["registered-each-time-1357"] * 2


def test_outside_a_flow_run_every_read_goes_to_the_server(prefect_api: None) -> None:
    from tasks.credentials import load_secret

    _save("outside-value-one-2345")
    assert load_secret(BLOCK) == "outside-value-one-2345"
    _save("outside-value-two-6789")
    assert load_secret(BLOCK) == "outside-value-two-6789"
