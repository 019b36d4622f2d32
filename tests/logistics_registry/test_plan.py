import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from battloop.logistics.models import PlanRun

from logistics_registry_helpers import make_triaged

TONNES = 30 * 0.045


@pytest.fixture
def triaged(db, tmp_path):
    return make_triaged(tmp_path)


def plan_json(capsys, *args):
    call_command("plan", *args, "--json")
    return json.loads(capsys.readouterr().out)


def test_plan_moves_every_tonne_to_compliant_destinations_and_is_stored(triaged, capsys):
    doc = plan_json(capsys)
    assert doc["status"] == "optimal" and doc["opened_hubs"] and doc["scenario"] == "baseline"
    assert doc["input"]["tonnes"] == pytest.approx(TONNES) and doc["input"]["packs"] == 30
    inbound = sum(f["tonnes"] for f in doc["inbound_flows"])
    outbound = sum(f["tonnes"] for f in doc["outbound_flows"])
    assert inbound == pytest.approx(TONNES) and outbound == pytest.approx(inbound)
    dests = {f["destination"] for f in doc["outbound_flows"]}
    assert "grey" not in dests  # never a recycler off the white-list
    reuse = sum(f["tonnes"] for f in doc["outbound_flows"] if f["destination"] == "tower-energy")
    assert reuse == pytest.approx(15 * 0.045)  # reuse routes go to the second-life integrator

    run = PlanRun.objects.get(pk=doc["id"])
    assert run.status == "optimal" and run.objective == pytest.approx(doc["objective"])
    assert run.cost_breakdown["total"] == pytest.approx(run.objective, rel=1e-6)
    # the opened hubs' throughputs add up to everything moved, and their use is throughput / capacity
    assert sum(h["throughput_t"] for h in run.opened_hubs) == pytest.approx(TONNES)
    for h in run.opened_hubs:
        assert h["use_pct"] == pytest.approx(100 * h["throughput_t"] / h["capacity_t"], abs=0.01)
        assert h["prefecture_name"]  # e.g. 广州市
    assert run.model_size["columns"] > 0 and run.bound is not None and run.gap is not None
    assert run.settings["plan"]["hub_fixed_cost"] == 250_000.0


def test_scenario_settings_change_the_plan_and_compare_side_by_side(triaged, capsys):
    base = plan_json(capsys)
    cheap = plan_json(capsys, "--scenario", "cheap-hubs", "--set", "hub_fixed_cost=1000", "dg_surcharge_per_tkm=0.3")
    assert cheap["overrides"] == {"hub_fixed_cost": 1000.0, "dg_surcharge_per_tkm": 0.3}
    assert cheap["cost_breakdown"]["fixed"] == pytest.approx(1000.0 * len(cheap["opened_hubs"]))
    # cheaper hubs: at least as many open, never more expensive
    assert len(cheap["opened_hubs"]) >= len(base["opened_hubs"])
    # the surcharge is on every tonne-km: class A inbound transport = tonne-km × (0.60 + 0.30)
    tkm_in = sum(f["tonnes"] * f["km"] for f in cheap["inbound_flows"])
    assert cheap["cost_breakdown"]["transport_inbound"] == pytest.approx(tkm_in * 0.90, rel=1e-9)
    assert cheap["settings"]["network"]["cost_per_tkm"]["C"] == pytest.approx(1.80)

    cmp_doc = plan_json(capsys, "compare", "baseline", "cheap-hubs")
    rows = {r["metric"]: r for r in cmp_doc["rows"]}
    assert cmp_doc["scenarios"] == ["baseline", "cheap-hubs"]
    assert rows["cost.fixed"]["baseline"] == pytest.approx(base["cost_breakdown"]["fixed"])
    assert rows["cost.fixed"]["cheap-hubs"] == pytest.approx(cheap["cost_breakdown"]["fixed"])
    assert rows["hubs_opened"]["cheap-hubs"] == len(cheap["opened_hubs"])
    assert rows["transport_co2_kg"]["baseline"] == pytest.approx(base["transport_co2_kg"])
    assert rows["gap"]["baseline"] == pytest.approx(base["gap"])

    call_command("plan", "compare", "baseline", "cheap-hubs")
    text = capsys.readouterr().out
    assert "cost.fixed" in text and "cheap-hubs" in text and "hubs_opened" in text


