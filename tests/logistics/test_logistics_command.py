import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def run(*args):
    out = StringIO()
    call_command("logistics", *args, stdout=out)
    return out.getvalue()


def test_solve_cflp_json_keys_and_value(netopt):
    data = json.loads(run("solve-cflp", str(netopt / "orlib_cap" / "cap62.txt"), "--format", "orlib", "--json"))
    assert {"objective", "bound", "gap", "status", "seconds", "open_facilities"} <= set(data)
    assert data["status"] == "optimal"
    assert abs(data["objective"] - 977799.400) / 977799.400 <= 1e-6
    assert all(isinstance(i, int) and 1 <= i <= 16 for i in data["open_facilities"])


def test_solve_cflp_holmberg_single_source(netopt):
    data = json.loads(run("solve-cflp", str(netopt / "holmberg_sscflp" / "original" / "p13"),
                          "--format", "holmberg", "--single-source", "--time-limit", "60", "--json"))
    assert data["objective"] == pytest.approx(8252) and data["single_source"] is True


def test_capacity_override_makes_instance_infeasible(netopt):
    # cap41 demand totals 58268; 16 x 3000 = 48000
    with pytest.raises(CommandError, match="exceeds total facility capacity 48000 by 10268"):
        run("solve-cflp", str(netopt / "orlib_cap" / "cap41.txt"), "--format", "orlib", "--capacity", "3000", "--json")


def test_malformed_file_is_a_command_error(tmp_path):
    f = tmp_path / "broken.txt"
    f.write_text("3 2\n10 1\n")
    with pytest.raises(CommandError, match="broken.txt, line 2: file ends early"):
        run("solve-cflp", str(f), "--format", "orlib")


def test_wrong_format_for_file_is_a_command_error(netopt):
    # a .vrp file is not an OR-Library file
    with pytest.raises(CommandError, match="A-n32-k5.vrp, line 1: expected number of warehouses"):
        run("solve-cflp", str(netopt / "cvrplib" / "A" / "A-n32-k5.vrp"), "--format", "orlib")


def test_solve_cvrp_json(netopt):
    data = json.loads(run("solve-cvrp", str(netopt / "cvrplib" / "A" / "A-n32-k5.vrp"), "--time-limit", "1", "--json"))
    assert {"cost", "routes", "seconds"} <= set(data)
    assert sorted(c for r in data["routes"] for c in r) == list(range(2, 33))
    assert 784 <= data["cost"] <= 784 * 1.03


def test_solve_cvrp_human_output(netopt):
    text = run("solve-cvrp", str(netopt / "cvrplib" / "A" / "A-n33-k5.vrp"), "--time-limit", "0.5", "--vehicles", "6")
    assert "routes        6" in text and "best known    661" in text


def test_missing_vrp_file(tmp_path):
    with pytest.raises(CommandError, match="file not found"):
        run("solve-cvrp", str(tmp_path / "none.vrp"))


def test_time_limit_without_plan_prints_bound_and_fails(monkeypatch, netopt):
    import battloop.logistics.management.commands.logistics as cmd
    from battloop.logistics.cflp import CflpResult

    def fake(inst, **kw):
        return CflpResult(inst.name, "time_limit_no_incumbent", None, 1000.5, None, 0.1, None,
                          message="no feasible plan found (Time limit reached); proven lower bound 1000.5")

    monkeypatch.setattr(cmd, "solve_cflp", fake)
    out = StringIO()
    with pytest.raises(CommandError, match="lower bound 1000.5"):
        call_command("logistics", "solve-cflp", str(netopt / "orlib_cap" / "cap41.txt"), "--format", "orlib",
                     "--time-limit", "0.1", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["objective"] is None and data["bound"] == 1000.5 and data["open_facilities"] is None
    assert data["status"] == "time_limit_no_incumbent"
