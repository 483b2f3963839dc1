"""Route53 records: read, UPSERT, restore, wait for INSYNC. The boto3 client comes in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitops.errors import DnsError

_TRANSIENT_CODES = {"Throttling", "ThrottlingException", "PriorRequestNotComplete",
                    "ServiceUnavailable", "InternalError", "RequestTimeout"}


class DnsUnavailable(DnsError):
    """Route53 throttled or failed transiently: safe to retry."""


@dataclass(frozen=True)
class DnsRecord:
    """One simple (non-alias) record set."""

    name: str
    type: str
    ttl: int
    values: tuple[str, ...]

    @property
    def fqdn(self) -> str:
        return self.name.rstrip(".") + "."


def _wrap(action: str, exc: Exception) -> DnsError:
    """One DnsError for a failed call: DnsUnavailable (retried) for throttling, server errors and
    connection problems; a plain DnsError for refusals (bad request, access denied)."""
    if isinstance(exc, DnsError):
        return exc
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    cls = DnsUnavailable if code in _TRANSIENT_CODES or code == "" else DnsError
    return cls(f"Route53 {action} failed: {code or type(exc).__name__}: "
               f"{str(exc)[:300]}")


class Route53Records:
    """Records of one hosted zone."""

    def __init__(self, client: Any, zone_name: str, *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self.zone_name = zone_name.rstrip(".") + "."
        self._zone_id: str | None = None
        self._sleep = sleep
        self._clock = clock

    @property
    def zone_id(self) -> str:
        if self._zone_id is None:
            try:
                zones = self._client.list_hosted_zones_by_name(DNSName=self.zone_name)
            except Exception as exc:  # botocore errors are dynamic classes
                raise _wrap("list_hosted_zones_by_name", exc) from exc
            for zone in zones.get("HostedZones", []):
                if zone["Name"] == self.zone_name:
                    self._zone_id = str(zone["Id"]).split("/")[-1]
                    break
            else:
                raise DnsError(f"hosted zone {self.zone_name} not found")
        return self._zone_id

    def get(self, name: str, type_: str) -> DnsRecord | None:
        """The current record, or None when it does not exist."""
        fqdn = name.rstrip(".") + "."
        zone_id = self.zone_id
        try:
            page = self._client.list_resource_record_sets(
                HostedZoneId=zone_id, StartRecordName=fqdn, StartRecordType=type_,
                MaxItems="1")
        except Exception as exc:
            raise _wrap("list_resource_record_sets", exc) from exc
        for rrset in page.get("ResourceRecordSets", []):
            if rrset["Name"] == fqdn and rrset["Type"] == type_ and "ResourceRecords" in rrset:
                return DnsRecord(fqdn, type_, int(rrset.get("TTL", 0)),
                                 tuple(r["Value"] for r in rrset["ResourceRecords"]))
        return None

    def _change(self, action: str, record: DnsRecord, comment: str) -> str:
        zone_id = self.zone_id
        try:
            resp = self._client.change_resource_record_sets(
                HostedZoneId=zone_id,
                ChangeBatch={"Comment": comment[:256], "Changes": [{
                    "Action": action,
                    "ResourceRecordSet": {
                        "Name": record.fqdn, "Type": record.type, "TTL": record.ttl,
                        "ResourceRecords": [{"Value": v} for v in record.values]}}]})
        except Exception as exc:
            raise _wrap(f"{action} {record.fqdn}", exc) from exc
        return str(resp["ChangeInfo"]["Id"]).split("/")[-1]

    def upsert(self, record: DnsRecord, comment: str = "gitops-flows") -> str:
        """Create or replace ``record``; return the change id."""
        return self._change("UPSERT", record, comment)

    def delete(self, record: DnsRecord, comment: str = "gitops-flows") -> str:
        """Delete ``record`` (exactly as it is now); return the change id."""
        return self._change("DELETE", record, comment)

    def wait_insync(self, change_id: str, timeout: float = 300.0,
                    poll_interval: float = 5.0) -> None:
        """Block until the change is INSYNC, or raise DnsError after ``timeout`` seconds."""
        deadline = self._clock() + timeout
        while True:
            try:
                status = self._client.get_change(Id=change_id)["ChangeInfo"]["Status"]
            except Exception as exc:
                raise _wrap("get_change", exc) from exc
            if status == "INSYNC":
                return
            if self._clock() >= deadline:
                raise DnsError(f"Route53 change {change_id} still {status} after {timeout:.0f}s")
            self._sleep(poll_interval)
