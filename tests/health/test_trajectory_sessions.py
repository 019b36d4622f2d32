"""Session (check-up) effects shared by calendar series, and the Laplace covariance of the power fit."""

import numpy as np
import pytest

from battloop.health.trajectory import UNADJUSTED, _remove_session_effects, fit_cohort, fit_form


def _cohort(shift, n_series=8, seed=3):
    rng = np.random.default_rng(seed)
    t = np.array([0, 7, 14, 28, 42, 56, 84, 112, 140, 168, 196], float)
    series = {}
    for i in range(n_series):
        a = 0.002 * (1 + 0.3 * i)
        y = 1.0 - a * (t / 7) ** 0.5 + shift + rng.normal(0, 1e-4, t.size)
        series[f"c{i}"] = (t, y / y[0])
    return t, series


def test_shared_check_up_shifts_are_found_and_removed():
    shift = np.array([0, 0, 8e-4, -6e-4, 0, 5e-4, -7e-4, 0, 6e-4, -5e-4, 0])
    t, series = _cohort(shift)
    tau = float(t.max())
    adjusted, sd = _remove_session_effects(series, tau, 0.5, 0.15)
    # the spread of the later sessions' shifts is recovered (rms of the true shifts 4.9e-4)
    assert sd == pytest.approx(np.sqrt(np.mean(shift[1:] ** 2)), rel=0.35)
    # after removal the series follow their power law far more closely than before
    before = np.mean([np.std(y - fit_form("power", tt, y, tau, 1e-4, 0.5, 0.15).mean(tt)) for tt, y in series.values()])
    after = np.mean([np.std(y - fit_form("power", tt, y, tau, 1e-4, 0.5, 0.15).mean(tt)) for tt, y in adjusted.values()])
    assert after < 0.5 * before


def test_no_session_term_without_shared_check_ups():
    t, series = _cohort(np.zeros(11))
    # every series on its own schedule: nothing is shared, nothing is removed
    shifted = {k: (tt + 0.37 * i, y) for i, (k, (tt, y)) in enumerate(series.items())}
    adjusted, sd = _remove_session_effects(shifted, float(t.max()), 0.5, 0.15)
    assert sd == 0.0
    assert all(np.array_equal(adjusted[k][1], shifted[k][1]) for k in shifted)
    fit = fit_cohort(shifted, kind="calendar")
    assert UNADJUSTED not in fit.weights
    assert all(f.session_sd == 0.0 for f in fit.fits.values())


def test_calendar_cohort_weighs_adjusted_and_unadjusted_power_laws(naumann_long):
    series = {k: (g.t.to_numpy(float), g.capacity.to_numpy(float) / g.capacity.iloc[0])
              for k, g in naumann_long[naumann_long.t <= 180].groupby("cell_id")}
    fit = fit_cohort(series, kind="calendar")
    assert set(fit.weights) == {"power", UNADJUSTED}
    assert 0.05 < fit.weights[UNADJUSTED] < 0.95
    sd = next(iter(fit.fits.values())).session_sd
    # Naumann's check-ups move all 17 conditions together by a few 1e-4 of capacity
    assert 1e-4 < sd < 2e-3
    # the band at the last check-up includes the session term
    f = fit.fits["NAUMANN_CAL_T25_SOC50"]
    assert f.sd(np.array([376.0]))[0] > sd


def test_prior_keeps_its_weight_when_residuals_exceed_the_noise():
    # a curve the power law cannot follow exactly: residuals well above sigma
    t = np.linspace(0, 200, 12)
    y = 1 - 0.01 * (t / 200) ** 0.5 + 2e-3 * np.sin(t / 15)
    prior_sd = 0.1
    c = fit_form("power", t, y, 200.0, 2e-4, 0.5, prior_sd)
    # the posterior sd of log b cannot exceed its prior sd
    assert np.sqrt(c.cov[2, 2]) <= prior_sd * 1.0001
