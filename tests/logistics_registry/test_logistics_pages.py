"""The logistics pages: stored plans per scenario, shipments, scoped to the actor's organization."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from battloop.logistics.models import PlanRun
from battloop.logistics.registry_plan import run_scenario
from battloop.registry.models import Organization
from battloop.web.models import Membership

from logistics_registry_helpers import build_logistics_world

XSS = '<script>alert("x")</script>'


@pytest.fixture
def lworld(db, tmp_path):
    return build_logistics_world(tmp_path)


def client_for(user):
    c = Client()
    c.force_login(user)
    return c


def table(html, table_id):
    m = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert m, f"no table #{table_id}"
    return m.group(0)


def test_plan_page_shows_the_latest_plan_costs_hubs_destinations_and_scenarios(lworld):
    html = client_for(lworld["users"]["ctc"]).get("/logistics/").content.decode()
    base = lworld["base"]
    assert 'href="/logistics/"' in html  # the nav link
    assert base.status == "optimal"
    hubs = table(html, "hub-table")
    for h in base.opened_hubs:
        assert h["hub_id"] in hubs and h["prefecture_name"] in hubs and f"{h['throughput_t']:.3f}" in hubs
    costs = table(html, "cost-table")
    assert f"{base.cost_breakdown['fixed']:,.0f}" in costs and f"{base.cost_breakdown['total']:,.0f}" in costs
    dests = table(html, "destination-table")
    assert "Brunp" in dests and "TE" in dests and "Workshop" not in dests
    reuse_t = sum(f["tonnes"] for f in base.outbound_flows if f["destination"] == "tower-energy")
    assert f"{reuse_t:.3f}" in dests
    compare = table(html, "compare-table")
    assert "baseline" in compare and "cheap-hubs" in compare and "cost.fixed" in compare
    assert "1000" in compare  # the cheap scenario's fixed cost (one hub at 1,000)

    html = client_for(lworld["users"]["ctc"]).get("/logistics/?scenario=cheap-hubs").content.decode()
    assert f"{lworld['cheap'].cost_breakdown['total']:,.0f}" in table(html, "cost-table")
    assert client_for(lworld["users"]["ctc"]).get("/logistics/?scenario=nope").status_code == 404


def test_shipments_are_scoped_to_sender_receiver_carrier_and_granted_auditor(lworld):
    u = lworld["users"]
    seen = {}
    for who in u:
        html = client_for(u[who]).get("/logistics/").content.decode()
        ship = table(html, "shipment-table")
        seen[who] = {code for code in ("S-CTC-1", "S-CMCC-1") if code in ship}
    assert seen == {"ctc": {"S-CTC-1"}, "cmcc": {"S-CMCC-1"}, "brunp": {"S-CTC-1"}, "sinotrans": {"S-CTC-1"},
                    "aud": {"S-CTC-1"}}
    ship = table(client_for(u["ctc"]).get("/logistics/").content.decode(), "shipment-table")
    row = re.search(r"S-CTC-1.*?</tr>", ship, re.S).group(0)
    assert "discrepancy" in row and '<b class="error">1</b>' in row  # one open discrepancy: SH2 missing
    for who, code, status in [("ctc", "S-CTC-1", 200), ("brunp", "S-CTC-1", 200), ("aud", "S-CTC-1", 200),
                              ("sinotrans", "S-CTC-1", 200), ("cmcc", "S-CTC-1", 404), ("ctc", "S-CMCC-1", 404),
                              ("aud", "S-CMCC-1", 404), ("cmcc", "S-CMCC-1", 200), ("ctc", "NOPE", 404)]:
        assert client_for(u[who]).get(f"/logistics/shipments/{code}/").status_code == status, (who, code)


def test_shipment_detail_shows_the_manifest_and_discrepancies(lworld):
    html = client_for(lworld["users"]["brunp"]).get("/logistics/shipments/S-CTC-1/").content.decode()
    manifest = table(html, "manifest-table")
    for serial in ("SH1", "SH2"):
        assert re.search(rf"{serial}</td><td>UN3480</td><td>9</td><td>P909</td><td>45.0</td>", manifest), serial
    assert "<b>90.0</b>" in manifest  # total mass
    disc = table(html, "discrepancy-table")
    assert "SH2" in disc and "missing" in disc and "open" in disc and "SH1" not in disc


def test_recycler_sees_only_its_own_flows(lworld):
    dests = table(client_for(lworld["users"]["brunp"]).get("/logistics/").content.decode(), "destination-table")
    assert "Brunp" in dests and "TE" not in dests
    recycled = sum(f["tonnes"] for f in lworld["base"].outbound_flows if f["destination"] == "brunp")
    assert f"{recycled:.3f}" in dests


def test_collection_routes_name_only_the_actor_s_sites(lworld):
    rr = lworld["routes"]
    stops = {s["pickup_id"] for r in rr.routes for s in r["stops"]}
    assert {"GZ1", "SZ1"} <= stops and rr.unserved == [] and [c["pickup_id"] for c in rr.consignments] == ["BJ1"]
    html = client_for(lworld["users"]["ctc"]).get("/logistics/").content.decode()
    block = re.search(r'id="routes-hub-440100".*?</div>', html, re.S).group(0)
    assert "2026-11-24" in block and "30 packs" in block
    assert 'href="/sites/GZ1/"' in block and 'href="/sites/SZ1/"' not in block  # SZ1 is cmcc's
    assert "another organization" in block and 'href="/sites/BJ1/"' in block  # ctc's long-haul consignment
    assert "UN3480 P909" in block
    html = client_for(lworld["users"]["cmcc"]).get("/logistics/").content.decode()
    block = re.search(r'id="routes-hub-440100".*?</div>', html, re.S).group(0)
    assert 'href="/sites/SZ1/"' in block and "GZ1" not in block and "BJ1" not in block
    html = client_for(lworld["users"]["sinotrans"]).get("/logistics/").content.decode()
    block = re.search(r'id="routes-hub-440100".*?</div>', html, re.S).group(0)
    assert all(f'href="/sites/{s}/"' in block for s in stops)  # the carrier drives them all


def test_infeasible_scenario_page_says_which_constraint(lworld):
    run_scenario("tiny", ["hub_capacity_t=0.1"])
    assert PlanRun.objects.get(scenario="tiny").status == "infeasible"
    html = client_for(lworld["users"]["ctc"]).get("/logistics/?scenario=tiny").content.decode()
    assert "hub capacity" in html and "1.050 t" in html and 'id="hub-table"' not in html


def test_no_plan_and_login_required(db, client):
    assert client.get("/logistics/").status_code == 302
    u = get_user_model().objects.create_user("x", password="pw")
    Membership.objects.create(user=u, organization=Organization.objects.create(code="o", name="O", kind="operator"), role="admin")
    html = client_for(u).get("/logistics/").content.decode()
    assert 'id="no-plan"' in html


def test_scenario_names_and_shipment_fields_are_escaped(lworld):
    run_scenario(XSS, ["hub_fixed_cost=2000"])
    from battloop.logistics.models import Shipment

    Shipment.objects.filter(code="S-CTC-1").update(origin=XSS, vehicle=XSS)
    c = client_for(lworld["users"]["ctc"])
    for url in ["/logistics/", "/logistics/shipments/S-CTC-1/"]:
        html = c.get(url).content.decode()
        assert XSS not in html and "&lt;script&gt;" in html, url
