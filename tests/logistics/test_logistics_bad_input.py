"""Bad input across the logistics solvers, with the real solvers (HiGHS, OR-Tools) and real files:
zero and negative capacities and demands, a time limit hit before any plan exists."""

import math
from dataclasses import replace
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from battloop.logistics.cflp import solve_cflp
from battloop.logistics.instances import InstanceFormatError, read_cvrplib, read_holmberg, read_orlib_cap
from battloop.logistics.network import (CandidateHub, Destination, NetworkInfeasible, NetworkInputError, NetworkProblem, Source,
                                        solve_network)
from battloop.logistics.routing import CollectionVehicle, Hub, Pickup, RoutingInputError, plan_collection_routes

LFP = frozenset({"LFP"})


def two_city_problem():
    sources = [Source("S-WH", 30.59, 114.30, "420100", {("A", "LFP", "recycle"): 6.0}),
               Source("S-CS", 28.23, 112.94, "430100", {("A", "LFP", "recycle"): 4.0, ("C", "LFP", "recycle"): 1.0})]
    hubs = [CandidateHub("H-WH", 30.58, 114.27, "420100", 50_000, 8.0), CandidateHub("H-CS", 28.20, 112.97, "430100", 40_000, 8.0)]
    dests = [Destination("R-GEM", "recycler", 31.03, 112.20, 100.0, LFP, gate_fee_per_t={"LFP": 500})]
    return NetworkProblem(sources, hubs, dests)


# ------------------------------------------------------------ time limit, no plan


def test_cflp_time_limit_before_any_plan_reports_status_and_bound_not_an_empty_plan(netopt):
    # Holmberg p20 single-source (30 facilities x 200 customers) cannot be solved in a microsecond.
    res = solve_cflp(read_holmberg(netopt / "holmberg_sscflp" / "original" / "p20"), single_source=True, time_limit_s=1e-6)
    assert res.status == "time_limit_no_incumbent"
    assert res.objective is None and res.open_facilities is None and res.gap is None
    assert "no feasible plan found" in res.message and "lower bound" in res.message
    doc = res.to_json()
    assert doc["objective"] is None and doc["status"] == "time_limit_no_incumbent" and "bound" in doc


def test_cflp_cli_time_limit_before_any_plan_exits_non_zero(netopt):
    out = StringIO()
    with pytest.raises(CommandError, match="no feasible plan found"):
        call_command("logistics", "solve-cflp", str(netopt / "holmberg_sscflp" / "original" / "p20"), "--format", "holmberg",
                     "--single-source", "--time-limit", "0.000001", "--json", stdout=out)
    assert '"status": "time_limit_no_incumbent"' in out.getvalue()


def test_network_time_limit_before_any_plan():
    plan = solve_network(two_city_problem(), time_limit_s=1e-9)
    assert plan.status == "time_limit_no_incumbent" and plan.objective is None
    assert plan.opened_hubs == [] and plan.inbound_flows == [] and "proven lower bound on cost" in plan.message
    assert plan.model_size["columns"] > 0  # the model was built; only the search was cut short


# ------------------------------------------------------- zero / negative numbers


@pytest.mark.parametrize("change, words", [
    (lambda p: p.hubs.__setitem__(0, replace(p.hubs[0], capacity_t=-3.0)), "hub H-WH: capacity_t is -3.0"),
    (lambda p: p.hubs.__setitem__(1, replace(p.hubs[1], capacity_t=0.0)), "hub H-CS: capacity_t is 0.0"),
    (lambda p: p.hubs.__setitem__(0, replace(p.hubs[0], storage_limit_kwh=0.0)), "hub H-WH: storage_limit_kwh is 0.0"),
    (lambda p: p.hubs.__setitem__(0, replace(p.hubs[0], class_capacity_t={"C": 0.0})), "hub H-WH: class C capacity is 0.0"),
    (lambda p: p.hubs.__setitem__(0, replace(p.hubs[0], fixed_cost=-1.0)), "hub H-WH: negative fixed"),
    (lambda p: p.destinations.__setitem__(0, replace(p.destinations[0], capacity_t=0.0)), "destination R-GEM: capacity_t is 0.0"),
    (lambda p: p.destinations.__setitem__(0, replace(p.destinations[0], capacity_t=-5.0)), "destination R-GEM: capacity_t is -5.0"),
    (lambda p: p.sources.__setitem__(0, replace(p.sources[0], supply_t={("A", "LFP", "recycle"): -1.0})), "source S-WH: supply"),
    (lambda p: p.sources.__setitem__(0, replace(p.sources[0], supply_t={("A", "LFP", "recycle"): math.nan})), "source S-WH: supply"),
])
def test_network_zero_and_negative_quantities_name_the_object(change, words):
    p = two_city_problem()
    change(p)
    with pytest.raises(NetworkInputError) as e:
        solve_network(p)
    assert words in str(e.value)


