"""The optional cohort column of the backtest input: each cohort is calibrated on its own cells."""

import io

import pandas as pd
import pytest
from django.core.management import call_command

from battloop.health.backtest import (CAPACITY_GROUP_STEP, first_capacity_groups, load_long_csv, remaining_life_mre, run_backtest,
                                     run_backtest_sweep)


@pytest.fixture(scope="module")
def two_cell_types(nasa_long, hust_long):
    hust6 = hust_long[hust_long.cell_id.isin(sorted(hust_long.cell_id.unique())[:6])]
    return nasa_long, hust6


def test_each_cohort_is_fitted_as_if_it_were_alone(two_cell_types):
    nasa, hust6 = two_cell_types
    mixed = pd.concat([nasa.assign(cohort="NASA 18650"), hust6.assign(cohort="HUST LFP")])
    rep = run_backtest(mixed, "cycle", "0.8", "0.5")
    alone = {c["cell_id"]: c for r in (run_backtest(nasa, "cycle", "0.8", "0.5"), run_backtest(hust6, "cycle", "0.8", "0.5"))
             for c in r["cells"]}
    assert len(rep["cells"]) == 10
    for c in rep["cells"]:
        a = alone[c["cell_id"]]
        assert c["cohort"] == ("NASA 18650" if c["cell_id"].startswith("B00") else "HUST LFP")
        assert c["model"]["predicted_eol_t"] == a["model"]["predicted_eol_t"], c["cell_id"]
        assert c["model"]["coverage_p10_p90"] == a["model"]["coverage_p10_p90"], c["cell_id"]
        assert c["model"]["form_weights"] == a["model"]["form_weights"], c["cell_id"]


def test_without_the_column_two_cell_types_spoil_each_other(two_cell_types):
    # NASA's 18650s fade in 170 cycles, HUST's LFP cells in 1000-2500: pooled as one cohort, the
    # time scale, the cohort exponent and the form weights fit neither (measured: HUST cells' RUL
    # error relative to the remaining life 0.16 alone, 0.56 pooled with NASA)
    nasa, hust6 = two_cell_types
    pooled = run_backtest(pd.concat([nasa, hust6]), "cycle", "0.8", "0.5")
    split = run_backtest(pd.concat([nasa.assign(cohort="a"), hust6.assign(cohort="b")]), "cycle", "0.8", "0.5")
    assert all("cohort" not in c for c in pooled["cells"])

    def hust_rel(rep):
        rel = [c["model"]["rul_rel_error"] for c in rep["cells"] if not c["cell_id"].startswith("B00") and "rul_rel_error" in c["model"]]
        return sum(rel) / len(rel)
    assert hust_rel(split) < 0.5 * hust_rel(pooled)
    assert remaining_life_mre(split) < remaining_life_mre(pooled)


def synthetic_cells():
    rows = []
    for cell, rate in (("c1", 1.0), ("c2", 1.2), ("c3", 0.9), ("c4", 1.1)):
        for k in range(40):
            rows.append({"cell_id": cell, "t": 10.0 * k, "capacity": 2.0 * (1 - 0.0004 * rate * 10 * k), "cohort": "A"})
    return pd.DataFrame(rows)


def test_blank_cohort_cells_are_taken_from_the_cell_and_two_names_are_noted():
    df = synthetic_cells()
    df.loc[df.index[3], "cohort"] = None  # one blank: the cell's other rows name its cohort
    df.loc[(df.cell_id == "c2") & (df.t > 200), "cohort"] = "B"
    rep = run_backtest(df, "cycle", "0.8", "0.5")
    cells = {c["cell_id"]: c for c in rep["cells"]}
    assert cells["c1"]["cohort"] == "A" and cells["c2"]["cohort"] == "A"
    assert any("rows name 2 cohorts (A, B): fitted with the first, A" in n for n in cells["c2"]["notes"]), cells["c2"]["notes"]
    assert not any("cohorts" in n for n in cells["c1"]["notes"])


