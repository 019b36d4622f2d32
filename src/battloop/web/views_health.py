"""Health outlook page: sites that lose their required backup time first, the owner's
retirements per quarter (P10/P50/P90, energy, replacement cost) and packs aging faster
than their cohort -- all as stored by ``battloop assess``."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import F
from django.shortcuts import render
from django.utils.translation import gettext as _

from battloop.health.records import HealthAssessment, OutlookRun, RetirementForecast, SiteBackupOutlook

from . import access
from .views import member_required


@member_required
def health_outlook(request):
    actor = request.actor
    run = OutlookRun.objects.order_by("-computed_at").first()
    sites = (SiteBackupOutlook.objects.filter(site__in=access.sites_for(actor))
             .select_related("site", "earliest_failing_pack")
             .order_by(F("short_p10").asc(nulls_last=True), F("hours_now_p50").asc(nulls_last=True), "site__code"))
    short_now = sites.filter(meets_now=False).count()
    unknown_load = sites.filter(load_w__isnull=True).count()
    page = Paginator(sites, 50).get_page(request.GET.get("page"))

    owners = access.portfolio_owner_ids(actor)
    dim = request.GET.get("by", "province")
    if dim not in ("province", "model"):
        dim = "province"
    retire = RetirementForecast.objects.filter(run=run, owner_id__in=owners) if run else RetirementForecast.objects.none()
    total = list(retire.filter(dimension="owner").select_related("owner").order_by("owner__code", "quarter"))
    chart = {"quarters": [], "p10": [], "p50": [], "p90": [], "cum_p50": [],
             "labels": {"per_quarter": _("packs / quarter"), "cumulative": _("cumulative"), "cum_p50": _("cumulative P50")}}
    if len({r.owner_id for r in total}) == 1:
        for r in total:
            chart["quarters"].append(r.quarter)
            chart["p10"].append(r.count_p10)
            chart["p50"].append(r.count_p50)
            chart["p90"].append(r.count_p90)
            chart["cum_p50"].append(r.cum_count_p50)
    five_year = {}
    for r in total:  # the last quarter's cumulative row is the five-year total
        five_year[r.owner_id] = r
    groups = []
    if run:
        last_q = max((r.quarter for r in total), default=None)
        if last_q:
            groups = list(retire.filter(dimension=dim, quarter=last_q).order_by("-cum_count_p50", "group")[:40])
    anomalies = (HealthAssessment.objects.filter(pack__in=access.packs_for(actor).values("id")).exclude(anomaly="")
                 .select_related("pack", "pack__model").order_by("-rate_multiplier_p50")[:50])
    return render(request, "web/health_outlook.html", {
        "run": run, "page": page, "site_count": page.paginator.count, "short_now": short_now, "unknown_load": unknown_load,
        "total": total, "chart": chart, "five_year": list(five_year.values()), "groups": groups, "by": dim,
        "anomalies": anomalies, "soh_label": f"{run.retirement_soh_pct:g} %" if run else ""})
