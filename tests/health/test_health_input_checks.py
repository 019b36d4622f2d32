"""Bad input to the evidence functions, the SOH filter and the aging model is refused with the
field, the value and the fix named, instead of turning into NaN, a clamped SOC or a number
that looks real."""

import numpy as np
import pytest

from battloop.health.estimate import (
    OCV_TABLES,
    EvidenceRejected,
    ResistanceEvidence,
    SohEvidence,
    SohFilter,
    bms_soh_evidence,
    capacity_test_evidence,
    dc_resistance,
    fuse_resistance,
    outage_discharge_evidence,
    resistance_at_reference,
    series_evidence,
    soc_from_voltage,
)
from battloop.health.models import (
    AgingInputError,
    calendar_rate,
    cycle_rate,
    fill_temperature_gaps,
    get_parameters,
    simulate_aging,
    years_to_threshold,
)


def lfp_ocv(soc):
    soc_pts, v_pts = OCV_TABLES["LFP"]
    return float(np.interp(soc, soc_pts, v_pts))


def deep_discharge(soh=0.85, soc0=0.98, soc1=0.10, rated=100.0, current=20.0):
    hours = soh * rated * (soc0 - soc1) / current
    t = np.linspace(0, hours * 3600, 200)
    return t, np.full(t.size, current), lfp_ocv(soc0), lfp_ocv(soc1)


# ------------------------------------------------------------------ capacity tests


@pytest.mark.parametrize("temp_c, shown", [(np.nan, "temp_c is NaN"), (298.15, "temp_c = 298.15"), (-200.0, "temp_c = -200"),
                                           (np.inf, "temp_c = inf")])
def test_capacity_test_refuses_temperatures_that_are_not_celsius(temp_c, shown):
    with pytest.raises(EvidenceRejected) as exc:
        capacity_test_evidence(90.0, 100.0, temp_c=temp_c)
    assert shown in str(exc.value)
    if temp_c == 298.15:
        assert "Kelvin" in str(exc.value) and "subtract 273.15" in str(exc.value)
    # the limits of the aging model still pass
    assert np.isfinite(capacity_test_evidence(90.0, 100.0, temp_c=-60.0).soh)


def test_capacity_test_refuses_non_finite_rated_capacity_and_time():
    with pytest.raises(EvidenceRejected, match="rated_ah = nan"):
        capacity_test_evidence(90.0, float("nan"))
    with pytest.raises(EvidenceRejected, match="t_days = nan"):
        capacity_test_evidence(90.0, 100.0, t_days=float("nan"))


# ------------------------------------------------------------------ outage discharges


def test_outage_discharge_refuses_non_finite_voltages_times_and_currents():
    t, i, v0, v1 = deep_discharge()
    with pytest.raises(EvidenceRejected, match="v_rest_end_cell = nan"):
        outage_discharge_evidence(t, i, v0, float("nan"), 100.0)
    with pytest.raises(EvidenceRejected, match="v_rest_start_cell = inf"):
        outage_discharge_evidence(t, i, float("inf"), v1, 100.0)
    t_nan = t.copy()
    t_nan[7] = np.nan
    with pytest.raises(EvidenceRejected, match=r"time_s\[7\] = nan"):
        outage_discharge_evidence(t_nan, i, v0, v1, 100.0)
    i_inf = i.copy()
    i_inf[3] = np.inf
    with pytest.raises(EvidenceRejected, match=r"current_a\[3\] = inf"):
        outage_discharge_evidence(t, i_inf, v0, v1, 100.0)
    for rated in (0.0, float("nan")):
        with pytest.raises(EvidenceRejected, match="rated_ah"):
            outage_discharge_evidence(t, i, v0, v1, rated)


def test_a_pack_voltage_is_not_read_as_a_full_cell():
    t, i, v0, v1 = deep_discharge()
    with pytest.raises(EvidenceRejected) as exc:
        outage_discharge_evidence(t, i, 53.6, v1, 100.0)
    msg = str(exc.value)
    assert "v_rest_start_cell = 53.6 V" in msg and "2.5..3.45 V" in msg and "divide by the number of cells in series" in msg


def test_a_rest_voltage_below_the_ocv_table_is_not_read_as_empty():
    t, i, v0, _ = deep_discharge()
    with pytest.raises(EvidenceRejected) as exc:
        outage_discharge_evidence(t, i, v0, 2.0, 100.0)
    msg = str(exc.value)
    assert "v_rest_end_cell = 2 V" in msg and "2.5..3.45 V" in msg
    with pytest.raises(EvidenceRejected, match="cell_voltage_v = 2 V"):
        soc_from_voltage(np.array([3.3, 2.0]))


def test_a_float_charged_cell_still_reads_as_full():
    # LFP packs float at up to ~3.55 V per cell, above the table's 3.45 V: that is a full pack
    t, i, _, v1 = deep_discharge()
    at_table_top = outage_discharge_evidence(t, i, 3.45, v1, 100.0)
    floating = outage_discharge_evidence(t, i, 3.55, v1, 100.0)
    assert floating.soh == pytest.approx(at_table_top.soh) and floating.detail["soc_start"] == 1.0
    with pytest.raises(EvidenceRejected, match="3.7 V"):
        soc_from_voltage(3.7, "LFP")  # above the LFP charge limit: not one resting cell