def test_cli_reads_the_cohort_column_and_names_the_cohorts(tmp_path, capsys, two_cell_types):
    nasa, hust6 = two_cell_types
    f = tmp_path / "mixed.csv"
    pd.concat([nasa.assign(cohort="NASA 18650"), hust6.assign(cohort="HUST LFP")]).to_csv(f, index=False, sep=";")
    assert list(load_long_csv(f).cohort.unique()) == ["NASA 18650", "HUST LFP"]
    call_command("health", "backtest", "--data", str(f), "--kind", "cycle", "--eol", "0.8", "--fit-until", "0.5")
    out = capsys.readouterr().out
    assert "cohorts calibrated separately: NASA 18650 (4 cells), HUST LFP (6 cells)" in out
    # the model's figures per cohort follow the overall ones, each from its own cells
    rep = run_backtest(load_long_csv(f), "cycle", "0.8", "0.5")
    for name, n in (("NASA 18650", 4), ("HUST LFP", 6)):
        own = [c for c in rep["cells"] if c["cohort"] == name]
        cap = sum(c["model"]["capacity_error_pp"] for c in own) / n
        line = next(ln for ln in out.splitlines() if ln.startswith(f"model: {name} "))
        assert float(line.split()[-6]) == pytest.approx(cap, abs=5e-4), line
        assert line.split()[-1] == str(n)


def test_two_capacity_groups_in_one_cohort_are_named_in_every_cell_and_by_the_cli(tmp_path, two_cell_types):
    nasa, hust6 = two_cell_types
    pooled = run_backtest(pd.concat([nasa, hust6]), "cycle", "0.8", "0.5")
    warnings = {c.get("cohort_warning") for c in pooled["cells"]}
    assert len(warnings) == 1, warnings
    warning = warnings.pop()
    # HUST's first capacities 1.17-1.20 Ah, NASA's 1.86-2.04 Ah (B0006)
    assert warning.startswith("first capacities fall into 2 groups fitted as one cohort (1.17-1.20 Ah: 6 cells, 1.86-2.04 Ah: 4 cells)")
    assert warning.endswith("give each its own name in a cohort column")
    # one name for both types: the same warning, naming the cohort
    same = run_backtest(pd.concat([nasa.assign(cohort="lab"), hust6.assign(cohort="lab")]), "cycle", "0.8", "0.5")
    assert all(c["cohort_warning"].endswith("in the cohort column (all are 'lab' now)") for c in same["cells"])
    # each type alone, or both named apart: no warning
    for rep in (run_backtest(nasa, "cycle", "0.8", "0.5"), run_backtest(hust6, "cycle", "0.8", "0.5"),
                run_backtest(pd.concat([nasa.assign(cohort="a"), hust6.assign(cohort="b")]), "cycle", "0.8", "0.5")):
        assert not any("cohort_warning" in c for c in rep["cells"])
    # capacities given as fractions of rated carry no size: nothing to compare
    frac = pd.concat([g.assign(capacity=g.capacity / g.capacity.iloc[0]) for _, g in pd.concat([nasa, hust6]).groupby("cell_id")])
    assert not any("cohort_warning" in c for c in run_backtest(frac, "cycle", "0.8", "0.5")["cells"])
    f = tmp_path / "pooled.csv"
    pd.concat([nasa, hust6]).to_csv(f, index=False)
    # the CLI prints it once, not once per cell; the sweep too
    assert out_lines_with(_run_cli(f, "0.5"), "warning: ") == [f"warning: {warning}"]
    assert out_lines_with(_run_cli(f, "0.4,0.5"), "warning: ") == [f"warning: {warning}"]
    assert run_backtest_sweep(pd.concat([nasa, hust6]), "cycle", "0.8", ["0.4", "0.5"])["warnings"] == [warning]


def _run_cli(path, fit_until):
    out = io.StringIO()
    call_command("health", "backtest", "--data", str(path), "--kind", "cycle", "--eol", "0.8", "--fit-until", fit_until, stdout=out)
    return out.getvalue()


def out_lines_with(text, prefix):
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]


def test_capacity_groups_split_only_at_a_large_step():
    # one type varies by a few per cent (NASA B0007 -> B0006: 7.6 %); a step above CAPACITY_GROUP_STEP splits
    first = {"a": 1.00, "b": 1.05, "c": 1.10, "d": 1.10 * CAPACITY_GROUP_STEP * 1.01, "e": 1.30}
    assert first_capacity_groups(first) == [["a", "b", "c"], ["d", "e"]]
    assert first_capacity_groups({"a": 1.0, "b": 1.0 * CAPACITY_GROUP_STEP * 0.99}) == [["a", "b"]]
    assert first_capacity_groups({"x": 50.0, "y": 100.0, "z": 200.0}) == [["x"], ["y"], ["z"]]
