"""Triage on the registry: dossiers from health and alarms, decisions stored and chained
as events, re-triage records only changes, policy comparison, pages and API."""

import json

import pytest
from django.core.management import call_command

from battloop.health.assess import assess
from battloop.registry.audit import verify_chains
from battloop.registry.models import Pack
from battloop.triage.models import TriageDecision


@pytest.fixture
def fleet(demo_instance, tmp_path):
    demo_instance(35, seed=4)
    assess()
    return tmp_path


def test_run_stores_decisions_as_events_and_is_idempotent(fleet, capsys):
    call_command("triage", "run", "--json")
    out = json.loads(capsys.readouterr().out)
    n = Pack.objects.filter(state__in=["flagged", "removed", "in_storage", "triaged", "redeployed"]).count()
    assert out["packs"] == n > 0 and out["changed"] == n
    decided = TriageDecision.objects.filter(current=True)
    assert decided.count() == n
    stored = decided.filter(pack__events__kind="transition", pack__state="triaged")
    for d in decided.select_related("pack"):
        assert d.reasons and all("rule" in r and "values" in r for r in d.reasons)
        if d.inputs["soh_pct"] is None:
            assert d.route == "hold" and any(r["why"] == "needs capacity test" for r in d.reasons)
        if d.pack.state == "triaged":  # was in storage: moved through the state machine
            assert d.pack.events.filter(kind="transition", payload__state="triaged").exists()
        else:
            assert d.pack.events.filter(kind="decision", payload__decision=d.route).exists()
    call_command("triage", "run", "--json")
    again = json.loads(capsys.readouterr().out)
    assert again["changed"] == 0 and TriageDecision.objects.count() == 2 * n
    assert TriageDecision.objects.filter(current=True).count() == n
    assert not verify_chains().breaks


def test_registry_compare_against_current(fleet, tmp_path, capsys):
    from battloop.triage.policy import default_policy_path

    call_command("triage", "run")
    capsys.readouterr()
    original = default_policy_path().read_text()
    # A stricter operator: energy-storage reuse only from 78 % up.
    strict = original.replace("when: {chemistry: LFP, soh_pct: {ge: 60}}", "when: {chemistry: LFP, soh_pct: {ge: 78}}")
    strict = strict.replace('version: "2026.11.1"', 'version: "2026.11.1-strict"')
    assert strict != original
    (tmp_path / "strict.yaml").write_text(strict)
    call_command("triage", "registry-compare", "--policy", str(tmp_path / "strict.yaml"), "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["packs"] > 0 and out["old"].startswith("battloop-default@2026.11.1#") and "strict" in out["new"]
    current = {d.pack.serial: d for d in TriageDecision.objects.filter(current=True).select_related("pack")}
    expected_moves = sum(1 for d in current.values() if d.route == "reuse_ess" and d.inputs["soh_pct"] is not None
                         and d.inputs["soh_pct"] < 78 and d.inputs["chemistry"] == "LFP")
    assert out["changed"] == expected_moves
    for move in out["moves"]:
        assert move["from"] == "reuse_ess" and move["packs"] > 0


def test_pages_and_api_show_health_and_decision(fleet, client):
    from django.contrib.auth import get_user_model

    call_command("triage", "run")
    client.force_login(get_user_model().objects.get(username="demo"))
    d = TriageDecision.objects.filter(current=True, pack__owner__code="ctc").select_related("pack").first()
    html = client.get(f"/packs/{d.pack.serial}/").content.decode()
    assert 'id="decision"' in html and d.reasons[0]["rule"] in html
    assert client.get("/triage/").status_code == 200
    r = client.get(f"/api/v1/packs/{d.pack.serial}/decisions").json()
    assert r[0]["route"] == d.route and r[0]["current"]
    h = client.get(f"/api/v1/packs/{d.pack.serial}/health")
    assert h.status_code in (200, 404)
