"""battloop plan routes: a hub's day of pickups from the latest stored plan and the registry."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from battloop.logistics.models import CollectionRouteRun
from battloop.logistics.registry_plan import run_scenario
from battloop.triage.models import TriageDecision

from logistics_registry_helpers import make_triaged

HUB = "hub-440100"  # Guangzhou: the only hub the baseline opens (fixed cost dominates)


def routes_json(capsys, *args):
    call_command("plan", "routes", "--hub", HUB, "--time-limit", "1", "--json", *args)
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def planned(db, tmp_path):
    # pack i stands at site i % 5 (GZ1, GZ2, GZ3, SZ1, BJ1); GZ1's packs 0, 10, 20 are class C
    make_triaged(tmp_path, class_of=lambda i: "C" if i % 10 == 0 else "A")
    run, _ = run_scenario()
    assert [h["hub_id"] for h in run.opened_hubs] == [HUB]
    return run


def test_routes_collect_every_reachable_pickup_within_capacities(planned, capsys):
    doc = routes_json(capsys, "--date", "2026-11-24")
    pickups = {p["pickup_id"]: p for p in doc["pickups"]}
    assert set(pickups) == {"GZ1", "GZ1:C", "GZ2", "GZ3", "SZ1", "BJ1"}
    assert pickups["GZ1:C"]["packs"] == 3 and pickups["GZ1:C"]["safety_class"] == "C"
    assert pickups["GZ1"]["packs"] == 3 and pickups["SZ1"]["mass_kg"] == pytest.approx(6 * 45)
    assert sum(p["packs"] for p in doc["pickups"]) == 30
    # Beijing is ~2,460 km of road from Guangzhou: no truck gets there and back in a 10-hour route, so it
    # goes as a dangerous-goods consignment at the plan's class A rate, not as an unserved pickup
    assert doc["unserved"] == []
    [c] = doc["consignments"]
    assert c["pickup_id"] == "BJ1" and c["packs"] == 6 and c["mass_kg"] == pytest.approx(6 * 45)
    from battloop.logistics.geo import haversine_km
    km = float(haversine_km(23.13, 113.26, 39.90, 116.40)) * 1.3  # hub at the Guangzhou prefecture centre
    assert c["road_km"] == pytest.approx(km, rel=0.02)
    assert c["cost"] == pytest.approx(0.27 * c["road_km"] * planned.settings["network"]["cost_per_tkm"]["A"], rel=1e-3)
    assert c["un_number"] == "UN3480" and c["packing_instruction"] == "P909" and "consignment" in c["reason"]
    assert doc["status"] == "feasible"
    caps = {v["vehicle_id"]: v for v in doc["vehicles"]}
    served = []
    for r in doc["routes"]:
        v = caps[r["vehicle_id"]]
        assert r["load_kg"] <= v["capacity_kg"] and r["packs"] <= v["capacity_packs"]
        assert r["end_min"] - r["start_min"] <= 10 * 60
        for s in r["stops"]:
            served.append(s["pickup_id"])
            assert 8 * 60 <= s["arrival_min"] <= 18 * 60  # the pickup window
            if s["pickup_id"].endswith(":C"):
                assert v["class_c_allowed"]  # class C only on the P911-equipped truck
        assert r["load_kg"] == pytest.approx(sum(pickups[s["pickup_id"]]["mass_kg"] for s in r["stops"]))
    assert sorted(served) == ["GZ1", "GZ1:C", "GZ2", "GZ3", "SZ1"]
    rr = CollectionRouteRun.objects.get(pk=doc["id"])
    assert rr.plan_id == planned.pk and rr.day.isoformat() == "2026-11-24" and rr.hub_id == HUB
    assert rr.total_distance_km == pytest.approx(sum(r["distance_km"] for r in doc["routes"]), abs=0.01)


def test_pack_count_limits_the_day(planned, capsys):
    doc = routes_json(capsys, "--vehicles", "2x5000:8,1x2000:3:C")
    for r in doc["routes"]:
        assert r["packs"] <= (3 if r["vehicle_id"].endswith("P911") else 8)
    served = sum(r["packs"] for r in doc["routes"])
    assert served <= 19
    short = doc["unserved"]
    assert short and all("pack capacity" in u["reason"] for u in short)


def test_human_output(planned, capsys):
    call_command("plan", "routes", "--hub", HUB, "--time-limit", "1")
    out = capsys.readouterr().out
    assert f"{HUB} on " in out and "hub → " in out and "consignment BJ1" in out


@pytest.mark.parametrize("args, words", [
    (["--vehicles", "2x3000:60"], ["class C packs at GZ1 (3 packs)", "P911", ":C"]),
    (["--vehicles", "2x3000"], ["COUNTxKG:PACKS[:C]"]),
    (["--vehicles", "0x3000:60"], ["must be positive"]),
    (["--date", "24/11/2026"], ["YYYY-MM-DD"]),
    (["--window", "18:00-08:00"], ["start before it ends"]),
    (["--scenario", "nope"], ["no stored plan for scenario 'nope'"]),
])
def test_bad_route_requests_are_clear_errors(planned, args, words):
    with pytest.raises(CommandError) as e:
        call_command("plan", "routes", "--hub", HUB, "--time-limit", "1", *args)
    for w in words:
        assert w in str(e.value)
    assert not CollectionRouteRun.objects.exists()


def test_hub_not_in_the_plan_lists_the_opened_hubs(planned):
    with pytest.raises(CommandError) as e:
        call_command("plan", "routes", "--hub", "hub-110100")
    assert "hub-110100" in str(e.value) and f"opened hubs: {HUB}" in str(e.value)


def test_no_pickups_when_the_registry_moved_on(planned):
    TriageDecision.objects.update(route="keep_in_service")
    with pytest.raises(CommandError) as e:
        call_command("plan", "routes", "--hub", HUB)
    assert "no pickups" in str(e.value)


def test_infeasible_latest_plan_has_no_routes(planned):
    run_scenario("baseline", ["hub_capacity_t=0.1"])
    with pytest.raises(CommandError) as e:
        call_command("plan", "routes", "--hub", HUB)
    assert "has no plan: infeasible" in str(e.value) and "hub capacity" in str(e.value)
