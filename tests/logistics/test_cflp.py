import numpy as np
import pytest

import battloop.logistics.cflp as cflp_mod
from battloop.logistics.cflp import CflpInfeasible, solve_cflp
from battloop.logistics.instances import CflpInstance, read_capopt, read_holmberg, read_orlib_cap
from battloop.logistics.milp import MilpOutcome


def test_all_orlib_cap_instances_reproduce_capopt(netopt):
    opt = read_capopt(netopt / "orlib_cap" / "capopt.txt")
    assert len(opt) == 37
    errors = {}
    for name, value in opt.items():
        res = solve_cflp(read_orlib_cap(netopt / "orlib_cap" / f"{name}.txt"))
        assert res.status == "optimal", name
        errors[name] = abs(res.objective - value) / value
    assert max(errors.values()) <= 1e-6, {k: v for k, v in errors.items() if v > 1e-6}


def test_all_holmberg_p1_p20_single_source_optima(netopt):
    folder = netopt / "holmberg_sscflp" / "original"
    optima = [float(v) for v in (folder / "os_optimal_values.txt").read_text().split()[:20]]
    for k in range(1, 21):
        res = solve_cflp(read_holmberg(folder / f"p{k}"), single_source=True)
        assert res.status == "optimal"
        assert abs(res.objective - optima[k - 1]) / optima[k - 1] <= 1e-6, f"p{k}"
        # single source: every customer has exactly one facility with share 1
        assert all(len(a) == 1 and list(a.values())[0] == pytest.approx(1.0) for a in res.assignment)


def test_plan_is_consistent_with_objective(netopt):
    inst = read_orlib_cap(netopt / "orlib_cap" / "cap71.txt")
    res = solve_cflp(inst)
    share = np.zeros((inst.n_facilities, inst.n_customers))
    for j, a in enumerate(res.assignment):
        for i, v in a.items():
            share[i - 1, j] = v
    np.testing.assert_allclose(share.sum(axis=0), 1.0, atol=1e-7)
    load = share @ inst.demand
    assert np.all(load <= inst.capacity + 1e-6)
    opened = np.zeros(inst.n_facilities, bool)
    opened[np.array(res.open_facilities) - 1] = True
    assert np.all(load[~opened] <= 1e-9)
    cost = inst.fixed_cost[opened].sum() + (share * inst.cost).sum()
    assert cost == pytest.approx(res.objective, rel=1e-7)


def test_single_source_costs_at_least_multi_source(netopt):
    inst = read_holmberg(netopt / "holmberg_sscflp" / "original" / "p1")
    multi = solve_cflp(inst)
    single = solve_cflp(inst, single_source=True)
    assert single.objective == pytest.approx(8848)
    assert multi.objective <= single.objective + 1e-6


def _tiny(capacity, demand):
    return CflpInstance("tiny", np.array(capacity, float), np.array([10.0, 10.0]), np.array(demand, float),
                        np.ones((2, len(demand))))


def test_infeasible_capacity_names_constraint_and_shortfall():
    with pytest.raises(CflpInfeasible) as e:
        solve_cflp(_tiny([5, 5], [4, 4, 4]))
    msg = str(e.value)
    assert "total demand 12" in msg and "capacity 10" in msg and "by 2" in msg


def test_single_source_customer_larger_than_any_facility():
    with pytest.raises(CflpInfeasible, match="customer 1 demands 7"):
        solve_cflp(_tiny([6, 6], [7, 1]), single_source=True)
    # splittable, the same instance is fine
    assert solve_cflp(_tiny([6, 6], [7, 1])).status == "optimal"


def test_single_source_bin_packing_infeasibility_is_reported():
    # 3 customers of 4 into two facilities of 6: total fits, whole customers do not
    with pytest.raises(CflpInfeasible, match="single-source"):
        solve_cflp(_tiny([6, 6], [4, 4, 4]), single_source=True)


def test_time_limit_without_incumbent_reports_bound_not_empty_plan(monkeypatch, netopt):
    def fake(*a, **k):
        return MilpOutcome("time_limit", False, None, None, 123.5, None, 0.5, "Time limit reached", 1, 1, 1, 1)

    monkeypatch.setattr(cflp_mod, "solve_milp", fake)
    res = solve_cflp(read_orlib_cap(netopt / "orlib_cap" / "cap41.txt"), time_limit_s=0.5)
    assert res.status == "time_limit_no_incumbent"
    assert res.objective is None and res.open_facilities is None and res.bound == 123.5
    assert "lower bound 123.5" in res.message
    assert res.to_json()["objective"] is None
