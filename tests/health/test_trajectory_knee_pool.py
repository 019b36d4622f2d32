"""Cohort pooling of the knee growth (trajectory.KNEE_POOL_GRID), on the public cycle-aging data."""

import numpy as np
import pytest

from battloop.health import trajectory
from battloop.health.backtest import remaining_life_mre, run_backtest
from battloop.health.trajectory import fit_form, knee_growth


def test_fixed_growth_is_kept_and_level_and_amplitude_are_fitted():
    t = np.linspace(0, 1000, 400)
    tau = 800.0
    c_true, a_true, k_true = 1.0, 0.01, 2.0
    y = c_true - a_true * np.exp(k_true * t / tau)
    c = fit_form("exp_recent", t, y, tau, 1e-4, knee_growth=k_true * t[-1] / tau)
    assert knee_growth(c, t[-1]) == pytest.approx(k_true * t[-1] / tau)
    assert c.params[0] == pytest.approx(c_true, abs=1e-6)
    assert np.exp(c.params[1]) == pytest.approx(a_true, rel=1e-4)
    # the fixed growth carries no parameter variance of its own
    assert c.cov[2, 2] == 0.0 and np.all(c.cov[:, 2] == 0.0)
    # a wrong growth is kept as given, not refitted
    c_wrong = fit_form("exp_recent", t, y, tau, 1e-4, knee_growth=0.5 * k_true * t[-1] / tau)
    assert knee_growth(c_wrong, t[-1]) == pytest.approx(0.5 * k_true * t[-1] / tau)


@pytest.fixture(scope="module")
def hust_pooled_and_own(hust_long):
    pooled = run_backtest(hust_long, "cycle", "0.8", "0.5")
    grid = trajectory.KNEE_POOL_GRID
    trajectory.KNEE_POOL_GRID = (0.0,)
    try:
        own = run_backtest(hust_long, "cycle", "0.8", "0.5")
    finally:
        trajectory.KNEE_POOL_GRID = grid
    return pooled, own


def test_hust_chooses_to_pool_and_the_forecast_improves(hust_pooled_and_own):
    pooled, own = hust_pooled_and_own
    pools = {c["model"]["knee_pool"] for c in pooled["cells"] if c["status"] == "ok"}
    assert len(pools) == 1 and 0.0 < pools.pop() < 1.0
    assert {c["model"]["knee_pool"] for c in own["cells"] if c["status"] == "ok"} == {0.0}
    # measured: RUL MAE 96 -> 65 cycles, error relative to the remaining life 0.135 -> 0.094,
    # capacity at the last point 3.56 -> 2.80 pp
    s_p, s_o = pooled["summary"], own["summary"]
    assert s_p["rul_mae"] < 0.8 * s_o["rul_mae"]
    assert remaining_life_mre(pooled) < 0.8 * remaining_life_mre(own)
    assert s_p["capacity_mae_pp"] < s_o["capacity_mae_pp"]
    # the cells whose own window showed the least growth were forecast to live longest: pooling
    # brings their end of life forward
    late = [c for c in own["cells"] if c.get("model", {}).get("rul_error", 0) > 0 and c["model"]["rul_rel_error"] > 0.3]
    assert len(late) >= 3
    by_id = {c["cell_id"]: c for c in pooled["cells"]}
    for c in late:
        assert by_id[c["cell_id"]]["model"]["predicted_eol_t"] < c["model"]["predicted_eol_t"], c["cell_id"]


def test_nasa_keeps_its_own_fits(nasa_long):
    # the knee form carries no weight on NASA's four cells: pooling it must change nothing
    r = run_backtest(nasa_long, "cycle", "1.4Ah", "80")
    assert {c["model"]["knee_pool"] for c in r["cells"]} == {0.0}
    assert r["summary"]["rul_mae"] <= 10.0
