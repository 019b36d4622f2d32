"""Backtest of capacity forecasts on aging data in long form.

Pure pandas/NumPy; no Django. ``battloop health backtest`` is a thin wrapper.

Input columns: ``cell_id, t, capacity`` and optionally ``temperature_c, soc``
(``t`` in days for calendar aging, in cycles for cycle aging). For every cell
the series is split at ``fit_until`` (a value of ``t`` or a fraction of the
cell's observed life); the model is calibrated on the early part of every cell
at once (cohort prior, see :mod:`battloop.health.trajectory`) and predicts the
rest. Reported per cell and overall:

* capacity error at the last observed ``t`` in percentage points;
* predicted vs actual end-of-life ``t`` and the RUL error (absolute, cycles or
  days, and relative to the true remaining life from the split point);
* the share of held-out points inside the P10-P90 band.

Three per-cell baselines run on the same split: linear, square-root-of-time and
power-law least-squares fits (the comparison used by Naumann et al. 2018 and
in the reference notes: fitting ≤ 365 d, power law 0.55 pp, sqrt 1.26 pp,
linear 7.6 pp MAE at 885 d).

End of life is a robust crossing: the first ``t`` from which the running median
of three consecutive points stays below the threshold, so one outlier or a
capacity-regeneration spike neither ends nor extends life (CALCE and NASA
series contain both).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .trajectory import Z_P10, Z_P90, TrajectoryError, fit_cohort, robust_scale

REQUIRED = ("cell_id", "t", "capacity")
OPTIONAL = ("temperature_c", "soc")
KINDS = ("calendar", "cycle")


class BacktestError(ValueError):
    """Bad input for a backtest; the message names the file/cell/field and the fix."""


@dataclass(frozen=True)
class EolSpec:
    value: float
    unit: str  # "fraction" (of each cell's first capacity) or "ah"

    def threshold(self, first_capacity: float) -> float:
        return self.value * first_capacity if self.unit == "fraction" else self.value


@dataclass(frozen=True)
class SplitSpec:
    value: float
    unit: str  # "t" or "fraction" (of each cell's observed life)

    def cut(self, t_first: float, t_last: float) -> float:
        if self.unit == "t":
            return self.value
        return t_first + self.value * (t_last - t_first)


def parse_eol(text) -> EolSpec:
    """Parse ``--eol``: ``0.8``/``80%`` (fraction of first capacity) or ``1.4Ah``.

    A bare number below 1 is a fraction; 1 or above is in Ah (so an Ah
    threshold below 1 Ah must carry the suffix, e.g. ``0.88Ah``).
    """
    s = str(text).strip().lower().replace(" ", "")
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)(%|ah|frac)?", s)
    if not m:
        raise BacktestError(f"--eol {text!r}: use a fraction of the first capacity (0.8 or 80%) or a capacity in Ah (1.4Ah)")
    v, suf = float(m.group(1)), m.group(2)
    if suf == "%":
        v, unit = v / 100.0, "fraction"
    elif suf == "ah":
        unit = "ah"
    elif suf == "frac":
        unit = "fraction"
    else:
        unit = "fraction" if v < 1.0 else "ah"
    if v <= 0 or (unit == "fraction" and v >= 1.0):
        raise BacktestError(f"--eol {text!r}: a fraction must lie strictly between 0 and 1 (e.g. 0.8)")
    return EolSpec(v, unit)


def parse_fit_until(text) -> SplitSpec:
    """Parse ``--fit-until``: ``180`` (a value of t) or ``0.5``/``50%`` (fraction of each cell's life).

    A bare number in (0, 1) is a fraction; otherwise it is a value of ``t``.
    Suffix ``t`` forces a value of ``t`` (e.g. ``0.5t``).
    """
    s = str(text).strip().lower().replace(" ", "")
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)(%|t|frac)?", s)
    if not m:
        raise BacktestError(f"--fit-until {text!r}: use a value of t (180) or a fraction of each cell's life (0.5 or 50%)")
    v, suf = float(m.group(1)), m.group(2)
    if suf == "%":
        return SplitSpec(v / 100.0, "fraction")
    if suf == "t":
        return SplitSpec(v, "t")
    if suf == "frac" or 0 < v < 1:
        return SplitSpec(v, "fraction")
    if v <= 0:
        raise BacktestError(f"--fit-until {text!r}: must be positive")
    return SplitSpec(v, "t")


def load_long_csv(path) -> pd.DataFrame:
    """Read a long-form CSV and check its columns (names the file and the missing column)."""
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise BacktestError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BacktestError(f"{path}: not a readable CSV ({exc})") from None
    return validate_frame(df, source=str(path))


def validate_frame(df: pd.DataFrame, source: str = "input") -> pd.DataFrame:
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise BacktestError(f"{source}: missing column(s) {', '.join(missing)}; expected cell_id, t, capacity [, temperature_c, soc]")
    out = pd.DataFrame({"cell_id": df["cell_id"].astype(str)})
    for col in ("t", "capacity") + tuple(c for c in OPTIONAL if c in df.columns):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = vals.isna() & df[col].notna()
        if bad.any():
            i = int(np.nonzero(bad.to_numpy())[0][0])
            raise BacktestError(f"{source}: line {i + 2}, field {col}: {df[col].iloc[i]!r} is not a number")
        out[col] = vals.astype(float)
    neg = out["t"] < 0
    if neg.any():
        i = int(np.nonzero(neg.to_numpy())[0][0])
        raise BacktestError(f"{source}: line {i + 2}, cell {out['cell_id'].iloc[i]}: t = {out['t'].iloc[i]} is negative; t counts days or cycles from the start of the test")
    nonpos = out["capacity"] <= 0
    if nonpos.any():
        i = int(np.nonzero(nonpos.to_numpy())[0][0])
        raise BacktestError(f"{source}: line {i + 2}, cell {out['cell_id'].iloc[i]}: capacity {out['capacity'].iloc[i]} must be positive")
    return out


@dataclass
class CleanSeries:
    cell_id: str
    t: np.ndarray
    cap: np.ndarray
    first_capacity: float
    notes: list
    temperature_c: float | None = None
    soc: float | None = None
    keep: np.ndarray | None = None  # False for isolated outliers (left out of fitting only)


def clean_series(cell_id: str, g: pd.DataFrame) -> CleanSeries:
    """Sort, merge duplicate times and flag isolated outliers of one cell.

    Out-of-order rows are sorted (noted), repeated ``t`` values are averaged,
    rows with NaN capacity or t are dropped (noted). Isolated outliers are
    points further than 6 robust sigmas from the running median of their
    neighbours; they are removed from fitting and scoring (noted), which
    keeps single-cycle dips (CALCE CS2_38 at cycle 118) from counting as end
    of life.
    """
    notes = []
    g = g.dropna(subset=["t", "capacity"])
    if len(g) == 0:
        raise BacktestError(f"cell {cell_id}: no row with both t and capacity")
    if not g["t"].is_monotonic_increasing:
        notes.append("rows were not in time order and were sorted")
        g = g.sort_values("t", kind="stable")
    if g["t"].duplicated().any():
        notes.append("repeated t values were averaged")
    agg = g.groupby("t", sort=True).mean(numeric_only=True)
    t = agg.index.to_numpy(dtype=float)
    cap = agg["capacity"].to_numpy(dtype=float)
    keep = np.ones(t.size, bool)
    if t.size >= 7:
        k = 3
        pad = np.pad(cap, k, mode="edge")
        med = np.array([np.median(np.delete(pad[i : i + 2 * k + 1], k)) for i in range(t.size)])
        resid = cap - med
        # floor at 0.3 % of capacity: smooth, averaged check-up data (a fast first
        # drop after formation) must not be mistaken for outliers
        s = max(robust_scale(resid), 3e-3 * np.median(cap))
        keep = np.abs(resid) <= 6 * s
        keep[0] = True  # the first point is the reference capacity
        if (~keep).any():
            shown = ", ".join(f"{x:g}" for x in t[~keep][:5]) + (" ..." if (~keep).sum() > 5 else "")
            notes.append(f"{int((~keep).sum())} isolated outlier point(s) left out of the fit (still scored) at t = {shown}")
    kc = cap[keep]
    first = float(np.median(kc[: min(3, kc.size)])) if kc.size >= 3 and abs(kc[0] - np.median(kc[:3])) > 0.02 * kc[0] else float(kc[0])
    temp = float(np.nanmean(agg["temperature_c"])) if "temperature_c" in agg and np.isfinite(agg["temperature_c"]).any() else None
    soc = float(np.nanmean(agg["soc"])) if "soc" in agg and np.isfinite(agg["soc"]).any() else None
    if "temperature_c" in agg and agg["temperature_c"].isna().any() and temp is not None:
        notes.append("NaN temperatures ignored (mean of the valid readings used)")
    return CleanSeries(cell_id, t, cap, first, notes, temp, soc, keep)


def robust_eol(t, cap, threshold) -> float | None:
    """First ``t`` where the 3-point running median falls below ``threshold`` and stays down for 3 points."""
    if cap.size == 0:
        return None
    if cap.size >= 3:
        pad = np.pad(cap, 1, mode="edge")
        med = np.median(np.stack([pad[:-2], pad[1:-1], pad[2:]]), axis=0)
    else:
        med = cap
    below = med < threshold
    n = below.size
    for i in np.nonzero(below)[0]:
        if below[i : min(i + 3, n)].all():
            if i == 0:
                return float(t[0])
            # interpolate between the last point above and the first below
            t0, t1, y0, y1 = t[i - 1], t[i], med[i - 1], med[i]
            if y0 == y1:
                return float(t1)
            return float(t0 + (y0 - threshold) * (t1 - t0) / (y0 - y1))
    return None


# ---------------------------------------------------------------- baselines


def _baseline_fit(kind: str, t, y):
    """Least-squares baseline on relative capacity; returns (mean(t), sd(t)) callables.

    linear: y = c + m t; sqrt: y = c - a sqrt(t); power_law: y = c - a t^b.
    Prediction bands use the usual OLS prediction interval (delta method for the
    power law).
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    n = t.size
    if kind in ("linear", "sqrt"):
        x = t if kind == "linear" else np.sqrt(t)
        X = np.column_stack([np.ones(n), x])
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        dof = max(n - 2, 1)
        s2 = float(np.sum((y - X @ beta) ** 2) / dof) if n > 2 else (1e-3) ** 2
        XtXi = np.linalg.pinv(X.T @ X)
        tq = stats.t.ppf(0.9, dof)

        def f(tt):
            tt = np.asarray(tt, float)
            xx = tt if kind == "linear" else np.sqrt(np.maximum(tt, 0))
            Xn = np.column_stack([np.ones(tt.size), xx])
            mu = Xn @ beta
            sd = np.sqrt(s2 * (1 + np.einsum("ij,jk,ik->i", Xn, XtXi, Xn)))
            return mu, sd * tq / Z_P90

        return f
    # power law
    from scipy.optimize import OptimizeWarning, curve_fit

    tau = max(t.max(), 1e-9)

    def model(tt, c, a, b):
        return c - a * (np.maximum(tt, 0) / tau) ** b

    p0 = [y[0], max(y[0] - y[-1], 1e-4), 1.0]
    try:
        with warnings.catch_warnings():
            # too few points for a covariance is expected on short windows; the band then has no parameter part
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, pcov = curve_fit(model, t, y, p0=p0, bounds=([-np.inf, 0, 0.05], [np.inf, 10, 10]), maxfev=20000)
    except (RuntimeError, ValueError):
        popt, pcov = np.array(p0), np.zeros((3, 3))
    pcov = np.nan_to_num(pcov, nan=0.0, posinf=0.0)
    dof = max(n - 3, 1)
    s2 = float(np.sum((y - model(t, *popt)) ** 2) / dof) if n > 3 else (1e-3) ** 2
    tq = stats.t.ppf(0.9, dof)

    def f(tt):
        tt = np.asarray(tt, float)
        c, a, b = popt
        x = np.maximum(tt, 0) / tau
        with np.errstate(divide="ignore", invalid="ignore"):
            lx = np.where(x > 0, np.log(x), 0.0)
        J = np.column_stack([np.ones(tt.size), -(x**b), -a * x**b * lx])
        var = s2 + np.einsum("ij,jk,ik->i", J, pcov, J)
        return model(tt, *popt), np.sqrt(np.maximum(var, 0)) * tq / Z_P90

    return f


def _curve_crossing(f, threshold, t_start, t_max):
    grid = np.unique(np.concatenate([np.linspace(t_start, t_max, 3000), np.geomspace(max(t_start, 1e-6), t_max, 3000)]))
    mu, sd = f(grid)
    q = np.stack([mu + Z_P10 * sd, mu, mu + Z_P90 * sd])
    out = []
    for row in q:
        idx = np.nonzero(row < threshold)[0]
        if idx.size == 0:
            out.append(math.inf)
        elif idx[0] == 0:
            out.append(float(grid[0]))
        else:
            i = idx[0]
            out.append(float(grid[i - 1] + (threshold - row[i - 1]) * (grid[i] - grid[i - 1]) / (row[i] - row[i - 1])))
    return out


# ---------------------------------------------------------------- main entry


def run_backtest(df: pd.DataFrame, kind: str, eol, fit_until, capacity_unit: str = "auto", horizon_factor: float = 10.0) -> dict:
    """Run the backtest; returns the JSON-ready report (``cells`` and ``summary``).

    ``eol`` and ``fit_until`` accept the strings of the CLI or parsed specs.
    """
    if kind not in KINDS:
        raise BacktestError(f"--kind {kind!r}: use 'calendar' (t in days) or 'cycle' (t in cycles)")
    eol = eol if isinstance(eol, EolSpec) else parse_eol(eol)
    split = fit_until if isinstance(fit_until, SplitSpec) else parse_fit_until(fit_until)
    df = validate_frame(df) if "cell_id" not in df.columns or df["t"].dtype == object else df
    if df.empty:
        raise BacktestError("input has no rows")

    series: dict[str, CleanSeries] = {}
    cells_out = []
    for cid, g in df.groupby("cell_id", sort=False):
        try:
            series[cid] = clean_series(cid, g)
        except BacktestError as exc:
            cells_out.append({"cell_id": cid, "status": "skipped", "reason": str(exc), "notes": []})
    if not series:
        raise BacktestError("no cell has a row with both t and capacity")

    unit_reason = "given"
    if capacity_unit == "auto":
        firsts = np.array([s.first_capacity for s in series.values()])
        capacity_unit = "fraction" if np.max(firsts) <= 1.05 else "ah"
        # small cells (0.74 Ah) look like fractions: say which reading was taken, so a wrong guess shows
        unit_reason = (f"auto: every first capacity is <= 1.05 (largest {np.max(firsts):.4g})" if capacity_unit == "fraction"
                       else f"auto: a first capacity is above 1.05 (largest {np.max(firsts):.4g})")
    if capacity_unit not in ("ah", "fraction"):
        raise BacktestError(f"capacity unit {capacity_unit!r}: use auto, ah or fraction")

    fit_set, test_set = {}, {}
    for cid, s in series.items():
        note = list(s.notes)
        if s.cap.size >= 2 and s.cap.max() > 1.15 * s.first_capacity:
            note.append("capacity rises more than 15% above the first value (regeneration or a re-rated test); kept")
        if capacity_unit == "fraction" and s.cap.max() > 1.0:
            note.append("capacity above 1.0 (above rated); kept as measured")
        if s.t.size < 2:
            cells_out.append({"cell_id": cid, "status": "skipped", "reason": "only one point: need at least two before the split and one after", "notes": note})
            continue
        cut = split.cut(s.t[0], s.t[-1])
        m = (s.t <= cut + 1e-9) & s.keep
        if m.sum() < 2:
            cells_out.append({"cell_id": cid, "status": "skipped", "reason": f"fewer than two points at t <= {cut:g}: move --fit-until later", "notes": note})
            continue
        if (s.t > cut + 1e-9).sum() < 1:
            cells_out.append({"cell_id": cid, "status": "skipped", "reason": f"no point after t = {cut:g} to predict: move --fit-until earlier", "notes": note})
            continue
        if np.ptp(s.cap[m]) == 0:
            note.append("constant capacity in the fit window: fade rate taken from the cohort prior")
        ref = s.first_capacity
        fit_set[cid] = (s.t[m], s.cap[m] / ref)
        test_set[cid] = (s, cut, note)

    if not fit_set:
        raise BacktestError("no cell has enough points on both sides of --fit-until (need ≥ 2 before and ≥ 1 after)")

    try:
        cohort = fit_cohort(fit_set, kind=kind)
    except TrajectoryError as exc:
        raise BacktestError(str(exc)) from None

    methods = ("model", "linear", "sqrt", "power_law")
    per_method = {m: [] for m in methods}
    for cid, (s, cut, note) in test_set.items():
        ref = s.first_capacity
        pp_ref = ref if capacity_unit == "ah" else 1.0
        thr = eol.threshold(ref) / ref  # relative units
        t_fit, y_fit = fit_set[cid]
        mtest = s.t > cut + 1e-9
        t_te, y_te = s.t[mtest], s.cap[mtest] / ref
        actual_eol = robust_eol(s.t, s.cap / ref, thr)
        t_max = horizon_factor * max(cut, s.t[-1])
        cell = {"cell_id": cid, "status": "ok", "fit_until": float(cut), "n_fit": int(t_fit.size), "n_test": int(t_te.size),
                "first_capacity": ref, "capacity_unit": capacity_unit, "capacity_unit_reason": unit_reason, "eol_threshold": float(thr * ref), "forecast_horizon_t": float(t_max), "actual_eol_t": actual_eol, "reached_eol": actual_eol is not None,
                "notes": note}
        if actual_eol is not None and actual_eol <= cut:
            cell["notes"] = note + ["end of life already reached inside the fit window: left out of the RUL figures"]
        for meth in methods:
            if meth == "model":
                q = cohort.quantiles(cid, t_te)
                lo, mid, hi = q
                qlast = cohort.quantiles(cid, np.array([s.t[-1]]))[1][0]
                cross = cohort.crossing_times(cid, thr, t_max=t_max)
                extra = {"b": cohort.fits[cid].b, "rate_multiplier": cohort.fits[cid].rate_multiplier, "form_weights": dict(cohort.fits[cid].weights)}
            else:
                # baselines are the plain per-cell least-squares fits a dashboard would
                # run: every point of the fit window, no outlier screening
                mraw = s.t <= cut + 1e-9
                f = _baseline_fit(meth, s.t[mraw], s.cap[mraw] / ref)
                mu, sd = f(t_te)
                lo, mid, hi = mu + Z_P10 * sd, mu, mu + Z_P90 * sd
                qlast = f(np.array([s.t[-1]]))[0][0]
                cross = _curve_crossing(f, thr, cut, t_max)
                extra = {}
            err_pp = float(100.0 * abs(qlast - s.cap[-1] / ref) * ref / pp_ref)
            inside = int(np.sum((y_te >= lo) & (y_te <= hi)))
            pred_eol = float(cross[1])
            capped = not math.isfinite(pred_eol)
            if capped:
                pred_eol = float(t_max)
            r = {"capacity_error_pp": err_pp, "predicted_capacity_last": float(qlast * ref), "actual_capacity_last": float(s.cap[-1]),
                 "predicted_eol_t": pred_eol, "predicted_eol_capped": capped,
                 "predicted_eol_p10_t": float(min(cross[0], t_max)), "predicted_eol_p90_t": float(min(cross[2], t_max)),
                 "coverage_p10_p90": inside / max(t_te.size, 1), "n_inside": inside, **extra}
            if actual_eol is not None and actual_eol > cut:
                true_rul = actual_eol - cut
                r["rul_error"] = pred_eol - actual_eol
                r["rul_abs_error"] = abs(pred_eol - actual_eol)
                r["rul_rel_error"] = abs(pred_eol - actual_eol) / true_rul
                r["eol_rel_error"] = abs(pred_eol - actual_eol) / actual_eol if actual_eol > 0 else None
            cell[meth] = r
            per_method[meth].append((r, t_te.size))
        cells_out.append(cell)

    def summarise(meth):
        rows = per_method[meth]
        if not rows:
            return {"capacity_mae_pp": None, "rul_mae": None, "rul_mre": None, "coverage_p10_p90": None, "n_cells": 0}
        cap = [r["capacity_error_pp"] for r, _ in rows]
        rul = [r["rul_abs_error"] for r, _ in rows if "rul_abs_error" in r]
        # relative error of the predicted end-of-life t (Severson et al. 2019, eq. 7)
        rel = [r["eol_rel_error"] for r, _ in rows if r.get("eol_rel_error") is not None]
        n_in = sum(r["n_inside"] for r, _ in rows)
        n_all = sum(n for _, n in rows)
        return {"capacity_mae_pp": float(np.mean(cap)), "rul_mae": float(np.mean(rul)) if rul else None,
                "rul_mre": float(np.mean(rel)) if rel else None, "coverage_p10_p90": n_in / n_all if n_all else None,
                "n_cells": len(rows)}

    summary = summarise("model")
    summary["baselines"] = {"linear": summarise("linear"), "sqrt": summarise("sqrt"), "power_law": summarise("power_law")}
    return {"cells": cells_out, "summary": summary}
