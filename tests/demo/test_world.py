import datetime as dt

import numpy as np
import pyarrow.compute as pc

from battloop.demo.fleet import generate
from battloop.demo.world import outage_day_minutes, simulate
from battloop.telemetry import alarms, quality

TODAY = dt.date(2026, 11, 1)


def _world(seed=5, sites=60):
    fleet = generate(sites, 3, seed=seed, today=TODAY)
    return fleet, *simulate(fleet.packs, {s["code"]: s for s in fleet.sites}, {m["code"]: m for m in fleet.models}, TODAY, seed=seed)


def test_deterministic_whole_life_daily_readings():
    fleet, a, faults = _world()
    _, b, _ = _world()
    assert a.equals(b)
    live = [p for p in fleet.packs if p["state"] in ("installed", "flagged")]
    expected_days = sum((TODAY - dt.date.fromisoformat(p["install_date"])).days for p in live)
    assert a.num_rows == expected_days  # one summary per pack and day of its life
    accepted, quarantined, _ = quality.check(a, now=dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc),
                                             known_serials={p["serial"] for p in fleet.packs})
    assert quarantined.num_rows <= 1  # only the injected serial swap may collide


def test_physics_seasons_aging_and_bms_bias():
    fleet, t, faults = _world()
    sites = {s["code"]: s for s in fleet.sites}
    df = t.to_pandas()
    df["month"] = df["ts"].dt.month
    outdoor = df[df["site_code"].map(lambda c: sites[c]["site_type"] in ("macro_bts", "outdoor_cabinet", "rural"))]
    assert outdoor[outdoor.month == 7].temp_max_c.mean() > outdoor[outdoor.month == 1].temp_max_c.mean() + 8
    first = df.sort_values("ts").groupby("pack_serial").head(30).groupby("pack_serial").soh_pct.mean()
    last = df.sort_values("ts").groupby("pack_serial").tail(30).groupby("pack_serial").soh_pct.mean()
    old = [s for s in first.index if (TODAY - df[df.pack_serial == s].ts.min().date()).days > 5 * 365]
    assert old and (first[old] - last[old]).mean() > 3  # capacity fades over years
    full_ah_q = df.full_ah / df.pack_serial.map({p["serial"]: p for p in fleet.packs}).map(
        lambda p: {m["code"]: m for m in fleet.models}[p["model"]]["rated_capacity_ah"])
    assert (df.soh_pct - 100 * full_ah_q).mean() > 0.5  # the BMS is optimistic


def test_injected_faults_trip_the_alarm_rules():
    fleet, t, faults = _world(seed=9, sites=80)
    from battloop.telemetry.schema import conform

    hits = alarms.evaluate_thresholds(conform(t))
    codes = {(r["pack_serial"], r["code"]) for r in hits.to_pylist()}
    hot_packs = {p["serial"] for p in fleet.packs if p["site"] == faults.hot_site and p["state"] in ("installed", "flagged")}
    assert hot_packs and all((s, "over_temperature") in codes for s in hot_packs)
    assert (faults.imbalanced_pack, "cell_imbalance") in codes


def test_outage_day_discharge_and_recharge():
    day = outage_day_minutes("P1", "S1", TODAY, 100.0, 15, load_a=20.0, hours=3.0)
    assert day.num_rows == 1440
    soc = np.array(day["soc_pct"])
    assert 34 < soc.min() < 44  # 60 Ah out of 100 Ah
    assert soc[-1] > 95  # recharged at 0.2 C afterwards
    assert pc.min(day["current_a"]).as_py() < -19.5
