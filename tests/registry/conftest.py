import pytest

from battloop.registry.models import Organization, PackModel, Site


@pytest.fixture
def registry(db):
    """Two operators, an OEM, a recycler, one model and three sites."""
    ctc = Organization.objects.create(code="ctc", name="China Tower GD", kind="tower_company")
    cmcc = Organization.objects.create(code="cmcc", name="China Mobile", kind="operator")
    oem = Organization.objects.create(code="catl", name="CATL", kind="oem")
    rec = Organization.objects.create(code="brunp", name="Brunp Recycling", kind="recycler", recycler_whitelisted=True)
    model = PackModel.objects.create(code="LFP48-100", oem=oem, chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100,
                                     energy_kwh=4.8, mass_kg=45, cell_count=15, cell_configuration="15S1P", design_life_years=10)
    sites = [Site.objects.create(code=f"GD{i:03d}", site_type="macro_bts", owner=ctc) for i in range(1, 4)]
    sites.append(Site.objects.create(code="CM001", site_type="indoor", owner=cmcc))
    return {"ctc": ctc, "cmcc": cmcc, "oem": oem, "recycler": rec, "model": model, "sites": sites}

