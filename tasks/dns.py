"""DNS stage: point the environment's Route53 record at the stack's output; restore on rollback.

Retries: Route53 calls retry on throttling and transient errors only (UPSERT is idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from gitops.config import DnsSettings
from gitops.errors import DnsError
from gitops.route53 import DnsRecord, Route53Records
from gitops.workspace import EnvWorkspace
from tasks.credentials import phase_credentials
from tasks.retry import BACKOFF, transient_only


@dataclass(frozen=True)
class DnsChange:
    """What the DNS stage changed: enough to put it back."""

    previous: DnsRecord | None
    current: DnsRecord


def route53_records(ws: EnvWorkspace, dns: DnsSettings) -> Route53Records:
    """Records of the environment's zone, with a client made from its apply credentials (a DNS
    change is part of the deploy, so it runs with what the grant gives applies)."""
    creds = phase_credentials(ws, apply=True)
    return Route53Records(creds.get_client("route53"), dns.zone)


def record_value(dns: DnsSettings, outputs: dict) -> str:
    """The record's value: the stack output the environment names (never a sensitive one)."""
    out = outputs.get(dns.output)
    if out is None:
        raise DnsError(f"stack has no output {dns.output!r} for the DNS record {dns.record}")
    if getattr(out, "sensitive", False):
        raise DnsError(f"output {dns.output!r} is sensitive; refusing to publish it in DNS")
    value = getattr(out, "value", out)
    if not isinstance(value, str) or not value:
        raise DnsError(f"output {dns.output!r} is not a non-empty string")
    return value


@task(name="dns", retries=3, retry_delay_seconds=BACKOFF, retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def point_dns(ws: EnvWorkspace, value: str) -> DnsChange | None:
    """UPSERT the record to ``value``, remember the previous record, wait for INSYNC."""
    dns = ws.environment.dns
    if dns is None:
        return None
    logger = get_run_logger()
    records = route53_records(ws, dns)
    previous = records.get(dns.record, dns.type)
    current = DnsRecord(dns.record, dns.type, dns.ttl, (value,))
    if previous == DnsRecord(current.fqdn, current.type, current.ttl, current.values):
        logger.info("%s: %s already points at %s", ws.name, dns.record, value)
        return DnsChange(previous, current)
    change = records.upsert(current, comment=f"gitops-flows {ws.name} {ws.commit[:12]}")
    records.wait_insync(change, timeout=ws.settings.dns_insync_timeout_seconds)
    logger.info("%s: %s %s -> %s (INSYNC)", ws.name, dns.record,
                ", ".join(previous.values) if previous else "(none)", value)
    return DnsChange(previous, current)


@task(name="dns-restore", retries=3, retry_delay_seconds=BACKOFF,
      retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def restore_dns(ws: EnvWorkspace, change: DnsChange) -> str:
    """Put the record back as it was before ``change``; return what was done."""
    dns = ws.environment.dns
    if dns is None:
        return "no DNS record configured"
    records = route53_records(ws, dns)
    if change.previous is None:
        now = records.get(dns.record, dns.type)
        if now is not None:
            records.wait_insync(records.delete(now, comment="gitops-flows rollback"),
                                timeout=ws.settings.dns_insync_timeout_seconds)
        return f"{dns.record} removed (it did not exist before)"
    records.wait_insync(records.upsert(change.previous, comment="gitops-flows rollback"),
                        timeout=ws.settings.dns_insync_timeout_seconds)
    return f"{dns.record} restored to {', '.join(change.previous.values)}"
