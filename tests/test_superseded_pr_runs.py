"""A burst of pushes to one PR: older pr-plan runs see the newer one and leave the comment to it."""

from __future__ import annotations

from prefect import flow, tags
from prefect.client.orchestration import get_client

from flows.common import superseding_run
from gitops.receiver import pr_tag

TAG = pr_tag("Acme/Infrastructure", 5)


@flow(name="pr-plan-probe")
def probe(repository: str, pr_number: int, head_sha: str, newer_head: str | None) -> str | None:
    """Create a newer run for the same PR (as the receiver would), then ask who supersedes us."""
    if newer_head is not None:
        with get_client(sync_client=True) as client:
            client.create_flow_run(flow=probe, tags=[TAG], parameters={
                "repository": repository, "pr_number": pr_number, "head_sha": newer_head,
                "newer_head": None})
    return superseding_run()


def test_a_newer_run_for_another_head_supersedes(prefect_api):
    with tags(TAG):
        newer = probe("acme/infrastructure", 5, "a" * 40, "b" * 40)
    assert newer is not None


def test_a_run_alone_is_not_superseded(prefect_api):
    with tags(pr_tag("acme/infrastructure", 6)):
        assert probe("acme/infrastructure", 6, "c" * 40, None) is None


def test_a_redelivery_of_the_same_head_does_not_supersede(prefect_api):
    with tags(pr_tag("acme/infrastructure", 7)):
        assert probe("acme/infrastructure", 7, "d" * 40, "d" * 40) is None


def test_runs_without_the_pr_tag_are_never_superseded(prefect_api):
    assert probe("acme/infrastructure", 5, "e" * 40, "f" * 40) is None


def test_pr_tags_ignore_the_case_of_the_repository_name():
    assert pr_tag("Acme/Infra", 3) == pr_tag("acme/infra", 3) == "pr:acme/infra#3"
