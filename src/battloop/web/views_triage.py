"""Triage pages: the queue of packs by their current route with the rules that decided,
and the field's KPIs for a period (DOMAIN.md §4: ≥ 20 % of retired packs evaluated for
second life; certified recycling), over the packs the signed-in organization may see."""

from __future__ import annotations

import datetime as dt

from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from battloop.triage.kpis import registry_kpis
from battloop.triage.models import TriageDecision
from battloop.triage.policy import ROUTES

from . import access
from .views import member_required


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


@member_required
def triage_queue(request):
    """Packs by their current triage route, with the rules that decided and the KPIs."""
    packs = access.packs_for(request.actor)
    route = request.GET.get("route", "")
    qs = TriageDecision.objects.filter(current=True, pack__in=packs.values("id")).select_related("pack", "policy")
    counts = dict(qs.values_list("route").annotate(n=Count("id")))
    if route:
        qs = qs.filter(route=route)
    page = Paginator(qs.order_by("route", "pack__serial"), 50).get_page(request.GET.get("page"))
    total = sum(counts.values())
    reuse = sum(v for k, v in counts.items() if k.startswith("reuse"))
    date_to = _date(request.GET.get("to")) or timezone.localdate()
    date_from = _date(request.GET.get("from")) or date_to - dt.timedelta(days=364)
    period_error = ""
    if date_from > date_to:
        period_error = _("The period starts after it ends; showing the 365 days up to its end.")
        date_from = date_to - dt.timedelta(days=364)
    kpis = registry_kpis(date_from, date_to, packs=packs.values("id"))
    # Shares of retired packs mean nothing without retired packs; the certified share is of
    # packs routed to recycling and is None when there are none.
    pct = {}
    for key in ("evaluated_for_second_life_share", "routed_to_reuse_share", "routed_to_recycling_share"):
        pct[key] = round(100 * kpis[key], 1) if kpis["retired_packs"] else None
    cert = kpis["certified_recycling_share"]
    pct["certified_recycling_share"] = None if cert is None else round(100 * cert, 1)
    return render(request, "web/triage_queue.html", {
        "page": page, "route": route, "routes": ROUTES, "counts": counts, "total": total,
        "reuse_share": round(100 * reuse / total, 1) if total else None, "kpis": kpis, "pct": pct,
        "evaluated_target_pct": round(100 * kpis["evaluated_target"]), "certified_target_pct": round(100 * kpis["certified_target"]),
        "period_error": period_error})
