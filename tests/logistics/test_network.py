import itertools
from dataclasses import replace

import numpy as np
import pytest

import battloop.logistics.network as net
from battloop.logistics.geo import haversine_km
from battloop.logistics.milp import MilpOutcome
from battloop.logistics.network import (
    CandidateHub,
    Destination,
    DistanceMatrix,
    NetworkInfeasible,
    NetworkInputError,
    NetworkProblem,
    NetworkSettings,
    Source,
    solve_network,
)

LFP = frozenset({"LFP"})
BOTH = frozenset({"LFP", "NMC"})


def small_problem(**kw):
    """Two provinces' worth of sites around Wuhan and Changsha."""
    sources = [
        Source("S1", 30.59, 114.30, "Wuhan", {("A", "LFP", "recycle"): 10.0, ("B", "LFP", "recycle"): 2.0}),
        Source("S2", 30.40, 114.90, "Ezhou", {("A", "LFP", "reuse"): 6.0, ("C", "NMC", "recycle"): 1.0}),
        Source("S3", 28.23, 112.94, "Changsha", {("A", "NMC", "recycle"): 8.0}),
        Source("S4", 27.83, 113.13, "Zhuzhou", {("B", "NMC", "recycle"): 3.0, ("A", "LFP", "recycle"): 4.0}),
    ]
    hubs = [
        CandidateHub("HW", 30.58, 114.27, "Wuhan", 50_000, 40.0, handling_cost_per_t=100),
        CandidateHub("HE", 30.39, 114.89, "Ezhou", 30_000, 15.0, frozenset("AB"), handling_cost_per_t=80),
        CandidateHub("HC", 28.20, 112.97, "Changsha", 45_000, 30.0, handling_cost_per_t=90),
        CandidateHub("HZ", 27.83, 113.15, "Zhuzhou", 20_000, 12.0, frozenset("AB"), handling_cost_per_t=90),
    ]
    dests = [
        Destination("R-GEM", "recycler", 31.03, 112.20, 100.0, BOTH, gate_fee_per_t={"LFP": 500, "NMC": -4000}),
        Destination("R-Brunp", "recycler", 28.10, 112.60, 100.0, BOTH, frozenset("AB"), {"LFP": 300, "NMC": -5000}),
        Destination("R-grey", "recycler", 30.00, 114.00, 100.0, BOTH, gate_fee_per_t={"LFP": -900, "NMC": -9000},
                    whitelisted=False),
        Destination("U-ESS", "second_life", 30.50, 114.40, 50.0, LFP, frozenset("A"), {"LFP": -2000}),
    ]
    p = NetworkProblem(sources, hubs, dests, NetworkSettings())
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def test_plan_is_optimal_and_matches_enumeration_of_hub_subsets():
    p = small_problem()
    plan = solve_network(p, mip_rel_gap=1e-9)
    assert plan.status == "optimal" and plan.gap <= 1e-9
    best = None
    for k in range(1, 5):
        for subset in itertools.combinations(range(4), k):
            q = small_problem()
            q.hubs = [replace(q.hubs[j], must_open=True) for j in subset]
            try:
                r = solve_network(q, mip_rel_gap=1e-9)
            except (NetworkInfeasible, NetworkInputError):
                continue
            best = r.objective if best is None else min(best, r.objective)
    assert plan.objective == pytest.approx(best, rel=1e-9)
    # the breakdown adds up to the objective
    assert plan.cost_breakdown["total"] == pytest.approx(plan.objective, rel=1e-9)


def test_flows_respect_rules():
    plan = solve_network(small_problem())
    hubs = {h.hub_id: h for h in small_problem().hubs}
    # class C never at a hub that may not hold it; nothing to the grey recycler
    assert all("C" in hubs[f["hub"]].allowed_classes for f in plan.inbound_flows if f["class"] == "C")
    assert all(f["destination"] != "R-grey" for f in plan.outbound_flows)
    # reuse only to second life, recycle only to recyclers
    for f in plan.outbound_flows:
        assert f["destination"].startswith("U-") == (f["route"] == "reuse")
    # class C not to Brunp (accepts A/B only)
    assert all(f["destination"] != "R-Brunp" for f in plan.outbound_flows if f["class"] == "C")
    # mass balance
    total_in = sum(f["tonnes"] for f in plan.inbound_flows)
    total_out = sum(f["tonnes"] for f in plan.outbound_flows)
    assert total_in == pytest.approx(34.0) and total_out == pytest.approx(34.0)


def test_transport_co2_is_tonne_km_times_factor():
    st = NetworkSettings(payload_factor={"A": 1.0, "B": 1.0, "C": 1.0})
    plan = solve_network(small_problem(settings=st))
    tkm = sum(f["tonnes"] * f["km"] for f in plan.inbound_flows + plan.outbound_flows)
    assert plan.transport_co2_kg == pytest.approx(tkm * 0.073, rel=1e-9)
    assert "GLEC" in plan.settings_used["co2_factor_source"]


def test_road_distance_is_great_circle_times_circuity():
    plan = solve_network(small_problem())
    f = next(f for f in plan.inbound_flows if f["source"] == "S3")
    hub = {h.hub_id: h for h in small_problem().hubs}[f["hub"]]
    assert f["km"] == pytest.approx(float(haversine_km(28.23, 112.94, hub.lat, hub.lon)) * 1.3)
    # Wuhan -> Changsha great-circle is about 300 km
    assert 290 < float(haversine_km(30.59, 114.30, 28.23, 112.94)) < 310


