"""Backtest of capacity forecasts on aging data in long form.

Pure pandas/NumPy; no Django. ``battloop health backtest`` is a thin wrapper.

Input columns: ``cell_id, t, capacity`` and optionally ``temperature_c, soc``
and ``cohort`` (``t`` in days for calendar aging, in cycles for cycle aging).
For every cell the series is split at ``fit_until`` (a value of ``t`` or a
fraction of the cell's observed life); the model is calibrated on the early
part of every cell of a cohort at once (cohort prior, see
:mod:`battloop.health.trajectory`; without a ``cohort`` column every cell is
one cohort) and predicts the rest. Reported per cell and overall:

* capacity error at the last observed ``t`` in percentage points;
* predicted vs actual end-of-life ``t`` and the RUL error: absolute (cycles or
  days; the same for end of life and remaining life), relative to the actual
  end-of-life ``t`` (``eol_rel_error``; its mean is the summary's ``rul_mre``, the
  "% error" of cycle-life prediction, Severson et al. 2019 eq. 7) and relative to
  the true remaining life from the split (``rul_rel_error``, the RE of the NASA
  and CALCE RUL papers; :func:`remaining_life_mre` averages it). The second is
  the stricter figure: at a split half-way through life it is about twice the
  first;
* the share of held-out points inside the P10-P90 band.

Three per-cell baselines run on the same split: linear, square-root-of-time and
power-law least-squares fits (the comparison used by Naumann et al. 2018 and
in the reference notes: fitting ≤ 365 d, power law 0.55 pp, sqrt 1.26 pp,
linear 7.6 pp MAE at 885 d).

Cells whose ``temperature_c`` or ``soc`` changes over the series (a move, a
cooling retrofit, the seasons of an outdoor cabinet) are fitted and forecast on
stress-equivalent time (:class:`StressClock`, the virtual-time rule of NREL
BLAST-Lite): the conditions of the held-out rows are known inputs, their
capacity is not. The stress law (Arrhenius temperature, SOC polynomial) is
fitted on the cohort's steady cells, or taken from a chemistry's published set
(``--chemistry``); its uncertainty widens the band after the change.

End of life is a robust crossing: the first ``t`` from which the running median
of three consecutive points stays below the threshold, so one outlier or a
capacity-regeneration spike neither ends nor extends life (CALCE and NASA
series contain both).
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..registry.tabular import TableError, sniff_csv
from .models import R_GAS, T_REF_K, UnknownChemistryError, arrhenius, get_parameters
from .trajectory import (Z_P10, Z_P90, TrajectoryError, cohort_exponent, crossing_grid, first_crossing, fit_cohort, noise_scale,
                         robust_scale)

REQUIRED = ("cell_id", "t", "capacity")
#: the per-cell fits a dashboard would run, reported next to the model on the same split
BASELINES = ("linear", "sqrt", "power_law")
OPTIONAL = ("temperature_c", "soc")
#: optional text column: cells of one cohort share the cohort prior, the form weights and the band
#: calibration; cells of different types (an NMC 18650 and an LFP prismatic) must not
COHORT = "cohort"
KINDS = ("calendar", "cycle")
#: First capacities of one cell type lie within a few per cent of each other (on the public aging
#: sets the largest step between neighbouring cells sorted by first capacity is 7.6 %, NASA B0007
#: to B0006; HUST's 38 LFP cells 1.6 %, Naumann's 17 conditions 0.1 %). A larger step splits a
#: cohort into capacity groups, which most likely are different cell types fitted as one.
CAPACITY_GROUP_STEP = 1.15


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


def parse_fit_until_list(text) -> list[str]:
    """Split points of a sweep: ``--fit-until`` with commas (``0.3,0.5,0.7``) and/or ranges
    ``start:stop:step`` (``60:110:10``, stop included), each item parsed by :func:`parse_fit_until`.

    Returns the items as text (the report names each split as given); a single value gives one item.
    """
    items = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        if ":" in part:
            bits = part.split(":")
            suffix = re.sub(r"^[0-9.]*", "", bits[0])  # 30%:70%:10% or 0.5t:...: the unit of the first bound
            try:
                a, b, step = (float(re.sub(r"[a-z%]+$", "", x.lower())) for x in bits)
            except ValueError:
                raise BacktestError(f"--fit-until {text!r}: a range is start:stop:step, e.g. 60:110:10 or 0.3:0.7:0.1") from None
            if len(bits) != 3 or step <= 0 or b < a:
                raise BacktestError(f"--fit-until {text!r}: a range is start:stop:step with step > 0 and stop >= start")
            n = int(math.floor((b - a) / step + 1e-9)) + 1
            if n > 200:
                raise BacktestError(f"--fit-until {text!r}: {n} split points; at most 200")
            items += [f"{a + i * step:.10g}{suffix}" for i in range(n)]
        else:
            items.append(part)
    if not items:
        raise BacktestError(f"--fit-until {text!r}: no split point")
    for it in items:
        parse_fit_until(it)
    return items


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


_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+\s*")
_DECIMAL_POINT = re.compile(r"\s*[+-]?\d*\.\d+([eE][+-]?\d+)?\s*")


def _decimal_commas(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns written with a decimal comma (``1,856``), as European lab tools export them
    next to a semicolon or TAB delimiter, read as numbers. A column is taken to use the decimal
    comma when some value has one and no value has a decimal point; only the values of that form
    are converted, so a stray text value still reaches :func:`validate_frame` and is named there."""
    df = df.copy()
    for col in df.columns:
        if str(col).strip().lower() not in REQUIRED[1:] + OPTIONAL or pd.api.types.is_numeric_dtype(df[col]):
            continue
        text = df[col].astype(object).where(df[col].notna())
        comma = text.map(lambda v: isinstance(v, str) and bool(_DECIMAL_COMMA.fullmatch(v)))
        point = text.map(lambda v: isinstance(v, str) and bool(_DECIMAL_POINT.fullmatch(v)))
        if comma.any() and not point.any():
            text[comma] = text[comma].str.replace(",", ".", regex=False).str.strip().astype(float)
            df[col] = text
    return df


