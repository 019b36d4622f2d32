"""``battloop triage`` verbs through Django's call_command (no database needed)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from battloop.triage.policy import default_policy_path

SHARED_DATA = Path(os.environ.get("BATTLOOP_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))

DOSSIERS = """serial,chemistry,soh_pct,ir_ratio,safety_class,soh_p10_pct,soh_p90_pct,thermal_events,anti_theft_locked
A1,LFP,80.0,1.1,A,78,82,0,false
A2,LFP,80.01,1.1,A,79,81,0,false
A3,LFP,60.0,1.4,A,58,62,0,false
A4,LFP,19.99,1.1,A,,,0,false
A5,NMC,85,1.5,A,84,86,0,false
A6,NMC,85,1.49,A,84,86,0,false
A7,LFP,,1.1,A,,,0,false
A8,LFP,70,1.1,C,,,0,false
A9,LFP,70,1.1,A,,,2,no
"""


def run(*args) -> str:
    out = io.StringIO()
    call_command("triage", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def dossiers(tmp_path) -> Path:
    p = tmp_path / "dossiers.csv"
    p.write_text(DOSSIERS, encoding="utf-8")
    return p


def test_evaluate_json(dossiers):
    recs = json.loads(run("evaluate", "--dossiers", str(dossiers), "--policy", "default", "--json"))
    assert [set(r) for r in recs] == [{"serial", "route", "reasons"}] * 9
    got = {r["serial"]: r["route"] for r in recs}
    assert got == {"A1": "reuse_ess", "A2": "continue_first_life", "A3": "reuse_ess", "A4": "recycle",
                   "A5": "recycle", "A6": "reuse_ess", "A7": "hold", "A8": "hold", "A9": "hold"}
    a7 = next(r for r in recs if r["serial"] == "A7")
    assert a7["reasons"][0]["why"] == "needs capacity test"
    a5 = next(r for r in recs if r["serial"] == "A5")
    assert a5["reasons"][0]["rule"] == "nmc_resistance_high" and a5["reasons"][0]["values"]["ir_ratio"] == 1.5


def test_evaluate_with_a_p10_policy_file(dossiers, tmp_path):
    pol = tmp_path / "p10.yaml"
    pol.write_text(default_policy_path().read_text().replace("soh_quantile: 0.5 ", "soh_quantile: 0.1 "))
    recs = {r["serial"]: r for r in json.loads(run("evaluate", "--dossiers", str(dossiers), "--policy", str(pol),
                                                   "--json"))}
    assert recs["A2"]["route"] == "reuse_ess"  # P10 79 %: not above 80 %
    assert recs["A3"]["route"] == "reuse_backup"  # P10 58 %
    assert recs["A6"]["route"] == "reuse_ess"  # NMC P10 84 % still above 80 %
    assert recs["A3"]["reasons"][0]["values"]["soh_basis"] == "P10"


def test_evaluate_summary_and_kpis(dossiers):
    out = run("evaluate", "--dossiers", str(dossiers), "--retired", "20")
    assert "battloop-default@" in out and "reuse_ess" in out
    assert "evaluated for second life: 25.0% of 20 retired (target ≥ 20%: met)" in out


def test_compare(dossiers, tmp_path):
    new = tmp_path / "new.yaml"
    new.write_text(default_policy_path().read_text().replace("ir_ratio: {ge: 1.5}", "ir_ratio: {ge: 1.45}")
                   .replace("ir_ratio: {lt: 1.5}", "ir_ratio: {lt: 1.45}"))
    out = json.loads(run("compare", "--dossiers", str(dossiers), "--policy", str(new), "--against", "current",
                         "--json"))
    assert out["changed"] == 1
    assert out["moves"] == [{"from": "reuse_ess", "to": "recycle", "packs": 1,
                             "why": [{"old_rules": "nmc_reuse", "new_rules": "nmc_resistance_high", "packs": 1,
                                      "examples": ["A6"]}]}]
    text = run("compare", "--dossiers", str(dossiers), "--policy", str(new))
    assert "1 of 9 packs change route" in text and "was nmc_reuse, now nmc_resistance_high" in text


def test_bad_policy_and_bad_dossiers_raise_command_errors(dossiers, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(default_policy_path().read_text().replace("thermal_events: {ge: 1}", "thermal_event: {ge: 1}"))
    with pytest.raises(CommandError, match=r"bad.yaml:\d+: rule 'thermal_event_history': unknown field 'thermal_event'"):
        run("evaluate", "--dossiers", str(dossiers), "--policy", str(bad))
    broken = tmp_path / "d.csv"
    broken.write_text("serial,chemistry,soh_pct,ir_ratio,safety_class\nX,LFP,70,-1,A\n")
    with pytest.raises(CommandError, match=r"d.csv:2: column ir_ratio, serial X: -1: resistance cannot be negative"):
        run("evaluate", "--dossiers", str(broken), "--json")
    with pytest.raises(CommandError, match="no such file"):
        run("evaluate", "--dossiers", str(tmp_path / "missing.csv"))


def test_validate(tmp_path):
    out = run("validate", "--policy", "default")
    assert "valid — battloop-default@2026.11.1#" in out and "lfp_reuse_ess" in out
    summary = json.loads(run("validate", "--policy", "default", "--json"))
    assert summary["stages"][0]["stage"] == "safety_class" and summary["default"]["route"] == "hold"


def test_grade_with_real_capture_then_evaluate(tmp_path):
    bench = tmp_path / "bench.csv"
    bench.write_text("serial,chemistry,rated_capacity_ah,capacity_ah,test_temp_c,dcir_mohm,baseline_dcir_mohm,"
                     "visual_ok,swelling\n"
                     "Pxxxxxxxxxxxxxx8,LFP,100,74,25,26,20,true,false\n"
                     "Yxxxxxxxxxxxxxx7,LFP,100,55,25,24,20,false,true\n")
    out_csv = tmp_path / "dossiers.csv"
    rows = json.loads(run("grade", "--bench", str(bench), "--capture", str(SHARED_DATA / "telemetry" /
                                                                             "pylontech_console" / "US"),
                          "--dossiers-out", str(out_csv), "--json"))
    assert [(r["serial"], r["safety_class"]) for r in rows] == [("Pxxxxxxxxxxxxxx8", "A"), ("Yxxxxxxxxxxxxxx7", "B")]
    assert rows[0]["soh_pct"] == pytest.approx(74.0) and rows[0]["ir_ratio"] == pytest.approx(1.3)
    recs = json.loads(run("evaluate", "--dossiers", str(out_csv), "--json"))
    assert [r["route"] for r in recs] == ["reuse_ess", "hold"]
    assert recs[1]["reasons"][0]["rule"] == "class_b"


def test_match_command(tmp_path):
    from battloop.triage.synthetic import prefecture_places, synthetic_demands, synthetic_supply

    places = prefecture_places(SHARED_DATA / "netopt" / "china_cities" / "adcode_prefecture_level_2016_gcj02.csv")
    synthetic_supply(800, 10, seed=5, places=places).to_csv(tmp_path / "supply.csv", index=False)
    synthetic_demands(40, seed=5, places=places).to_csv(tmp_path / "demands.csv", index=False)
    out = json.loads(run("match", "--supply", str(tmp_path / "supply.csv"), "--demands", str(tmp_path / "demands.csv"),
                         "--time-limit", "20", "--assignments-out", str(tmp_path / "a.csv"), "--json"))
    s = out["summary"]
    assert s["gap"] <= 0.01 and s["objective"] >= s["greedy_objective"]
    assert len(out["demands"]) == 40
    assert (tmp_path / "a.csv").read_text().startswith("demand_id,string,outlet,serials")
    bad = tmp_path / "bad_demands.csv"
    bad.write_text("demand_id,energy_kwh,voltage_v,min_soh_pct,chemistries,lat,lon,warranty\n"
                   "D1,30,48,70,LFP,30,114,forever\n")
    with pytest.raises(CommandError, match="demand_id D1.*give no residual capacity"):
        run("match", "--supply", str(tmp_path / "supply.csv"), "--demands", str(bad))
