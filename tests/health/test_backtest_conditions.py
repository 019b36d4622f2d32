"""Backtests on cells whose temperature or SOC changes over time: stress-equivalent time.

The held-out rows' conditions are known inputs (a retrofit, a move, the seasons);
only their capacity is predicted.
"""

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from battloop.health.backtest import BacktestError, StressClock, fit_stress_law, run_backtest
from battloop.health.models import PARAMETER_SETS, simulate_capacity_fade


def _relative(naumann_long, cell):
    g = naumann_long[naumann_long.cell_id == cell].sort_values("t")
    return g.t.to_numpy(float), g.capacity.to_numpy(float) / g.capacity.iloc[0], float(g.temperature_c.iloc[0]), float(g.soc.iloc[0])


def switched_cell(naumann_long, before, after, switch_day=161.3625):
    """A cell stored like ``before`` until ``switch_day`` and like ``after`` from then on, from the measured curves.

    After the switch the cell continues on the measured ``after`` curve from the point
    with the same capacity loss (the virtual-time rule that Naumann et al. 2018 and
    BLAST-Lite use for dynamic conditions). Every capacity is a measured check-up.
    """
    ta, ya, temp_a, soc_a = _relative(naumann_long, before)
    tb, yb, temp_b, soc_b = _relative(naumann_long, after)
    keep = ta <= switch_day
    loss_b = np.maximum.accumulate(1 - yb)
    t_equiv = float(np.interp(1 - ya[keep][-1], loss_b + np.arange(loss_b.size) * 1e-12, tb))
    later = tb > t_equiv
    return pd.DataFrame({
        "cell_id": f"{before[12:]}->{after[12:]}",
        "t": np.concatenate([ta[keep], switch_day + tb[later] - t_equiv]),
        "capacity": 3.0 * np.concatenate([ya[keep], yb[later]]),
        "temperature_c": np.concatenate([np.full(keep.sum(), temp_a), np.full(later.sum(), temp_b)]),
        "soc": np.concatenate([np.full(keep.sum(), soc_a), np.full(later.sum(), soc_b)]),
    })


SWITCHES = [("T25_SOC50", "T40_SOC50"), ("T25_SOC100", "T40_SOC100"), ("T40_SOC100", "T25_SOC100"), ("T25_SOC50", "T60_SOC50"),
            ("T40_SOC50", "T40_SOC100"), ("T10_SOC50", "T40_SOC50"), ("T40_SOC25", "T25_SOC50")]


def _switched_figures(report):
    cells = [c for c in report["cells"] if "->" in c["cell_id"]]
    mae = np.mean([c["model"]["capacity_error_pp"] for c in cells])
    coverage = sum(c["model"]["n_inside"] for c in cells) / sum(c["n_test"] for c in cells)
    return cells, mae, coverage


def _each_switch_without_its_target(naumann_long, drop_conditions=False):
    """One backtest per switched cell; the steady cell whose curve it continues on is left out of its cohort."""
    cells = []
    for a, b in SWITCHES:
        df = pd.concat([naumann_long[naumann_long.cell_id != f"NAUMANN_CAL_{b}"],
                        switched_cell(naumann_long, f"NAUMANN_CAL_{a}", f"NAUMANN_CAL_{b}")], ignore_index=True)
        if drop_conditions:
            df = df.drop(columns=["temperature_c", "soc"])
        cells += [c for c in run_backtest(df, "calendar", "0.8", "161.3625")["cells"] if "->" in c["cell_id"]]
    return cells


def test_known_condition_changes_are_forecast_on_stress_time(naumann_long):
    # fitted up to the switch; the steady conditions give the cohort its stress law. The steady cell
    # whose measured curve a switched cell continues on is left out, so its later check-ups cannot leak in.
    cells, mae, coverage = _switched_figures({"cells": _each_switch_without_its_target(naumann_long)})
    _, mae_blind, coverage_blind = _switched_figures({"cells": _each_switch_without_its_target(naumann_long, True)})
    # measured: MAE 1.10 pp and 87 % inside P10-P90, against 2.67 pp and 11 % when the conditions are ignored
    assert mae < 0.6 * mae_blind
    assert mae < np.mean([c["power_law"]["capacity_error_pp"] for c in cells])
    assert 0.75 <= coverage <= 0.97 and coverage_blind < 0.5
    for c in cells:
        assert c["time_axis"] == "stress_equivalent"
        assert any("stress-equivalent time" in n for n in c["notes"]) and "kJ/mol" in c["stress_law"]
    # a move from 25 to 60 C runs the clock several times faster, a move from 40 to 25 C slows it
    pace = {c["cell_id"]: c["stress_pace_after_fit"] for c in cells}
    assert pace["T25_SOC50->T60_SOC50"] > 3 and pace["T40_SOC100->T25_SOC100"] < 0.7