def test_series_refuses_nan_time_stamps():
    with pytest.raises(EvidenceRejected, match=r"time_s\[1\] = nan"):
        series_evidence([0.0, np.nan, 120.0], [0.0, 0.0, 0.0], [53.0, 53.0, 53.0], 16, 100.0)


# ------------------------------------------------------------------ other evidence


def test_evidence_times_and_resistance_inputs_must_be_finite():
    with pytest.raises(EvidenceRejected, match="t_days = nan"):
        bms_soh_evidence(95, t_days=float("nan"))
    with pytest.raises(EvidenceRejected, match="t_days = inf"):
        dc_resistance(52.0, 51.5, 0.0, 50.0, t_days=float("inf"))
    read = ResistanceEvidence(0.0, 0.040, 0.001, "bench")
    # NaN stays "temperature not known"; infinity is a broken reading, not a missing one
    assert resistance_at_reference(read, float("nan")).resistance_ohm == 0.040
    with pytest.raises(EvidenceRejected, match="at inf C"):
        resistance_at_reference(read, float("inf"))
    with pytest.raises(EvidenceRejected, match="baseline_ohm = nan"):
        fuse_resistance([read], baseline_ohm=float("nan"))
    with pytest.raises(EvidenceRejected, match="resistance evidence 1"):
        fuse_resistance([read, ResistanceEvidence(0.0, float("nan"), 0.001)])


# ------------------------------------------------------------------ SOH filter


def test_filter_prior_belongs_to_the_install_not_to_the_first_evidence():
    f = SohFilter()
    soh, sd = f.update(capacity_test_evidence(78.0, 100.0, t_days=2500))
    # the new-pack prior has faded and widened over 2500 days: the test decides
    assert soh == pytest.approx(0.78, abs=0.005) and sd < 0.01
    assert f.history[-1][-1] is False  # not an outlier
    # without an install time the prior sits at the first evidence, as documented
    late = SohFilter(t0_days=None)
    late.update(capacity_test_evidence(78.0, 100.0, t_days=2500))
    assert late.soh > 0.8 and late.history[-1][-1] is True


def test_filter_refuses_nan_times_and_keeps_its_state():
    f = SohFilter()
    f.update(SohEvidence(100.0, 0.99, 0.01, "capacity_test"))
    x, P = f.x.copy(), f.P.copy()
    with pytest.raises(EvidenceRejected, match="t_days = nan"):
        f.update(SohEvidence(float("nan"), 0.95, 0.01, "capacity_test"))
    with pytest.raises(EvidenceRejected, match="t_days = inf"):
        f.fuse([SohEvidence(200.0, 0.98, 0.01, "capacity_test"), SohEvidence(float("inf"), 0.95, 0.01, "bms")])
    with pytest.raises(EvidenceRejected, match="time order"):
        f.fuse([SohEvidence(200.0, 0.98, 0.01, "capacity_test"), SohEvidence(50.0, 0.95, 0.01, "bms")])
    assert np.array_equal(f.x, x) and np.array_equal(f.P, P) and f.t == 100.0
    f.update(SohEvidence(300.0, 0.98, 0.01, "capacity_test"))
    assert np.isfinite(f.soh) and np.isfinite(f.soh_sd)


def test_filter_estimates_a_bms_bias_beyond_the_nominal_one():
    true = lambda d: 1.0 - 3e-5 * d  # noqa: E731
    for seed in range(4):
        rng = np.random.default_rng(seed)
        # this BMS is 4 pp optimistic; bms_soh_evidence takes off the nominal 2 pp
        evidence = [bms_soh_evidence(true(d) + 0.04 + rng.normal(0, 0.03), t_days=d) for d in range(0, 3000, 30)]
        evidence.append(capacity_test_evidence(true(1000) * 100, 100, t_days=1000))
        f = SohFilter()
        soh, sd = f.fuse(evidence)
        assert abs(soh - true(2970)) < 2 * sd, (seed, soh, sd)
        assert f.bms_bias == pytest.approx(0.02, abs=2 * f.bms_bias_sd)
    # BMS readings alone: the filter does not claim to know more than the BMS's bias allows
    rng = np.random.default_rng(0)
    only_bms = SohFilter()
    only_bms.fuse([bms_soh_evidence(true(d) + 0.02 + rng.normal(0, 0.03), t_days=d) for d in range(0, 3000, 30)])
    assert only_bms.soh_sd > 0.012


# ------------------------------------------------------------------ aging model