def load_long_csv(path) -> pd.DataFrame:
    """Read a long-form CSV and check its columns (names the file and the missing column).

    The delimiter (``, ; TAB |``) and the encoding (UTF-8 with or without BOM, UTF-16, GB18030)
    are sniffed as for registry imports (:func:`battloop.registry.tabular.sniff_csv`): lab and
    NMS exports from European and Chinese tools use semicolons and GBK, and the European ones
    decimal commas (:func:`_decimal_commas`).
    """
    try:
        with open(path, "rb") as fh:
            encoding, delimiter = sniff_csv(fh.read(64 * 1024), str(path))
        df = pd.read_csv(path, sep=delimiter, encoding=encoding)
        if delimiter != ",":
            df = _decimal_commas(df)
    except FileNotFoundError:
        raise BacktestError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, TableError) as exc:
        raise BacktestError(f"{path}: not a readable CSV ({exc})") from None
    return validate_frame(df, source=str(path))


#: rejected rows named one by one in a cell's notes; the rest are counted
ROW_NOTES_SHOWN = 5


def validate_frame(df: pd.DataFrame, source: str = "input") -> pd.DataFrame:
    """Check the long-form columns and quarantine bad rows instead of failing the whole input.

    A row whose ``t`` or ``capacity`` is not a number, whose ``t`` is negative or whose capacity
    is not positive is left out; a ``temperature_c`` or ``soc`` outside its physical range is
    cleared (the gap is filled from the cell's neighbouring readings) and the capacity kept. Each
    such row's reason, with its line in ``source`` (header = line 1), is kept in the column
    ``row_note`` and reaches its cell's notes (:func:`clean_series`). A frame validated before
    (a loaded file) keeps its own line numbers and reasons.
    """
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise BacktestError(f"{source}: missing column(s) {', '.join(missing)}; expected cell_id, t, capacity [, temperature_c, soc, cohort]")
    out = pd.DataFrame({"cell_id": df["cell_id"].astype(str).to_numpy()})
    if COHORT in df.columns:
        # a blank cohort field takes the cell's cohort from its other rows (clean_series)
        out[COHORT] = [None if pd.isna(v) else (str(v).strip() or None) for v in df[COHORT].to_numpy(dtype=object)]
    out["line"] = df["line"].to_numpy() if "line" in df.columns else np.arange(len(df)) + 2
    notes = df["row_note"].to_numpy(dtype=object) if "row_note" in df.columns else np.full(len(df), None, dtype=object)

    def flag(bad, why):
        for i in np.nonzero(np.asarray(bad) & pd.isna(notes))[0]:
            notes[i] = f"{source} line {out['line'].iloc[i]}: {why(i)}"

    # a row without a usable t or capacity is left out; a bad condition only loses that field
    rejected = np.zeros(len(df), bool)
    for col in ("t", "capacity") + tuple(c for c in OPTIONAL if c in df.columns):
        raw = df[col].reset_index(drop=True)
        vals = pd.to_numeric(raw, errors="coerce")
        not_number = (vals.isna() & raw.notna()).to_numpy()
        flag(not_number, lambda i, col=col, raw=raw: f"field {col}: {raw.iloc[i]!r} is not a number")
        if col in ("t", "capacity"):
            rejected |= not_number
        out[col] = vals.astype(float).to_numpy()
    negative_t, no_capacity = (out["t"] < 0).to_numpy(), (out["capacity"] <= 0).to_numpy()
    flag(negative_t, lambda i: f"t = {out['t'].iloc[i]:g} is negative; t counts days or cycles from the start of the test")
    flag(no_capacity, lambda i: f"capacity {out['capacity'].iloc[i]:g} must be positive")
    out.loc[rejected | negative_t | no_capacity, ["t", "capacity"]] = np.nan
    for col, outside, what in (
            ("temperature_c", lambda v: (v <= -60) | (v > 120), "-60..120 C (above 120 looks like Kelvin: subtract 273.15); the temperature"),
            ("soc", lambda v: (v < 0) | (v > 1.05), "0..1 (a fraction: 50 % is 0.5); the soc")):
        if col in out:
            bad = outside(out[col]).to_numpy()
            flag(bad, lambda i, col=col, what=what: f"field {col}: {out[col].iloc[i]:g} lies outside {what} is left out, the capacity kept")
            out.loc[bad, col] = np.nan
    out["row_note"] = notes
    return out


def first_few(values, fmt=lambda v: f"{v:g}", n: int = ROW_NOTES_SHOWN) -> str:
    """The first ``n`` values for a note, with `` ...`` when there are more."""
    values = list(values)
    return ", ".join(fmt(v) for v in values[:n]) + (" ..." if len(values) > n else "")


def row_notes(g: pd.DataFrame) -> list[str]:
    """The quarantine notes of one cell's rows (:func:`validate_frame`): the first few by line, then a count."""
    if "row_note" not in g.columns:
        return []
    found = [n for n in g["row_note"] if isinstance(n, str)]
    shown = found[:ROW_NOTES_SHOWN]
    if len(found) > len(shown):
        shown.append(f"... and {len(found) - len(shown)} more row(s) with a problem (first ones above)")
    return shown


