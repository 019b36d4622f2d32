"""Logistics pages: the stored network plans per scenario, a hub's collection routes, shipments.

Scoping (access.py's rules applied to logistics):

- the plan's aggregates — status, costs, hubs and their throughput, scenarios — are
  fleet-level planning results without pack or site identities; every member reads them;
- flows to destinations: a recycler or second-life integrator sees only the flows to itself;
- collection routes name sites: a stop at a site outside the actor's sites shows as
  "another organization's site" (a logistics provider, who drives them, sees every stop);
- shipments: the sender, the receiver and the carrier see a shipment; an auditor sees the
  shipments of organizations that granted it access.  Others get "not found", as elsewhere.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import render

from battloop.logistics.models import CollectionRouteRun, PlanRun, Shipment
from battloop.logistics.registry_plan import COMPARE_COSTS, compare_runs, latest_runs
from battloop.logistics.routing import clock_hhmm
from battloop.registry.lifecycle import OrgKind
from battloop.registry.models import Organization

from . import access
from .views import member_required

_RECEIVERS = (OrgKind.RECYCLER, OrgKind.SECOND_LIFE_INTEGRATOR)


def shipments_for(actor: access.Actor):
    org = actor.organization
    if org.kind == OrgKind.AUDITOR:
        return Shipment.objects.filter(sender__in=access._granted_orgs(org))
    return Shipment.objects.filter(Q(sender=org) | Q(receiver=org) | Q(carrier=org))


def _visible_site_codes(actor: access.Actor) -> set | None:
    """Site codes the actor may see named in routes (None: all of them)."""
    if actor.organization.kind == OrgKind.LOGISTICS_PROVIDER:
        return None
    return set(access.sites_for(actor).values_list("code", flat=True))


def _destination_rows(run: PlanRun, actor: access.Actor) -> list[dict]:
    """Outbound flows summed per destination and chemistry, with the white-list status."""
    tonnes: dict[tuple, float] = defaultdict(float)
    for f in run.outbound_flows:
        tonnes[(f["destination"], f["chemistry"], f["route"])] += f["tonnes"]
    orgs = {o.code: o for o in Organization.objects.filter(code__in={k[0] for k in tonnes})}
    own = actor.organization.code if actor.organization.kind in _RECEIVERS else None
    rows = []
    for (dest, chem, route), t in sorted(tonnes.items(), key=lambda kv: -kv[1]):
        if own is not None and dest != own:
            continue
        o = orgs.get(dest)
        rows.append({"code": dest, "name": o.name if o else dest, "kind": o.kind if o else "",
                     "whitelisted": bool(o and (o.recycler_whitelisted or o.kind == OrgKind.SECOND_LIFE_INTEGRATOR)),
                     "chemistry": chem, "route": route, "tonnes": t})
    return rows


def _route_runs(run: PlanRun, actor: access.Actor) -> list[dict]:
    """The latest route run of each hub of this plan, stops masked outside the actor's sites."""
    visible = _visible_site_codes(actor)
    latest: dict[str, CollectionRouteRun] = {}
    for rr in run.route_runs.order_by("-created_at", "-id"):
        latest.setdefault(rr.hub_id, rr)
    out = []
    for hub_id, rr in sorted(latest.items()):
        routes = []
        for r in rr.routes:
            stops = [{**s, "site": s["pickup_id"].split(":")[0], "shown": visible is None or s["pickup_id"].split(":")[0] in visible}
                     for s in r["stops"]]
            routes.append({**r, "stops": stops, "start": clock_hhmm(r["start_min"]), "end": clock_hhmm(r["end_min"])})
        unserved = [{**u, "shown": visible is None or u["pickup_id"].split(":")[0] in visible} for u in rr.unserved]
        consignments = [{**c, "shown": visible is None or c["site"] in visible} for c in rr.consignments]
        out.append({"run": rr, "routes": routes, "unserved": unserved, "consignments": consignments,
                    "packs": sum(p["packs"] for p in rr.pickups), "mass_kg": sum(p["mass_kg"] for p in rr.pickups)})
    return out



@member_required
def plan_page(request):
    actor = request.actor
    runs = latest_runs()
    scenario = request.GET.get("scenario") or (next(iter(runs)) if runs else "")
    run = runs.get(scenario)
    if scenario and run is None and runs:
        raise Http404("no such scenario")
    ctx = {"runs": runs, "scenario": scenario, "run": run, "cost_keys": COMPARE_COSTS}
    if run is not None:
        ctx["destinations"] = _destination_rows(run, actor)
        ctx["route_runs"] = _route_runs(run, actor)
        ctx["costs"] = [(k, run.cost_breakdown.get(k)) for k in COMPARE_COSTS if k in run.cost_breakdown]
    if len(runs) > 1:
        ctx["compare_rows"] = [r for r in compare_runs(runs) if r["metric"] not in ("hubs",)]
    shipments = (shipments_for(actor).select_related("sender", "receiver")
                 .annotate(open_discrepancies=Count("discrepancies", filter=Q(discrepancies__resolved_at=None), distinct=True),
                           n_items=Count("items", distinct=True))
                 .order_by("-created_at")[:100])
    ctx["shipments"] = shipments
    return render(request, "web/logistics_plan.html", ctx)


@member_required
def shipment_detail(request, code):
    sh = shipments_for(request.actor).select_related("sender", "receiver", "carrier").filter(code=code).first()
    if sh is None:
        raise Http404("no such shipment")
    items = sh.items.select_related("pack", "pack__model").order_by("pack__serial")
    return render(request, "web/logistics_shipment.html", {
        "sh": sh, "items": items, "total_mass_kg": round(sum(i.mass_kg for i in items), 1),
        "discrepancies": sh.discrepancies.order_by("resolved_at", "id"),
        "open_discrepancies": sh.discrepancies.filter(resolved_at=None).count(),
    })
