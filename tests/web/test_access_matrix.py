"""Every endpoint × every role × own/foreign organization."""

import io
import json

import pytest

from web_helpers import ROLES, bearer

# (method, path, body) per endpoint; {own} and {foreign} are filled per organization.
READS = [
    ("GET", "/api/v1/me"), ("GET", "/api/v1/organizations"), ("GET", "/api/v1/pack-models"), ("GET", "/api/v1/sites"),
    ("GET", "/api/v1/packs"),
]
WRITE_ROLES = {"admin", "asset_manager", "technician", "recycler_operator"}
IMPORT_ROLES = {"admin", "asset_manager"}


def call(client, token, method, path, body=None):
    if method == "GET":
        return client.get(path, **bearer(token))
    if isinstance(body, dict) and "file" in body:
        return client.post(path, body, **bearer(token))
    return client.post(path, json.dumps(body or {}), content_type="application/json", **bearer(token))


@pytest.mark.parametrize("role", ROLES)
def test_operator_roles_own_and_foreign(client, world, role):
    tok = world["tokens"][("op1", role)]
    for method, path in READS:
        assert call(client, tok, method, path).status_code == 200, path
    listed = {p["serial"] for p in client.get("/api/v1/packs?limit=500", **bearer(tok)).json()["items"]}
    assert listed == {"P1A", "P1B"}
    assert {s["code"] for s in client.get("/api/v1/sites", **bearer(tok)).json()["items"]} == {"S1"}
    for own, foreign in [("/api/v1/packs/P1A", "/api/v1/packs/P2A"), ("/api/v1/packs/P1A/events", "/api/v1/packs/P2A/events"),
                         ("/api/v1/sites/S1", "/api/v1/sites/S2"), ("/api/v1/packs/P1A/telemetry", "/api/v1/packs/P2A/telemetry")]:
        assert call(client, tok, "GET", own).status_code == 200, own
        r = call(client, tok, "GET", foreign)
        assert r.status_code == 404 and r["Content-Type"] == "application/problem+json", foreign
    body = {"state": "flagged", "evidence": {"reason": "test"}}
    own_t = call(client, tok, "POST", "/api/v1/packs/P1A/transitions", body)
    assert own_t.status_code == (201 if role in WRITE_ROLES else 403), own_t.content
    assert call(client, tok, "POST", "/api/v1/packs/P2A/transitions", body).status_code == 404  # 404 before 403: no leak
    upload = {"file": io.BytesIO(b"serial,model,install_date,site\nN1,M1,2020-01-01,S1\n"), "kind": "packs"}
    upload["file"].name = "new.csv"
    imp = call(client, tok, "POST", "/api/v1/imports", upload)
    assert imp.status_code == (202 if role in IMPORT_ROLES else 403), imp.content
    if imp.status_code == 202:
        job = imp.json()["id"]
        assert call(client, tok, "GET", f"/api/v1/imports/{job}").json()["status"] == "done"
        other = world["tokens"][("op2", "admin")]
        assert call(client, other, "GET", f"/api/v1/imports/{job}").status_code == 404
        assert call(client, other, "GET", f"/api/v1/imports/{job}/quarantine").status_code == 404


@pytest.mark.parametrize("who,visible,sites,can_write", [
    (("op2", "admin"), {"P2A"}, {"S2"}, True),  # P2R left op2's custody but op2 still owns it
    (("oem1", "asset_manager"), {"P1A", "P1B"}, set(), True),  # legitimate interest in the packs it made
    (("rec1", "recycler_operator"), {"P2R"}, set(), True),
    (("aud1", "auditor"), {"P1A", "P1B"}, {"S1"}, False),  # granted by op1 only; writes nothing
])
def test_other_organization_kinds(client, world, who, visible, sites, can_write):
    tok = world["tokens"][who]
    listed = {p["serial"] for p in client.get("/api/v1/packs?limit=500", **bearer(tok)).json()["items"]}
    if who[0] == "op2":
        visible = {"P2A", "P2R"}
    assert listed == visible
    assert {s["code"] for s in client.get("/api/v1/sites", **bearer(tok)).json()["items"]} == sites
    for serial in ["P1A", "P1B", "P2A", "P2R"]:
        r = client.get(f"/api/v1/packs/{serial}", **bearer(tok))
        assert r.status_code == (200 if serial in listed else 404), (who, serial)
    target = sorted(listed)[0]
    r = call(client, tok, "POST", f"/api/v1/packs/{target}/transitions", {"state": "quarantined", "evidence": {"reason": "audit"}})
    if can_write:
        assert r.status_code in (201, 409), r.content  # allowed to try; the state machine may refuse
    else:
        assert r.status_code == 403


def test_expired_and_revoked_tokens(client, world):
    from django.utils import timezone

    from battloop.web.models import ApiToken

    tok = world["tokens"][("op1", "admin")]
    assert client.get("/api/v1/me", **bearer(tok)).status_code == 200
    t = ApiToken.objects.get(token_hash=__import__("battloop.web.models", fromlist=["hash_token"]).hash_token(tok))
    ApiToken.objects.filter(pk=t.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    r = client.get("/api/v1/me", **bearer(tok))
    assert r.status_code == 401 and r.json()["title"] == "Unauthorized"
    ApiToken.objects.filter(pk=t.pk).update(expires_at=timezone.now() + timezone.timedelta(days=1), revoked_at=timezone.now())
    assert client.get("/api/v1/me", **bearer(tok)).status_code == 401
    assert client.get("/api/v1/me", **bearer("blp_not-a-token")).status_code == 401
    assert client.get("/api/v1/me").status_code == 401