@dataclass
class CleanSeries:
    cell_id: str
    t: np.ndarray
    cap: np.ndarray
    first_capacity: float
    notes: list
    temperature_c: float | None = None
    soc: float | None = None
    #: every row with a t, capacity or not (a superset of ``t``): the conditions the stress clock
    #: integrates, gaps filled from the neighbours
    cond_t: np.ndarray | None = None
    cond_temp_c: np.ndarray | None = None
    cond_soc: np.ndarray | None = None
    #: the cohort the cell is fitted with (None: the input names none)
    cohort: str | None = None


def clean_series(cell_id: str, g: pd.DataFrame) -> CleanSeries:
    """Sort and merge duplicate times of one cell and set its reference (first) capacity.

    Out-of-order rows are sorted (noted), repeated ``t`` values are averaged,
    rows with NaN capacity or t are dropped (noted). Isolated outliers are
    judged later, inside each fit window only (:func:`outlier_free`), so the
    held-out rows cannot decide which fitted points count; they are left out
    of the fit but still scored. End of life is a robust crossing of its own
    (:func:`robust_eol`), so single-cycle dips (CALCE CS2_38 at cycle 118) do
    not count as end of life.
    """
    notes = row_notes(g)
    cohort = None
    if COHORT in g.columns:
        names = [c for c in pd.unique(g[COHORT]) if isinstance(c, str)]
        if len(names) > 1:
            notes.append(f"rows name {len(names)} cohorts ({', '.join(names[:3])}{' ...' if len(names) > 3 else ''}): "
                         f"fitted with the first, {names[0]}")
        cohort = names[0] if names else None
    # rows with conditions but no capacity still tell the stress clock what the cell went through
    cond_cols = [c for c in OPTIONAL if c in g.columns]
    cond = g.dropna(subset=["t"]).groupby("t", sort=True)[cond_cols].mean() if cond_cols else None
    no_capacity = g["capacity"].isna() & g["t"].notna()
    if "row_note" in g.columns:  # rows quarantined for a reason are already named above
        no_capacity &= g["row_note"].isna()
    n_cond_only = int(no_capacity.sum())
    empty_lines = g.loc[no_capacity, "line"].tolist() if "line" in g.columns else []
    g = g.dropna(subset=["t", "capacity"])
    if len(g) == 0:
        raise BacktestError(f"cell {cell_id}: no row with both t and capacity" + (f" ({'; '.join(notes)})" if notes else ""))
    if not g["t"].is_monotonic_increasing:
        notes.append("rows were not in time order and were sorted")
        g = g.sort_values("t", kind="stable")
    if g["t"].duplicated().any():
        notes.append("repeated t values were averaged")
    agg = g.groupby("t", sort=True).mean(numeric_only=True)
    t = agg.index.to_numpy(dtype=float)
    cap = agg["capacity"].to_numpy(dtype=float)
    # the first capacity is the reference of every relative figure: the first point, unless the
    # median of the first three (robust to one outlier among them) differs from it by more than 2 %
    first = float(np.median(cap[:3])) if cap.size >= 3 and abs(cap[0] - np.median(cap[:3])) > 0.02 * cap[0] else float(cap[0])
    temp = float(np.nanmean(agg["temperature_c"])) if "temperature_c" in agg and np.isfinite(agg["temperature_c"]).any() else None
    soc = float(np.nanmean(agg["soc"])) if "soc" in agg and np.isfinite(agg["soc"]).any() else None
    if "temperature_c" in agg and agg["temperature_c"].isna().any() and temp is not None:
        notes.append("NaN temperatures ignored (filled from the neighbouring readings; their mean describes the cell)")
    cond_t = cond.index.to_numpy(float) if cond is not None else None
    cond_temp = _fill_rows(cond_t, cond["temperature_c"].to_numpy(float)) if temp is not None else None
    cond_soc = _fill_rows(cond_t, cond["soc"].to_numpy(float)) if soc is not None else None
    if n_cond_only and (cond_temp is not None or cond_soc is not None):
        notes.append(f"{n_cond_only} row(s) without capacity kept for their conditions")
    elif n_cond_only:
        shown = first_few(empty_lines, fmt=lambda line: str(int(line)))
        notes.append(f"{n_cond_only} row(s) without a capacity value left out" + (f" (line {shown})" if shown else ""))
    return CleanSeries(cell_id, t, cap, first, notes, temp, soc, cond_t, cond_temp, cond_soc, cohort)


def first_capacity_groups(first_ah: dict) -> list[list]:
    """Cells grouped by first capacity, split wherever the sorted values step up by more than
    :data:`CAPACITY_GROUP_STEP`; smallest first. One group when the cohort is homogeneous."""
    order = sorted(first_ah, key=first_ah.get)
    groups = []
    for i, cid in enumerate(order):
        if i == 0 or first_ah[cid] > CAPACITY_GROUP_STEP * first_ah[order[i - 1]]:
            groups.append([])
        groups[-1].append(cid)
    return groups


def cohort_warnings_of(cells: list) -> list[str]:
    """Each different ``cohort_warning`` of a report's cells once, in the order of the cells."""
    return list(dict.fromkeys(c["cohort_warning"] for c in cells if "cohort_warning" in c))


def describe_capacity_groups(groups: list[list], first_ah: dict) -> str:
    """'1.17-1.23 Ah: 6 cells, 1.86-2.04 Ah: 4 cells'"""
    def one(g):
        lo, hi = min(first_ah[c] for c in g), max(first_ah[c] for c in g)
        dec = max(0, 2 - int(np.floor(np.log10(hi))))  # three significant digits, the same for both ends
        span = f"{lo:.{dec}f} Ah" if f"{lo:.{dec}f}" == f"{hi:.{dec}f}" else f"{lo:.{dec}f}-{hi:.{dec}f} Ah"
        return f"{span}: {len(g)} cell{'s' if len(g) > 1 else ''}"
    return ", ".join(one(g) for g in groups)


