"""Route53Records against Route53 on the moto server, plus how API errors are classified."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from gitops.errors import DnsError
from gitops.route53 import DnsRecord, DnsUnavailable, Route53Records
from deployments.sandbox.aws import MotoServer, ensure_hosted_zone, sandbox_client


@pytest.fixture()
def records(moto_server: MotoServer, request: pytest.FixtureRequest) -> Route53Records:
    zone = f"z{abs(hash(request.node.nodeid)) % 10**6}.test"
    client = sandbox_client("route53", moto_server.endpoint)
    ensure_hosted_zone(client, zone)
    return Route53Records(client, zone)


def test_upsert_then_get_then_replace_then_delete(records: Route53Records) -> None:
    name = f"app.{records.zone_name}"
    assert records.get(name, "CNAME") is None
    first = DnsRecord(name, "CNAME", 60, ("lb-1.example.internal",))
    records.wait_insync(records.upsert(first), timeout=5, poll_interval=0.1)
    assert records.get(name, "CNAME") == DnsRecord(first.fqdn, "CNAME", 60, first.values)

    second = DnsRecord(name, "CNAME", 30, ("lb-2.example.internal",))
    records.upsert(second)
    assert records.get(name, "CNAME").values == ("lb-2.example.internal",)

    records.delete(records.get(name, "CNAME"))
    assert records.get(name, "CNAME") is None


def test_a_missing_zone_is_a_plain_dns_error(moto_server: MotoServer) -> None:
    missing = Route53Records(sandbox_client("route53", moto_server.endpoint), "nowhere.test")
    with pytest.raises(DnsError, match="hosted zone nowhere.test. not found") as info:
        missing.get("app.nowhere.test", "CNAME")
    assert not isinstance(info.value, DnsUnavailable)  # not retried


class ThrottledClient:
    """A Route53 client whose change calls are throttled, then refused."""

    def __init__(self, code: str) -> None:
        self.code = code

    def list_hosted_zones_by_name(self, **_: Any) -> dict:
        return {"HostedZones": [{"Name": "z.test.", "Id": "/hostedzone/Z1"}]}

    def change_resource_record_sets(self, **_: Any) -> dict:
        raise ClientError({"Error": {"Code": self.code, "Message": "nope"}},
                          "ChangeResourceRecordSets")


@pytest.mark.parametrize("code, transient", [("Throttling", True),
                                             ("PriorRequestNotComplete", True),
                                             ("InvalidChangeBatch", False),
                                             ("AccessDenied", False)])
def test_throttling_is_transient_and_refusals_are_not(code: str, transient: bool) -> None:
    records = Route53Records(ThrottledClient(code), "z.test")
    with pytest.raises(DnsError) as info:
        records.upsert(DnsRecord("a.z.test", "CNAME", 60, ("x",)))
    assert isinstance(info.value, DnsUnavailable) is transient
    assert code in str(info.value)


class PendingClient(ThrottledClient):
    """A change that stays PENDING (moto reports INSYNC at once, so this path needs a fake)."""

    def __init__(self) -> None:
        super().__init__("")
        self.polls = 0

    def get_change(self, **_: Any) -> dict:
        self.polls += 1
        return {"ChangeInfo": {"Status": "PENDING"}}


def test_a_change_that_never_reaches_insync_times_out() -> None:
    client = PendingClient()
    now = [0.0]
    records = Route53Records(client, "z.test", sleep=lambda s: now.__setitem__(0, now[0] + s),
                             clock=lambda: now[0])
    with pytest.raises(DnsError, match="still PENDING after 30s"):
        records.wait_insync("C1", timeout=30, poll_interval=5)
    assert client.polls == 7
