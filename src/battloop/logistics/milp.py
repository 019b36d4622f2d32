"""Thin, matrix-level access to the HiGHS MILP solver (Huangfu & Hall 2018, highspy).

Models are built as sparse matrices and passed in one call: building a model of
hundreds of thousands of columns through per-variable Python calls would cost
more than solving it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

INF = highspy.kHighsInf

_banner_shown = False


def new_highs() -> highspy.Highs:
    """Create a solver without HiGHS's start-up banner on stdout.

    HiGHS prints a copyright banner when the first instance of a process is created;
    CLI verbs print JSON on stdout, so the banner is sent to /dev/null once.
    """
    global _banner_shown
    if _banner_shown:
        return highspy.Highs()
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _banner_shown = True
    return h


@dataclass
class MilpOutcome:
    """What HiGHS reported: status, incumbent (if any), objective, dual bound, gap, time."""

    status: str  # optimal | time_limit | infeasible | unbounded | error | ...
    has_solution: bool
    x: np.ndarray | None
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    model_status: str
    n_cols: int
    n_rows: int
    n_nonzeros: int
    n_integer: int
    row_activity: np.ndarray | None = None


_STATUS = {
    "Optimal": "optimal",
    "Time limit reached": "time_limit",
    "Infeasible": "infeasible",
    "Primal infeasible or unbounded": "infeasible_or_unbounded",
    "Unbounded": "unbounded",
    "Interrupted by user": "interrupted",
    "Solution limit reached": "solution_limit",
    "Iteration limit reached": "iteration_limit",
}


def solve_milp(
    c: np.ndarray,
    A: sp.spmatrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    integer: np.ndarray,
    *,
    time_limit_s: float | None = None,
    mip_rel_gap: float = 1e-9,
    threads: int | None = None,
    offset: float = 0.0,
    log: bool = False,
    options: dict | None = None,
) -> MilpOutcome:
    """Minimise ``c @ x + offset`` s.t. ``row_lo <= A x <= row_hi``, bounds, integrality.

    ``integer`` is a boolean mask of integer columns.
    """
    t0 = time.perf_counter()
    A = sp.csc_matrix(A)
    A.sort_indices()
    n_cols = A.shape[1]
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = A.shape[0]
    lp.col_cost_ = np.asarray(c, dtype=np.float64)
    lp.col_lower_ = np.asarray(col_lo, dtype=np.float64)
    lp.col_upper_ = np.asarray(col_hi, dtype=np.float64)
    lp.row_lower_ = np.asarray(row_lo, dtype=np.float64)
    lp.row_upper_ = np.asarray(row_hi, dtype=np.float64)
    lp.offset_ = float(offset)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    integer = np.asarray(integer, dtype=bool)
    if integer.any():
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous for b in integer
        ]
    h = new_highs()
    h.setOptionValue("output_flag", bool(log))
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    # Objectives of the benchmark sets are up to ~1e7; an absolute gap of 1e-6 keeps
    # HiGHS from stopping on its default absolute tolerance before the relative one.
    h.setOptionValue("mip_abs_gap", 1e-6)
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    for key, value in (options or {}).items():
        h.setOptionValue(key, value)
    h.passModel(lp)
    h.run()
    ms = h.getModelStatus()
    ms_text = h.modelStatusToString(ms)
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = obj = bound = gap = act = None
    if has_solution:
        sol = h.getSolution()
        x = np.asarray(sol.col_value)
        act = np.asarray(sol.row_value)
        obj = float(info.objective_function_value)
    if integer.any():
        b = float(info.mip_dual_bound)
        bound = b if math.isfinite(b) else None
        if has_solution and bound is not None:
            gap = abs(obj - bound) / max(abs(obj), 1e-10)
    elif has_solution and ms_text == "Optimal":
        bound, gap = obj, 0.0
    status = _STATUS.get(ms_text, ms_text.lower().replace(" ", "_"))
    if status == "optimal" and gap is None:
        gap = 0.0
    return MilpOutcome(
        status=status, has_solution=has_solution, x=x, objective=obj, bound=bound, gap=gap,
        seconds=time.perf_counter() - t0, model_status=ms_text, n_cols=n_cols, n_rows=A.shape[0],
        n_nonzeros=int(A.nnz), n_integer=int(integer.sum()), row_activity=act,
    )