def outlier_free(cap) -> np.ndarray:
    """False for isolated outliers: points further than 6 robust sigmas from the median of their
    three neighbours on either side (held at the ends). Needs 7 points; the first point, the
    reference capacity, is always kept."""
    cap = np.asarray(cap, float)
    keep = np.ones(cap.size, bool)
    if cap.size >= 7:
        k = 3
        pad = np.pad(cap, k, mode="edge")
        med = np.array([np.median(np.delete(pad[i : i + 2 * k + 1], k)) for i in range(cap.size)])
        resid = cap - med
        # floor at 0.3 % of capacity: smooth, averaged check-up data (a fast first
        # drop after formation) must not be mistaken for outliers
        s = max(robust_scale(resid), 3e-3 * np.median(cap))
        keep = np.abs(resid) <= 6 * s
        keep[0] = True
    return keep


def _fill_rows(t, v):
    """Per-row values with NaN gaps filled by interpolation in ``t`` (held flat beyond the ends)."""
    ok = np.isfinite(v)
    return v if ok.all() else np.interp(t, t[ok], v[ok])


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


# ---------------------------------------------------------------- stress-equivalent time

#: a cell's conditions vary when its temperature spans more than this (K) or its SOC more than SOC_SPAN
TEMP_SPAN_K = 1.0
SOC_SPAN = 0.02
#: a cell counts as held at one condition (usable for estimating the stress law) within these spans
STEADY_TEMP_SPAN_K = 2.0
STEADY_SOC_SPAN = 0.05
#: activation energies outside this range (J/mol, on the loss coefficient) are not believed
EA_RANGE_J_MOL = (1_000.0, 150_000.0)


@dataclass(frozen=True)
class StressLaw:
    """How much faster aging time runs at (T, SOC) than at 25 C and SOC 0.5.

    For a loss ``L = k(T, SOC) t^b`` the virtual-time rule of NREL BLAST-Lite
    (:func:`battloop.health.models.integrate_power_law`) makes a varying stress
    history equivalent to ``L = k_ref (sum_i f_i dt_i)^b`` with the time factor
    ``f = (k / k_ref)^(1/b)``. Here ``ln f = (Ea / b) / R (1/T_ref - 1/T) + g(SOC)``:
    Arrhenius temperature stress (Arrhenius 1889) on the loss coefficient and
    ``g`` either a quadratic in SOC fitted on the cohort or, for a chemistry's
    published set, ``ln(s(SOC) / s(0.5)) / p`` of its SOC polynomial.
    """

    ea_j_mol: float  # on the loss coefficient
    b: float  # time exponent of the loss law
    source: str
    soc_log_coefs: tuple = (0.0, 0.0)  # cohort fit: g = c1 (soc - 0.5) + c2 (soc^2 - 0.25), already per unit of ln f
    soc_poly: tuple | None = None  # chemistry set: (s0, s1, s2), g = ln(s(soc) / s(0.5)) / b
    #: scatter of single conditions around the law, in ln of the loss coefficient (the cohort regression's
    #: residual sd; for a published set, the 20 % by which one cell's rate commonly departs from it)
    condition_sd: float = 0.2
    #: covariance of the fitted slopes (1/T, SOC, SOC^2 columns; zeros for a published set)
    slope_cov: tuple = ()
    #: a published cycle law's cold (lithium plating) branch: below 25 C the loss coefficient follows
    #: ``exp(+Ea_cold/R (1/T - 1/T_ref))`` where that is larger (:func:`battloop.health.models.cycle_temperature_factor`)
    ea_cold_j_mol: float | None = None

    def change_sd(self, temp_from, soc_from, temp_to, soc_to) -> float:
        """sd of ln(time factor at the new condition / at the old one), in units of ln f.

        Slope uncertainty of the law plus the scatter of single conditions around it; a
        condition close to the fitted one shares its deviation, so the scatter term enters in
        full only once the law changes the loss coefficient by a factor 2 or more.
        """
        soc_from = 0.5 if soc_from is None else float(np.clip(soc_from, 0.0, 1.0))
        soc_to = 0.5 if soc_to is None else float(np.clip(soc_to, 0.0, 1.0))
        lk = self.b * (self.log_factor(temp_to, soc_to) - self.log_factor(temp_from, soc_from))
        var = 2.0 * self.condition_sd**2 * min(1.0, abs(float(lk)) / np.log(2.0))
        if self.slope_cov:
            cov = np.array(self.slope_cov)
            n_soc = cov.shape[0] - 1
            d = np.subtract(_stress_design(temp_to, soc_to, n_soc), _stress_design(temp_from, soc_from, n_soc))
            var += float(d @ cov @ d)
        return float(np.sqrt(var)) / self.b

    def log_factor(self, temp_c, soc=None):
        k = arrhenius(temp_c, self.ea_j_mol)
        if self.ea_cold_j_mol is not None:
            k = np.maximum(k, arrhenius(temp_c, -self.ea_cold_j_mol))
        lf = np.log(k) / self.b
        if soc is not None:
            x = np.clip(np.asarray(soc, float), 0.0, 1.0)
            if self.soc_poly is not None:
                s0, s1, s2 = self.soc_poly

                def s(v):
                    return np.maximum(s0 + s1 * v + s2 * v**2, 1e-3)

                lf = lf + np.log(s(x) / s(0.5)) / self.b
            else:
                c1, c2 = self.soc_log_coefs
                lf = lf + c1 * (x - 0.5) + c2 * (x**2 - 0.25)
        return lf

    @property
    def uses_soc(self) -> bool:
        return self.soc_poly is not None or any(c != 0.0 for c in self.soc_log_coefs)

    def describe(self) -> str:
        soc = "; SOC stress from the same fit" if self.soc_poly is None and self.uses_soc else (
            "; SOC stress of the chemistry set" if self.soc_poly is not None else "; SOC not used")
        cold = "" if self.ea_cold_j_mol is None else f" above 25 C, {self.ea_cold_j_mol / 1000:.1f} kJ/mol rising as T falls below it"
        return f"Arrhenius Ea {self.ea_j_mol / 1000:.1f} kJ/mol{cold} on the loss coefficient, time exponent {self.b:.2f} ({self.source}){soc}"


