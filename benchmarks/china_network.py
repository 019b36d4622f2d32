"""Benchmark: China-scale reverse-logistics network design with HiGHS.

~10,000 outlets over the prefecture-level cities of a city table, ~340 candidate
hubs, 148 white-listed recyclers plus second-life integrators, 3 safety classes ×
2 chemistries, the 8,000-fleet storage-outlet rule.

    .venv/bin/python benchmarks/china_network.py PATH/TO/adcode_prefecture_level_2016_gcj02.csv \
        [--outlets 10000] [--hubs 340] [--recyclers 148] [--time-limit 600] [--gap 0.01]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from battloop.logistics.network import solve_network  # noqa: E402
from battloop.logistics.synthetic import china_instance  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cities", type=Path, help="prefecture table with lat/lon (e.g. adcode_prefecture_level_2016_gcj02.csv)")
    ap.add_argument("--outlets", type=int, default=10_000)
    ap.add_argument("--hubs", type=int, default=340)
    ap.add_argument("--recyclers", type=int, default=148)
    ap.add_argument("--second-life", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--grouping", default="source", choices=["source", "source_class", "commodity"])
    ap.add_argument("--max-hubs-per-group", type=int, default=5, help="nearest compatible hubs kept per supply group")
    ap.add_argument("--max-destinations", type=int, default=10, help="nearest accepting destinations kept per hub and commodity")
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument("--gap", type=float, default=0.01, help="relative MIP gap to prove")
    ap.add_argument("--root-lp", default="ipm", choices=["ipm", "simplex", "choose"],
                    help="HiGHS LP algorithm in the MIP (interior point solves the large root LP much faster here)")
    ap.add_argument("--log", action="store_true", help="show the HiGHS log")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    t0 = time.perf_counter()
    prob = china_instance(a.cities, n_outlets=a.outlets, n_hubs=a.hubs, n_recyclers=a.recyclers,
                          n_second_life=a.second_life, seed=a.seed, max_hubs_per_group=a.max_hubs_per_group,
                          max_destinations_per_hub=a.max_destinations)
    prob.grouping = a.grouping
    t_gen = time.perf_counter() - t0
    rule = sum(1 for v in prob.prefecture_fleet.values() if v >= prob.settings.storage_outlet_fleet_threshold)
    supply = sum(sum(s.supply_t.values()) for s in prob.sources)
    t1 = time.perf_counter()
    plan = solve_network(prob, time_limit_s=a.time_limit, mip_rel_gap=a.gap, log=a.log,
                         highs_options={"mip_lp_solver": a.root_lp})
    t_solve = time.perf_counter() - t1
    summary = {
        "instance": prob.name, "status": plan.status, "objective": plan.objective, "bound": plan.bound,
        "gap": plan.gap, "absolute_gap": None if plan.objective is None else plan.objective - plan.bound,
        "seconds_build_and_solve": round(t_solve, 2), "seconds_generate": round(t_gen, 2),
        "model_size": plan.model_size, "supply_t": round(supply, 3), "prefectures_under_8000_rule": rule,
        "opened_hubs": len(plan.opened_hubs), "cost_breakdown": plan.cost_breakdown,
        "transport_co2_kg": plan.transport_co2_kg, "binding_constraints": len(plan.binding_constraints),
        "settings": {"grouping": a.grouping, "max_hubs_per_group": a.max_hubs_per_group,
                     "max_destinations": a.max_destinations, "mip_lp_solver": a.root_lp},
    }
    if a.json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    ms = plan.model_size
    print(f"instance        {prob.name}  (seed {a.seed}, supply {supply:,.1f} t, {rule} prefectures under the 8,000 rule)")
    print(f"model           {ms['columns']:,} columns ({ms['binaries']} binary), {ms['rows']:,} rows, "
          f"{ms['nonzeros']:,} nonzeros; {ms['supply_groups']:,} supply groups, {ms['commodities']} commodities")
    print(f"status          {plan.status}")
    print(f"time            {t_solve:.1f} s build+solve (limit {a.time_limit:g} s), {t_gen:.1f} s to generate")
    if plan.objective is not None:
        gross = sum(v for k, v in plan.cost_breakdown.items() if k != "total" and v > 0)
        abs_gap = plan.objective - plan.bound
        print(f"objective       {plan.objective:,.0f}   bound {plan.bound:,.0f}   gap {plan.gap:.3%} (target {a.gap:.1%}, "
              "relative to the net objective)")
        print(f"absolute gap    {abs_gap:,.0f} = {abs_gap / gross:.3%} of the gross cost {gross:,.0f} (all positive cost terms)")
        print(f"opened hubs     {len(plan.opened_hubs)}")
        print("cost breakdown  " + ", ".join(f"{k} {v:,.0f}" for k, v in plan.cost_breakdown.items()))
        print(f"transport CO2   {plan.transport_co2_kg / 1000:,.1f} t ({plan.settings_used['co2_kg_per_tkm']} kg/t-km, "
              f"{plan.settings_used['co2_factor_source']})")
        print(f"binding         {len(plan.binding_constraints)} constraints")
    else:
        print(f"no plan: {plan.message}")


if __name__ == "__main__":
    main()
