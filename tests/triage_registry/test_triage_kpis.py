"""The field's triage KPIs from the registry for a period: retired packs (first removal
from service), share evaluated for second life (target ≥ 20 %), routed to reuse, to
recycling, and received by white-listed recyclers; on the CLI and the triage page."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from battloop.logistics.models import Shipment, ShipmentItem
from battloop.registry.events import transition
from battloop.registry.importer import import_packs
from battloop.registry.models import Pack
from battloop.triage.bench import import_bench
from battloop.web.models import Membership

from triage_world import build, retire

HEAD = "serial,capacity_ah,dcir_mohm,baseline_dcir_mohm,ocv_v,visual_ok,leakage\n"


@pytest.fixture
def world(db, tmp_path):
    w = build(tmp_path)
    (tmp_path / "bench.csv").write_text(HEAD + "B1,72,24,20,52.8,true,false\n"     # reuse_ess
                                               "B2,45,24,20,52.8,true,false\n"     # reuse_low_speed
                                               "B3,70,24,20,52.8,false,true\n"     # class B: hold
                                               "N1,35,24,20,48.1,true,false\n")    # NMC 70 %: recycle, intact
    import_bench(tmp_path / "bench.csv")
    f = tmp_path / "in-service.csv"
    f.write_text("serial,model,install_date,site\nI1,LFP100,2020-01-01,S1\n")
    import_packs(f, owner="op")  # still in first life: not retired
    call_command("triage", "run")
    org = w["org"]
    for code, receiver, serial in [("SH-1", "rec", "N1"), ("SH-2", "trader", "B3")]:
        sh = Shipment.objects.create(code=code, sender=org["op"], receiver=org[receiver], origin="OUT-GZ-01",
                                     destination=receiver, status="received", received_at=timezone.now())
        ShipmentItem.objects.create(shipment=sh, pack=Pack.objects.get(serial=serial), un_number="UN3480",
                                    packaging="P909", mass_kg=45, received=True, received_mass_kg=45)
    return w


def kpis(capsys, *args):
    call_command("triage", "kpis", *args, "--json")
    return json.loads(capsys.readouterr().out)


def test_kpis_count_what_their_definitions_say(world, capsys, tmp_path):
    k = kpis(capsys)
    assert k["retired_packs"] == 5 and k["not_triaged"] == 0  # B1-B4, N1; not I1
    assert k["evaluated_for_second_life"] == 3 and k["evaluated_for_second_life_share"] == pytest.approx(0.6)
    assert k["evaluated_target_met"] is True
    assert k["routed_to_reuse"] == 2 and k["routed_to_reuse_share"] == pytest.approx(0.4)
    assert k["routed_to_recycling"] == 1 and k["routed_to_recycling_share"] == pytest.approx(0.2)
    # N1 reached a white-listed recycler; B3 went to a trader (informal channel)
    assert k["certified_recycling"] == 1 and k["certified_recycling_share"] == 1.0 and k["certified_target_met"] is True
    assert k["received_by_any_recycler"] == 2 and k["received_by_certified_recycler"] == 1
    # A period without retirements
    empty = kpis(capsys, "--from", "2020-01-01", "--to", "2020-12-31")
    assert empty["retired_packs"] == 0 and empty["evaluated_for_second_life_share"] == 0.0

    # Leaving a second life is not retiring again.
    sli = world["org"]["sli"]
    p = Pack.objects.get(serial="B1")
    transition(p, "second_life_ready", "sli", sli, {"safety_class": "A"})
    transition(p, "redeployed", "sli", sli, {"site_code": "MG1"})
    transition(Pack.objects.get(serial="B1"), "removed", "sli", sli, {"reason": "micro-grid decommissioned"})
    assert kpis(capsys)["retired_packs"] == 5

    # Twenty more packs retired, none measured: 3 of 25 evaluated, below the 20 % target.
    serials = [f"X{i:02d}" for i in range(20)]
    path = tmp_path / "more.csv"
    path.write_text("serial,model,install_date,site\n" + "".join(f"{s},LFP100,2018-01-01,S1\n" for s in serials))
    import_packs(path, owner="op")
    for s in serials:
        retire(s, world["org"]["op"])
    call_command("triage", "run")
    capsys.readouterr()
    k = kpis(capsys)
    assert k["retired_packs"] == 25 and k["evaluated_for_second_life"] == 3
    assert k["evaluated_for_second_life_share"] == pytest.approx(0.12) and k["evaluated_target_met"] is False
    call_command("triage", "kpis")
    text = capsys.readouterr().out
    assert "25 packs retired" in text and "12.0%" in text and "NOT met" in text


def test_triage_page_shows_kpis_and_target(world, client):
    u = get_user_model().objects.create_user("op-admin", password="pw")
    Membership.objects.create(user=u, organization=world["org"]["op"], role="admin")
    client.force_login(u)
    html = client.get("/triage/").content.decode()
    assert 'id="kpi-retired">5<' in html and 'id="kpi-evaluated">60.0 %' in html
    assert 'class="badge ok" id="target-evaluated"' in html and 'id="kpi-certified">100.0 %' in html
    html = client.get("/triage/?from=2020-01-01&to=2020-12-31").content.decode()
    assert 'id="kpi-retired">0<' in html and 'id="target-evaluated"' not in html
    assert client.get("/triage/?from=2026-12-01&to=2026-01-01").status_code == 200
