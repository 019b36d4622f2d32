"""SOH and resistance evidence and the per-pack filter."""

import numpy as np
import pytest

from battloop.health.estimate import (
    EvidenceRejected,
    SohEvidence,
    SohFilter,
    bms_soh_evidence,
    capacity_test_evidence,
    dc_resistance,
    fuse_resistance,
    outage_discharge_evidence,
    ResistanceEvidence,
    resistance_at_reference,
    resistance_factor_to_reference,
    soc_from_voltage,
)


def test_capacity_test_with_temperature_correction():
    ev = capacity_test_evidence(90.0, 100.0, temp_c=25.0)
    assert ev.soh == pytest.approx(0.90) and ev.sd == pytest.approx(0.009)
    cold = capacity_test_evidence(85.5, 100.0, temp_c=15.0)  # 5 % less at 15 C is the same pack
    assert cold.soh == pytest.approx(0.90, abs=1e-9)
    assert cold.sd > ev.sd
    with pytest.raises(EvidenceRejected, match="rated"):
        capacity_test_evidence(90, 0)
    assert "warning" in capacity_test_evidence(120, 100).detail


def test_soc_from_voltage_uncertainty_is_large_on_the_lfp_plateau():
    soc_mid, sd_mid = soc_from_voltage(3.29, "LFP")
    soc_low, sd_low = soc_from_voltage(3.10, "LFP")
    assert 0.4 < soc_mid < 0.7 and soc_low == pytest.approx(0.05, abs=0.01)
    assert sd_mid > 5 * sd_low


def _discharge(soh, rated=100.0, current=20.0, soc0=1.0, soc1=0.1):
    ah = soh * rated * (soc0 - soc1)
    hours = ah / current
    t = np.linspace(0, hours * 3600, 500)
    return t, np.full(t.size, current)


def test_outage_discharge_coulomb_counting_recovers_soh():
    t, i = _discharge(0.85, soc0=0.98, soc1=0.10)
    v0 = np.interp(0.98, *soc_table("LFP"))
    v1 = np.interp(0.10, *soc_table("LFP"))
    ev = outage_discharge_evidence(t, i, v0, v1, rated_ah=100.0)
    assert ev.soh == pytest.approx(0.85, abs=0.01)
    assert 0 < ev.sd < 0.05
    assert ev.detail["delta_soc"] == pytest.approx(0.88, abs=0.01)


def soc_table(chem):
    from battloop.health.estimate import OCV_TABLES

    s, v = OCV_TABLES[chem]
    return s, v


def test_shallow_or_plateau_discharges_are_rejected():
    t, i = _discharge(0.9, soc0=0.98, soc1=0.85)
    s, v = soc_table("LFP")
    with pytest.raises(EvidenceRejected, match="too shallow"):
        outage_discharge_evidence(t, i, np.interp(0.98, s, v), np.interp(0.85, s, v), 100.0)
    # 0.7 -> 0.3 on the flat LFP plateau: deep enough but the endpoints are unknowable
    with pytest.raises(EvidenceRejected, match="too uncertain"):
        outage_discharge_evidence(t, i, np.interp(0.7, s, v), np.interp(0.3, s, v), 100.0)
    # the same swing on NMC is fine (steep OCV)
    s2, v2 = soc_table("NMC")
    t2, i2 = _discharge(0.9, soc0=0.7, soc1=0.3)
    ev = outage_discharge_evidence(t2, i2, np.interp(0.7, s2, v2), np.interp(0.3, s2, v2), 100.0, chemistry="NMC")
    assert ev.soh == pytest.approx(0.9, abs=0.02)


def test_outage_discharge_bad_series():
    with pytest.raises(EvidenceRejected, match="increase"):
        outage_discharge_evidence([0, 10, 5], [1, 1, 1], 3.4, 3.1, 100)
    with pytest.raises(EvidenceRejected, match="NaN"):
        outage_discharge_evidence([0, 10, 20], [1, np.nan, 1], 3.4, 3.1, 100)
    with pytest.raises(EvidenceRejected, match="OCV"):
        outage_discharge_evidence([0, 10, 20], [1, 1, 1], 3.4, 3.1, 100, chemistry="LMO")


def test_bms_soh_is_debiased_and_accepts_percent():
    ev = bms_soh_evidence(95, bias=0.03, sd=0.04)
    assert ev.soh == pytest.approx(0.92) and ev.sd == 0.04 and ev.source == "bms"
    assert "warning" in bms_soh_evidence(1.02).detail
    with pytest.raises(EvidenceRejected):
        bms_soh_evidence(float("nan"))


def test_dc_resistance_from_a_step():
    ev = dc_resistance(52.0, 51.5, 0.0, 50.0)
    assert ev.resistance_ohm == pytest.approx(0.01)
    assert 0 < ev.sd_ohm < 0.001
    with pytest.raises(EvidenceRejected, match="too small"):
        dc_resistance(52.0, 51.99, 0.0, 0.5)
    fused = fuse_resistance([ev, dc_resistance(52.0, 51.4, 0.0, 50.0)], baseline_ohm=0.01)
    assert 0.01 < fused["resistance_ohm"] < 0.012 and fused["growth"] > 1


