"""A small registry with packs triaged to recycling and reuse, for the plan, routes and page tests."""

from django.utils import timezone

from battloop.registry.importer import import_packs
from battloop.registry.models import Organization, Pack, PackModel, Site
from battloop.triage.models import PolicyVersion, TriageDecision

# site code -> (lat, lon, adcode): Guangzhou, Shenzhen, Beijing, and two more Guangzhou sites
SITES = {
    "GZ1": (23.13, 113.26, "440103"),
    "GZ2": (23.20, 113.35, "440106"),
    "GZ3": (23.05, 113.40, "440112"),
    "SZ1": (22.54, 114.06, "440303"),
    "BJ1": (39.90, 116.40, "110101"),
}


def make_triaged(tmp_path, n_packs=30, class_of=lambda i: "A", owner_code="ctc"):
    """``n_packs`` packs of a 45 kg LFP model spread over SITES, odd ones to recycling, even ones to reuse
    (class A only; others go to recycling); ``class_of(i)`` gives pack i's safety class."""
    orgs = {}
    orgs["ctc"] = Organization.objects.get_or_create(code=owner_code, defaults={"name": "CTC", "kind": "tower_company"})[0]
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
        Site.objects.get_or_create(code=code, defaults=dict(site_type="macro_bts", owner=orgs["ctc"], latitude=lat, longitude=lon,
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
