"""Outage discharges and current steps found in one pack's current/voltage series
(health.estimate.series_evidence): accepted with the right SOH and resistance, rejected
with the reason when the series cannot say anything."""

import numpy as np
import pytest

from battloop.health.estimate import OCV_TABLES, RESISTANCE_EA_J_MOL, EvidenceRejected, series_evidence

CELLS = 16
RATED_AH = 100.0


def ocv_cell(soc):
    soc_pts, v_pts = OCV_TABLES["LFP"]
    return float(np.interp(soc, soc_pts, v_pts))


def outage_series(capacity_ah=85.0, load_a=20.0, hours=3.0, rest_after_min=120, dt_s=60.0, rest_before_min=120,
                  resistance_ohm=0.03):
    """Float rest, a constant-load outage, then a rest (or the charger) -- 1-min samples.

    Voltages: OCV of the true SOC at rest, OCV minus I*R under load."""
    t, i, v = [], [], []
    now = 0.0
    for _ in range(int(rest_before_min * 60 / dt_s)):
        t.append(now); i.append(0.05); v.append(CELLS * ocv_cell(1.0)); now += dt_s
    soc = 1.0
    for _ in range(int(hours * 3600 / dt_s)):
        t.append(now); i.append(-load_a); v.append(CELLS * ocv_cell(soc) - load_a * resistance_ohm)
        soc -= load_a * dt_s / 3600 / capacity_ah
        now += dt_s
    after = 0.0 if rest_after_min else 0.2 * RATED_AH
    for _ in range(max(int(rest_after_min * 60 / dt_s), 60)):
        t.append(now); i.append(after); v.append(CELLS * ocv_cell(soc) + (0.3 if after else 0.0)); now += dt_s
    return np.array(t), np.array(i), np.array(v), soc


def test_a_rested_deep_outage_gives_the_true_capacity_within_its_sd():
    t, i, v, soc_end = outage_series()
    found = series_evidence(t, i, v, CELLS, RATED_AH, chemistry="LFP", t0_s=-10 * 86400.0)
    assert len(found.soh) == 1 and not found.rejected
    ev = found.soh[0]
    assert ev.source == "outage_discharge"
    assert ev.soh == pytest.approx(0.85, abs=2 * ev.sd)
    assert ev.soh == pytest.approx(0.85, abs=0.03)
    assert 0.005 < ev.sd < 0.1  # the end SOC sits on the LFP plateau: a few percent
    assert ev.detail["delta_soc"] == pytest.approx(1.0 - soc_end, abs=0.05)
    assert ev.t_days == pytest.approx(10 + 2 / 24, abs=0.01)  # counted from t0, at the discharge's start


def test_no_rest_after_the_outage_is_rejected_with_the_reason():
    t, i, v, _ = outage_series(rest_after_min=0)  # the charger resumes at once
    found = series_evidence(t, i, v, CELLS, RATED_AH)
    assert found.soh == []
    assert [(k, r) for _, k, r in found.rejected] == [
        ("outage", "no rest after the discharge (the charger resumed at once): the SOC at its end is unknown")]


def test_a_short_rest_and_a_shallow_outage_are_rejected():
    t, i, v, _ = outage_series(rest_before_min=10)
    found = series_evidence(t, i, v, CELLS, RATED_AH)
    assert found.soh == [] and "rest before the discharge lasted" in found.rejected[0][2]
    t, i, v, _ = outage_series(hours=0.5)  # 10 Ah of 85: dSOC 0.12
    found = series_evidence(t, i, v, CELLS, RATED_AH)
    assert found.soh == [] and "too shallow" in found.rejected[0][2]


def test_a_long_silence_inside_a_discharge_splits_it_and_nothing_is_counted_across():
    t, i, v, _ = outage_series()
    mid = np.flatnonzero(i < 0)[90]
    t = np.where(np.arange(t.size) > mid, t + 3600.0, t)  # an hour without samples mid-outage
    found = series_evidence(t, i, v, CELLS, RATED_AH)
    assert found.soh == []
    reasons = [r for _, _, r in found.rejected]
    assert any("no rest after" in r for r in reasons) and any("no rest before" in r for r in reasons)


