"""Verify every pack's hash chain and projection against the database, streaming."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Callable, Iterator

from django.db import connection

from . import chain
from .models import Organization, Pack, PackEvent, Site


@dataclass
class VerifyResult:
    packs: int = 0
    events: int = 0
    breaks: list[chain.ChainBreak] = field(default_factory=list)
    seconds: float = 0.0


def _iso(value) -> str:
    if isinstance(value, str):  # SQLite through a raw cursor
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def verify_chains(serial: str | None = None, progress: Callable[[int], None] | None = None, batch_packs: int = 20_000) -> VerifyResult:
    """Recompute hashes and projections for all packs (or one). Memory is bounded by
    ``batch_packs`` packs' events at a time."""
    import time

    started = time.perf_counter()
    result = VerifyResult()
    orgs = dict(Organization.objects.values_list("id", "code"))
    packs = Pack.objects.order_by("id")
    if serial:
        packs = packs.filter(serial=serial)
        if not packs.exists():
            raise LookupError(f"no pack with serial {serial!r}")
    site_codes: dict[int, str] = {}
    last_id = 0
    while True:
        page = list(packs.filter(id__gt=last_id).values_list("id", "serial", "state", "site_id", "custodian_id", "owner_id",
                                                             "location", "last_event_hash")[:batch_packs])
        if not page:
            break
        last_id = page[-1][0]
        lo, hi = page[0][0], page[-1][0]
        missing_sites = {p[3] for p in page if p[3] and p[3] not in site_codes}
        if missing_sites:
            site_codes.update(Site.objects.filter(id__in=missing_sites).values_list("id", "code"))
        events_by_pack: dict[int, list[chain.ChainEvent]] = {}
        with connection.cursor() as cur:
            cur.execute(
                "SELECT e.id, e.pack_id, e.seq, e.kind, e.actor, e.organization_id, e.occurred_at, e.payload, e.prev_hash, e.hash "
                "FROM registry_packevent e WHERE e.pack_id BETWEEN %s AND %s ORDER BY e.pack_id, e.seq",
                [lo, hi],
            )
            serial_of = {p[0]: p[1] for p in page}
            for eid, pid, seq, kind, actor, org_id, at, payload, prev, digest in cur:
                if pid not in serial_of:
                    continue
                if isinstance(payload, str):
                    payload = json.loads(payload)
                events_by_pack.setdefault(pid, []).append(chain.ChainEvent(
                    eid, serial_of[pid], seq, kind, actor, orgs.get(org_id, "") if org_id else "", _iso(at), payload, prev, digest))
        for pid, ser, state, site_id, cust_id, owner_id, location, last_hash in page:
            events = events_by_pack.get(pid, [])
            result.packs += 1
            result.events += len(events)
            if not events:
                result.breaks.append(chain.ChainBreak(ser, None, None, "pack has no events (it was not registered through the chain)"))
                continue
            facts = {"state": state, "site_code": site_codes.get(site_id) if site_id else None,
                     "custodian": orgs.get(cust_id), "owner": orgs.get(owner_id), "location": location or None}
            brk = chain.verify(ser, events, facts, last_hash)
            if brk:
                result.breaks.append(brk)
        if progress:
            progress(result.packs)
    result.seconds = time.perf_counter() - started
    return result