def test_network_demand_above_capacity_names_constraint_and_amount():
    p = two_city_problem()
    p.hubs = [replace(h, capacity_t=5.0) for h in p.hubs]  # 10 t of hubs for 11 t
    with pytest.raises(NetworkInfeasible) as e:
        solve_network(p)
    assert e.value.constraint == "hub_capacity" and e.value.shortfall_t == pytest.approx(1.0)
    assert "by 1.000 t" in str(e.value)
    p = two_city_problem()
    p.destinations = [replace(p.destinations[0], capacity_t=10.5)]
    with pytest.raises(NetworkInfeasible) as e:
        solve_network(p)
    assert e.value.constraint == "destination_capacity" and e.value.shortfall_t == pytest.approx(0.5)


@pytest.mark.parametrize("content, line, words", [
    ("2 2\n-5 5\n10 5\n3 1 2\n4 1 2\n", 2, "capacity of warehouse 1 is -5; it must be positive"),
    ("2 2\n10 5\n10 5\n-3 1 2\n4 1 2\n", 4, "demand of customer 1 is negative"),
])
def test_orlib_negative_capacity_and_demand(tmp_path, content, line, words):
    f = tmp_path / "neg.txt"
    f.write_text(content)
    with pytest.raises(InstanceFormatError) as e:
        read_orlib_cap(f)
    assert f"neg.txt, line {line}" in str(e.value) and words in str(e.value)


def test_holmberg_zero_capacity(tmp_path, netopt):
    lines = (netopt / "holmberg_sscflp" / "original" / "p1").read_bytes().decode().replace("\r", "").replace("\x00", "").splitlines()
    lines[1] = "0 " + lines[1].split()[1]
    f = tmp_path / "p1-zero"
    f.write_text("\n".join(lines))
    with pytest.raises(InstanceFormatError, match="p1-zero, line 2: capacity of facility 1 is 0; it must be positive"):
        read_holmberg(f)


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.replace("CAPACITY : 100", "CAPACITY : 0"), "CAPACITY is 0; it must be positive"),
    (lambda s: s.replace("CAPACITY : 100", "CAPACITY : -100"), "CAPACITY is -100; it must be positive"),
    (lambda s: s.replace("DEMAND_SECTION \n1 0 \n2 19", "DEMAND_SECTION \n1 0 \n2 -19"), "negative demand"),
    (lambda s: s.replace("DEMAND_SECTION \n1 0 \n2 19", "DEMAND_SECTION \n1 0 \n2 190"), "more than the vehicle CAPACITY 100"),
])
def test_cvrp_zero_negative_capacity_and_demand(tmp_path, netopt, edit, words):
    src = (netopt / "cvrplib" / "A" / "A-n32-k5.vrp").read_text()
    bad = edit(src)
    assert bad != src, "the edit must change the file"
    f = tmp_path / "bad.vrp"
    f.write_text(bad)
    with pytest.raises(InstanceFormatError, match="bad.vrp") as e:
        read_cvrplib(f)
    assert words in str(e.value)


@pytest.mark.parametrize("value", ["0", "-3000"])
def test_cli_capacity_override_must_be_positive(netopt, value):
    with pytest.raises(CommandError, match="must be a positive number"):
        call_command("logistics", "solve-cflp", str(netopt / "orlib_cap" / "cap41.txt"), "--format", "orlib", "--capacity", value)


@pytest.mark.parametrize("pickup, vehicle, words", [
    (Pickup("P-neg", 30.6, 114.3, -10.0, 1), CollectionVehicle("v", 1000, 10), "pickup P-neg: negative mass or pack count"),
    (Pickup("P-neg", 30.6, 114.3, 10.0, -1), CollectionVehicle("v", 1000, 10), "pickup P-neg: negative mass or pack count"),
    (Pickup("P1", 30.6, 114.3, 10.0, 1), CollectionVehicle("v0", 1000, 0), "vehicle v0: capacity must be positive"),
    (Pickup("P1", 30.6, 114.3, 10.0, 1), CollectionVehicle("v0", -1, 5), "vehicle v0: capacity must be positive"),
    (Pickup("P1", 30.6, 114.3, 10.0, 1, window_start_min=600, window_end_min=500), CollectionVehicle("v", 1000, 10), "ends (500) before"),
])
def test_routing_zero_and_negative_quantities(pickup, vehicle, words):
    with pytest.raises(RoutingInputError) as e:
        plan_collection_routes(Hub("H", 30.58, 114.27), [pickup], [vehicle], time_limit_s=0.5)
    assert words in str(e.value)


def test_routing_negative_distance_is_refused():
    d = np.array([[0, -1.0], [-1.0, 0]])
    with pytest.raises(RoutingInputError, match="negative entries"):
        plan_collection_routes(Hub("H", 30.58, 114.27), [Pickup("P1", 30.6, 114.3, 10.0, 1)], [CollectionVehicle("v", 100, 5)],
                               distance_km=d)