def test_filter_weighs_capacity_tests_over_noisy_bms_and_tracks_fade():
    rng = np.random.default_rng(7)
    true = lambda d: 1.0 - 4e-5 * d  # noqa: E731
    evidence = [bms_soh_evidence(true(d) + 0.02 + rng.normal(0, 0.03), t_days=d) for d in range(0, 1500, 30)]
    evidence.append(capacity_test_evidence(true(1000) * 100, 100, t_days=1000))
    evidence.append(capacity_test_evidence(true(1490) * 100, 100, t_days=1490))
    f = SohFilter()
    soh, sd = f.fuse(evidence)
    assert soh == pytest.approx(true(1490), abs=0.01)
    assert sd < 0.01
    assert f.rate_per_day == pytest.approx(-4e-5, abs=2e-5)


def test_filter_downweights_an_outlier_and_refuses_time_travel():
    f = SohFilter(soh0=0.95, soh0_sd=0.01)
    f.update(SohEvidence(0, 0.95, 0.01, "capacity_test"))
    f.update(SohEvidence(10, 0.40, 0.01, "bms"))  # absurd reading
    assert f.soh > 0.85
    assert f.history[-1][-1] is True  # flagged as down-weighted
    with pytest.raises(EvidenceRejected, match="time order"):
        f.update(SohEvidence(5, 0.95, 0.01, "bms"))


def test_resistance_is_brought_to_25_c_with_the_uncertainty_of_the_correction():
    read = ResistanceEvidence(100.0, 0.040, 0.001, "bench")
    same = resistance_at_reference(read, 25.0)
    assert same.resistance_ohm == pytest.approx(0.040) and same.sd_ohm == pytest.approx(0.001)
    cold, warm = resistance_at_reference(read, 5.0), resistance_at_reference(read, 40.0)
    # a cold pack reads high (its 25 C value is lower), a warm one low
    assert cold.resistance_ohm == pytest.approx(0.040 / 2.25, rel=0.01)
    assert warm.resistance_ohm == pytest.approx(0.040 * 1.725, rel=0.01)
    assert warm.resistance_ohm > 0.040 > cold.resistance_ohm
    # further from 25 C the Ea uncertainty weighs more, relative to the value
    assert cold.sd_ohm / cold.resistance_ohm > warm.sd_ohm / warm.resistance_ohm > same.sd_ohm / same.resistance_ohm
    assert cold.t_days == 100.0 and cold.source == "bench" and cold.detail["factor_to_reference"] == pytest.approx(1 / 2.25, rel=0.01)
    # no temperature: kept as read, with the spread of the unknown temperature
    blind = resistance_at_reference(read, None, unknown_temp_sd_c=5.0)
    assert blind.resistance_ohm == 0.040 and blind.sd_ohm == pytest.approx(np.hypot(0.001, 0.040 * 0.1895), rel=0.01)
    assert resistance_at_reference(read, float("nan")).sd_ohm > blind.sd_ohm  # cabinet default: 10 C
    with pytest.raises(EvidenceRejected, match="outside 0..45 C"):
        resistance_at_reference(read, -20.0)
    # elementwise factor: NaN and masked (missing in the lake) temperatures count as 25 C
    f = resistance_factor_to_reference(np.ma.masked_array([5.0, 25.0, 0.0, np.nan], mask=[False, False, True, False]))
    assert f[0] == pytest.approx(1 / 2.25, rel=0.01) and list(f[1:]) == [1.0, 1.0, 1.0]


def test_fusion_counts_a_shared_correction_error_once():
    # a pack of 10 mOhm at 25 C whose true activation energy is 22 kJ/mol (1 sd below the default):
    # one 25 C bench test and 100 load steps in a 5 C cabinet
    true_ea = 22_000.0
    bench = resistance_at_reference(ResistanceEvidence(0.0, 0.0100, 0.0003, "bench"), 25.0)
    cold_read = 0.0100 / float(np.exp(-true_ea / 8.314462618 * (1 / 278.15 - 1 / 298.15)))
    steps = [resistance_at_reference(ResistanceEvidence(1.0, cold_read, 0.0005, "dc_step"), 5.0) for _ in range(100)]
    fused = fuse_resistance([bench] + steps)
    # averaged as independent, the 100 steps would outvote the bench and claim +/- 0.14 mOhm around 8.5
    r = np.array([e.resistance_ohm for e in [bench] + steps])
    w = 1 / np.array([e.sd_ohm for e in [bench] + steps]) ** 2
    naive_mean, naive_sd = float(np.sum(w * r) / np.sum(w)), float(1 / np.sqrt(np.sum(w)))
    assert abs(naive_mean - 0.0100) > 5 * naive_sd
    # counted once, their shared Ea error leaves the bench in charge and the truth inside the band
    assert abs(fused["resistance_ohm"] - 0.0100) < 1.3 * fused["sd_ohm"]
    assert abs(fused["resistance_ohm"] - 0.0100) < 0.3 * abs(naive_mean - 0.0100)
    # independent readings (no correction detail) fuse by plain inverse variance, as before
    plain = fuse_resistance([ResistanceEvidence(0.0, 0.040, 0.001), ResistanceEvidence(0.0, 0.044, 0.002)])
    assert plain["resistance_ohm"] == pytest.approx((0.040 / 0.001**2 + 0.044 / 0.002**2) / (1 / 0.001**2 + 1 / 0.002**2))
    assert plain["sd_ohm"] == pytest.approx(1 / np.sqrt(1 / 0.001**2 + 1 / 0.002**2))
