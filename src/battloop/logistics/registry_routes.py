"""``battloop plan routes``: one opened hub's collection routes for a day, from the registry.

The pickups are the packs the latest stored plan (:class:`~.models.PlanRun`) sends to
the hub: for every site and safety class, the hub that receives the largest share of
that site's class in the plan collects it.  Per site, class A/B packs make one pickup
and class C packs another (``SITE:C``), because class C travels only on vehicles
equipped for P911 packaging (ADR SP 376; :mod:`.routing` enforces it).  Masses and
counts come from the current triage decisions, the same selection as the plan.

Settings that are choices, not facts: one pickup window for all sites (default
08:00–18:00), 10 min per stop plus 2 min per pack to load, shift 07:00–19:00, 40 km/h
average road speed, road distance great-circle × the plan's circuity.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

from django.utils import timezone

from battloop.demo.geography import prefectures

from .geo import DEFAULT_CIRCUITY
from .models import CollectionRouteRun, PlanRun
from .registry_plan import DEFAULT_SCENARIO, packs_to_move
from .routing import CollectionVehicle, Hub, Pickup, RoutingInputError, plan_collection_routes

DEFAULT_VEHICLES = "2x3000:60,1x2000:40:C"
SERVICE_MIN_PER_STOP = 10
SERVICE_MIN_PER_PACK = 2
SHIFT = (7 * 60, 19 * 60)


class RoutesError(ValueError):
    """The routes cannot be planned as asked; the message names the hub, pickup or vehicle."""


_VEH = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+(?:\.\d+)?)\s*:\s*(\d+)\s*(?::\s*([cC]))?\s*$")


def parse_vehicles(spec: str, *, max_route_min: int = 600) -> list[CollectionVehicle]:
    """``COUNTxKG:PACKS[:C]``, comma-separated, e.g. ``2x3000:60,1x2000:40:C`` (``:C`` = P911-equipped)."""
    out: list[CollectionVehicle] = []
    for part in spec.split(","):
        m = _VEH.match(part)
        if not m:
            raise RoutesError(f"--vehicles {part.strip()!r}: expected COUNTxKG:PACKS[:C], e.g. 2x3000:60 or 1x2000:40:C")
        count, kg, packs, c = int(m.group(1)), float(m.group(2)), int(m.group(3)), bool(m.group(4))
        if count <= 0 or kg <= 0 or packs <= 0:
            raise RoutesError(f"--vehicles {part.strip()!r}: count, kg and packs must be positive")
        for _ in range(count):
            n = len(out) + 1
            out.append(CollectionVehicle(f"truck-{n}{'-P911' if c else ''}", kg, packs, class_c_allowed=c,
                                         max_route_min=max_route_min, shift_start_min=SHIFT[0], shift_end_min=SHIFT[1]))
    return out


def _window(text: str) -> tuple[int, int]:
    m = re.match(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$", text or "")
    if not m:
        raise RoutesError(f"--window {text!r}: expected HH:MM-HH:MM, e.g. 08:00-18:00")
    a, b = int(m.group(1)) * 60 + int(m.group(2)), int(m.group(3)) * 60 + int(m.group(4))
    if not (0 <= a < b <= 24 * 60):
        raise RoutesError(f"--window {text!r}: the window must start before it ends, within the day")
    return a, b


def _day(text) -> dt.date:
    if text is None or text == "":
        return timezone.localdate()
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        raise RoutesError(f"--date {text!r}: expected YYYY-MM-DD") from None


def latest_plan(scenario: str = DEFAULT_SCENARIO) -> PlanRun:
    run = PlanRun.objects.filter(scenario=scenario).order_by("-created_at", "-id").first()
    if run is None:
        raise RoutesError(f"no stored plan for scenario {scenario!r}; run battloop plan{'' if scenario == DEFAULT_SCENARIO else ' --scenario ' + scenario} first")
    if not run.has_plan:
        raise RoutesError(f"the latest plan of scenario {scenario!r} (run {run.pk}) has no plan: {run.status}: {run.message}")
    return run


def hub_assignment(run: PlanRun) -> dict[tuple[str, str], str]:
    """(site code, safety class) → the hub that receives the largest share of it in the plan."""
    tonnes: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for f in run.inbound_flows:
        tonnes[(f["source"], f["class"])][f["hub"]] += f["tonnes"]
    return {k: min(v.items(), key=lambda kv: (-kv[1], kv[0]))[0] for k, v in tonnes.items()}


def hub_pickups(run: PlanRun, hub_id: str, window: tuple[int, int]) -> tuple[list[Pickup], list[dict], int]:
    """The hub's pickups: one per site for class A/B packs, one per site for class C packs.

    Returns the pickups, their description for the record, and the number of packs
    waiting now that the plan did not include (triaged after the plan ran).
    """
    assign = hub_assignment(run)
    groups: dict[str, dict] = {}
    not_in_plan = 0
    for mp in packs_to_move()[0]:
        hub = assign.get((mp.site_code, mp.safety_class))
        if hub is None:
            not_in_plan += 1
            continue
        if hub != hub_id:
            continue
        pid = f"{mp.site_code}:C" if mp.safety_class == "C" else mp.site_code
        g = groups.setdefault(pid, {"pickup_id": pid, "site": mp.site_code, "lat": mp.lat, "lon": mp.lon, "packs": 0,
                                    "mass_kg": 0.0, "classes": defaultdict(int), "serials": []})
        g["packs"] += 1
        g["mass_kg"] += mp.mass_kg
        g["classes"][mp.safety_class] += 1
        g["serials"].append(mp.serial)
    pickups, described = [], []
    for pid in sorted(groups):
        g = groups[pid]
        worst = max(g["classes"])  # "C" > "B" > "A"
        pickups.append(Pickup(pid, g["lat"], g["lon"], round(g["mass_kg"], 3), g["packs"], worst, window[0], window[1],
                              SERVICE_MIN_PER_STOP + SERVICE_MIN_PER_PACK * g["packs"]))
        described.append({"pickup_id": pid, "site": g["site"], "packs": g["packs"], "mass_kg": round(g["mass_kg"], 3),
                          "safety_class": worst, "classes": dict(g["classes"]), "serials": sorted(g["serials"])})
    return pickups, described, not_in_plan


def split_long_haul(run: PlanRun, hub_lat: float, hub_lon: float, pickups: list[Pickup], described: list[dict], circuity: float,
                    speed_kmh: float, max_route_min: int) -> tuple[list[Pickup], list[dict]]:
    """Pickups a truck can reach and bring back within one route, and the rest as long-haul
    consignments: the site -> hub leg the network plan costed, sent on its own as a
    dangerous-goods consignment (UN 3480, ADR class 9) in the packaging its worst class needs.

    The consignment's cost is the plan's rate for that class (per tonne-km, with any
    dangerous-goods surcharge) times tonnes times road km, as in the plan's inbound transport.
    """
    from .geo import haversine_km
    from .hazmat import PackForTransport, packaging_for

    rates = (run.settings.get("network") or {}).get("cost_per_tkm") or {}
    surcharge = float((run.settings.get("plan") or {}).get("dg_surcharge_per_tkm") or 0.0)
    by_id = {d["pickup_id"]: d for d in described}
    near, far = [], []
    for p in pickups:
        km = float(haversine_km(hub_lat, hub_lon, p.lat, p.lon)) * circuity
        out_and_back_min = 2.0 * km / speed_kmh * 60.0 + p.service_min
        if out_and_back_min <= max_route_min:
            near.append(p)
            continue
        d = by_id[p.pickup_id]
        tonnes = p.mass_kg / 1000.0
        rate = float(rates.get(p.safety_class, rates.get("A", 0.0))) + surcharge
        packing = packaging_for(PackForTransport(serial=p.pickup_id, safety_class=p.safety_class, mass_kg=p.mass_kg)).packing_instruction
        far.append({"pickup_id": p.pickup_id, "site": d["site"], "packs": p.packs, "mass_kg": p.mass_kg, "safety_class": p.safety_class,
                    "road_km": round(km, 1), "packing_instruction": packing, "un_number": "UN3480",
                    "cost": round(tonnes * km * rate, 2),
                    "reason": f"{km:,.0f} km of road from the hub: out and back takes {out_and_back_min / 60:.1f} h, beyond a "
                              f"{max_route_min / 60:g}-hour route; send as a dangerous-goods consignment"})
    return near, far


def plan_hub_routes(hub_id: str, *, day=None, vehicles: list[CollectionVehicle] | None = None, scenario: str = DEFAULT_SCENARIO,
                    window: str = "08:00-18:00", max_route_hours: float = 10.0, speed_kmh: float = 40.0,
                    time_limit_s: float = 5.0) -> CollectionRouteRun:
    """Plan and store the day's collection routes of one opened hub of the latest stored plan."""
    the_day = _day(day)
    win = _window(window)
    if not max_route_hours > 0:
        raise RoutesError(f"--max-route-hours {max_route_hours}: must be positive")
    if not speed_kmh > 0:
        raise RoutesError(f"--speed-kmh {speed_kmh}: must be positive")
    max_route_min = int(round(max_route_hours * 60))
    if vehicles is None:
        vehicles = parse_vehicles(DEFAULT_VEHICLES, max_route_min=max_route_min)
    else:
        vehicles = [CollectionVehicle(**{**v.__dict__, "max_route_min": max_route_min}) for v in vehicles]
    run = latest_plan(scenario)
    opened = {h["hub_id"]: h for h in run.opened_hubs}
    if hub_id not in opened:
        raise RoutesError(f"hub {hub_id!r} is not opened in the latest plan of scenario {scenario!r} (run {run.pk}); "
                          f"opened hubs: {', '.join(sorted(opened)) or 'none'}")
    pref = {p.adcode: p for p in prefectures()}.get(opened[hub_id]["prefecture"])
    if pref is None:
        raise RoutesError(f"hub {hub_id}: prefecture {opened[hub_id]['prefecture']} has no coordinates in the adcode table")
    pickups, described, not_in_plan = hub_pickups(run, hub_id, win)
    if not pickups:
        raise RoutesError(f"hub {hub_id} has no pickups: no pack triaged to recycling or reuse now waits at a site the plan "
                          f"(run {run.pk}) sends to it; re-run battloop plan after triage")
    class_c = [p for p in pickups if p.safety_class == "C"]
    if class_c and not any(v.class_c_allowed for v in vehicles):
        sites = ", ".join(f"{p.pickup_id.split(':')[0]} ({p.packs} pack{'s' if p.packs > 1 else ''})" for p in class_c)
        raise RoutesError(f"class C packs at {sites} need a vehicle equipped for P911 packaging (ADR SP 376) and none of the "
                          f"vehicles given is; add one with :C, e.g. --vehicles 2x3000:60,1x2000:40:C")
    circuity = float((run.settings.get("network") or {}).get("circuity") or DEFAULT_CIRCUITY)
    pickups, consignments = split_long_haul(run, pref.latitude, pref.longitude, pickups, described, circuity, speed_kmh, max_route_min)
    try:
        plan = plan_collection_routes(Hub(hub_id, pref.latitude, pref.longitude), pickups, vehicles, speed_kmh=speed_kmh,
                                      circuity=circuity, time_limit_s=time_limit_s)
    except RoutingInputError as exc:
        raise RoutesError(f"hub {hub_id}: {exc}") from None
    doc = plan.to_json()
    return CollectionRouteRun.objects.create(
        plan=run, hub_id=hub_id, day=the_day, status=plan.status,
        vehicles=[{"vehicle_id": v.vehicle_id, "capacity_kg": v.capacity_kg, "capacity_packs": v.capacity_packs,
                   "class_c_allowed": v.class_c_allowed} for v in vehicles],
        settings={"window": window, "max_route_hours": max_route_hours, "speed_kmh": speed_kmh, "circuity": circuity,
                  "service_min_per_stop": SERVICE_MIN_PER_STOP, "service_min_per_pack": SERVICE_MIN_PER_PACK,
                  "shift": [SHIFT[0], SHIFT[1]], "time_limit_s": time_limit_s, "packs_not_in_plan": not_in_plan,
                  "scenario": scenario},
        pickups=described, routes=doc["routes"], unserved=doc["unserved"], consignments=consignments,
        total_distance_km=plan.total_distance_km,
        total_cost=plan.total_cost, seconds=plan.seconds)


