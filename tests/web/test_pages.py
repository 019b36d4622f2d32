import pytest
from django.test import Client

from battloop.registry.models import Pack
from battloop.web.models import AuditEntry

XSS = '<script>alert("x")</script>'


@pytest.fixture
def admin_client(world):
    c = Client()
    c.force_login(world["users"][("op1", "admin")])
    return c


def test_pages_render_and_scope(admin_client, world):
    for url in ["/", "/map/", "/packs/", "/packs/P1A/", "/sites/S1/", "/imports/", "/audit/", "/tokens/"]:
        r = admin_client.get(url)
        assert r.status_code == 200, url
    assert admin_client.get("/packs/P2A/").status_code == 404
    assert admin_client.get("/sites/S2/").status_code == 404
    data = admin_client.get("/map/data/?cell=0.5").json()
    assert sum(c["packs"] for c in data["cells"]) == 2  # only op1's packs at sites


def test_login_required_and_throttled(client, world):
    assert client.get("/packs/").status_code == 302
    for _ in range(5):
        r = client.post("/login/", {"username": "op1-admin", "password": "wrong"})
        assert r.status_code == 200
    r = client.post("/login/", {"username": "op1-admin", "password": "pw-admin"})
    assert "Too many failed attempts" in r.content.decode()
    assert AuditEntry.objects.filter(action="login_failed", username="op1-admin").count() == 5


def test_login_works(client, world):
    r = client.post("/login/", {"username": "op1-technician", "password": "pw-technician"})
    assert r.status_code == 302
    assert client.get("/").status_code == 200
    assert AuditEntry.objects.filter(action="login").exists()


def test_xss_escaped_everywhere(admin_client, world, tmp_path):
    from battloop.registry.events import transition

    from battloop.registry.models import Organization, Site

    p = Pack.objects.get(serial="P1A")
    Pack.objects.filter(pk=p.pk).update(location=XSS, original_identity=XSS)
    Site.objects.filter(code="S1").update(name=XSS, climate_zone=XSS, province=XSS, prefecture=XSS)
    Organization.objects.filter(code="op1").update(name=XSS)
    transition(p, "flagged", XSS, world["org"]["op1"], {"reason": XSS})
    for url in ["/packs/P1A/", "/packs/", "/sites/S1/", "/audit/", "/", "/imports/", "/tokens/", "/map/"]:
        html = admin_client.get(url).content.decode()
        assert XSS not in html, url
    assert "&lt;script&gt;" in admin_client.get("/packs/P1A/").content.decode()


def test_transition_form_with_refusal(admin_client, world):
    r = admin_client.post("/packs/P1A/transition/", {"state": "removed"}, HTTP_HX_REQUEST="true")
    assert "needs evidence: reason" in r.content.decode()
    r = admin_client.post("/packs/P1A/transition/", {"state": "removed", "ev_reason": "eol"}, HTTP_HX_REQUEST="true")
    assert "chain verified" in r.content.decode()
    assert Pack.objects.get(serial="P1A").state == "removed"


def test_auditor_pages_read_only(world):
    c = Client()
    c.force_login(world["users"][("aud1", "auditor")])
    assert c.get("/packs/P1A/").status_code == 200
    assert c.post("/packs/P1A/transition/", {"state": "flagged", "ev_reason": "x"}).status_code == 403
    assert c.post("/imports/", {"kind": "packs"}).status_code == 403
    assert c.get("/audit/").status_code == 403


def test_csrf_on_forms(world):
    c = Client(enforce_csrf_checks=True)
    c.force_login(world["users"][("op1", "admin")])
    assert c.post("/packs/P1A/transition/", {"state": "flagged", "ev_reason": "x"}).status_code == 403
    assert c.post("/tokens/", {"name": "x", "role": "auditor"}).status_code == 403
    assert c.post("/imports/", {"kind": "packs"}).status_code == 403


def test_chinese_pages(admin_client):
    admin_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    html = admin_client.get("/").content.decode()
    assert "仪表盘" in html and "电池包" in html


def test_admin_issues_and_revokes_token(admin_client, world, client):
    r = admin_client.post("/tokens/", {"name": "nms", "role": "auditor", "days": "30"})
    token = r.context["new_token"]
    assert token.startswith("blp_")
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}").json()["role"] == "auditor"
    from battloop.web.models import ApiToken

    t = ApiToken.objects.get(name="nms")
    assert token not in str(ApiToken.objects.values_list().filter(pk=t.pk)[0])  # only the hash is stored
    admin_client.post("/tokens/", {"revoke": t.pk})
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_map_cells_take_the_worst_pack(admin_client, world):
    from battloop.registry.events import transition

    transition(Pack.objects.get(serial="P1B"), "flagged", "t", world["org"]["op1"], {"reason": "hot cabinet"})
    cells = admin_client.get("/map/data/?cell=1").json()["cells"]
    assert len(cells) == 1 and cells[0]["packs"] == 2 and cells[0]["worst"] == "flagged"
    assert abs(cells[0]["lat"] - 23.1) < 1e-6 and abs(cells[0]["lon"] - 113.3) < 1e-6
    assert admin_client.get("/map/data/?cell=abc").status_code == 200  # bad input falls back to the default cell


def test_only_admins_import_models_from_the_page_too(world):
    import io

    c = Client()
    c.force_login(world["users"][("op1", "asset_manager")])
    f = io.BytesIO(b"code,oem,chemistry,nominal_voltage_v,rated_capacity_ah,mass_kg,cell_count,design_life_years\n")
    f.name = "models.csv"
    r = c.post("/imports/", {"kind": "models", "file": f})
    assert r.status_code == 403 and "only admins import pack models" in r.content.decode()
