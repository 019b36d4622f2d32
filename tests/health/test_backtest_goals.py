"""Backtest accuracy on the public aging data, against the goals of the health issue.

These run the real method on the real data; they fail if the forecasts get worse.
"""

import json

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from battloop.health.backtest import remaining_life_mre, run_backtest

SUMMARY_KEYS = {"capacity_mae_pp", "rul_mae", "rul_mre", "coverage_p10_p90", "n_cells"}


@pytest.fixture(scope="module")
def hust_report(hust_long):
    return run_backtest(hust_long, "cycle", "0.8", "0.5")


def test_naumann_calendar_beats_per_cell_power_law(naumann_long):
    r = run_backtest(naumann_long, "calendar", "0.8", "180")
    s = r["summary"]
    assert s["n_cells"] == 17
    assert s["capacity_mae_pp"] < s["baselines"]["power_law"]["capacity_mae_pp"]
    # and far below the linear extrapolation dashboards use
    assert s["capacity_mae_pp"] < 0.25 * s["baselines"]["linear"]["capacity_mae_pp"]
    # no cell reaches 80 % within 400 days: reported, not used for RUL
    assert s["rul_mae"] is None
    assert all(not c["reached_eol"] for c in r["cells"])


def test_naumann_longer_horizon_beats_power_law(naumann_long):
    # fit on 100 days, predict day 376: a horizon ratio near the 180 -> 885 day case
    s = run_backtest(naumann_long, "calendar", "0.8", "100")["summary"]
    assert s["capacity_mae_pp"] < s["baselines"]["power_law"]["capacity_mae_pp"]
    assert s["capacity_mae_pp"] < 1.0


@pytest.mark.parametrize("fit_until,low,high", [("270", 0.75, 0.90), ("365", 0.6, 0.95), ("180", 0.75, 0.97), ("82", 0.65, 0.90)])
def test_naumann_band_is_neither_overconfident_nor_vacuous(naumann_long, fit_until, low, high):
    # the calendar band's model-form term grows from the centroid of the fitted check-ups;
    # measured from the last one, the 365-day fit covered 35 % and the 180-day one 99 %.
    # 82 days -> 376 is the horizon ratio (4.6) of the goal's 180 -> 885 days.
    s = run_backtest(naumann_long, "calendar", "0.8", fit_until)["summary"]
    assert low <= s["coverage_p10_p90"] <= high


def test_naumann_band_over_every_split_point_averages_inside_the_goal(naumann_long):
    # one split is one draw: every condition shares the same check-up sessions, so a split's held-out
    # errors are correlated and its coverage swings (0.69 at 82 days, 0.95 at 180, 0.71 at 365). Over
    # split points every month from 82 days to 365 the band must be calibrated on average.
    covs = [run_backtest(naumann_long, "calendar", "0.8", str(d))["summary"]["coverage_p10_p90"] for d in range(82, 366, 30)]
    assert 0.75 <= float(np.mean(covs)) <= 0.90, covs
    assert min(covs) >= 0.6 and max(covs) <= 0.97, covs


def test_naumann_every_split_point_beats_the_baselines_on_average(naumann_long):
    # every check-up from day 30 to day 346 as the split, predicting day 376: the short windows are
    # where a cell's own exponent misleads (the onset after formation), so they test the pooling.
    # measured: mean 0.58 pp against sqrt 0.65 and the power law 33 (it runs away on short windows);
    # with the wider per-cell exponent prior of earlier stops the mean was 0.69 pp
    days = sorted(naumann_long.t.round(1).unique())[4:-1]
    runs = [run_backtest(naumann_long, "calendar", "0.8", str(d + 0.01))["summary"] for d in days]
    model = np.mean([r["capacity_mae_pp"] for r in runs])
    for baseline in ("sqrt", "power_law"):
        assert model < np.mean([r["baselines"][baseline]["capacity_mae_pp"] for r in runs]), baseline
    assert model < 0.63


def test_nasa_rul_within_ten_cycles(nasa_long):
    r = run_backtest(nasa_long, "cycle", "1.4Ah", "80")
    s = r["summary"]
    assert s["rul_mae"] <= 10.0
    assert s["rul_mae"] < s["baselines"]["linear"]["rul_mae"]
    by_id = {c["cell_id"]: c for c in r["cells"]}
    # B0007 never falls below 1.4 Ah (min 1.4005): reported and left out of the RUL figures
    assert by_id["B0007"]["reached_eol"] is False
    assert "rul_abs_error" not in by_id["B0007"]["model"]
    # actual end of life by robust crossing stays close to the first-below cycle (125, 109, 97)
    assert by_id["B0005"]["actual_eol_t"] == pytest.approx(125, abs=3)
    assert by_id["B0006"]["actual_eol_t"] == pytest.approx(109, abs=3)
    assert by_id["B0018"]["actual_eol_t"] == pytest.approx(97, abs=3)