def test_steady_cells_are_unchanged_by_their_conditions(naumann_long):
    with_conditions = run_backtest(naumann_long, "calendar", "0.8", "180")
    without = run_backtest(naumann_long.drop(columns=["temperature_c", "soc"]), "calendar", "0.8", "180")
    assert with_conditions["summary"] == without["summary"]
    assert not any("time_axis" in c for c in with_conditions["cells"])


def test_cohort_stress_law_matches_the_published_fit(naumann_long):
    early = naumann_long[naumann_long.t <= 180]
    cells = [(g.t.to_numpy(float), g.capacity.to_numpy(float) / g.capacity.iloc[0], g.temperature_c.to_numpy(float), g.soc.to_numpy(float))
             for _, g in early.groupby("cell_id")]
    law, why = fit_stress_law(cells, 0.5)
    assert why is None
    # the calendar law fitted by plain least squares on all 376 days of the same data (the form of
    # models.py, whose own set weighs float duty and so trades some Arrhenius fit away): 27.6 kJ/mol
    assert law.ea_j_mol == pytest.approx(_unweighted_ea_j_mol(naumann_long), rel=0.15)
    # storage at 100 % SOC ages faster than at 0 %, as in every published LFP calendar study
    assert law.log_factor(25.0, 1.0) > law.log_factor(25.0, 0.0) + 1.0
    # one condition away from the fitted ones is uncertain; the same condition is not
    assert law.change_sd(25.0, 0.5, 25.0, 0.5) == 0.0
    assert law.change_sd(25.0, 0.5, 40.0, 0.5) > 0.1


def _unweighted_ea_j_mol(naumann_long) -> float:
    from scipy.optimize import least_squares

    d = naumann_long[naumann_long.t > 0].copy()
    first = naumann_long[naumann_long.t == 0].set_index("cell_id").capacity
    loss = 1.0 - d.capacity.to_numpy() / first.loc[d.cell_id].to_numpy()
    tk, soc, t = d.temperature_c.to_numpy() + 273.15, d.soc.to_numpy(), d.t.to_numpy()

    def residual(p):
        lk, ea, s1, s2, pc = p
        return np.exp(lk) * np.exp(-ea / 8.314462618 * (1 / tk - 1 / 298.15)) * (1 - s1 - s2 + s1 * soc + s2 * soc**2) * t**pc - loss

    return float(least_squares(residual, [np.log(3e-3), 25_000, 1.0, -0.2, 0.5], x_scale=[1, 1e4, 1, 1, 0.1]).x[1])


def seasonal_site_packs(retrofit_day=540, n_packs=6, years=4, seed=1):
    """Packs on float at one site's seasonal temperature, cooled by 8 K from ``retrofit_day``, monthly check-ups."""
    rng = np.random.default_rng(seed)
    days = np.arange(365 * years)
    temp = 25.0 + 10.0 * np.cos(2 * np.pi * (days - 200) / 365.0) - 8.0 * (days >= retrofit_day)
    q = simulate_capacity_fade("LFP", np.tile(temp, (n_packs, 1)), soc_mean=1.0,
                               degradation_multiplier=rng.uniform(0.8, 1.3, (n_packs, 1)))
    checkups = np.arange(30, days.size, 30)
    rows = []
    for p in range(n_packs):
        month_temp = [temp[max(0, d - 30):d].mean() for d in checkups]
        cap = 100.0 * q[p, checkups - 1] + rng.normal(0, 0.03, checkups.size)
        rows.append(pd.DataFrame({"cell_id": f"pack{p}", "t": np.concatenate([[0.0], checkups]), "capacity": np.concatenate([[100.0], cap]),
                                  "temperature_c": np.concatenate([[temp[0]], month_temp]), "soc": 1.0}))
    return pd.concat(rows, ignore_index=True)


def test_cooling_retrofit_needs_a_law_and_says_so():
    df = seasonal_site_packs()
    # one site: no steady temperature levels to fit a law on, and no chemistry given
    r = run_backtest(df, "calendar", "0.8", "540")
    assert all(any("no stress law is available" in n for n in c["notes"]) for c in r["cells"])
    assert all(c["stress_law"].startswith("none: no cell is held at a steady temperature") and "--chemistry" in c["stress_law"] for c in r["cells"])
    assert not any("time_axis" in c for c in r["cells"])
    with_law = run_backtest(df, "calendar", "0.8", "540", chemistry="LFP")
    assert all("LFP set" in c["stress_law"] for c in with_law["cells"])
    # the plain fit keeps the hot years' pace and overstates the fade after the retrofit
    blind, told = r["summary"]["capacity_mae_pp"], with_law["summary"]["capacity_mae_pp"]
    assert told < 0.5 * blind
    assert with_law["summary"]["capacity_mae_pp"] < with_law["summary"]["baselines"]["power_law"]["capacity_mae_pp"]