def test_prefecture_storage_outlet_rule_forces_a_hub():
    base = solve_network(small_problem())
    closed = [h.hub_id for h in small_problem().hubs if h.hub_id not in base.opened_hubs]
    assert closed, "test needs a hub the unconstrained plan leaves closed"
    pref = {h.hub_id: h.prefecture for h in small_problem().hubs}[closed[0]]
    plan = solve_network(small_problem(prefecture_fleet={pref: 8000, "Wuhan": 7999}))
    assert closed[0] in plan.opened_hubs
    assert plan.objective >= base.objective
    rules = [b for b in plan.binding_constraints if b["constraint"] == "prefecture_storage_outlet"]
    assert [b["prefecture"] for b in rules] == [pref]


def test_capacity_binding_is_reported():
    p = small_problem()
    p.destinations[3] = replace(p.destinations[3], capacity_t=6.0)  # second life exactly the reuse supply
    plan = solve_network(p)
    assert {"constraint": "destination_capacity", "destination": "U-ESS", "capacity_t": 6.0} in plan.binding_constraints


def test_total_hub_capacity_shortfall_names_constraint_and_amount():
    p = small_problem()
    p.hubs = [replace(h, capacity_t=5.0) for h in p.hubs]
    with pytest.raises(NetworkInfeasible) as e:
        solve_network(p)
    assert "hub capacity" in str(e.value) and "34.000 t" in str(e.value) and "by 14.000 t" in str(e.value)


def test_destination_shortfall_per_commodity():
    p = small_problem()
    p.destinations[3] = replace(p.destinations[3], capacity_t=4.0)
    with pytest.raises(NetworkInfeasible, match=r"class A LFP \(reuse\).*by 2.000 t"):
        solve_network(p)


def test_class_c_needs_a_c_capable_hub():
    p = small_problem()
    p.hubs = [replace(h, allowed_classes=frozenset("AB")) for h in p.hubs]
    with pytest.raises(NetworkInfeasible, match="class-C capacity"):
        solve_network(p)


def test_zero_capacity_and_bad_commodities_are_input_errors():
    p = small_problem()
    p.hubs[0] = replace(p.hubs[0], capacity_t=0.0)
    with pytest.raises(NetworkInputError, match="hub HW: capacity_t is 0.0"):
        solve_network(p)
    q = small_problem()
    q.sources[0] = replace(q.sources[0], supply_t={("B", "LFP", "reuse"): 1.0})
    with pytest.raises(NetworkInputError, match="only class A"):
        solve_network(q)


def test_user_distance_matrix_and_disconnection():
    p = small_problem()
    ids = [s.source_id for s in p.sources] + [h.hub_id for h in p.hubs] + [d.dest_id for d in p.destinations]
    lat = np.array([o.lat for o in p.sources + p.hubs + p.destinations])
    lon = np.array([o.lon for o in p.sources + p.hubs + p.destinations])
    km = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :]) * 1.3
    plan_matrix = solve_network(small_problem(distance=DistanceMatrix(tuple(ids), km)))
    plan_geo = solve_network(small_problem())
    assert plan_matrix.objective == pytest.approx(plan_geo.objective, rel=1e-9)
    cut = km.copy()
    s3 = ids.index("S3")
    for h in ("HW", "HE", "HC", "HZ"):
        cut[s3, ids.index(h)] = np.inf
    with pytest.raises(NetworkInputError, match="source S3: no candidate hub"):
        solve_network(small_problem(distance=DistanceMatrix(tuple(ids), cut)))
    with pytest.raises(NetworkInputError, match="no row for"):
        solve_network(small_problem(distance=DistanceMatrix(tuple(ids[:-1]), km[:-1, :-1])))


def test_single_source_assigns_each_group_to_one_hub():
    plan = solve_network(small_problem(single_source=True, grouping="source"))
    hubs_per_source = {}
    for f in plan.inbound_flows:
        hubs_per_source.setdefault(f["source"], set()).add(f["hub"])
    assert all(len(h) == 1 for h in hubs_per_source.values())
    multi = solve_network(small_problem(grouping="source"))
    assert multi.objective <= plan.objective + 1e-6


def test_time_limit_without_incumbent_reports_bound(monkeypatch):
    def fake(*a, **k):
        return MilpOutcome("time_limit", False, None, None, -42.0, None, 1.0, "Time limit reached", 1, 1, 1, 1)

    monkeypatch.setattr(net, "solve_milp", fake)
    plan = solve_network(small_problem(), time_limit_s=1)
    assert plan.status == "time_limit_no_incumbent" and plan.objective is None and plan.bound == -42.0
    assert plan.opened_hubs == [] and "lower bound on cost -42" in plan.message


def test_scenarios_compare_side_by_side():
    base = solve_network(small_problem())
    taxed = solve_network(small_problem(settings=NetworkSettings(carbon_price_per_t_co2=5000.0)))
    rows = {r["metric"]: r for r in net.compare_plans({"base": base, "carbon": taxed})}
    assert rows["objective"]["carbon"] > rows["objective"]["base"]
    assert rows["cost.carbon"]["base"] == 0.0
    assert rows["cost.carbon"]["carbon"] == pytest.approx(taxed.transport_co2_kg / 1000 * 5000.0)
    # a carbon price never increases the optimal plan's emissions
    assert taxed.transport_co2_kg <= base.transport_co2_kg + 1e-9
