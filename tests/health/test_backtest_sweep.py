"""Backtest at several split points: parsing, figures equal to the single-split runs, the CLI table."""

import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from battloop.health.backtest import BacktestError, parse_fit_until_list, remaining_life_mre, run_backtest, run_backtest_sweep


@pytest.mark.parametrize("text,items", [
    ("0.5", ["0.5"]),
    ("0.3,0.5,0.7", ["0.3", "0.5", "0.7"]),
    ("60:80:10", ["60", "70", "80"]),
    ("0.3:0.7:0.1", ["0.3", "0.4", "0.5", "0.6", "0.7"]),  # no 0.30000000000000004, and 0.7 is kept
    ("30%:50%:10%", ["30%", "40%", "50%"]),
    ("60:80:10,100", ["60", "70", "80", "100"]),
])
def test_split_points_parse(text, items):
    assert parse_fit_until_list(text) == items


@pytest.mark.parametrize("text,why", [("80:60:10", "stop >= start"), ("60:80:0", "step > 0"), ("60:80", "start:stop:step"),
                                      ("a:b:c", "start:stop:step"), ("1:1000:1", "at most 200"), ("0.5,x", "use a value of t"),
                                      (",", "no split point")])
def test_bad_split_points_are_refused_with_the_form_to_use(text, why):
    with pytest.raises(BacktestError, match=why):
        parse_fit_until_list(text)


def test_sweep_figures_are_those_of_the_single_splits(nasa_long):
    items = ["70", "80", "90"]
    sweep = run_backtest_sweep(nasa_long, "cycle", "1.4Ah", items)
    singles = [run_backtest(nasa_long, "cycle", "1.4Ah", it) for it in items]
    assert [sp["fit_until"] for sp in sweep["splits"]] == items
    for sp, single in zip(sweep["splits"], singles):
        for k in ("capacity_mae_pp", "rul_mae", "rul_mre", "coverage_p10_p90", "n_cells"):
            assert sp["summary"][k] == single["summary"][k]
        assert sp["summary"]["rul_rel_mean"] == remaining_life_mre(single)
    m = sweep["mean"]
    assert m["model"]["capacity_mae_pp"] == pytest.approx(np.mean([r["summary"]["capacity_mae_pp"] for r in singles]))
    assert m["linear"]["rul_mae"] == pytest.approx(np.mean([r["summary"]["baselines"]["linear"]["rul_mae"] for r in singles]))
    covs = [r["summary"]["coverage_p10_p90"] for r in singles]
    assert (m["model"]["coverage_min"], m["model"]["coverage_max"]) == (min(covs), max(covs))
    better = sum(r["summary"]["capacity_mae_pp"] < r["summary"]["baselines"]["power_law"]["capacity_mae_pp"] for r in singles)
    assert m["power_law"]["model_better"]["capacity_mae_pp"] == {"model_better": better, "of": 3}


def test_cli_sweep_prints_each_split_and_the_mean(tmp_path, nasa_long):
    f = tmp_path / "nasa.csv"
    nasa_long.to_csv(f, index=False)
    out = io.StringIO()
    call_command("health", "backtest", "--data", str(f), "--kind", "cycle", "--eol", "1.4Ah", "--fit-until", "70:90:10", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("backtest sweep:") and "3 split points" in lines[0]
    rows = {ln.split()[0]: ln.split() for ln in lines if ln.split() and ln.split()[0] in ("70", "80", "90", "mean")}
    assert set(rows) == {"70", "80", "90", "mean"}
    single = run_backtest(nasa_long, "cycle", "1.4Ah", "80")["summary"]
    assert float(rows["80"][1]) == pytest.approx(single["capacity_mae_pp"], abs=0.006)
    assert float(rows["80"][2]) == pytest.approx(single["rul_mae"], abs=0.06)
    assert any(ln.startswith("model better than linear: capacity at") for ln in lines)
    js = io.StringIO()
    call_command("health", "backtest", "--data", str(f), "--kind", "cycle", "--eol", "1.4Ah", "--fit-until", "70,80", "--json", stdout=js)
    rep = json.loads(js.getvalue())
    assert set(rep) == {"splits", "mean", "warnings"} and [s["fit_until"] for s in rep["splits"]] == ["70", "80"]
    assert rep["warnings"] == []  # four NASA 18650s: one cell type
    with pytest.raises(CommandError, match="start:stop:step"):
        call_command("health", "backtest", "--data", str(f), "--kind", "cycle", "--eol", "1.4Ah", "--fit-until", "90:70:10")
