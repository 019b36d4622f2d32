"""Warranty tracking for redeployed packs: a redeployment (site, integrator, start, parsed
terms, baseline SOH and cycles) is recorded with every 'redeployed' transition, and the
status per pack is active / expired by time / by cycles / claim (SOH below the guarantee)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from battloop.registry.events import transition
from battloop.registry.lifecycle import TransitionRefused
from battloop.registry.models import Pack
from battloop.telemetry.models import LatestReading
from battloop.triage.bench import import_bench
from battloop.triage.models import Redeployment, TriageDecision
from battloop.web.models import Membership

from triage_world import build

HEAD = "serial,test_date,capacity_ah,dcir_mohm,baseline_dcir_mohm,ocv_v,visual_ok,leakage,cycle_count\n"


@pytest.fixture
def world(db, tmp_path):
    w = build(tmp_path)
    (tmp_path / "bench.csv").write_text(HEAD + "B1,2026-11-20,72,24,20,52.8,true,false,400\n"
                                               "B2,2026-11-20,45,24,20,52.8,true,false,300\n"
                                               "B3,2026-11-20,65,24,20,52.8,true,false,500\n"
                                               "B4,2026-11-20,70,24,20,52.8,false,true,100\n")
    import_bench(tmp_path / "bench.csv")
    call_command("triage", "run")
    routes = dict(TriageDecision.objects.filter(current=True).values_list("pack__serial", "route"))
    assert routes["B1"] == routes["B3"] == "reuse_ess" and routes["B2"] == "reuse_low_speed" and routes["B4"] == "hold"
    return w


def cycles(serial, n):
    LatestReading.objects.update_or_create(pack=Pack.objects.get(serial=serial),
                                           defaults={"ts": timezone.now(), "cycle_count": n})


def test_redeploy_and_warranty_status(world, tmp_path, capsys):
    call_command("triage", "redeploy", "B1", "--site", "MG1", "--integrator", "sli", "--demand", "MG-7",
                 "--warranty", "2 years or 1,000 cycles to 70%", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "active" and out["baseline_soh_pct"] == pytest.approx(72.0)
    r1 = Redeployment.objects.get(pack__serial="B1")
    assert (r1.warranty_years, r1.warranty_cycles, r1.warranty_end_soh_pct) == (2.0, 1000, 70.0)
    assert r1.baseline_cycle_count == 400 and r1.site.code == "MG1" and r1.integrator.code == "sli"
    assert r1.demand_id == "MG-7" and r1.baseline_soh_source == "bench"
    p1 = Pack.objects.get(serial="B1")
    assert p1.state == "redeployed" and p1.site.code == "MG1"
    assert r1.event.payload["warranty"] == "2 years or 1,000 cycles to 70%"
    call_command("triage", "redeploy", "B2", "--site", "MG1", "--integrator", "sli",
                 "--warranty", "18 months or 800 cycles to 75%")
    # Another way in: a plain transition that states the warranty (as the API or the page would).
    p3 = Pack.objects.get(serial="B3")
    transition(p3, "second_life_ready", "sli", world["org"]["sli"], {"safety_class": "A"})
    transition(p3, "redeployed", "sli", world["org"]["sli"], {"site_code": "MG1", "warranty": "1 year or 500 cycles to 70%"})
    assert Redeployment.objects.get(pack__serial="B3").warranty_cycles == 500
    capsys.readouterr()

    cycles("B1", 600)    # 200 cycles in second life
    cycles("B3", 1100)   # 600 > 500 warranted
    cycles("B2", 350)
    today = timezone.localdate()
    (tmp_path / "retest.csv").write_text(HEAD + f"B2,{today},33,26,20,52.0,true,false,360\n")  # 33 % < 75 % guaranteed
    import_bench(tmp_path / "retest.csv")
    call_command("triage", "warranties", "--json")
    rows = {r["serial"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"B1", "B2", "B3"}
    assert rows["B1"]["status"] == "active" and rows["B1"]["cycles_since_start"] == 200 and rows["B1"]["cycles_left"] == 800
    assert rows["B1"]["soh_pct"] is None  # no evidence since redeployment yet
    assert rows["B2"]["status"] == "claim" and rows["B2"]["soh_pct"] == pytest.approx(33.0)
    assert rows["B2"]["soh_source"] == "bench" and rows["B2"]["guaranteed_soh_pct"] == 75.0
    assert rows["B3"]["status"] == "expired_cycles" and rows["B3"]["cycles_since_start"] == 600
    later = today + dt.timedelta(days=int(2.01 * 365.25))
    call_command("triage", "warranties", "--as-of", later.isoformat(), "--json")
    rows = {r["serial"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["B1"]["status"] == "expired_years" and rows["B1"]["years_left"] == 0
    call_command("triage", "warranties")
    text = capsys.readouterr().out
    assert "3 redeployed packs" in text and "claim 1" in text and "B3" in text


def test_redeploy_refusals(world, tmp_path):
    with pytest.raises(CommandError, match="B4: its triage route is hold, not a reuse route"):
        call_command("triage", "redeploy", "B4", "--site", "MG1", "--integrator", "sli", "--warranty", "2 years to 70%")
    with pytest.raises(CommandError, match="give no residual capacity"):
        call_command("triage", "redeploy", "B1", "--site", "MG1", "--integrator", "sli", "--warranty", "2 years")
    with pytest.raises(CommandError, match="'NOPE' is not a registered site"):
        call_command("triage", "redeploy", "B1", "--site", "NOPE", "--integrator", "sli", "--warranty", "2 years to 70%")
    assert Pack.objects.get(serial="B1").state == "triaged" and not Redeployment.objects.exists()
    # An unreadable warranty on a plain transition refuses the transition: nothing half-recorded.
    p = Pack.objects.get(serial="B1")
    transition(p, "second_life_ready", "sli", world["org"]["sli"], {"safety_class": "A"})
    n = p.events.count()
    with pytest.raises(TransitionRefused, match="give neither years nor cycles"):
        transition(p, "redeployed", "sli", world["org"]["sli"], {"site_code": "MG1", "warranty": "to 70%"})
    assert Pack.objects.get(serial="B1").events.count() == n and not Redeployment.objects.exists()
    # Without terms the redeployment is still recorded, and says it has none.
    transition(p, "redeployed", "sli", world["org"]["sli"], {"site_code": "MG1"})
    call_command("triage", "warranties", "--json")


def test_pack_page_shows_warranty(world, client):
    call_command("triage", "redeploy", "B1", "--site", "MG1", "--integrator", "sli",
                 "--warranty", "2 years or 1,000 cycles to 70%")
    u = get_user_model().objects.create_user("op-admin", password="pw")
    Membership.objects.create(user=u, organization=world["org"]["op"], role="admin")
    client.force_login(u)
    html = client.get("/packs/B1/").content.decode()
    assert 'id="warranty"' in html and "2 years or 1,000 cycles to 70%" in html and "MG1" in html
    assert "warranty-active" in html and "Bench test" in html
    assert 'id="warranty"' not in client.get("/packs/B2/").content.decode()