def _stress_design(temp_c, soc, n_soc: int) -> list:
    """Columns of the stress regression at one condition: ``1/T_ref - 1/T`` and, with ``n_soc``
    SOC terms, ``SOC - 0.5`` and ``SOC^2 - 0.25`` (intercept not included)."""
    row = [1.0 / T_REF_K - 1.0 / (float(temp_c) + 273.15)]
    if n_soc >= 1:
        row.append(float(soc) - 0.5)
    if n_soc >= 2:
        row.append(float(soc) ** 2 - 0.25)
    return row


def conditions_vary(s: CleanSeries) -> bool:
    """Whether a cell's temperature or SOC changes over its series (then its time axis needs the stress law)."""
    t_var = s.cond_temp_c is not None and np.ptp(s.cond_temp_c) > TEMP_SPAN_K
    soc_var = s.cond_soc is not None and np.ptp(s.cond_soc) > SOC_SPAN
    return bool(t_var or soc_var)


def fit_stress_law(cells, b: float):
    """Estimate the cohort's stress law from cells held at different steady conditions.

    ``cells`` is a list of ``(t, y, temp_c, soc)`` fit windows (``y`` relative capacity,
    per-row conditions or None). Each steady cell's loss coefficient ``A`` in
    ``y = c - A (t / t_ref)^b`` (common ``t_ref`` and the cohort exponent ``b``, so the
    coefficients compare) is regressed, weighted by its signal-to-noise ratio, on
    ``1/T`` and, when the cohort spans three SOC levels or more, on SOC and SOC^2
    (the Arrhenius/SOC-polynomial law of Naumann et al. 2018, J. Energy Storage 17:153).
    Returns ``(StressLaw, None)`` or ``(None, reason)``.
    """
    steady = [c for c in cells if c[2] is not None and np.ptp(c[2]) <= STEADY_TEMP_SPAN_K and len(c[0]) >= 3
              and (c[3] is None or np.ptp(c[3]) <= STEADY_SOC_SPAN)]
    if not steady:
        return None, "no cell is held at a steady temperature in its fit window"
    t_ref = float(np.median([c[0][-1] for c in steady])) or 1.0
    rows = []
    for t, y, temp, soc in steady:
        X = np.column_stack([np.ones(t.size), -((t / t_ref) ** b)])
        (_, a), *_ = np.linalg.lstsq(X, y, rcond=None)
        snr = a * (t[-1] / t_ref) ** b / noise_scale(y)
        if a > 0 and snr >= 3:
            rows.append((np.log(a), float(np.mean(temp)), None if soc is None else float(np.mean(soc)), min(snr, 50.0)))
    temps = {round(r[1]) for r in rows}
    if len(temps) < 3 or max(temps) - min(temps) < 10:
        return None, (f"the cells with a clear fade are held at {len(temps)} temperature level(s) "
                      f"({', '.join(f'{v:g}' for v in sorted(temps)) or 'none'} C): an activation energy needs 3 or more over 10 K or more")
    socs = {round(r[2], 2) for r in rows if r[2] is not None}
    use_soc = 0 if any(r[2] is None for r in rows) else 1 if len(socs) == 2 else 2 if len(socs) >= 3 else 0
    X = [[1.0] + _stress_design(r[1], r[2], use_soc) for r in rows]
    X, Y, W = np.array(X), np.array([r[0] for r in rows]), np.sqrt([r[3] for r in rows])
    if len(rows) < X.shape[1] + 2:
        return None, f"{len(rows)} cells with a clear fade are too few to fit {X.shape[1]} stress parameters"
    Xw, Yw = X * W[:, None], Y * W
    beta, *_ = np.linalg.lstsq(Xw, Yw, rcond=None)
    dof = max(len(rows) - X.shape[1], 1)
    s2 = float(np.sum((Yw - Xw @ beta) ** 2) / np.sum(W**2) * len(rows) / dof)  # weighted residual variance of one condition
    cov = np.linalg.pinv(Xw.T @ Xw) * float(np.sum((Yw - Xw @ beta) ** 2) / dof)
    ea = float(beta[1] * R_GAS)
    if not EA_RANGE_J_MOL[0] <= ea <= EA_RANGE_J_MOL[1]:
        return None, f"the cohort's fitted activation energy {ea / 1000:.1f} kJ/mol lies outside {EA_RANGE_J_MOL[0] / 1000:g}-{EA_RANGE_J_MOL[1] / 1000:g} kJ/mol"
    coefs = (float(beta[2]) / b if use_soc >= 1 else 0.0, float(beta[3]) / b if use_soc == 2 else 0.0)
    return StressLaw(ea, b, f"fitted on {len(rows)} steady cells at {len(temps)} temperatures", soc_log_coefs=coefs,
                     condition_sd=float(np.sqrt(s2)), slope_cov=tuple(map(tuple, cov[1:, 1:]))), None