def test_load_steps_inside_a_discharge_give_the_dc_resistance():
    r_ohm = 0.030
    t = np.arange(0.0, 40.0, 1.0)  # 1 s samples
    i = np.where(t < 20, -20.0, -45.0)
    v = CELLS * 3.29 - (-i) * r_ohm
    found = series_evidence(t, i, v, CELLS, RATED_AH, temp_c=np.full(t.size, 25.0))
    assert len(found.resistance) == 1
    ev = found.resistance[0]
    assert ev.resistance_ohm == pytest.approx(r_ohm, rel=1e-6)
    assert 0 < ev.sd_ohm < 0.01 * r_ohm * 10
    # without a temperature the reading is kept as read, but a cabinet's unknown temperature
    # (25 +/- 10 C) makes it an uncertain 25 C value
    blind = series_evidence(t, i, v, CELLS, RATED_AH).resistance[0]
    assert blind.resistance_ohm == pytest.approx(r_ohm, rel=1e-6)
    assert blind.sd_ohm > 10 * ev.sd_ohm and blind.detail["temp_c"] is None


def test_a_step_in_a_cold_cabinet_is_reported_at_25_c():
    # the same pack (30 mOhm at 25 C) reads higher at 5 C; the step is brought back to 25 C
    r25 = 0.030
    t = np.arange(0.0, 40.0, 1.0)
    i = np.where(t < 20, -20.0, -45.0)
    r5 = r25 * np.exp(RESISTANCE_EA_J_MOL / 8.314462618 * (1 / 278.15 - 1 / 298.15))
    assert r5 / r25 == pytest.approx(2.25, abs=0.01)
    temps = np.where(t < 20, 4.0, 6.0)  # the two samples' mean is 5 C
    ev = series_evidence(t, i, CELLS * 3.29 + r5 * i, CELLS, RATED_AH, temp_c=temps).resistance[0]
    assert ev.resistance_ohm == pytest.approx(r25, rel=1e-6)
    assert ev.detail["measured_ohm"] == pytest.approx(r5, rel=1e-6) and ev.detail["temp_c"] == pytest.approx(5.0)
    # the correction is known to the spread of the activation energy: +/- 17 % at 5 C
    assert ev.sd_ohm / ev.resistance_ohm == pytest.approx(0.17, abs=0.01)
    with pytest.raises(EvidenceRejected, match="temperature series"):
        series_evidence(t, i, CELLS * 3.29 + r5 * i, CELLS, RATED_AH, temp_c=temps[:5])


def test_steps_from_float_spaced_samples_or_against_the_current_are_not_resistance():
    # the drop from the charger's float voltage at the start of an outage is not I*R
    t = np.arange(0.0, 20.0, 1.0)
    i = np.where(t < 10, 0.1, -30.0)
    v = np.where(t < 10, CELLS * 3.45, CELLS * 3.25)
    assert series_evidence(t, i, v, CELLS, RATED_AH).resistance == []
    # samples a minute apart: diffusion and SOC drift are in dV
    t = np.arange(0.0, 600.0, 60.0)
    i = np.where(t < 300, -20.0, -45.0)
    assert series_evidence(t, i, CELLS * 3.29 + 0.03 * i, CELLS, RATED_AH).resistance == []
    # the voltage rises with the load: noise, not a resistance
    t = np.arange(0.0, 40.0, 1.0)
    i = np.where(t < 20, -20.0, -45.0)
    assert series_evidence(t, i, CELLS * 3.29 - 0.03 * i, CELLS, RATED_AH).resistance == []


def test_bad_series_are_refused_with_the_field():
    with pytest.raises(EvidenceRejected, match="increase strictly"):
        series_evidence([0, 60, 60], [0, -20, -20], [53, 52, 52], CELLS, RATED_AH)
    with pytest.raises(EvidenceRejected, match="equal length"):
        series_evidence([0, 60], [0], [53, 52], CELLS, RATED_AH)
    with pytest.raises(EvidenceRejected, match="cells in series"):
        series_evidence([0, 60], [0, 0], [53, 52], 0, RATED_AH)
    # NaN samples are dropped, not counted
    assert series_evidence([0, 60], [np.nan, np.nan], [53, 52], CELLS, RATED_AH).soh == []