def test_hust_relative_rul_error_and_calibration(hust_report):
    s = hust_report["summary"]
    # rul_mre: error relative to the actual end-of-life cycle (measured 0.041)
    assert s["rul_mre"] <= 0.10
    assert s["rul_mre"] < s["baselines"]["power_law"]["rul_mre"]
    # relative to the remaining life after the split, the stricter figure: 0.094 (0.135 before the
    # knee growth was pooled), far below every baseline (linear 1.83, power law 1.27)
    rul_re = remaining_life_mre(hust_report)
    assert rul_re <= 0.10
    for name in ("linear", "sqrt", "power_law"):
        assert rul_re < 0.25 * remaining_life_mre(hust_report, name), name
    for c in hust_report["cells"]:
        m = c.get("model", {})
        if "rul_rel_error" in m:
            true_rul = c["actual_eol_t"] - c["fit_until"]
            assert m["rul_rel_error"] == pytest.approx(m["rul_abs_error"] / true_rul)
            assert m["eol_rel_error"] == pytest.approx(m["rul_abs_error"] / c["actual_eol_t"])
    # measured 0.902: the band's width here is set by the cross-dataset floor of the model-form
    # term (KIND_KAPPA_MIN), which the Oxford cells need; over the splits around it, see below
    assert 0.75 <= s["coverage_p10_p90"] <= 0.91
    # every HUST cell reaches 80 % of its first capacity
    assert s["n_cells"] == sum(1 for c in hust_report["cells"] if c["reached_eol"])


def test_hust_band_over_split_points_averages_inside_the_goal(hust_long, hust_report):
    # one split is one draw; at 40, 50, 60 and 70 % of life the band must be calibrated on average
    # (measured 0.73, 0.90, 0.95, 0.90: mean 0.87)
    covs = [hust_report["summary"]["coverage_p10_p90"]]
    covs += [run_backtest(hust_long, "cycle", "0.8", f)["summary"]["coverage_p10_p90"] for f in ("0.4", "0.6", "0.7")]
    assert 0.75 <= float(np.mean(covs)) <= 0.90, covs
    assert min(covs) >= 0.65 and max(covs) <= 0.96, covs


def test_cycle_band_holds_beyond_the_fitted_shape(oxford_long, hust_long):
    # the inner splits of the early life see a straight fade; the Oxford cells later slow down and the
    # HUST cells bend into the knee. With kappa taken from the inner splits alone (floor 0.05) Oxford
    # at half of life covered 0.41 and HUST fitted on 70 % of life 0.71; the cycle floor of the
    # model-form term (0.2) keeps both in the goal without widening HUST at 50 % beyond it.
    ox = run_backtest(oxford_long, "cycle", "0.8", "0.5", capacity_unit="ah")["summary"]
    assert 0.75 <= ox["coverage_p10_p90"] <= 0.90
    hu = run_backtest(hust_long, "cycle", "0.8", "0.7")["summary"]
    assert 0.75 <= hu["coverage_p10_p90"] <= 0.90


def test_hust_baselines_are_worse(hust_report):
    s = hust_report["summary"]
    for name in ("linear", "sqrt", "power_law"):
        assert s["baselines"][name]["rul_mae"] > 2 * s["rul_mae"], name


def test_cli_json_has_exact_keys(nasa_long, tmp_path, capsys):
    f = tmp_path / "nasa.csv"
    nasa_long.to_csv(f, index=False)
    call_command("health", "backtest", "--data", str(f), "--kind", "cycle", "--eol", "1.4Ah", "--fit-until", "80", "--json")
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"cells", "summary"}
    assert set(out["summary"]) == SUMMARY_KEYS | {"baselines"}
    assert set(out["summary"]["baselines"]) == {"linear", "sqrt", "power_law"}
    for b in out["summary"]["baselines"].values():
        assert set(b) == SUMMARY_KEYS
    assert len(out["cells"]) == 4
    assert out["summary"]["rul_mae"] <= 10


def test_cli_text_report(nasa_long, tmp_path, capsys):
    f = tmp_path / "nasa.csv"
    nasa_long.to_csv(f, index=False)
    call_command("health", "backtest", "--data", str(f), "--kind", "cycle", "--eol", "1.4Ah", "--fit-until", "80")
    out = capsys.readouterr().out
    assert "power_law" in out and "never reached end of life" in out and "B0007" in out
    # both relative errors are printed: to the actual end of life (rul_mre) and to the remaining life
    report = run_backtest(nasa_long, "cycle", "1.4Ah", "80")
    model_row = next(ln.split() for ln in out.splitlines() if ln.startswith("model "))
    assert float(model_row[3]) == pytest.approx(report["summary"]["rul_mre"], abs=5e-4)
    assert float(model_row[4]) == pytest.approx(remaining_life_mre(report), abs=5e-4)
    assert float(model_row[4]) > float(model_row[3])  # the remaining life is shorter than the whole life
    # NASA's first capacities (1.86 Ah and more) are read as Ah, and the report says so and why
    assert "capacity read as Ah (auto: a first capacity is above 1.05 (largest 2.035))" in out


