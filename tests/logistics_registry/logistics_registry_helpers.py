"""A small registry with packs triaged to recycling and reuse, for the plan, routes and page tests."""

from django.contrib.auth import get_user_model
from django.utils import timezone

from battloop.logistics.registry_plan import run_scenario
from battloop.logistics.registry_routes import plan_hub_routes
from battloop.logistics.shipments import create_shipment, dispatch, receive
from battloop.registry.events import transition

from battloop.registry.importer import import_packs
from battloop.registry.models import Organization, Pack, PackModel, Site
from battloop.triage.models import PolicyVersion, TriageDecision
from battloop.web.models import AuditGrant, Membership

# site code -> (lat, lon, adcode): Guangzhou, Shenzhen, Beijing, and two more Guangzhou sites
SITES = {
    "GZ1": (23.13, 113.26, "440103"),
    "GZ2": (23.20, 113.35, "440106"),
    "GZ3": (23.05, 113.40, "440112"),
    "SZ1": (22.54, 114.06, "440303"),
    "BJ1": (39.90, 116.40, "110101"),
}


def make_triaged(tmp_path, n_packs=30, class_of=lambda i: "A", owners=None):
    """``n_packs`` packs of a 45 kg LFP model spread over SITES, odd ones to recycling, even ones to reuse
    (class A only; others go to recycling); ``class_of(i)`` gives pack i's safety class.
    Sites belong to the tower company ``ctc`` unless ``owners`` maps a site code to an operator's code."""
    orgs = {}
    orgs["ctc"] = Organization.objects.get_or_create(code="ctc", defaults={"name": "CTC", "kind": "tower_company"})[0]
    for code in set((owners or {}).values()):
        orgs[code] = Organization.objects.get_or_create(code=code, defaults={"name": code.upper(), "kind": "operator"})[0]
    oem = Organization.objects.get_or_create(code="oem-lg", defaults={"name": "OEM", "kind": "oem"})[0]
    Organization.objects.get_or_create(code="brunp", defaults={"name": "Brunp", "kind": "recycler", "recycler_whitelisted": True,
                                                               "province": "广东省"})
    Organization.objects.get_or_create(code="grey", defaults={"name": "Workshop", "kind": "recycler", "recycler_whitelisted": False,
                                                              "province": "广东省"})
    Organization.objects.get_or_create(code="tower-energy", defaults={"name": "TE", "kind": "second_life_integrator",
                                                                      "province": "北京市"})
    PackModel.objects.get_or_create(code="LG-M1", defaults=dict(oem=oem, chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100,
                                                                energy_kwh=4.8, mass_kg=45, cell_count=15, cell_configuration="15S1P",
                                                                design_life_years=10))
    codes = list(SITES)
    for code, (lat, lon, adcode) in SITES.items():
        Site.objects.get_or_create(code=code, defaults=dict(site_type="macro_bts", owner=orgs[(owners or {}).get(code, "ctc")], latitude=lat, longitude=lon,
                                                            adcode=adcode))
    f = tmp_path / "lg-packs.csv"
    f.write_text("serial,model,install_date,site\n" + "".join(f"LG{i:03d},LG-M1,2015-01-01,{codes[i % len(codes)]}\n"
                                                           for i in range(n_packs)))
    import_packs(f)
    pv, _ = PolicyVersion.objects.get_or_create(identity="t@1#x", defaults=dict(name="t", version="1", content_hash="x", text="",
                                                                                first_used_at=timezone.now()))
    for i, p in enumerate(Pack.objects.filter(serial__startswith="LG").order_by("serial")):
        cls = class_of(i)
        route = "reuse_ess" if (i % 2 == 0 and cls == "A") else "recycle"
        TriageDecision.objects.create(pack=p, policy=pv, decided_at=timezone.now(), route=route, reasons=[],
                                      inputs={"safety_class": cls})
    return orgs


def build_logistics_world(tmp_path):
    """ctc's sites (and cmcc's SZ1) with triaged packs, a baseline and a scenario plan, the Guangzhou hub's
    routes on 2026-11-24, two shipments
    (ctc → brunp with a missing pack; cmcc → gem), and users of ctc, cmcc, brunp, a carrier and an auditor."""
    orgs = make_triaged(tmp_path, owners={"SZ1": "cmcc"})
    gem = Organization.objects.create(code="gem", name="GEM", kind="recycler", recycler_whitelisted=True, province="湖北省")
    carrier = Organization.objects.create(code="sinotrans", name="Sinotrans DG", kind="logistics_provider")
    aud = Organization.objects.create(code="aud", name="Audit", kind="auditor")
    AuditGrant.objects.create(auditor=aud, grantor=orgs["ctc"])
    f = tmp_path / "ship.csv"
    f.write_text("serial,model,install_date,site\nSH1,LG-M1,2015-01-01,GZ1\nSH2,LG-M1,2015-01-01,GZ1\nSH3,LG-M1,2015-01-01,SZ1\n")
    import_packs(f)
    for p in Pack.objects.filter(serial__startswith="SH").select_related("owner"):
        for state, ev in [("removed", {"reason": "eol"}), ("in_storage", {"outlet": "GZ-1"}),
                          ("triaged", {"route": "recycle", "policy_version": "x"}), ("recycling_ready", {"packaging": "P909"})]:
            transition(p, state, "t", p.owner, ev)
    brunp = Organization.objects.get(code="brunp")
    sh = create_shipment("S-CTC-1", orgs["ctc"], brunp, ["SH1", "SH2"], "GZ-1", "Brunp Foshan", "粤A12345", carrier=carrier)
    dispatch(sh, "alice", orgs["ctc"])
    receive(sh, "bob", brunp, {"SH1": 45.0})  # SH2 missing
    create_shipment("S-CMCC-1", orgs["cmcc"], gem, ["SH3"], "SZ-1", "GEM Jingmen")
    base, _ = run_scenario("baseline")
    cheap, _ = run_scenario("cheap-hubs", ["hub_fixed_cost=1000"])
    routes = plan_hub_routes("hub-440100", day="2026-11-24", time_limit_s=0.5)
    users = {}
    for code, role in [("ctc", "admin"), ("cmcc", "admin"), ("brunp", "recycler_operator"), ("sinotrans", "technician"),
                       ("aud", "auditor")]:
        u = get_user_model().objects.create_user(f"{code}-u", password="pw")
        Membership.objects.create(user=u, organization=Organization.objects.get(code=code), role=role)
        users[code] = u
    return {"users": users, "base": base, "cheap": cheap, "routes": routes}