def chemistry_stress_law(chemistry: str, kind: str) -> StressLaw:
    """The stress law of a chemistry's published parameter set (:data:`battloop.health.models.PARAMETER_SETS`)."""
    if str(chemistry).strip().upper() == "GENERIC":
        raise BacktestError("--chemistry GENERIC: the generic model is an envelope of the LFP and NMC laws, not one stress law; "
                            "pass LFP or NMC")
    try:
        p = get_parameters(chemistry)
    except UnknownChemistryError as exc:
        raise BacktestError(f"--chemistry: {exc}") from None
    if kind == "calendar":
        return StressLaw(p.ea_cal_j_mol, p.p_cal, f"{p.chemistry} set: {p.source}", soc_poly=tuple(p.soc_poly))
    return StressLaw(p.ea_cyc_j_mol, p.p_cyc, f"{p.chemistry} set: {p.source}", ea_cold_j_mol=p.ea_cyc_cold_j_mol)


def _interval_mean(v, dt, rows, default):
    """Time-weighted mean of per-row values over ``rows`` (row i holds over ``(t[i-1], t[i]]``, length ``dt[i]``)."""
    w = dt[rows]
    return float(np.sum(v[rows] * w) / np.sum(w)) if np.sum(w) > 0 else default


@dataclass
class StressClock:
    """A cell's stress-equivalent time ``tau`` at its rows and beyond them.

    The interval ``(t[i-1], t[i]]`` runs at the factor of row ``i`` (a row reports the
    conditions since the previous one, as check-up tables do). Factors are divided by
    their time-weighted mean over the fit window, so ``tau = t`` there on average and a
    cell held at one condition keeps ``tau = t`` exactly. Beyond the last row the
    conditions stay at the mean of the held-out rows. Crossing times are found on a
    grid of ``t``, so no inverse map is needed.
    """

    t: np.ndarray
    tau: np.ndarray
    rate_after: float  # d tau / d t beyond the last row
    t_fit_end: float = 0.0  # last row of the fit window
    #: sd of ln(pace after the fit window / pace in it), from the stress law's uncertainty
    sd_log_pace: float = 0.0

    @classmethod
    def build(cls, t, log_f, cut, sd_log_pace=0.0, t_fit_end=None):
        t = np.asarray(t, float)
        f = np.exp(log_f - np.max(log_f))
        dt = np.diff(t, prepend=0.0)
        fit = t <= cut + 1e-9
        g = f / _interval_mean(f, dt, fit, float(f[0]))
        tau = np.cumsum(g * dt)
        rate_after = _interval_mean(g, dt, ~fit, float(g[-1]))
        # the band's pace uncertainty starts after the last fitted row (the fit pins tau up to there)
        if t_fit_end is None:
            t_fit_end = float(t[fit][-1]) if fit.any() else float(t[0])
        return cls(t, tau, rate_after, float(t_fit_end), float(sd_log_pace))

    def tau_band(self, t, z):
        """``tau`` with the pace beyond the fit window moved by ``z`` sds of the stress law."""
        tau = self.tau_of(t)
        tau_cut = float(self.tau_of(np.array([self.t_fit_end]))[0])
        return np.where(tau > tau_cut, tau_cut + (tau - tau_cut) * np.exp(z * self.sd_log_pace), tau)

    def quantiles(self, fit, t, z=(Z_P10, 0.0, Z_P90)):
        """Quantiles at ``t`` of a :class:`~battloop.health.trajectory.SeriesFit` fitted on ``tau``.

        The stress law's uncertainty enters as a spread of the median between the paces
        at -/+ one P10/P90 step of ``sd_log_pace``, added in quadrature to the fit's own sd.
        """
        t = np.atleast_1d(np.asarray(t, float))
        tau = self.tau_of(t)
        mu = fit.mean(tau)
        law = np.abs(fit.mean(self.tau_band(t, Z_P90)) - fit.mean(self.tau_band(t, Z_P10))) / (Z_P90 - Z_P10)
        sd = np.sqrt(fit.sd(tau) ** 2 + law**2)
        return np.array([mu + zi * sd for zi in z])

    def tau_of(self, t):
        t = np.asarray(t, float)
        inside = np.interp(t, self.t, self.tau)
        return np.where(t > self.t[-1], self.tau[-1] + (t - self.t[-1]) * self.rate_after, inside)


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
    grid = crossing_grid(t_start, t_max)
    mu, sd = f(grid)
    return [float(v) for v in first_crossing(grid, np.stack([mu + Z_P10 * sd, mu, mu + Z_P90 * sd]), threshold)]


# ---------------------------------------------------------------- main entry


