"""Site backup time, portfolio retirements per quarter and anomalies."""

import numpy as np
import pandas as pd
import pytest

from battloop.health.outlook import OutlookInputError, aging_anomalies, backup_hours, retirements_per_quarter, site_outlook


def test_backup_hours_arithmetic():
    # 2 x 100 Ah at 48 V, SOH 1, 90 % usable, 95 % efficiency, 2 kW load
    h = backup_hours([1.0, 1.0], [100, 100], 2000)
    assert h == pytest.approx(2 * 48 * 100 * 0.9 * 0.95 / 2000)
    assert backup_hours([0.8, 0.8], [100, 100], 2000) == pytest.approx(0.8 * h)
    # resistance growth shortens backup
    assert backup_hours([1, 1], [100, 100], 2000, resistance_ohm=[0.05, 0.05]) < h
    with pytest.raises(OutlookInputError):
        backup_hours([1.0], [100], 0)


def test_site_outlook_first_short_month_and_earliest_pack():
    months = 60
    p50 = np.stack([np.linspace(0.95, 0.75, months), np.linspace(0.9, 0.6, months)])  # 2 packs
    fc = np.stack([p50 - 0.03, p50, p50 + 0.03])
    out = site_outlook([0.95, 0.9], fc, [100, 100], 2000, required_hours=3.0, pack_crossing_p50=[50, 25])
    assert out.meets_now
    assert out.first_short_month["p10"] <= out.first_short_month["p50"] <= out.first_short_month["p90"]
    # P50 backup = 48*0.9*0.95*100*(s1+s2)/2000 < 3 h  <=>  s1+s2 < 1.462
    s = p50.sum(axis=0)
    assert out.first_short_month["p50"] == np.nonzero(s < 3.0 / (48 * 0.9 * 0.95 * 100 / 2000))[0][0] + 1
    assert out.earliest_failing_pack == 1


def test_retirements_per_quarter_counts_and_groups():
    # 4 packs x 3 samples, crossing months from 2026-01-01
    s = np.array([[1, 2, 4], [3, 3, 3], [7, 8, 9], [np.inf, np.inf, 13]], dtype=float)
    df = retirements_per_quarter(s, {"province": ["GD", "GD", "SC", "SC"]}, kwh=[5, 5, 10, 10], price_per_kwh=100,
                                 start="2026-01-01", n_quarters=5)
    gd = df[df.province == "GD"].set_index("quarter")
    # month 1,2 -> Q1 (Feb, Mar); 3 and 4 -> Q2 (Apr, May)
    assert gd.loc["2026Q1", "count_p50"] == 1 and gd.loc["2026Q2", "count_p50"] == 1
    sc = df[df.province == "SC"].set_index("quarter")
    assert sc.loc["2026Q3", "count_p50"] == pytest.approx(1)  # months 7, 8 fall in Q3
    assert sc.loc["2026Q3", "kwh_p50"] == pytest.approx(10) and sc.loc["2026Q3", "cost_p50"] == pytest.approx(1000)
    # month 13 -> Feb 2027 = Q1 2027, only in one of three samples
    assert sc.loc["2027Q1", "count_p90"] > 0 and sc.loc["2027Q1", "count_p10"] == 0
    total = df.groupby("quarter")[["count_p50"]].sum()
    assert total.loc["2026Q1", "count_p50"] >= 1


def test_retirements_by_several_keys_and_bad_shapes():
    rng = np.random.default_rng(0)
    s = rng.integers(1, 30, (100, 20)).astype(float)
    keys = {"province": rng.choice(["GD", "SC"], 100), "owner": rng.choice(["A", "B"], 100)}
    df = retirements_per_quarter(s, keys, start=pd.Timestamp("2026-03-15"), n_quarters=12)
    assert set(df.columns) >= {"province", "owner", "quarter", "count_p10", "count_p50", "count_p90"}
    assert len(df) == 4 * 12
    assert df.count_p50.sum() == pytest.approx(100, abs=15)
    with pytest.raises(OutlookInputError):
        retirements_per_quarter(np.ones(5))
    with pytest.raises(OutlookInputError):
        retirements_per_quarter(np.ones((5, 2)), kwh=np.ones(3))


