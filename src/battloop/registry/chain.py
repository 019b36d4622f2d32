"""The per-pack hash chain of lifecycle events and the projection of current facts.
Pure: no Django.

Each event's hash is SHA-256 over a canonical JSON form (sorted keys, no whitespace,
UTF-8) of its content and the previous event's hash, so altering, removing or
reordering any event breaks every hash after it (the construction of a hash chain as in
RFC 6962's Merkle log, without the tree). The first event of a pack chains to
``GENESIS``.

The facts on the pack row (state, site, custodian, owner, location) are a projection:
folding the events in order reproduces them, and :func:`verify` checks both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

GENESIS = "0" * 64

#: Facts carried by events and projected onto the pack row. An event sets a fact when
#: its payload has the key (a ``None`` value clears it, e.g. a removed pack has no site).
PROJECTED_FACTS = ("state", "site_code", "custodian", "owner", "location")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(serial: str, seq: int, kind: str, actor: str, organization: str, occurred_at: str,
               payload: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) of an event's canonical content chained to ``prev_hash``."""
    return event_hash_json(serial, seq, kind, actor, organization, occurred_at, canonical_json(payload), prev_hash)


def event_hash_json(serial: str, seq: int, kind: str, actor: str, organization: str, occurred_at: str,
                    payload_json: str, prev_hash: str) -> str:
    """:func:`event_hash` for a payload already in canonical JSON (bulk imports encode it
    once for storage and hashing). The body is exactly ``canonical_json`` of
    {actor, at, kind, org, payload, prev, seq, serial} — keys in sorted order."""
    q = _json_str
    body = (f'{{"actor":{q(actor)},"at":{q(occurred_at)},"kind":{q(kind)},"org":{q(organization)},'
            f'"payload":{payload_json},"prev":{q(prev_hash)},"seq":{int(seq)},"serial":{q(serial)}}}')
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


_json_str = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(frozen=True)
class ChainEvent:
    """An event as the chain sees it (a plain record, whatever stores it)."""

    event_id: int
    serial: str
    seq: int
    kind: str
    actor: str
    organization: str
    occurred_at: str  # ISO 8601, UTC
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainBreak:
    serial: str
    event_id: int | None
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"event #{self.event_id} (seq {self.seq})" if self.event_id is not None else "pack row"
        return f"pack {self.serial}: {where}: {self.problem}"


def project(events: Iterable[ChainEvent | Mapping[str, Any]]) -> dict[str, Any]:
    """Fold payloads in order into the current facts."""
    facts: dict[str, Any] = {k: None for k in PROJECTED_FACTS}
    for ev in events:
        payload = ev.payload if isinstance(ev, ChainEvent) else ev
        for key in PROJECTED_FACTS:
            if key in payload:
                facts[key] = payload[key]
    return facts


def verify(serial: str, events: list[ChainEvent], row_facts: Mapping[str, Any] | None = None,
           row_last_hash: str | None = None) -> ChainBreak | None:
    """Check one pack's chain; return the first break, or None if it is intact.

    Checks, in order: sequence numbers 1..n without gaps, each ``prev_hash`` equals the
    previous event's hash, each stored hash equals the recomputed one, then the pack row's
    projected facts and last hash equal what the events give.
    """
    prev = GENESIS
    for expected_seq, ev in enumerate(events, start=1):
        if ev.seq != expected_seq:
            return ChainBreak(serial, ev.event_id, ev.seq, f"sequence gap: expected seq {expected_seq}, found {ev.seq} (an event is missing or reordered)")
        if ev.prev_hash != prev:
            return ChainBreak(serial, ev.event_id, ev.seq, f"previous-hash link broken: stored {ev.prev_hash[:12]}…, chain has {prev[:12]}…")
        recomputed = event_hash(ev.serial, ev.seq, ev.kind, ev.actor, ev.organization, ev.occurred_at, ev.payload, ev.prev_hash)
        if recomputed != ev.hash:
            return ChainBreak(serial, ev.event_id, ev.seq, f"content altered: stored hash {ev.hash[:12]}…, recomputed {recomputed[:12]}…")
        prev = ev.hash
    if row_last_hash is not None and events and row_last_hash != prev:
        return ChainBreak(serial, None, None, f"pack row's last hash {row_last_hash[:12]}… differs from chain head {prev[:12]}…")
    if row_facts is not None:
        projected = project(events)
        for key in PROJECTED_FACTS:
            if key in row_facts and (row_facts[key] or None) != (projected[key] or None):
                return ChainBreak(serial, None, None, f"projection mismatch on {key}: row has {row_facts[key]!r}, events give {projected[key]!r}")
    return None