def _stress_clocks(fit_set, test_set, kind, chemistry):
    """Put the cells whose conditions vary on stress-equivalent time.

    Rewrites those cells' fit windows in ``fit_set`` in place and adds a note to every
    varying cell. Returns ``({cell_id: StressClock}, {cell_id: stress law used, or why none})``.
    """
    varying = [cid for cid, (s, _, _) in test_set.items() if conditions_vary(s)]
    if chemistry is not None:
        fallback = chemistry_stress_law(chemistry, kind)  # checked even when unused: a wrong name is an error
    if not varying:
        return {}, {}
    raw = dict(fit_set)  # fit_set is rewritten below
    tau0 = float(np.median([t.max() for t, _ in raw.values()])) or 1.0
    b, _ = cohort_exponent(raw, tau0, kind)
    cells = []
    for cid, (t, y) in raw.items():
        s = test_set[cid][0]
        # the fit rows' own conditions (every capacity row's t is one of the condition rows)
        cells.append((t, y, None if s.cond_temp_c is None else np.interp(t, s.cond_t, s.cond_temp_c),
                      None if s.cond_soc is None else np.interp(t, s.cond_t, s.cond_soc)))
    law, why = fit_stress_law(cells, b)
    if law is None and chemistry is not None:
        law, why = fallback, f"the cohort gives no stress law ({why}); --chemistry {chemistry} set used"
    soc_varies = any(s.cond_soc is not None and np.ptp(s.cond_soc) > SOC_SPAN for s, _, _ in (test_set[c] for c in varying))
    if law is not None and soc_varies and not law.uses_soc:
        if chemistry is not None and fallback.soc_poly is not None:
            # temperature from the cohort, SOC stress from the published set
            law = dataclasses.replace(law, soc_poly=fallback.soc_poly, source=f"{law.source}; SOC stress from the {chemistry} set")
        else:
            why = ((why + "; ") if why else "") + ("SOC changes but the cohort's steady cells are held at one SOC level, so its "
                                                   "effect is not modelled (pass --chemistry LFP or NMC for a calendar SOC law)")
    clocks = {}
    for cid in varying:
        s, cut, note = test_set[cid]
        if law is None:
            note.append("temperature or SOC varies over this cell but no stress law is available (see the stress law); fitted on plain t")
            continue
        ct = s.cond_t
        temp = s.cond_temp_c if s.cond_temp_c is not None else np.full(ct.size, 25.0)
        soc = s.cond_soc if law.uses_soc else None
        # time-weighted mean conditions in and after the fit window
        dt = np.diff(ct, prepend=0.0)
        fit_rows = ct <= cut + 1e-9

        def mean(v, rows):
            return None if v is None else _interval_mean(v, dt, rows, float(v[rows][-1]))
        sd = law.change_sd(mean(temp, fit_rows), mean(soc, fit_rows), mean(temp, ~fit_rows), mean(soc, ~fit_rows))
        clock = StressClock.build(ct, law.log_factor(temp, soc), cut, sd, t_fit_end=float(fit_set[cid][0][-1]))
        t_fit, y_fit = fit_set[cid]
        fit_set[cid] = (clock.tau_of(t_fit), y_fit)
        clocks[cid] = clock
        note.append(f"conditions vary: fitted and forecast on stress-equivalent time (see the stress law); after the fit window "
                    f"time runs {clock.rate_after:.2f}x its pace on average, and beyond the last row conditions stay at the held-out mean")
    if law is None:
        text = f"none: {why}; pass --chemistry LFP or NMC to use a published one"
    else:
        text = law.describe() + (f"; {why}" if why else "")
    return clocks, {cid: text for cid in varying}


def remaining_life_mre(report: dict, method: str = "model") -> float | None:
    """Mean RUL error relative to the true remaining life from the split, ``|pred - actual| / (actual - split)``,
    over the cells that reached end of life after the split (uncapped; Zhou et al. cap it at 1)."""
    rel = [c[method]["rul_rel_error"] for c in report["cells"] if c.get("status") == "ok" and "rul_rel_error" in c.get(method, {})]
    return float(np.mean(rel)) if rel else None