def route_run_to_json(rr: CollectionRouteRun) -> dict:
    return {"id": rr.pk, "plan_run": rr.plan_id, "hub": rr.hub_id, "day": rr.day.isoformat(), "status": rr.status,
            "total_distance_km": round(rr.total_distance_km, 3), "total_cost": round(rr.total_cost, 2),
            "seconds": round(rr.seconds, 3), "vehicles": rr.vehicles, "settings": rr.settings, "pickups": rr.pickups,
            "routes": rr.routes, "unserved": rr.unserved, "consignments": rr.consignments}


def plan_with_busiest_hub_routes(*, created_by: str = "demo", time_limit_s: float = 3.0) -> dict | None:
    """The baseline plan, stored, and the collection routes of its busiest hub (today, default fleet).

    Returns None when nothing is triaged to move; ``routes_error`` says why there are no routes.
    """
    from .registry_plan import run_scenario

    run, info = run_scenario(created_by=created_by)
    if run is None:
        return None
    out = {"run": run, "info": info, "routes": None, "routes_error": None}
    if run.has_plan and run.opened_hubs:
        busiest = run.opened_hubs[0]["hub_id"]  # stored by throughput, largest first
        try:
            out["routes"] = plan_hub_routes(busiest, time_limit_s=time_limit_s)
        except RoutesError as exc:
            out["routes_error"] = str(exc)
    return out
