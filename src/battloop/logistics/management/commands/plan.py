import json

from django.core.management.base import BaseCommand, CommandError

from battloop.logistics.models import PlanRun
from battloop.logistics.routing import clock_hhmm
from battloop.logistics.registry_plan import (DEFAULT_SCENARIO, ScenarioSettingError, compare_runs, latest_runs, run_scenario,
                                              run_to_json)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.4%}" if abs(v) < 1 and v != 0 and v == v else f"{v:,.0f}"
    return str(v)


class Command(BaseCommand):
    help = ("Plan the reverse-logistics network for packs triaged to recycling or reuse (hubs to open, flows, cost, CO2, gap); "
            "named scenarios are stored and compared; collection routes per hub.")

    def add_arguments(self, parser):
        parser.add_argument("--scenario", default=DEFAULT_SCENARIO, help=f"name the run (default {DEFAULT_SCENARIO})")
        parser.add_argument("--set", dest="assignments", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                            help="change a setting for this scenario, e.g. hub_fixed_cost=100000 circuity=1.4 "
                                 "dg_surcharge_per_tkm=0.3 hub_capacity_t=200 cost_per_tkm.C=2.0")
        parser.add_argument("--time-limit", type=float, default=None, help="seconds for the solver (default 120)")
        parser.add_argument("--json", action="store_true")
        sub = parser.add_subparsers(dest="action")
        c = sub.add_parser("compare", help="the latest run of each named scenario, side by side")
        c.add_argument("scenarios", nargs="*", help="scenario names (default: every stored scenario)")
        c.add_argument("--json", action="store_true")
        r = sub.add_parser("routes", help="one opened hub's collection routes for a day, from the latest stored plan")
        r.add_argument("--hub", required=True, help="hub id as in the plan, e.g. hub-440100")
        r.add_argument("--date", help="the day, YYYY-MM-DD (default today)")
        r.add_argument("--vehicles", help="fleet as COUNTxKG:PACKS[:C], comma-separated; :C = equipped for class C (P911). "
                                          "Default 2x3000:60,1x2000:40:C")
        r.add_argument("--scenario", dest="routes_scenario", default=DEFAULT_SCENARIO, help="whose latest plan (default baseline)")
        r.add_argument("--window", default="08:00-18:00", help="pickup time window at the sites (default 08:00-18:00)")
        r.add_argument("--max-route-hours", type=float, default=10.0)
        r.add_argument("--speed-kmh", type=float, default=40.0)
        r.add_argument("--time-limit", dest="routes_time_limit", type=float, default=5.0)
        r.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        action = o.get("action")
        if action:
            return getattr(self, "_" + action.replace("-", "_"))(o)
        return self._solve(o)

    # ------------------------------------------------------------------ solve

    def _solve(self, o):
        try:
            run, info = run_scenario(o["scenario"], o["assignments"], time_limit_s=o["time_limit"], created_by="cli")
        except ScenarioSettingError as exc:
            raise CommandError(str(exc)) from None
        if run is None:
            self.stdout.write(f"nothing to move: no pack is triaged to recycling or reuse ({info})")
            return
        if o["json"]:
            self.stdout.write(json.dumps(run_to_json(run), ensure_ascii=False, default=str))
        else:
            self._print_run(run)
        if not run.has_plan:
            # Stored for the record, but a run without a plan is a failure for the caller.
            what = {PlanRun.Status.INFEASIBLE: "infeasible", PlanRun.Status.INPUT_ERROR: "invalid input"}.get(run.status, run.status)
            bound = f"; proven lower bound {run.bound:,.0f}" if run.bound is not None else ""
            raise CommandError(f"scenario {run.scenario}: {what}{bound}: {run.message} (stored as plan run {run.pk})")

    def _print_run(self, run: PlanRun):
        i = run.input_summary
        w = self.stdout.write
        w(f"plan run {run.pk}, scenario {run.scenario}{' ' + str(run.overrides) if run.overrides else ''}: "
          f"{i.get('tonnes')} t ({i.get('packs')} packs) from {i.get('sources')} sites, {i.get('hubs')} candidate hubs, "
          f"{i.get('destinations')} destinations")
        if not run.has_plan:
            w(f"status {run.status}: {run.message}")
            return
        w(f"status {run.status}, objective {run.objective:,.0f}, bound {run.bound:,.0f}, gap {_fmt(run.gap)}, {run.seconds:.2f} s")
        w("cost: " + ", ".join(f"{k} {v:,.0f}" for k, v in run.cost_breakdown.items()))
        w(f"transport CO2 {run.transport_co2_kg:,.1f} kg")
        w(f"hubs opened ({len(run.opened_hubs)}):")
        for h in run.opened_hubs:
            w(f"  {h['hub_id']:<14} {h['prefecture_name']:<10} {h['throughput_t']:9.3f} t  {h['use_pct']:6.1f} % of {h['capacity_t']:,.0f} t")
        for b in run.binding_constraints:
            w(f"  binding: {b}")
        if run.message:
            w(run.message)

    # ---------------------------------------------------------------- compare

    def _compare(self, o):
        names = o["scenarios"] or None
        runs = latest_runs(names)
        if names:
            missing = [n for n in names if n not in runs]
            if missing:
                stored = sorted(set(PlanRun.objects.values_list("scenario", flat=True)))
                raise CommandError(f"no stored run for scenario(s) {', '.join(missing)}; stored: {', '.join(stored) or 'none'} "
                                   "(run battloop plan --scenario NAME first)")
        if not runs:
            raise CommandError("no stored plan runs; run battloop plan first")
        rows = compare_runs(runs)
        if o["json"]:
            self.stdout.write(json.dumps({"scenarios": list(runs), "run_ids": {n: r.pk for n, r in runs.items()}, "rows": rows},
                                         ensure_ascii=False, default=str))
            return
        width = max(14, *(len(n) + 2 for n in runs))
        self.stdout.write(f"{'':<22}" + "".join(f"{n:>{width}}" for n in runs))
        for row in rows:
            self.stdout.write(f"{row['metric']:<22}" + "".join(f"{_fmt(row[n]):>{width}}" for n in runs))

    # ----------------------------------------------------------------- routes

    def _routes(self, o):
        from battloop.logistics.registry_routes import RoutesError, parse_vehicles, plan_hub_routes, route_run_to_json

        try:
            vehicles = parse_vehicles(o["vehicles"]) if o["vehicles"] else None
            rr = plan_hub_routes(o["hub"], day=o["date"], vehicles=vehicles, scenario=o["routes_scenario"], window=o["window"],
                                 max_route_hours=o["max_route_hours"], speed_kmh=o["speed_kmh"],
                                 time_limit_s=o["routes_time_limit"])
        except RoutesError as exc:
            raise CommandError(str(exc)) from None
        if o["json"]:
            self.stdout.write(json.dumps(route_run_to_json(rr), ensure_ascii=False, default=str))
            return
        w = self.stdout.write
        npk = sum(p["packs"] for p in rr.pickups)
        w(f"{rr.hub_id} on {rr.day}: {len(rr.pickups)} pickups ({npk} packs, {sum(p['mass_kg'] for p in rr.pickups):,.0f} kg), "
          f"{len(rr.routes)} route(s), {rr.total_distance_km:,.1f} km, cost {rr.total_cost:,.0f}, status {rr.status} "
          f"(plan run {rr.plan_id}, stored as route run {rr.pk})")
        for r in rr.routes:
            stops = " → ".join(s["pickup_id"] for s in r["stops"])
            w(f"  {r['vehicle_id']}: {clock_hhmm(r['start_min'])}–{clock_hhmm(r['end_min'])}, {r['distance_km']:.1f} km, "
              f"{r['load_kg']:.0f} kg, {r['packs']} packs: hub → {stops} → hub")
        for c in rr.consignments:
            w(f"  consignment {c['pickup_id']}: {c['packs']} packs, {c['mass_kg']:,.0f} kg, {c['road_km']:,.0f} km, "
              f"{c['un_number']} {c['packing_instruction']}, cost {c['cost']:,.0f} ({c['reason']})")
        for u in rr.unserved:
            w(f"  unserved {u['pickup_id']}: {u['reason']}")

