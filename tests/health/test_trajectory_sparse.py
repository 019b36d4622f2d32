"""Sparse check-ups: the knee form on windows with few points (trajectory.KNEE_MIN_POINTS)."""

import numpy as np
import pytest

from battloop.health.backtest import run_backtest
from battloop.health.trajectory import KNEE_MIN_POINTS, fit_form


def test_knee_form_is_fitted_on_the_last_points_when_the_recent_half_holds_too_few():
    # six check-ups, only three of them in the recent half of the window: the knee form is fitted
    # on the last five and follows the accelerating fade instead of being left out
    t = np.array([0.0, 100.0, 200.0, 300.0, 700.0, 900.0])
    tau = 1000.0
    y = 1.0 - 0.02 * np.exp(2.5 * t / tau)
    c = fit_form("exp_recent", t, y, tau, 1e-4)
    assert c is not None
    assert c.mean(np.array([1100.0]))[0] == pytest.approx(1.0 - 0.02 * np.exp(2.75), abs=2e-3)
    # a line through the same points misses the acceleration by far more
    line = fit_form("linear", t, y, tau, 1e-4)
    assert abs(line.mean(np.array([1100.0]))[0] - (1.0 - 0.02 * np.exp(2.75))) > 0.02
    # fewer points than the form needs: no knee form, not a guess
    assert fit_form("exp_recent", t[: KNEE_MIN_POINTS - 1], y[: KNEE_MIN_POINTS - 1], tau, 1e-4) is None


@pytest.mark.parametrize("offset", [0, 50])
def test_hust_checked_every_100_cycles_keeps_its_knee(hust_long, offset):
    # HUST LFP thinned to one check-up per 100 cycles, fit on half of each cell's life: most windows
    # hold 5-12 points. Measured, mean relative end-of-life error: offset 0: 0.72 -> 0.33,
    # offset 50: 0.61 -> 0.10 (the straight line: 0.80, 0.78)
    d = hust_long
    sparse = d[(d.t - d.groupby("cell_id").t.transform("min")) % 100 == offset]
    rep = run_backtest(sparse, "cycle", "0.8", "0.5")
    ok = [c for c in rep["cells"] if c["status"] == "ok"]
    assert len(ok) == 38
    assert "exp_recent" in ok[0]["model"]["form_weights"]
    s = rep["summary"]
    assert s["rul_mre"] < 0.4
    assert s["rul_mre"] < 0.5 * s["baselines"]["linear"]["rul_mre"]
    assert s["capacity_mae_pp"] < s["baselines"]["linear"]["capacity_mae_pp"]
