import pytest
from django.contrib.auth import get_user_model

from battloop.registry.events import append_event
from battloop.registry.importer import import_packs
from battloop.registry.models import Organization, Pack, PackModel, Site
from battloop.web.models import ApiToken, AuditGrant, Membership

from web_helpers import ROLES


@pytest.fixture
def world(db, tmp_path, settings):
    settings.BATTLOOP_IMPORTS_INLINE = True
    return build_world(tmp_path)


@pytest.fixture
def live_world(transactional_db, tmp_path):
    return build_world(tmp_path)


def build_world(tmp_path):
    """Two operators, an OEM, a recycler and an auditor organization, users of every role,
    and packs: op1's (made by the OEM), op2's (another maker), one in the recycler's custody."""
    User = get_user_model()
    org = {}
    for code, kind in [("op1", "operator"), ("op2", "tower_company"), ("oem1", "oem"), ("oem2", "oem"), ("rec1", "recycler"), ("aud1", "auditor")]:
        org[code] = Organization.objects.create(code=code, name=f"Org {code}", kind=kind)
    PackModel.objects.create(code="M1", oem=org["oem1"], chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100, energy_kwh=4.8,
                             mass_kg=45, cell_count=15, cell_configuration="15S1P", design_life_years=10)
    PackModel.objects.create(code="M2", oem=org["oem2"], chemistry="NMC", nominal_voltage_v=48, rated_capacity_ah=50, energy_kwh=2.4,
                             mass_kg=20, cell_count=13, cell_configuration="13S1P", design_life_years=8)
    Site.objects.create(code="S1", name="Site one", site_type="macro_bts", owner=org["op1"], latitude=23.1, longitude=113.3, province="广东省")
    Site.objects.create(code="S2", name="Site two", site_type="rural", owner=org["op2"], latitude=39.9, longitude=116.4, province="北京市")
    f = tmp_path / "p.csv"
    f.write_text("serial,model,install_date,site\nP1A,M1,2019-01-01,S1\nP1B,M1,2019-01-01,S1\nP2A,M2,2019-01-01,S2\nP2R,M2,2018-01-01,S2\n")
    import_packs(f)
    # P2R went to the recycler's custody.
    append_event(Pack.objects.get(serial="P2R"), "custody", "op2-user", org["op2"], {"custodian": "rec1", "site_code": None, "state": "shipped"})
    AuditGrant.objects.create(auditor=org["aud1"], grantor=org["op1"])
    users, tokens = {}, {}
    for role in ROLES:
        u = User.objects.create_user(f"op1-{role}", password="pw-" + role)
        Membership.objects.create(user=u, organization=org["op1"], role=role)
        users[("op1", role)] = u
        tokens[("op1", role)] = ApiToken.issue(u, org["op1"], role, "t")[1]
    for code, role in [("op2", "admin"), ("oem1", "asset_manager"), ("rec1", "recycler_operator"), ("aud1", "auditor")]:
        u = User.objects.create_user(f"{code}-{role}", password="pw")
        Membership.objects.create(user=u, organization=org[code], role=role)
        users[(code, role)] = u
        tokens[(code, role)] = ApiToken.issue(u, org[code], role, "t")[1]
    return {"org": org, "users": users, "tokens": tokens}

