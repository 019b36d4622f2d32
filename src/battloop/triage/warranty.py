"""Warranty tracking for redeployed packs (DOMAIN.md §4: second-life ESS warranties run
"1–2 years or 1,000 cycles to 70 % residual capacity", whichever limit comes first).

A :class:`~battloop.triage.models.Redeployment` is recorded with every transition to
``redeployed`` (whoever makes it: ``battloop triage redeploy``, ``battloop transition``,
the pack page or the API); warranty terms come from the transition's evidence key
``warranty`` and are parsed by :func:`battloop.triage.matching.parse_warranty`. The
baselines are the pack's latest bench SOH (else its health estimate) and its cycle
counter at the start.

Status of a warranty on a day (:meth:`battloop.triage.matching.WarrantyTerms.status`):

* ``expired_years`` — the warranted years have run out;
* ``expired_cycles`` — the cycles since redeployment (cycle counter now − at start)
  reached the warranted count;
* ``claim`` — while the warranty runs, the pack's SOH fell below the guaranteed residual
  capacity: the integrator owes a replacement or repair. The SOH judged is the latest
  evidence taken after the start: a bench test, else the health assessment's P50;
* ``active`` — none of these;
* ``no_terms`` — the redeployment recorded no warranty.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.utils import timezone

from battloop.registry.events import transition
from battloop.registry.lifecycle import State, TransitionRefused
from battloop.registry.models import Organization, Pack, PackEvent, Site

from .matching import WarrantyTerms, parse_warranty
from .models import BenchResult, Redeployment, TriageDecision


class RedeployError(ValueError):
    """A redeployment cannot be recorded; the message names the pack and what is wrong."""


def _baselines(pack: Pack) -> dict[str, Any]:
    bench = BenchResult.objects.filter(pack=pack).first()
    health = getattr(pack, "health", None)
    soh, source = None, ""
    if bench is not None and bench.soh_pct is not None:
        soh, source = bench.soh_pct, "bench"
    elif health is not None:
        soh, source = health.soh_p50_pct, "health"
    cycles = bench.cycle_count if bench is not None and bench.cycle_count is not None else None
    if cycles is None:
        from battloop.telemetry.models import LatestReading

        cycles = LatestReading.objects.filter(pack=pack).values_list("cycle_count", flat=True).first()
    return {"baseline_soh_pct": soh, "baseline_soh_source": source, "baseline_cycle_count": cycles}


def record_redeployment(event: PackEvent) -> Redeployment:
    """The redeployment a ``redeployed`` transition event stands for (warranty terms from its
    ``warranty`` evidence; an unreadable text refuses the transition)."""
    payload = event.payload
    text = (payload.get("warranty") or "").strip()
    terms = None
    if text:
        try:
            terms = parse_warranty(text)
        except ValueError as exc:
            raise TransitionRefused(f"pack {event.pack.serial}: {exc}") from None
    pack = event.pack
    start = payload.get("start_date")
    start_date = dt.date.fromisoformat(start) if start else timezone.localdate(event.occurred_at)
    return Redeployment.objects.create(
        pack=pack, site=Site.objects.filter(code=payload.get("site_code")).first(), demand_id=payload.get("demand_id") or "",
        integrator=event.organization, start_date=start_date, warranty_text=text,
        warranty_years=terms.years if terms else None, warranty_cycles=terms.cycles if terms else None,
        warranty_end_soh_pct=terms.end_soh_pct if terms else None, event=event, **_baselines(pack))


def _on_event(sender, instance: PackEvent, created: bool, **kwargs) -> None:
    # Every way into 'redeployed' goes through registry.events.append_event, inside its
    # transaction: the redeployment is recorded with the event or not at all.
    if created and instance.kind == PackEvent.Kind.TRANSITION and instance.payload.get("state") == State.REDEPLOYED:
        record_redeployment(instance)


def connect() -> None:
    post_save.connect(_on_event, sender=PackEvent, dispatch_uid="triage-redeployment")


def redeploy(serial: str, *, site_code: str, integrator: str, warranty: str, demand_id: str = "",
             start_date: dt.date | None = None, actor: str = "cli") -> Redeployment:
    """Put a triaged pack routed to reuse into second life at ``site_code``: ``triaged →
    second_life_ready`` (with the safety class of its latest bench result, which must be
    A: DOMAIN.md §4, safety gates before any reuse) then ``→ redeployed``."""
    try:
        terms = parse_warranty(warranty)
    except ValueError as exc:
        raise RedeployError(f"pack {serial}: --warranty: {exc}") from None
    pack = Pack.objects.filter(serial=serial).first()
    if pack is None:
        raise RedeployError(f"no pack {serial!r} in the registry")
    org = Organization.objects.filter(code=integrator).first()
    if org is None:
        raise RedeployError(f"--integrator {integrator!r} is not a registered organization")
    if not Site.objects.filter(code=site_code).exists():
        raise RedeployError(f"--site {site_code!r} is not a registered site")
    today = timezone.localdate()
    start_date = start_date or today
    if start_date > today:
        raise RedeployError(f"pack {serial}: start date {start_date} is in the future")
    with transaction.atomic():
        if pack.state == State.TRIAGED:
            decision = TriageDecision.objects.filter(pack=pack, current=True).first()
            if decision is None or not decision.route.startswith("reuse"):
                route = decision.route if decision else "no decision"
                raise RedeployError(f"pack {serial}: its triage route is {route}, not a reuse route; it cannot be "
                                    f"redeployed")
            safety = decision.inputs.get("safety_class")
            if safety != "A":
                raise RedeployError(f"pack {serial}: safety class {safety or 'not judged'}; only class A packs are "
                                    f"redeployed (DOMAIN.md §4-5)")
            transition(pack, State.SECOND_LIFE_READY, actor, org, {"safety_class": safety, "route": decision.route})
        elif pack.state != State.SECOND_LIFE_READY:
            raise RedeployError(f"pack {serial} is '{pack.state}'; only a triaged pack routed to reuse or one "
                                f"ready for second life can be redeployed")
        evidence = {"site_code": site_code, "warranty": terms.text, "start_date": start_date.isoformat()}
        if demand_id:
            evidence["demand_id"] = demand_id
        try:
            event = transition(pack, State.REDEPLOYED, actor, org, evidence)
        except TransitionRefused as exc:
            raise RedeployError(str(exc)) from None
    return Redeployment.objects.get(event=event)


def _latest_soh_after(pack: Pack, since: dt.date) -> tuple[float | None, str]:
    bench = BenchResult.objects.filter(pack=pack, tested_at__date__gte=since, soh_pct__isnull=False).first()
    health = getattr(pack, "health", None)
    candidates = []
    if bench is not None:
        candidates.append((bench.tested_at, bench.soh_pct, "bench"))
    if health is not None and timezone.localdate(health.assessed_at) >= since:
        candidates.append((health.assessed_at, health.soh_p50_pct, "health P50"))
    if not candidates:
        return None, ""
    _, soh, source = max(candidates, key=lambda c: c[0])
    return soh, source


def warranty_status(r: Redeployment, today: dt.date | None = None) -> dict[str, Any]:
    """One redeployment's warranty on ``today``: status, what it was judged on, what is left."""
    today = today or timezone.localdate()
    pack = r.pack
    soh, soh_source = _latest_soh_after(pack, r.start_date)
    lr = getattr(pack, "latest_reading", None)
    cycles_now = lr.cycle_count if lr is not None and lr.cycle_count is not None else None
    cycles_done = (cycles_now - r.baseline_cycle_count) if cycles_now is not None and r.baseline_cycle_count is not None else None
    years_in = (today - r.start_date).days / 365.25
    out = {"serial": pack.serial, "state": pack.state, "site": r.site.code if r.site else None, "demand_id": r.demand_id,
           "integrator": r.integrator.code if r.integrator else None, "start_date": r.start_date.isoformat(),
           "warranty": r.warranty_text, "baseline_soh_pct": r.baseline_soh_pct, "soh_pct": soh, "soh_source": soh_source,
           "years_in_service": round(years_in, 2), "cycles_since_start": cycles_done}
    if not r.warranty_text:
        return {**out, "status": "no_terms", "years_left": None, "cycles_left": None}
    terms = WarrantyTerms(years=r.warranty_years, cycles=r.warranty_cycles, end_soh_pct=r.warranty_end_soh_pct,
                          text=r.warranty_text)
    status = terms.status(r.start_date, max(today, r.start_date), cycles_done=cycles_done, soh_pct=soh)
    return {**out, "status": status, "guaranteed_soh_pct": r.warranty_end_soh_pct,
            "years_left": round(max(0.0, r.warranty_years - years_in), 2) if r.warranty_years is not None else None,
            "cycles_left": max(0, r.warranty_cycles - cycles_done) if r.warranty_cycles is not None and cycles_done is not None else None}


def current_redeployments(packs=None):
    """The latest redeployment of each pack that has one (optionally among ``packs``)."""
    qs = Redeployment.objects.select_related("pack", "pack__health", "pack__latest_reading", "site", "integrator")
    if packs is not None:
        qs = qs.filter(pack__in=packs)
    latest: dict[int, Redeployment] = {}
    for r in qs.order_by("pack_id", "-start_date", "-id"):
        latest.setdefault(r.pack_id, r)
    return sorted(latest.values(), key=lambda r: r.pack.serial)


def warranty_report(today: dt.date | None = None, packs=None) -> list[dict[str, Any]]:
    return [warranty_status(r, today) for r in current_redeployments(packs)]
