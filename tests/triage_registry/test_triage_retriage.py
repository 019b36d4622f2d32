"""New evidence re-triages the packs it concerns: a health assessment (hook at the end of
``battloop assess``) and alarms opening or clearing (telemetry's alarm evaluation). Each
re-triage decision and event says which evidence triggered it."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from django.core.management import call_command
from django.utils import timezone

from battloop.health.assess import assess
from battloop.registry.audit import verify_chains
from battloop.registry.events import transition
from battloop.registry.importer import import_packs
from battloop.registry.models import Pack
from battloop.telemetry.service import evaluate_alarms
from battloop.triage.bench import import_bench
from battloop.triage.models import TriageDecision
from battloop.triage.registry_triage import retriage

from triage_world import bench_row, build, write_bench


@pytest.fixture
def world(db, tmp_path):
    return build(tmp_path, serials=("B1", "B2"), nmc=())


def current(serial):
    return TriageDecision.objects.get(pack__serial=serial, current=True)


def test_retriage_touches_only_the_given_packs_already_triaged(world, tmp_path):
    call_command("triage", "run")
    before = TriageDecision.objects.count()
    out = retriage(Pack.objects.filter(serial="B1"), "manual check")
    assert out["packs"] == 1 and out["changed"] == 0 and TriageDecision.objects.count() == before + 1
    assert current("B1").trigger == {"reason": "manual check"} and current("B2").trigger == {}
    # A pack in service that triage never decided on is left to 'triage run'.
    f = tmp_path / "more.csv"
    f.write_text("serial,model,install_date,site\nI1,LFP100,2020-01-01,S1\n")
    import_packs(f, owner="op")
    assert retriage(Pack.objects.filter(serial="I1"), "alarm")["packs"] == 0
    assert not TriageDecision.objects.filter(pack__serial="I1").exists()


def test_health_assessment_retriages_flagged_packs(world, tmp_path):
    f = tmp_path / "flagged.csv"
    f.write_text("serial,model,manufacture_date,install_date,site\nF1,LFP100,2016-01-01,2016-03-01,S1\n")
    import_packs(f, owner="op")
    transition(Pack.objects.get(serial="F1"), "flagged", "health", None, {"reason": "approaching end of life"})
    call_command("triage", "run")
    assert current("F1").route == "hold" and current("F1").reasons[0]["why"] == "needs capacity test"
    assess(today=dt.date(2026, 11, 1))  # nobody runs 'triage run' after this
    d = current("F1")
    h = Pack.objects.get(serial="F1").health
    assert d.trigger["reason"] == "health assessment" and d.trigger["evidence"] == "health_assessment"
    assert d.trigger["soh_p50_pct"] == h.soh_p50_pct and d.inputs["soh_pct"] == pytest.approx(h.soh_p50_pct)
    assert d.route != "hold"
    ev = Pack.objects.get(serial="F1").events.filter(kind="decision").order_by("seq").last()
    assert ev.payload["previous"] == "hold" and ev.payload["decision"] == d.route
    assert ev.payload["trigger"]["evidence"] == "health_assessment"
    # packs in storage have no assessment and were not re-triaged
    assert current("B1").trigger == {}


def _reading(serial, temp_max_c, now):
    return pa.table({"pack_serial": [serial], "ts": pa.array([now], pa.timestamp("us", tz="UTC")),
                     "alarm_codes": pa.array([[]], pa.list_(pa.string())), "temp_max_c": [temp_max_c],
                     "temp_min_c": [20.0], "cell_v_max": [3.34], "cell_v_min": [3.33], "soh_pct": [85.0]})


def test_alarms_retriage_a_redeployed_pack(world, tmp_path):
    org = world["org"]
    import_bench(write_bench(tmp_path / "b.csv", bench_row("B1", capacity_ah=72)))
    call_command("triage", "run")
    assert current("B1").route == "reuse_ess"
    p = Pack.objects.get(serial="B1")
    transition(p, "second_life_ready", "sli-tech", org["sli"], {"safety_class": "A"})
    transition(p, "redeployed", "sli-tech", org["sli"], {"site_code": "MG1"})
    ids = {"B1": p.pk}
    now = timezone.now()
    evaluate_alarms(_reading("B1", 30.0, now), ids, now=now)
    assert current("B1").route == "reuse_ess" and current("B1").trigger == {}  # nothing opened: not re-triaged
    evaluate_alarms(_reading("B1", 52.0, now), ids, now=now)  # over-temperature opens
    d = current("B1")
    assert d.route == "hold" and d.reasons[0]["rule"] == "thermal_event_history"
    assert d.trigger["reason"] == "alarm opened or cleared"
    assert d.trigger["alarms"] == [{"alarm": "over_temperature", "status": "open"}]
    later = now + dt.timedelta(hours=1)
    evaluate_alarms(_reading("B1", 30.0, later), ids, now=later)  # clears; the history stays
    d2 = current("B1")
    assert d2.pk != d.pk and d2.route == "hold" and d2.trigger["alarms"][0]["status"] == "cleared"
    ev = p.events.filter(kind="decision").order_by("seq").last()
    assert ev.payload["decision"] == "hold" and ev.payload["previous"] == "reuse_ess"
    assert "state" not in ev.payload and ev.payload["trigger"]["alarms"][0]["alarm"] == "over_temperature"
    assert not verify_chains().breaks