@pytest.mark.parametrize("dt_days, shown", [(np.nan, "dt_days = nan"), (np.inf, "dt_days = inf"), (-1.0, "dt_days = -1")])
def test_aging_refuses_nan_infinite_and_negative_steps(dt_days, shown):
    with pytest.raises(AgingInputError) as exc:
        simulate_aging("LFP", np.full(10, 25.0), dt_days=dt_days)
    assert shown in str(exc.value) and "finite and non-negative" in str(exc.value)
    steps = np.ones(10)
    steps[4] = dt_days
    with pytest.raises(AgingInputError, match=r"index \(4,\)"):
        simulate_aging("LFP", np.full(10, 25.0), dt_days=steps)
    with pytest.raises(AgingInputError, match="efc_per_step"):
        simulate_aging("LFP", np.full(10, 25.0), efc_per_step=steps)


def test_aging_refuses_soc_and_dod_in_percent():
    with pytest.raises(AgingInputError, match=r"soc_mean = 98 is above 1: give fractions, not percent"):
        simulate_aging("LFP", np.full(10, 25.0), soc_mean=98.0)
    with pytest.raises(AgingInputError, match=r"dod = 50 at index \(1, 0\) is above 1: give fractions, not percent"):
        simulate_aging("LFP", np.full((2, 10), 25.0), dod=np.array([[0.5], [50.0]]))
    with pytest.raises(AgingInputError, match="soc_mean = -0.1 is negative"):
        simulate_aging("LFP", np.full(10, 25.0), soc_mean=-0.1)
    with pytest.raises(AgingInputError, match="soc_mean has NaN"):
        simulate_aging("GENERIC", np.full(10, 25.0), soc_mean=np.nan)
    with pytest.raises(AgingInputError, match="soc = 98"):
        calendar_rate(get_parameters("LFP"), 25.0, 98.0)
    with pytest.raises(AgingInputError, match="dod = 50"):
        cycle_rate(get_parameters("NMC"), 25.0, 50.0)


def test_aging_refuses_nan_multipliers_and_infinite_temperatures():
    with pytest.raises(AgingInputError, match="degradation_multiplier = nan"):
        simulate_aging("LFP", np.full(10, 25.0), degradation_multiplier=np.array([[1.0], [np.nan]]) * np.ones((2, 1)))
    with pytest.raises(AgingInputError, match="pack_factor"):
        simulate_aging("LFP", np.full(10, 25.0), pack_factor=float("nan"))
    with pytest.raises(AgingInputError, match=r"temp_c = inf at index \(3,\)"):
        simulate_aging("LFP", np.r_[np.full(3, 25.0), np.inf])
    with pytest.raises(AgingInputError, match="fallback_c is NaN"):
        fill_temperature_gaps(np.full(4, np.nan), fallback_c=float("nan"))


def test_per_pack_columns_give_the_same_result_as_full_histories():
    # the SOC/DOD stresses are evaluated on the arrays as given and broadcast afterwards
    rng = np.random.default_rng(5)
    temp = 20 + 15 * rng.random((4, 60))
    soc, dod = rng.uniform(0.9, 1.0, (4, 1)), rng.uniform(0.2, 0.8, (4, 1))
    efc = rng.uniform(0, 0.3, (4, 60))
    col = simulate_aging("LFP", temp, soc, efc, dod, 30.4, pack_factor=1.2)
    full = simulate_aging("LFP", temp, np.repeat(soc, 60, 1), efc, np.repeat(dod, 60, 1), np.full(60, 30.4), pack_factor=1.2)
    for a, b in [(col.q, full.q), (col.r, full.r), (col.loss_calendar, full.loss_calendar), (col.loss_cycle, full.loss_cycle)]:
        assert np.array_equal(a, b)
    # float32 histories are accepted as they are
    assert np.allclose(simulate_aging("LFP", temp.astype(np.float32), soc.astype(np.float32)).q,
                       simulate_aging("LFP", temp, soc).q, atol=1e-6)


def test_years_to_threshold_checks_its_inputs_like_simulate_aging():
    with pytest.raises(AgingInputError, match="temp_c is NaN"):
        years_to_threshold("LFP", float("nan"))
    with pytest.raises(AgingInputError, match=r"temp_c = 300 is outside -60..120 C: it looks like Kelvin"):
        years_to_threshold("LFP", 300.0)
    with pytest.raises(AgingInputError, match="soc = 98 is above 1"):
        years_to_threshold("GENERIC", 30.0, soc=98.0)
    with pytest.raises(AgingInputError, match="dod = 50"):
        years_to_threshold("LFP", 30.0, efc_per_year=50.0, dod=50.0)
    with pytest.raises(AgingInputError, match=r"threshold = 80 .*not percent"):
        years_to_threshold("LFP", 30.0, threshold=80.0)
    with pytest.raises(AgingInputError, match="efc_per_year = -5"):
        years_to_threshold("LFP", 30.0, efc_per_year=-5.0)
    with pytest.raises(AgingInputError, match="degradation_multiplier = nan"):
        years_to_threshold("LFP", 30.0, degradation_multiplier=np.array([1.0, np.nan]))
    assert 5 < years_to_threshold("LFP", 30.0) < 50
