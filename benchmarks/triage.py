"""Triage benchmark: the default policy on 1,000,000 dossiers, and second-life matching.

    .venv/bin/python benchmarks/triage.py                 # both parts, full size
    .venv/bin/python benchmarks/triage.py --dossiers 200000 --packs 10000 --demands 400
    .venv/bin/python benchmarks/triage.py --skip-matching --records

Part 1 evaluates the shipped default policy (compiled to vectorized masks) with one-line
explanations per pack, and compares its rate with a per-pack interpreter of the same
rules (the peer, run on a sample in the same process). Targets: ≤ 10 s for 1 M dossiers.

Part 2 builds strings from graded packs at outlets placed on real prefecture-level
cities, assigns them to second-life demands with the HiGHS MILP, and prints the
objective, the dual bound, the gap and the greedy baseline's objective measured in the
same run. Targets: 50,000 packs and 2,000 demands within 1 % of the bound in ≤ 2 min.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from battloop.triage.matching import MatchSettings, match  # noqa: E402
from battloop.triage.policy import ROUTES, evaluate, evaluate_one, load_policy, validate_dossiers  # noqa: E402
from battloop.triage.synthetic import (prefecture_places, synthetic_demands, synthetic_dossiers,  # noqa: E402
                                       synthetic_supply)

SHARED_DATA = Path(os.environ.get("BATTLOOP_SHARED_DATA", ROOT.parent / "shared" / "data"))
CITIES = SHARED_DATA / "netopt" / "china_cities" / "adcode_prefecture_level_2016_gcj02.csv"


def per_pack_interpreter(policy, frame) -> list[str]:
    """The peer: the same rules, interpreted one pack at a time in Python (policy.evaluate_one)."""
    records = frame.to_dict(orient="records")
    for rec in records:  # categorical NaN → None, as a dossier read one at a time would carry
        for k, v in rec.items():
            if isinstance(v, float) and math.isnan(v):
                rec[k] = None
    return [evaluate_one(policy, rec)[0] for rec in records]


def bench_policy(n: int, seed: int, records: bool) -> None:
    print(f"== policy: default policy on {n:,} synthetic dossiers ==")
    raw = synthetic_dossiers(n, seed)
    policy = load_policy("default")
    print(f"policy {policy.identity}, {len(policy.rules.rules)} rules in {len(policy.rules.stages)} stages")
    t0 = time.perf_counter()
    frame = validate_dossiers(raw)
    t1 = time.perf_counter()
    decisions = evaluate(policy, frame)
    t2 = time.perf_counter()
    explanations = decisions.explanations()
    t3 = time.perf_counter()
    total = t3 - t0
    print(f"validate {t1 - t0:6.2f} s | evaluate {t2 - t1:6.2f} s | explanations {t3 - t2:6.2f} s | "
          f"total {total:6.2f} s  ({n / total:,.0f} dossiers/s)   target ≤ 10 s for 1 M: "
          f"{'met' if total * 1_000_000 / n <= 10 else 'NOT met'}")
    counts = decisions.route_counts()
    print("routes: " + ", ".join(f"{r} {counts[r]:,}" for r in ROUTES))
    print(f"example: {decisions.serials[0]} → {decisions.routes[0]}: {explanations[0]}")
    if records:
        t = time.perf_counter()
        recs = decisions.to_records()
        print(f"full JSON-ready records for {len(recs):,} packs: {time.perf_counter() - t:.2f} s")

    sample = min(n, 50_000)
    t = time.perf_counter()
    peer = per_pack_interpreter(policy, frame.iloc[:sample].copy())
    peer_s = time.perf_counter() - t
    agree = np.mean(np.asarray(peer, dtype=object) == decisions.routes[:sample])
    peer_rate = sample / peer_s
    ours_rate = n / (t2 - t1)
    print(f"peer (per-pack interpreter, same rules) on {sample:,}: {peer_s:.2f} s = {peer_rate:,.0f} packs/s; "
          f"routes agree on {agree:.2%}")
    print(f"vectorized evaluate / per-pack peer speed ratio: {ours_rate / peer_rate:,.0f}x "
          f"(with validation and explanations: {n / total / peer_rate:,.0f}x)")


def bench_matching(packs: int, demands: int, outlets: int, seed: int, time_limit: float) -> None:
    print(f"\n== matching: {packs:,} graded packs at {outlets} outlets → {demands:,} demands ==")
    places = prefecture_places(CITIES) if CITIES.exists() else None
    print(f"places: {'real prefecture-level cities (' + str(len(places)) + ')' if places is not None else 'uniform in China bbox'}")
    supply = synthetic_supply(packs, outlets, seed, places)
    dem = synthetic_demands(demands, seed, places)
    t = time.perf_counter()
    r = match(supply, dem, MatchSettings(time_limit_s=time_limit))
    wall = time.perf_counter() - t
    print(f"strings {r.strings:,} from {r.packs_strung:,} packs ({r.packs_unstrung:,} fit no string within the "
          f"spread limits); model {r.variables:,} variables")
    print(f"build {r.build_s:.1f} s | greedy {r.greedy_s:.2f} s | MILP {r.solve_s:.1f} s | total {wall:.1f} s   "
          f"target ≤ 120 s: {'met' if wall <= 120 else 'NOT met'}")
    print(f"MILP objective {r.objective:,.1f} kWh·years-eq | bound {r.bound:,.1f} | gap {r.gap:.3%} "
          f"({r.status})   target ≤ 1 %: {'met' if r.gap <= 0.01 else 'NOT met'}")
    print(f"greedy baseline objective {r.greedy_objective:,.1f} ({r.greedy_served:,} demands served); "
          f"MILP / greedy = {r.objective / r.greedy_objective:.3f} ({r.served:,} served)")
    print(f"delivered {r.delivered_kwh:,.0f} kWh, {r.kwh_years:,.0f} kWh·years, {r.transport_km:,.0f} string-km")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dossiers", type=int, default=1_000_000)
    ap.add_argument("--packs", type=int, default=50_000)
    ap.add_argument("--demands", type=int, default=2_000)
    ap.add_argument("--outlets", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--time-limit", type=float, default=100.0, help="MILP time limit, s")
    ap.add_argument("--records", action="store_true", help="also time building full per-pack JSON records")
    ap.add_argument("--skip-policy", action="store_true")
    ap.add_argument("--skip-matching", action="store_true")
    args = ap.parse_args()
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    if not args.skip_policy:
        bench_policy(args.dossiers, args.seed, args.records)
    if not args.skip_matching:
        bench_matching(args.packs, args.demands, args.outlets, args.seed, args.time_limit)


if __name__ == "__main__":
    main()