def test_latest_run_of_a_scenario_wins_in_compare(triaged, capsys):
    plan_json(capsys, "--scenario", "s", "--set", "circuity=1.3")
    second = plan_json(capsys, "--scenario", "s", "--set", "circuity=1.6")
    doc = plan_json(capsys, "compare", "s")
    assert doc["run_ids"]["s"] == second["id"]
    assert second["settings"]["network"]["circuity"] == 1.6


@pytest.mark.parametrize("assignment, words", [
    ("hub_fixd_cost=1", ["unknown setting", "hub_fixed_cost", "circuity", "dg_surcharge_per_tkm", "cost_per_tkm.{A,B,C}"]),
    ("hub_capacity_t=0", ["hub_capacity_t=0", "must be positive"]),
    ("hub_capacity_t=-5", ["must be positive"]),
    ("circuity=abc", ["circuity=abc", "expected a number"]),
    ("circuity=0.9", ["must be >= 1"]),
    ("cost_per_tkm=2", ["per A/B/C", "cost_per_tkm.A=VALUE"]),
    ("cost_per_tkm.D=2", ["per A/B/C"]),
    ("single_source=maybe", ["expected true or false"]),
    ("hub_fixed_cost", ["expected key=value"]),
])
def test_bad_settings_are_refused_with_the_valid_keys(triaged, assignment, words):
    with pytest.raises(CommandError) as e:
        call_command("plan", "--scenario", "bad", "--set", assignment)
    for w in words:
        assert w in str(e.value)
    assert not PlanRun.objects.filter(scenario="bad").exists()


def test_infeasible_scenario_is_stored_with_constraint_and_shortfall(triaged, capsys):
    # 3 candidate hubs (Guangzhou, Shenzhen, Beijing) of 0.1 t each against 1.35 t to move
    with pytest.raises(CommandError) as e:
        call_command("plan", "--scenario", "tiny-hubs", "--set", "hub_capacity_t=0.1", "--json")
    assert "hub capacity" in str(e.value) and "1.050 t" in str(e.value)
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "infeasible" and doc["opened_hubs"] == [] and doc["objective"] is None
    run = PlanRun.objects.get(scenario="tiny-hubs")
    assert run.infeasible_constraint == "hub_capacity"
    assert run.shortfall_t == pytest.approx(TONNES - 0.3)
    assert run.binding_constraints[0]["capacity_t"] == pytest.approx(0.3)
    rows = {r["metric"]: r for r in plan_json(capsys, "compare", "tiny-hubs")["rows"]}
    assert rows["status"]["tiny-hubs"] == "infeasible" and rows["shortfall_t"]["tiny-hubs"] == pytest.approx(1.05)


def test_destination_shortfall_names_the_route(triaged, capsys):
    with pytest.raises(CommandError) as e:
        call_command("plan", "--scenario", "small-integrator", "--set", "integrator_capacity_t=0.5")
    assert "second-life integrators" in str(e.value) and "0.175 t" in str(e.value)
    run = PlanRun.objects.get(scenario="small-integrator")
    assert run.infeasible_constraint == "destination_capacity" and run.shortfall_t == pytest.approx(15 * 0.045 - 0.5)


def test_compare_unknown_scenario_lists_the_stored_ones(triaged, capsys):
    plan_json(capsys)
    with pytest.raises(CommandError) as e:
        call_command("plan", "compare", "baseline", "nope")
    assert "nope" in str(e.value) and "stored: baseline" in str(e.value)


def test_nothing_to_move_stores_nothing(db, capsys):
    call_command("plan")
    assert "nothing to move" in capsys.readouterr().out
    assert not PlanRun.objects.exists()


def test_time_limit_before_any_plan_is_stored_with_status_and_bound(triaged, capsys):
    with pytest.raises(CommandError) as e:
        call_command("plan", "--scenario", "rushed", "--time-limit", "0.000000001", "--json")
    assert "time_limit_no_incumbent" in str(e.value) and "no feasible plan found" in str(e.value)
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "time_limit_no_incumbent" and doc["objective"] is None and doc["opened_hubs"] == []
    assert "proven lower bound on cost" in doc["message"]
    run = PlanRun.objects.get(scenario="rushed")
    assert run.status == "time_limit_no_incumbent" and not run.has_plan and run.model_size["columns"] > 0