def run_backtest(df: pd.DataFrame, kind: str, eol, fit_until, capacity_unit: str = "auto", horizon_factor: float = 10.0,
                 chemistry: str | None = None) -> dict:
    """Run the backtest; returns the JSON-ready report (``cells`` and ``summary``).

    ``eol`` and ``fit_until`` accept the strings of the CLI or parsed specs.

    Cells whose ``temperature_c`` or ``soc`` changes over the series are fitted and
    forecast on stress-equivalent time (:class:`StressClock`): the held-out rows'
    conditions are known inputs, their capacity is not. The stress law is fitted
    on the cohort's steady cells (:func:`fit_stress_law`); when the cohort cannot
    give one, ``chemistry`` (LFP, NMC) selects a published set, and without either
    the cell keeps plain ``t`` and its notes say why. Cells held at one condition
    are unaffected (their per-cell rate absorbs a constant stress).
    """
    if kind not in KINDS:
        raise BacktestError(f"--kind {kind!r}: use 'calendar' (t in days) or 'cycle' (t in cycles)")
    eol = eol if isinstance(eol, EolSpec) else parse_eol(eol)
    split = fit_until if isinstance(fit_until, SplitSpec) else parse_fit_until(fit_until)
    df = validate_frame(df)
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
        bad = [n for n in df["row_note"] if isinstance(n, str)]
        raise BacktestError("no cell has a row with both t and capacity"
                            + (f": {len(bad)} row(s) were rejected, the first: {bad[0]}" if bad else ""))

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
        # outliers are judged inside the fit window only: a point at the split must not be kept or
        # dropped because of what the held-out points do after it
        in_window = s.t <= cut + 1e-9
        m = in_window.copy()
        m[in_window] = outlier_free(s.cap[in_window])
        dropped = s.t[in_window & ~m]
        n_out = dropped.size
        if n_out:
            shown = first_few(dropped)
            note.append(f"{n_out} isolated outlier point(s) left out of the fit (still scored) at t = {shown}")
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
    # each cohort is calibrated on its own cells: the stress law, the cohort prior, the form weights, the band
    groups: dict = {}
    for cid, (s, _, _) in test_set.items():
        groups.setdefault(s.cohort, []).append(cid)
    clocks, stress_laws, cohorts, cohort_warnings = {}, {}, {}, {}
    for name, members in groups.items():
        if capacity_unit == "ah":
            # a cohort's cells share its prior, form weights and band: two cell types in one spoil
            # both (NASA 18650s pooled with HUST LFP cells: the HUST cells' RUL error relative to the
            # remaining life 0.16 -> 0.56). Capacities far apart are the visible sign: every cell of the cohort says so.
            first_ah = {cid: test_set[cid][0].first_capacity for cid in members}
            cap_groups = first_capacity_groups(first_ah)
            if len(cap_groups) > 1:
                where = "in a cohort column" if name is None else f"in the cohort column (all are {name!r} now)"
                warning = (f"first capacities fall into {len(cap_groups)} groups fitted as one cohort "
                           f"({describe_capacity_groups(cap_groups, first_ah)}): if these are different cell types, "
                           f"give each its own name {where}")
                cohort_warnings.update(dict.fromkeys(members, warning))
        fit_g = {cid: fit_set[cid] for cid in members}
        clocks_g, laws_g = _stress_clocks(fit_g, {cid: test_set[cid] for cid in members}, kind, chemistry)
        fit_set.update(fit_g)  # cells on stress time have their fit window rewritten
        clocks.update(clocks_g)
        stress_laws.update(laws_g)
        try:
            cf = fit_cohort(fit_g, kind=kind)
        except TrajectoryError as exc:
            if len(groups) == 1:
                raise BacktestError(str(exc)) from None
            for cid in members:
                cells_out.append({"cell_id": cid, "status": "skipped", "cohort": name, "reason": f"cohort {name}: {exc}",
                                  "notes": test_set.pop(cid)[2]})
            continue
        cohorts.update({cid: cf for cid in members})

    methods = ("model",) + BASELINES
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
        if s.cohort is not None or COHORT in df.columns:
            cell["cohort"] = s.cohort
        if cid in cohort_warnings:
            cell["cohort_warning"] = cohort_warnings[cid]
        if cid in stress_laws:
            cell["stress_law"] = stress_laws[cid]
        if actual_eol is not None and actual_eol <= cut:
            cell["notes"] = note + ["end of life already reached inside the fit window: left out of the RUL figures"]
        for meth in methods:
            if meth == "model":
                cohort = cohorts[cid]
                clock = clocks.get(cid)
                if clock is None:
                    lo, mid, hi = cohort.quantiles(cid, t_te)
                    qlast = cohort.quantiles(cid, np.array([s.t[-1]]))[1][0]
                    cross = cohort.crossing_times(cid, thr, t_max=t_max)
                else:
                    sf = cohort.fits[cid]
                    lo, mid, hi = clock.quantiles(sf, t_te)
                    qlast = clock.quantiles(sf, np.array([s.t[-1]]))[1][0]
                    grid = crossing_grid(cut, t_max)
                    cross = [float(v) for v in first_crossing(grid, clock.quantiles(sf, grid), thr)]
                    cell["time_axis"] = "stress_equivalent"
                    cell["stress_pace_after_fit"] = clock.rate_after
                extra = {"b": cohort.fits[cid].b, "rate_multiplier": cohort.fits[cid].rate_multiplier, "form_weights": dict(cohort.fits[cid].weights),
                         "knee_pool": cohort.knee_pool}
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
        cells_out.append(cell)

    summary = summarise_cells(cells_out, "model")
    summary["baselines"] = {name: summarise_cells(cells_out, name) for name in BASELINES}
    return {"cells": cells_out, "summary": summary}


def summarise_cells(cells: list, method: str = "model") -> dict:
    """The summary figures of one method over the scored cells of a report (all of them, or one cohort's)."""
    rows = [(c[method], c["n_test"]) for c in cells if c.get("status") == "ok"]
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


#: the sweep's figures: the summary's, and the RUL error relative to the remaining life
SWEEP_KEYS = ("capacity_mae_pp", "rul_mae", "rul_mre", "coverage_p10_p90", "rul_rel_mean")


def run_backtest_sweep(df: pd.DataFrame, kind: str, eol, fit_until_items, **kw) -> dict:
    """The backtest at several split points (:func:`parse_fit_until_list`), and their means.

    One split is one draw: the held-out errors of cells that share test sessions or a cohort fit are
    correlated, so a single split's coverage or RUL error swings from one split point to the next.
    Returns ``splits`` (each split's ``fit_until`` and ``summary``, with ``rul_rel_mean``, the RUL
    error relative to the remaining life) and ``mean`` per method: the mean of each summary figure
    over the splits that have it, coverage's lowest and highest value, and for the baselines the
    number of splits where the model's figure is lower (``model_better``); ``warnings``: each
    different ``cohort_warning`` of the splits' cells once.
    """
    splits, warnings = [], {}
    for item in fit_until_items:
        report = run_backtest(df, kind, eol, item, **kw)
        warnings.update(dict.fromkeys(cohort_warnings_of(report["cells"])))
        summary = report["summary"]
        summary["rul_rel_mean"] = remaining_life_mre(report)
        for name, b in summary["baselines"].items():
            b["rul_rel_mean"] = remaining_life_mre(report, name)
        splits.append({"fit_until": item, "summary": summary})

    def figures(pick):
        rows = [pick(sp["summary"]) for sp in splits]
        out = {}
        for k in SWEEP_KEYS:
            v = [r[k] for r in rows if r.get(k) is not None]
            out[k] = float(np.mean(v)) if v else None
            out[f"n_{k}"] = len(v)
        cov = [r["coverage_p10_p90"] for r in rows if r.get("coverage_p10_p90") is not None]
        out["coverage_min"], out["coverage_max"] = (float(min(cov)), float(max(cov))) if cov else (None, None)
        return out

    mean = {"model": figures(lambda s: s)}
    for name in BASELINES:
        mean[name] = figures(lambda s, n=name: s["baselines"][n])
        better = {}
        for k in ("capacity_mae_pp", "rul_mae", "rul_rel_mean"):
            pairs = [(sp["summary"][k], sp["summary"]["baselines"][name][k]) for sp in splits]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            better[k] = {"model_better": sum(a < b for a, b in pairs), "of": len(pairs)}
        mean[name]["model_better"] = better
    return {"splits": splits, "mean": mean, "warnings": list(warnings)}
