import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from battloop.registry.models import Organization, Pack, PackModel, Site
from battloop.triage.models import PolicyVersion, TriageDecision


@pytest.fixture
def triaged(db, tmp_path):
    ctc = Organization.objects.create(code="ctc", name="CTC", kind="tower_company")
    oem = Organization.objects.create(code="oem", name="OEM", kind="oem")
    Organization.objects.create(code="brunp", name="Brunp", kind="recycler", recycler_whitelisted=True, province="广东省")
    Organization.objects.create(code="grey", name="Workshop", kind="recycler", recycler_whitelisted=False, province="广东省")
    Organization.objects.create(code="tower-energy", name="TE", kind="second_life_integrator", province="北京市")
    PackModel.objects.create(code="M1", oem=oem, chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100, energy_kwh=4.8,
                             mass_kg=45, cell_count=15, cell_configuration="15S1P", design_life_years=10)
    Site.objects.create(code="GZ1", site_type="macro_bts", owner=ctc, latitude=23.13, longitude=113.26, adcode="440100")
    Site.objects.create(code="SZ1", site_type="macro_bts", owner=ctc, latitude=22.54, longitude=114.06, adcode="440300")
    Site.objects.create(code="BJ1", site_type="macro_bts", owner=ctc, latitude=39.90, longitude=116.40, adcode="110100")
    from battloop.registry.importer import import_packs

    f = tmp_path / "p.csv"
    f.write_text("serial,model,install_date,site\n" + "".join(f"P{i},M1,2015-01-01,{['GZ1', 'SZ1', 'BJ1'][i % 3]}\n" for i in range(30)))
    import_packs(f)
    pv = PolicyVersion.objects.create(identity="t@1#x", name="t", version="1", content_hash="x", text="", first_used_at=timezone.now())
    for i, p in enumerate(Pack.objects.order_by("serial")):
        TriageDecision.objects.create(pack=p, policy=pv, decided_at=timezone.now(), route="recycle" if i % 2 else "reuse_ess",
                                      reasons=[], inputs={"safety_class": "A"})


def test_plan_moves_every_tonne_to_compliant_destinations(triaged, capsys):
    call_command("plan", "--json")
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "optimal" and doc["opened_hubs"]
    assert doc["input"]["tonnes"] == pytest.approx(30 * 0.045)
    inbound = sum(f["tonnes"] for f in doc["inbound_flows"])
    outbound = sum(f["tonnes"] for f in doc["outbound_flows"])
    assert inbound == pytest.approx(30 * 0.045) and outbound == pytest.approx(inbound)
    dests = {f["destination"] for f in doc["outbound_flows"]}
    assert "grey" not in dests  # never a recycler off the white-list
    reuse = sum(f["tonnes"] for f in doc["outbound_flows"] if f["destination"] == "tower-energy")
    assert reuse == pytest.approx(15 * 0.045)  # reuse routes go to the second-life integrator
