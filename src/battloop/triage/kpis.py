"""The field's triage KPIs for a period, from the registry (DOMAIN.md §1, §4).

Definitions (what each number counts):

* **Retired packs** — packs that left first life in the period: the first time a pack
  entered ``removed`` (taken out of service, DOMAIN.md §2) falls in the period. A pack
  registered already out of service (state ``removed`` or ``in_storage`` at
  registration: legacy packs arriving at an outlet) retires at its registration. Later
  removals (from a second life) do not count again. This is the denominator of every share.
* **Evaluated for second life** (target ≥ 20 %, DOMAIN.md §4) — retired packs whose
  current triage decision weighed them for a second life: the policy got past its safety
  gates and evidence checks and routed the pack on its remaining capacity, resistance and
  chemistry. In route terms: a reuse route (``reuse_ess``, ``reuse_backup``,
  ``reuse_low_speed``), or ``recycle`` for a pack judged intact (safety class A in the
  decision's inputs; a class C pack sent to recycling was never a reuse candidate). Packs
  on ``hold`` (safety or missing evidence), sent back to first life, or not yet triaged
  were not evaluated.
* **Routed to reuse / to recycling** — retired packs whose current decision is a reuse
  route / ``recycle``.
* **Received by certified recyclers** — retired packs received (shipment item marked
  received) by an organization on the MIIT white-list (``recycler_whitelisted``); its
  share is of the packs routed to recycling (target ≥ 80 %, DOMAIN.md §4), next to the
  packs received by any recycler, white-listed or not (DOMAIN.md §1: only ~25 % reach the
  white-listed recyclers).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Min, Q
from django.utils import timezone

from battloop.registry.lifecycle import State
from battloop.registry.models import Pack, PackEvent

from .models import TriageDecision
from .policy import REUSE_ROUTES, TriageTargets, triage_kpis

_RETIRED_AT_REGISTRATION = (State.REMOVED.value, State.IN_STORAGE.value)


def _bounds(date_from: dt.date, date_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def retired_pack_ids(date_from: dt.date, date_to: dt.date, packs=None) -> list[int]:
    """Packs whose first retirement (see the module docstring) falls in [date_from, date_to]."""
    start, end = _bounds(date_from, date_to)
    events = PackEvent.objects.filter(
        Q(kind=PackEvent.Kind.TRANSITION, payload__state=State.REMOVED.value)
        | Q(kind=PackEvent.Kind.REGISTERED, payload__state__in=_RETIRED_AT_REGISTRATION))
    if packs is not None:
        events = events.filter(pack__in=packs)
    first = events.values("pack_id").annotate(at=Min("occurred_at")).filter(at__gte=start, at__lt=end)
    return [row["pack_id"] for row in first]


def registry_kpis(date_from: dt.date | None = None, date_to: dt.date | None = None, packs=None,
                  targets: TriageTargets = TriageTargets()) -> dict[str, Any]:
    """The KPIs of the period (default: the 365 days up to today), optionally among ``packs``."""
    from battloop.logistics.models import ShipmentItem  # read-only use of the logistics records

    date_to = date_to or timezone.localdate()
    date_from = date_from or date_to - dt.timedelta(days=364)
    if date_from > date_to:
        raise ValueError(f"the period starts ({date_from}) after it ends ({date_to})")
    ids = retired_pack_ids(date_from, date_to, packs)
    decisions = {pid: (route, (inputs or {}).get("safety_class"))
                 for pid, route, inputs in TriageDecision.objects.filter(current=True, pack_id__in=ids)
                 .values_list("pack_id", "route", "inputs")}
    received = ShipmentItem.objects.filter(pack_id__in=ids, received=True)
    certified = set(received.filter(shipment__receiver__recycler_whitelisted=True).values_list("pack_id", flat=True))
    any_recycler = set(received.filter(shipment__receiver__kind="recycler").values_list("pack_id", flat=True))
    triaged = sorted(decisions)
    routes = [decisions[p][0] for p in triaged]
    evaluated = [r in REUSE_ROUTES or (r == "recycle" and decisions[p][1] == "A") for p, r in zip(triaged, routes)]
    k = triage_kpis(len(ids), routes, evaluated=evaluated, certified_recycler=[p in certified for p in triaged],
                    targets=targets)
    # certified_recycling (triage_kpis): routed to recycling AND received by a white-listed recycler
    k["received_by_certified_recycler"] = len(certified)  # whatever the route (damaged packs too)
    k["received_by_any_recycler"] = len(any_recycler)
    k["not_triaged"] = len(ids) - len(triaged)
    k["from"], k["to"] = date_from.isoformat(), date_to.isoformat()
    return k