def test_small_cells_in_ah_are_read_as_fractions_unless_told(tmp_path, capsys):
    # a 0.74 Ah cell looks like a fraction of rated: the guess is printed with the flag that overrides it,
    # and the error figures follow the unit (pp of rated for fractions, pp of the first capacity for Ah)
    t = np.arange(0, 60.0)
    df = pd.DataFrame({"cell_id": np.repeat(["a", "b"], t.size), "t": np.tile(t, 2),
                       "capacity": np.concatenate([0.74 - 0.0005 * t, 0.72 - 0.0004 * t])})
    f = tmp_path / "small.csv"
    df.to_csv(f, index=False)
    call_command("health", "backtest", "--data", str(f), "--kind", "cycle", "--eol", "0.8", "--fit-until", "30")
    out = capsys.readouterr().out
    assert "capacity read as a fraction of rated (auto: every first capacity is <= 1.05 (largest 0.74))" in out
    assert "--capacity-unit ah reads it otherwise" in out
    frac = run_backtest(df, "cycle", "0.8", "30")
    ah = run_backtest(df, "cycle", "0.8", "30", capacity_unit="ah")
    assert {c["capacity_unit"] for c in frac["cells"]} == {"fraction"} and {c["capacity_unit"] for c in ah["cells"]} == {"ah"}
    assert ah["cells"][0]["capacity_unit_reason"] == "given"
    e_frac, e_ah = frac["cells"][0]["model"]["capacity_error_pp"], ah["cells"][0]["model"]["capacity_error_pp"]
    assert e_ah > 0 and e_frac == pytest.approx(0.74 * e_ah, rel=1e-6)


def test_cli_text_marks_crossings_beyond_the_horizon(naumann_long, tmp_path, capsys):
    f = tmp_path / "naumann.csv"
    naumann_long.to_csv(f, index=False)
    call_command("health", "backtest", "--data", str(f), "--kind", "calendar", "--eol", "0.8", "--fit-until", "180")
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("NAUMANN")}
    call_command("health", "backtest", "--data", str(f), "--kind", "calendar", "--eol", "0.8", "--fit-until", "180", "--json")
    cells = {c["cell_id"]: c for c in json.loads(capsys.readouterr().out)["cells"]}
    for cid, c in cells.items():
        horizon = f">{c['forecast_horizon_t']:.0f}"
        # a capped prediction is shown as beyond the horizon, never as if it were a forecast date
        assert (horizon in lines[cid].split()[3]) == c["model"]["predicted_eol_capped"], cid
    # 60 degC at full charge crosses 80 % within the horizon
    assert not cells["NAUMANN_CAL_T60_SOC100"]["model"]["predicted_eol_capped"]


# Retention at 885 days in the source table of the Naumann copy (its README; the copy stops at
# 376 days): the goal's real horizon, fitted on <= 180 days.
NAUMANN_885_DAYS = {"NAUMANN_CAL_T25_SOC100": 0.890, "NAUMANN_CAL_T40_SOC100": 0.864, "NAUMANN_CAL_T40_SOC50": 0.908,
                    "NAUMANN_CAL_T60_SOC100": 0.774, "NAUMANN_CAL_T25_SOC0": 0.979}


def test_naumann_day_885_from_180_days(naumann_long):
    from battloop.health.backtest import _baseline_fit
    from battloop.health.trajectory import fit_cohort

    early = naumann_long[naumann_long.t <= 180]
    series = {k: (g.t.to_numpy(float), g.capacity.to_numpy(float) / g.capacity.iloc[0]) for k, g in early.groupby("cell_id")}
    cohort = fit_cohort(series, kind="calendar")
    err, err_power_law, inside = [], [], 0
    for cid, retention in NAUMANN_885_DAYS.items():
        p10, p50, p90 = cohort.quantiles(cid, [885.0])[:, 0]
        inside += p10 <= retention <= p90
        err.append(abs(p50 - retention))
        err_power_law.append(abs(_baseline_fit("power_law", *series[cid])([885.0])[0][0] - retention))
    # measured: MAE 0.40 pp against the per-cell power law's 0.67 pp, 5 of 5 inside P10-P90
    assert np.mean(err) < np.mean(err_power_law)
    assert np.mean(err) < 0.01
    assert 3 <= inside <= 5
