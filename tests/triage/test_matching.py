"""Second-life matching: strings within spread limits, MILP vs greedy, warranty terms."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from battloop.triage.matching import (MatchingError, MatchSettings, build_strings, haversine_km, match,
                                      parse_warranty)
from battloop.triage.synthetic import prefecture_places, synthetic_demands, synthetic_supply

SHARED_DATA = Path(os.environ.get("BATTLOOP_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
CITIES = SHARED_DATA / "netopt" / "china_cities" / "adcode_prefecture_level_2016_gcj02.csv"


@pytest.mark.parametrize("text, years, cycles, end, years_min", [
    ("2 years or 1,000 cycles to 70%", 2, 1000, 70, 2),
    ("1–2 years or 1,000 cycles to 70% residual capacity", 2, 1000, 70, 1),
    ("18 months or 800 cycles to 75%", 1.5, 800, 75, 1.5),
    ("2年或1000次循环至70%", 2, 1000, 70, 2),
    ("1500 cycles to 80%", None, 1500, 80, None),
])
def test_parse_warranty(text, years, cycles, end, years_min):
    w = parse_warranty(text)
    assert (w.years, w.cycles, w.end_soh_pct, w.years_min) == (years, cycles, end, years_min)
    assert w.to_dict()["text"] == text


@pytest.mark.parametrize("text, message", [("", "empty"), ("2 years or 1000 cycles", "no residual capacity"),
                                           ("to 70%", "neither years nor cycles"),
                                           ("2 years to 170%", "between 0 and 100")])
def test_bad_warranty_terms(text, message):
    with pytest.raises(ValueError, match=message):
        parse_warranty(text)


def test_warranty_tracking():
    w = parse_warranty("2 years or 1,000 cycles to 70%")
    start = date(2026, 1, 1)
    assert w.duration_years(cycles_per_year=600) == pytest.approx(1000 / 600)
    assert w.duration_years(cycles_per_year=30) == 2
    assert w.status(start, date(2026, 6, 1), cycles_done=100, soh_pct=80) == "active"
    assert w.status(start, date(2026, 6, 1), cycles_done=100, soh_pct=69) == "claim"
    assert w.status(start, date(2026, 6, 1), cycles_done=1000, soh_pct=69) == "expired_cycles"
    assert w.status(start, date(2028, 1, 2)) == "expired_years"
    with pytest.raises(ValueError, match="before the warranty start"):
        w.status(start, date(2025, 1, 1))


def test_haversine_beijing_shanghai():
    # Beijing (39.9042, 116.4074) – Shanghai (31.2304, 121.4737): about 1,067 km great-circle
    assert haversine_km(39.9042, 116.4074, 31.2304, 121.4737) == pytest.approx(1067, abs=5)


def _supply(rows):
    base = {"outlet": "O1", "lat": 30.0, "lon": 114.0, "chemistry": "LFP", "nominal_voltage_v": 48.0,
            "safety_class": "A"}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_strings_respect_spread_limits():
    caps = [80, 80.5, 81, 81.5, 90, 90.2, 95, 96]
    sup = _supply([{"serial": f"S{i}", "soh_pct": c, "capacity_ah": c, "ir_mohm": 25.0} for i, c in enumerate(caps)])
    strings, of = build_strings(sup, MatchSettings(string_packs=4, max_capacity_spread_pct=5))
    assert len(strings) == 1
    assert sorted(sup["serial"][of == 0]) == ["S0", "S1", "S2", "S3"]
    assert strings.iloc[0]["energy_kwh"] == pytest.approx(4 * 48 * 80 / 1000)  # weakest pack limits the string
    assert strings.iloc[0]["capacity_spread_pct"] == pytest.approx((81.5 / 80 - 1) * 100)
    # a resistance outlier breaks the string
    sup.loc[2, "ir_mohm"] = 40.0
    strings, of = build_strings(sup, MatchSettings(string_packs=4, max_capacity_spread_pct=5))
    assert len(strings) == 0 and (of == -1).all()


def test_only_class_a_and_valid_numbers():
    sup = _supply([{"serial": "S1", "soh_pct": 80, "capacity_ah": 80, "ir_mohm": 25, "safety_class": "B"}])
    with pytest.raises(MatchingError, match="S1.*class 'B'; only class A"):
        build_strings(sup)
    sup = _supply([{"serial": "S1", "soh_pct": 80, "capacity_ah": 80, "ir_mohm": -2}])
    with pytest.raises(MatchingError, match="serial S1.*ir_mohm '-2' must be a number from"):
        build_strings(sup)


def _demand(**kw):
    d = {"demand_id": "D1", "energy_kwh": 30.0, "voltage_v": 48.0, "min_soh_pct": 65.0, "chemistries": "LFP",
         "lat": 30.0, "lon": 114.5, "warranty": "2 years or 1,000 cycles to 70%", "cycles_per_year": 30.0}
    d.update(kw)
    return d


def test_match_small_instance_by_hand():
    # Two outlets: a near one with 8 weak packs (SOH 72) and a far one with 8 strong packs (SOH 90).
    rows = [{"serial": f"N{i}", "outlet": "near", "lat": 30.0, "lon": 114.0, "soh_pct": 72, "capacity_ah": 72 + i * 0.1,
             "ir_mohm": 25} for i in range(8)]
    rows += [{"serial": f"F{i}", "outlet": "far", "lat": 34.0, "lon": 114.0, "soh_pct": 90, "capacity_ah": 90 + i * 0.1,
              "ir_mohm": 25} for i in range(8)]
    sup = _supply(rows)
    dem = pd.DataFrame([_demand(demand_id="backup", min_soh_pct=70, energy_kwh=13,
                                warranty="6 months or 100 cycles to 70%"),
                        _demand(demand_id="grid", min_soh_pct=85, energy_kwh=30, warranty="3 years or 1500 cycles to 75%",
                                cycles_per_year=300)])
    r = match(sup, dem, MatchSettings(string_packs=4))
    assert r.status == "Optimal" and r.served == 2 and r.gap <= 1e-6
    a = r.assignments
    # the strong far packs are the only ones eligible for the demanding micro-grid
    assert set(a.loc[a.demand_id == "grid", "outlet"]) == {"far"}
    assert set(a.loc[a.demand_id == "backup", "outlet"]) == {"near"}
    assert r.demand_report.set_index("demand_id").loc["grid", "warranty_end_soh_pct"] == 75
    assert r.objective >= r.greedy_objective
    # the bank holds the energy asked for
    for d, g in a.groupby("demand_id"):
        assert g["energy_kwh"].sum() >= dem.set_index("demand_id").loc[d, "energy_kwh"]


def test_warranty_longer_than_pack_life_is_ineligible():
    rows = [{"serial": f"N{i}", "soh_pct": 72, "capacity_ah": 72, "ir_mohm": 25} for i in range(4)]
    # LFP fades ~2 %/year + 0.004 %/cycle: 72 → 70 in < 1 year, so a 2-year warranty to 70 % cannot be met.
    r = match(_supply(rows), pd.DataFrame([_demand(energy_kwh=10)]))
    assert r.served == 0
    r = match(_supply(rows), pd.DataFrame([_demand(energy_kwh=10, warranty="6 months or 100 cycles to 70%")]))
    assert r.served == 1


def test_voltage_configuration_and_chemistry_filters():
    rows = [{"serial": f"N{i}", "soh_pct": 90, "capacity_ah": 90, "ir_mohm": 25} for i in range(4)]
    assert match(_supply(rows), pd.DataFrame([_demand(voltage_v=96.0, energy_kwh=10)])).served == 1  # 2S2P
    assert match(_supply(rows), pd.DataFrame([_demand(voltage_v=72.0, energy_kwh=10)])).served == 0
    assert match(_supply(rows), pd.DataFrame([_demand(chemistries="NMC", energy_kwh=10)])).served == 0


def test_bad_demands_are_named():
    rows = [{"serial": "N0", "soh_pct": 90, "capacity_ah": 90, "ir_mohm": 25}]
    with pytest.raises(MatchingError, match=r"row 1 \(demand_id D1\): warranty terms '2 years' give no residual"):
        match(_supply(rows), pd.DataFrame([_demand(warranty="2 years")]))
    with pytest.raises(MatchingError, match="missing column.*warranty"):
        match(_supply(rows), pd.DataFrame([_demand()]).drop(columns="warranty"))


def test_milp_beats_greedy_on_real_city_geography():
    places = prefecture_places(CITIES)
    assert len(places) > 300
    sup = synthetic_supply(3000, 30, seed=3, places=places)
    dem = synthetic_demands(150, seed=3, places=places)
    r = match(sup, dem, MatchSettings(time_limit_s=30))
    assert r.gap <= 0.01
    assert r.objective >= r.greedy_objective
    assert r.served > 0 and r.delivered_kwh > 0
    used = [s for lst in r.assignments["serials"] for s in lst]
    assert len(used) == len(set(used))  # no pack is sent twice
    assert len(used) == 4 * len(r.assignments)


def test_chemistry_synonyms_and_routes():
    rows = [{"serial": f"N{i}", "soh_pct": 90, "capacity_ah": 90, "ir_mohm": 25, "chemistry": "LiFePO4"}
            for i in range(4)]
    assert match(_supply(rows), pd.DataFrame([_demand(chemistries="lfp|NCM", energy_kwh=10)])).served == 1
    rows[0]["route"] = "recycle"
    with pytest.raises(MatchingError, match="serial N0.*route 'recycle'; only packs routed to reuse"):
        build_strings(_supply(rows))