def test_anomalies_flag_only_credibly_fast_packs():
    mu = np.array([0.0, 0.1, 1.0, 1.0])
    sd = np.array([0.05, 0.05, 0.05, 0.8])  # pack 3 is fast but its evidence is weak
    df = aging_anomalies(mu, sd, cohort_mean=0.0, cohort_sd=0.2, pack_ids=["p0", "p1", "p2", "p3"])
    assert list(df.pack) == ["p2"]
    assert "median pack" in df.reason[0] and df.rate_multiplier[0] == pytest.approx(np.e)
    # each pack against its own cohort (a pack model in one climate zone), named with its evidence:
    # p1 is slow for the hot zone but fast for the cool one it lives in
    df = aging_anomalies(mu, sd, cohort_mean=[0.0, -0.5, 1.2, 0.0], cohort_sd=0.1, pack_ids=["p0", "p1", "p2", "p3"],
                         cohort_labels=["A in hot", "A in cool", "A in hot", "A in hot"].__getitem__,
                         evidence=["", "capacity test 2026-10-01: SOH 84.0 % where the median pack would be 90.1 %", "", ""].__getitem__)
    assert list(df.pack) == ["p1"]
    assert df.reason[0].startswith("ages 1.82x the median pack of A in cool (P(> their P90) = 100%); capacity test 2026-10-01")
    assert df.cohort_p90_multiplier[0] == pytest.approx(np.exp(-0.5 + 0.1 * 1.2815515655446004))


def test_fleet_backup_outlook_dates_the_first_shortfall_per_quantile():
    from battloop.health.outlook import OutlookInputError, fleet_backup_outlook, pack_energy_wh

    months = 24
    soh = np.linspace(1.0, 0.7, months + 1)  # one pack per site, fading linearly
    e = pack_energy_wh(np.stack([soh - 0.05, soh, soh + 0.05]), 100.0, 48.0)  # (3, t)
    site = np.stack([e, e, e])  # three sites, same packs
    load = np.array([1000.0, 1000.0, np.nan])
    required = np.array([3.5, 5.0, 3.5])
    out = fleet_backup_outlook(site, load, required)
    hours = 48 * 100 * soh * 0.9 * 0.95 / 1000
    assert out.hours[0, 1] == pytest.approx(hours)
    expect = np.argmax(hours < 3.5)
    assert out.first_short_month[0, 1] == expect
    assert out.first_short_month[0, 0] < expect < out.first_short_month[0, 2]  # P10 falls short first
    assert out.first_short_month[1, 1] == 0 and not out.meets_now[1]  # 4.1 h < 5 h: short now
    assert np.isnan(out.hours[2]).all() and np.isinf(out.first_short_month[2]).all()  # unknown load: no statement
    with pytest.raises(OutlookInputError, match="one value per site"):
        fleet_backup_outlook(site, load[:2], required)


def test_crossing_probability_follows_the_quantiles():
    from battloop.health.outlook import crossing_probability

    p10, p50, p90 = np.array([10.0]), np.array([20.0]), np.array([40.0])
    at = lambda h: float(crossing_probability(h, p10, p50, p90)[0])  # noqa: E731
    assert at(10) == pytest.approx(0.1) and at(20) == pytest.approx(0.5) and at(40) == pytest.approx(0.9)
    assert at(30) == pytest.approx(0.7) and at(0) == 0.0 and at(60) == 1.0 and at(100) == 1.0
    assert 0 < at(5) < 0.1 and 0.9 < at(50) < 1.0
    # beyond the forecast: never crosses within it; only the late quantile beyond: held at the last known 0.5
    assert crossing_probability(30.0, np.inf, np.inf, np.inf) == 0.0
    assert crossing_probability(np.array([15.0, 1000.0]), 10.0, 20.0, np.nan).tolist() == pytest.approx([0.3, 0.5])


def test_grown_resistance_takes_its_voltage_drop_off_the_backup_energy():
    from battloop.health.outlook import pack_energy_wh

    soh = np.array([0.9, 0.9])
    new, aged = pack_energy_wh(soh, 100.0, 48.0, resistance_ohm=np.array([0.02, 0.04]), current_a=20.0)
    plain = pack_energy_wh(0.9, 100.0, 48.0)
    # I R = 0.4 V and 0.8 V of the 4.8 V window between 48 V and the 43.2 V cut-off
    assert new == pytest.approx(plain * (1 - 0.4 / 4.8)) and aged == pytest.approx(plain * (1 - 0.8 / 4.8))
    # an unknown resistance (NaN) leaves the energy as capacity gives it
    assert pack_energy_wh(0.9, 100.0, 48.0, resistance_ohm=np.nan, current_a=20.0) == pytest.approx(plain)
    # two packs in parallel share the load: each sees half the current
    one = backup_hours([0.9], [100.0], 1920.0, resistance_ohm=[0.04])
    two = backup_hours([0.9, 0.9], [100.0, 100.0], 1920.0, resistance_ohm=[0.04, 0.04])
    assert two > 2 * one
