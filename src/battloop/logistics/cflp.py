"""Capacitated facility location (CFLP) solved exactly with HiGHS.

Model (Beasley 1988 multi-source; Holmberg, Rönnqvist & Yuan 1999 single-source):

    min  sum_i f_i y_i + sum_ij c_ij x_ij
    s.t. sum_i x_ij = 1                      each customer j fully served
         sum_j d_j x_ij <= s_i y_i           capacity of an open facility
         x_ij <= y_i                         strong linking (tightens the LP bound)
         sum_i s_i y_i >= sum_j d_j          aggregate capacity cut (valid, helps branching)
         0 <= x_ij <= 1 (binary if single source), y_i binary

``x_ij`` is the fraction of customer j's demand served by facility i and ``c_ij``
the cost of serving all of it, as in OR-Library ``capinfo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .instances import CflpInstance
from .milp import INF, solve_milp


class CflpInfeasible(ValueError):
    """The instance has no feasible plan; the message names the constraint and the shortfall."""


@dataclass
class CflpResult:
    """Outcome of :func:`solve_cflp`.

    ``objective`` is ``None`` when no feasible plan was found (e.g. the time limit was
    reached first); ``bound`` then still carries the proven lower bound.
    """

    name: str
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    open_facilities: list[int] | None  # 1-based facility numbers, as in the file
    assignment: list[dict[int, float]] | None = None  # per customer: facility -> share
    single_source: bool = False
    model_size: dict = field(default_factory=dict)
    message: str = ""

    @property
    def has_plan(self) -> bool:
        return self.objective is not None

    def to_json(self, with_assignment: bool = False) -> dict:
        out = {
            "instance": self.name,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "open_facilities": self.open_facilities,
            "single_source": self.single_source,
        }
        if self.message:
            out["message"] = self.message
        if with_assignment and self.assignment is not None:
            out["assignment"] = [{str(k): v for k, v in a.items()} for a in self.assignment]
        return out


def check_cflp_feasibility(inst: CflpInstance, single_source: bool = False) -> None:
    """Raise :class:`CflpInfeasible` for the obvious infeasibilities, with the shortfall."""
    total_cap = float(inst.capacity.sum())
    total_dem = float(inst.demand.sum())
    if total_cap < total_dem * (1 - 1e-12):
        raise CflpInfeasible(
            f"{inst.name}: total demand {total_dem:g} exceeds total facility capacity {total_cap:g} "
            f"by {total_dem - total_cap:g} (constraint: sum of capacities >= sum of demands); "
            "add capacity or reduce demand"
        )
    if single_source:
        biggest = float(inst.capacity.max())
        too_big = np.flatnonzero(inst.demand > biggest)
        if too_big.size:
            j = int(too_big[0])
            raise CflpInfeasible(
                f"{inst.name}: customer {j + 1} demands {inst.demand[j]:g} but the largest facility holds "
                f"{biggest:g} (short by {inst.demand[j] - biggest:g}); with single sourcing its demand cannot be split"
            )


def solve_cflp(
    inst: CflpInstance,
    *,
    single_source: bool = False,
    time_limit_s: float | None = None,
    mip_rel_gap: float = 1e-9,
    threads: int | None = None,
) -> CflpResult:
    """Solve a CFLP instance to proven optimality (or until ``time_limit_s``).

    Multi-source by default (the OR-Library ``capopt`` optima); ``single_source``
    makes each customer's assignment binary (Holmberg et al. 1999).
    """
    check_cflp_feasibility(inst, single_source)
    m, n = inst.n_facilities, inst.n_customers
    d = inst.demand.astype(float)
    s = inst.capacity.astype(float)
    nx = m * n
    ncol = m + nx
    # column k: y_i for k < m; x_ij at m + i*n + j
    xi = np.repeat(np.arange(m), n)
    xj = np.tile(np.arange(n), m)
    xcol = m + np.arange(nx)
    c = np.concatenate([inst.fixed_cost.astype(float), inst.cost.reshape(-1).astype(float)])

    rows, cols, vals = [], [], []
    # assignment rows 0..n-1
    rows.append(xj)
    cols.append(xcol)
    vals.append(np.ones(nx))
    # capacity rows n..n+m-1
    rows.append(n + xi)
    cols.append(xcol)
    vals.append(d[xj])
    rows.append(n + np.arange(m))
    cols.append(np.arange(m))
    vals.append(-s)
    # strong linking rows n+m .. n+m+nx-1
    r0 = n + m
    rows.append(r0 + np.arange(nx))
    cols.append(xcol)
    vals.append(np.ones(nx))
    rows.append(r0 + np.arange(nx))
    cols.append(xi)
    vals.append(-np.ones(nx))
    # aggregate capacity cut
    ragg = r0 + nx
    rows.append(np.full(m, ragg))
    cols.append(np.arange(m))
    vals.append(s)
    nrow = ragg + 1
    A = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, ncol)
    )
    row_lo = np.concatenate([np.ones(n), np.full(m, -INF), np.full(nx, -INF), [d.sum()]])
    row_hi = np.concatenate([np.ones(n), np.zeros(m), np.zeros(nx), [INF]])
    col_lo = np.zeros(ncol)
    col_hi = np.ones(ncol)
    integer = np.zeros(ncol, dtype=bool)
    integer[:m] = True
    if single_source:
        integer[m:] = True
    out = solve_milp(c, A, row_lo, row_hi, col_lo, col_hi, integer,
                     time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, threads=threads)
    size = {"columns": out.n_cols, "rows": out.n_rows, "nonzeros": out.n_nonzeros, "integer_columns": out.n_integer}
    if out.status == "infeasible":
        # Only reachable with single sourcing (bin packing); multi-source was pre-checked.
        raise CflpInfeasible(
            f"{inst.name}: no assignment of whole customers to facilities fits the capacities "
            f"(single-source bin-packing constraint; total demand {d.sum():g}, total capacity {s.sum():g}); "
            "allow split deliveries (multi-source) or add capacity"
        )
    if not out.has_solution:
        bound_txt = f"{out.bound:.6g}" if out.bound is not None else "none"
        return CflpResult(
            inst.name, status=f"{out.status}_no_incumbent" if out.status == "time_limit" else out.status,
            objective=None, bound=out.bound, gap=None, seconds=out.seconds, open_facilities=None,
            single_source=single_source, model_size=size,
            message=f"no feasible plan found ({out.model_status}); proven lower bound {bound_txt}; "
                    "raise the time limit to obtain a plan",
        )
    x = out.x
    y = x[:m] > 0.5
    xm = x[m:].reshape(m, n)
    assignment = []
    for j in range(n):
        share = {int(i) + 1: float(round(xm[i, j], 9)) for i in np.flatnonzero(xm[:, j] > 1e-9)}
        assignment.append(share)
    msg = ""
    if out.status != "optimal":
        msg = f"stopped at {out.model_status}; plan is feasible, optimality not proven"
    return CflpResult(
        inst.name, status=out.status, objective=out.objective, bound=out.bound, gap=out.gap,
        seconds=out.seconds, open_facilities=[int(i) + 1 for i in np.flatnonzero(y)],
        assignment=assignment, single_source=single_source, model_size=size, message=msg,
    )
