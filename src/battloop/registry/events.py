"""Appending lifecycle events: the only way facts about a pack change."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import chain, lifecycle
from .models import Organization, Pack, PackEvent, Site


def iso_utc(moment: dt.datetime) -> str:
    """The canonical timestamp form used inside hashes."""
    if timezone.is_naive(moment):
        raise ValueError("event times must be timezone-aware")
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def _apply_projection(pack: Pack, payload: dict[str, Any]) -> None:
    if "state" in payload:
        pack.state = payload["state"]
    if "site_code" in payload:
        pack.site = Site.objects.get(code=payload["site_code"]) if payload["site_code"] else None
    if "custodian" in payload:
        pack.custodian = Organization.objects.get(code=payload["custodian"])
    if "owner" in payload:
        pack.owner = Organization.objects.get(code=payload["owner"])
    if "location" in payload:
        pack.location = payload["location"] or ""


def append_event(pack: Pack, kind: str, actor: str, organization: Organization | None, payload: dict[str, Any],
                 occurred_at: dt.datetime | None = None, place: str = "") -> PackEvent:
    """Append one event to ``pack``'s chain and update the pack's projection, atomically.

    The pack row is locked for the duration, so concurrent appends to one pack serialize
    and the chain never forks.
    """
    occurred_at = occurred_at or timezone.now()
    with transaction.atomic():
        locked = Pack.objects.select_for_update().get(pk=pack.pk)
        seq = locked.event_count + 1
        prev = locked.last_event_hash or chain.GENESIS
        org_code = organization.code if organization else ""
        digest = chain.event_hash(locked.serial, seq, kind, actor, org_code, iso_utc(occurred_at), payload, prev)
        event = PackEvent.objects.create(
            pack=locked, seq=seq, kind=kind, actor=actor, organization=organization,
            occurred_at=occurred_at, place=place, payload=payload, prev_hash=prev, hash=digest,
        )
        _apply_projection(locked, payload)
        locked.event_count = seq
        locked.last_event_hash = digest
        locked.save()
    pack.refresh_from_db()
    return event


def transition(pack: Pack, target: str, actor: str, organization: Organization | None,
               evidence: dict[str, Any] | None = None, occurred_at: dt.datetime | None = None) -> PackEvent:
    """Move ``pack`` to ``target`` if the state machine allows it; raise
    :class:`lifecycle.TransitionRefused` with the reason otherwise."""
    evidence = dict(evidence or {})
    performer = organization.kind if organization else lifecycle.SYSTEM
    lifecycle.check_transition(pack.serial, pack.state, target, performer, evidence)
    payload: dict[str, Any] = {"state": target, "from_state": pack.state, **evidence}
    if target in (lifecycle.State.INSTALLED, lifecycle.State.REDEPLOYED):
        site = Site.objects.filter(code=evidence["site_code"]).first()
        if site is None:
            raise lifecycle.TransitionRefused(f"pack {pack.serial}: unknown site {evidence['site_code']!r}")
    elif target in (lifecycle.State.REMOVED, lifecycle.State.LOST, lifecycle.State.RECYCLED, lifecycle.State.SHIPPED):
        payload["site_code"] = None
    if target == lifecycle.State.IN_STORAGE:
        payload["location"] = evidence["outlet"]
    place = evidence.get("site_code") or evidence.get("outlet") or ""
    return append_event(pack, PackEvent.Kind.TRANSITION, actor, organization, payload, occurred_at, place=place)