def test_unknown_chemistry_is_refused_by_name(naumann_long):
    with pytest.raises(BacktestError, match="--chemistry.*known are LFP"):
        run_backtest(naumann_long, "calendar", "0.8", "180", chemistry="LMO")
    with pytest.raises(BacktestError, match="--chemistry GENERIC.*pass LFP or NMC"):
        run_backtest(naumann_long, "calendar", "0.8", "180", chemistry="generic")


def test_cli_takes_the_chemistry(tmp_path, capsys):
    f = tmp_path / "site.csv"
    seasonal_site_packs().to_csv(f, index=False)
    call_command("health", "backtest", "--data", str(f), "--kind", "calendar", "--eol", "0.8", "--fit-until", "540", "--chemistry", "LFP")
    out = capsys.readouterr().out
    assert "stress-equivalent time" in out
    ea_kj = PARAMETER_SETS["LFP"].ea_cal_j_mol / 1000
    assert out.count(f"stress law for cells whose conditions vary: Arrhenius Ea {ea_kj:.1f} kJ/mol") == 1  # once, not per cell


def test_cooling_retrofit_end_of_life_follows_the_clock():
    # end of life at 93 % is reached after the retrofit: the crossing is read on the stress clock
    # (measured: RUL MAE 3.7 days against 137 days on plain t; the data follow the LFP set, so this checks the wiring)
    df = seasonal_site_packs()
    blind = run_backtest(df, "calendar", "0.93", "540")["summary"]
    told = run_backtest(df, "calendar", "0.93", "540", chemistry="LFP")["summary"]
    assert told["n_cells"] == 6 and told["rul_mae"] is not None
    assert told["rul_mae"] < 0.25 * blind["rul_mae"]


def test_each_interval_runs_at_its_closing_rows_conditions():
    # rows every 10 days; the row at t = 60 reports a condition that runs time twice as fast
    t = np.arange(0.0, 101.0, 10.0)
    log_f = np.where(t >= 60, np.log(2.0), 0.0)
    clock = StressClock.build(t, log_f, cut=50.0)
    assert clock.tau[5] == pytest.approx(50.0)  # the fit window keeps its own time
    assert np.diff(clock.tau)[5:] == pytest.approx(np.full(5, 20.0))  # (50, 60] already runs at the new pace
    assert clock.rate_after == pytest.approx(2.0)
    assert clock.tau_of(np.array([120.0]))[0] == pytest.approx(clock.tau[-1] + 40.0)  # held at the held-out pace


def test_rows_without_capacity_still_set_the_pace():
    df = seasonal_site_packs()
    # the retrofit is reported only on condition rows between the monthly check-ups
    extra = df.groupby("cell_id", as_index=False).first().assign(t=545.0, capacity=np.nan, temperature_c=10.0)
    r = run_backtest(pd.concat([df, extra], ignore_index=True), "calendar", "0.8", "540", chemistry="LFP")
    assert all(any("without capacity kept for their conditions" in n for n in c["notes"]) for c in r["cells"])


@pytest.mark.parametrize("field,value,message", [("temperature_c", 298.15, "looks like Kelvin"), ("temperature_c", -274.0, "outside -60..120"),
                                                 ("soc", 50.0, "a fraction")])
def test_implausible_conditions_are_named_with_the_line_and_left_out(naumann_long, field, value, message):
    df = naumann_long.astype({field: float})
    df.loc[df.index[40], field] = value
    r = run_backtest(df, "calendar", "0.8", "180")
    cell = next(c for c in r["cells"] if c["cell_id"] == df.cell_id.iloc[40])
    assert any(n.startswith(f"input line 42: field {field}: ") and message in n for n in cell["notes"]), cell["notes"]
    # the condition is left out (filled from the neighbours), the capacity of that row is kept
    assert r["summary"] == run_backtest(naumann_long, "calendar", "0.8", "180")["summary"]


def test_a_soc_change_takes_the_chemistry_soc_law_when_the_cohort_has_one_soc_level(naumann_long):
    # only the 50 % SOC cells: the cohort fits temperature, not SOC; one cell moves to 100 % SOC
    df = naumann_long[naumann_long.soc == 0.5].copy()
    moved = df.cell_id.eq("NAUMANN_CAL_T40_SOC50") & (df.t > 200)
    df.loc[moved, "soc"] = 1.0
    plain = [c for c in run_backtest(df, "calendar", "0.8", "180")["cells"] if c["cell_id"] == "NAUMANN_CAL_T40_SOC50"][0]
    assert "not modelled" in plain["stress_law"]
    assert plain["stress_pace_after_fit"] == pytest.approx(1.0)
    with_set = [c for c in run_backtest(df, "calendar", "0.8", "180", chemistry="LFP")["cells"] if c["cell_id"] == "NAUMANN_CAL_T40_SOC50"][0]
    assert "SOC stress from the LFP set" in with_set["stress_law"]
    assert with_set["stress_pace_after_fit"] > 1.3
