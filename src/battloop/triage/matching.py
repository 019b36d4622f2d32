"""Second-life matching: group graded packs into strings and assign them to demands.

Supply: graded packs at outlets (class A, routed to reuse). Demands: rural BTS backup,
micro-grids, community storage — energy, voltage, minimum SOH, chemistries allowed,
location and warranty terms. DOMAIN.md §4: second-life systems group packs of similar
capacity and resistance into strings; typical second-life warranty "1–2 years or 1,000
cycles to 70 % residual capacity".

Model
-----
1. **Strings.** At each outlet, packs of one chemistry and nominal voltage are sorted by
   capacity and cut into strings of ``string_packs`` packs whose capacity spread
   (max/min − 1) and resistance spread stay within the settings. A string's energy is
   ``n · V · min(capacity)`` — the weakest pack limits it, so a loose string is worth less.
2. **Life.** A string keeps its energy until its weakest SOH fades to the demand's
   warranty end-of-life SOH: ``years = (soh_min − end_soh) / fade``, with
   ``fade = calendar fade per year + cycles per year × fade per cycle`` (chemistry
   settings; float-charged LFP ages mostly by calendar, DOMAIN §3). A string is eligible
   for a demand only if it outlives the warranty (years, or cycles at the demand's
   cycling rate, whichever ends first), meets the minimum SOH, the chemistry and the
   voltage (the demand voltage must be a whole multiple of the pack voltage that divides
   the string), and lies within ``max_distance_km``.
3. **Assignment** (a MILP solved with HiGHS). A demand of ``E_d`` kWh is a bank of
   ``k_d = ceil(E_d / e_ref)`` strings in parallel, each of at least ``E_d / k_d`` kWh
   (``e_ref``: the median string energy, or a setting), so a served bank always holds
   its energy. Strings of one outlet, chemistry, voltage and SOH band are
   interchangeable, so the model counts strings per class: ``n[c,d]`` integer,
   ``y[d]`` binary (demand served in full or not at all).
   maximize  Σ n[c,d] · (kWh·years[c,d] − λ_km · km[c,d] − λ_soh · max(0, soh[c] − min_soh[d]))
   s.t.      Σ_d n[c,d] ≤ strings[c];  Σ_c n[c,d] = k_d · y_d.
   Class values are conservative (the band's weakest string), so every realized
   assignment delivers at least what the model counts. HiGHS reports the objective and
   its dual bound; the gap is (bound − objective) / |objective|. A greedy baseline
   (largest demands first, best-value strings first) is solved on the same model and
   reported alongside.

Distances are great-circle (haversine) km; the objective is in kWh·years, with transport
and SOH-mismatch costs converted by the ``λ`` settings.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Mapping

import numpy as np
import pandas as pd
from battloop.logistics.geo import haversine_km  # one great-circle formula for the product
from battloop.logistics.milp import new_highs



class MatchingError(ValueError):
    """Matching input is invalid; the message names the table, row and field."""


# --------------------------------------------------------------------------- warranty terms
@dataclass(frozen=True)
class WarrantyTerms:
    """Second-life warranty terms, e.g. "2 years or 1,000 cycles to 70%" (ends at whichever comes first)."""

    years: float | None
    cycles: int | None
    end_soh_pct: float
    years_min: float | None = None
    text: str = ""

    def duration_years(self, cycles_per_year: float) -> float:
        """Years the warranty runs at a given cycling rate (the first of its limits to be reached)."""
        limits = []
        if self.years is not None:
            limits.append(self.years)
        if self.cycles is not None and cycles_per_year > 0:
            limits.append(self.cycles / cycles_per_year)
        return min(limits) if limits else 0.0

    def status(self, start: date, as_of: date, cycles_done: float | None = None,
               soh_pct: float | None = None) -> str:
        """``active``, ``expired_years``, ``expired_cycles`` or ``claim`` (SOH fell below the
        warranted residual capacity while the warranty ran)."""
        if as_of < start:
            raise ValueError(f"as_of {as_of} is before the warranty start {start}")
        if self.years is not None and (as_of - start).days / 365.25 >= self.years:
            return "expired_years"
        if self.cycles is not None and cycles_done is not None and cycles_done >= self.cycles:
            return "expired_cycles"
        if soh_pct is not None and soh_pct < self.end_soh_pct:
            return "claim"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NUM = r"(\d+(?:[.,]\d+)*)"
_YEARS_RE = re.compile(_NUM + r"\s*(?:(?:-|–|—|to|~)\s*" + _NUM + r"\s*)?(?:years?|yrs?|y\b|年)", re.I)
_MONTHS_RE = re.compile(_NUM + r"\s*(?:months?|个月|月)", re.I)
_CYCLES_RE = re.compile(_NUM + r"\s*(?:full\s+|equivalent\s+)?(?:cycles?|次循环|次)", re.I)
_SOH_RE = re.compile(r"(?:to|至|until|@|at)\s*" + _NUM + r"\s*%|" + _NUM + r"\s*%\s*(?:residual|remaining|SOH|容量)",
                     re.I)


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def parse_warranty(text: str) -> WarrantyTerms:
    """Parse warranty terms such as "2 years or 1,000 cycles to 70%", "1–2 years or 1000 cycles
    to 70% residual capacity", "18 months or 800 cycles to 75%", "2年或1000次循环至70%".

    A range of years keeps its upper end as ``years`` (what the redeployed pack must
    outlive) and the lower end as ``years_min``. Raises ``ValueError`` naming the text
    when it carries no end-of-life SOH or neither a duration nor a cycle count.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("warranty terms are empty; write them like \"2 years or 1,000 cycles to 70%\"")
    t = text.strip()
    years = years_min = None
    m = _YEARS_RE.search(t)
    if m:
        years_min = _num(m.group(1))
        years = _num(m.group(2)) if m.group(2) else years_min
    else:
        mm = _MONTHS_RE.search(t)
        if mm:
            years = years_min = _num(mm.group(1)) / 12.0
    c = _CYCLES_RE.search(t)
    cycles = int(_num(c.group(1))) if c else None
    s = _SOH_RE.search(t)
    if not s:
        raise ValueError(f"warranty terms {text!r} give no residual capacity; add e.g. \"to 70%\"")
    end = _num(s.group(1) or s.group(2))
    if years is None and cycles is None:
        raise ValueError(f"warranty terms {text!r} give neither years nor cycles; write e.g. \"2 years or 1,000 cycles "
                         f"to 70%\"")
    if not 0 < end < 100:
        raise ValueError(f"warranty terms {text!r}: residual capacity {end:g}% must be between 0 and 100")
    if years is not None and years_min is not None and years_min > years:
        raise ValueError(f"warranty terms {text!r}: year range runs backwards")
    return WarrantyTerms(years=years, cycles=cycles, end_soh_pct=end, years_min=years_min, text=t)


# --------------------------------------------------------------------------- settings & inputs
@dataclass(frozen=True)
class MatchSettings:
    """Settings of the matching model (all in the units of their names)."""

    string_packs: int = 4
    max_capacity_spread_pct: float = 5.0
    max_resistance_spread_pct: float = 15.0
    soh_band_pct: float = 5.0
    max_distance_km: float = 800.0
    candidate_outlets: int = 12  # nearest outlets considered per demand
    horizon_years: float = 10.0
    calendar_fade_pct_per_year: Mapping[str, float] = field(
        default_factory=lambda: {"LFP": 2.0, "NMC": 3.0, "NCA": 3.5, "LMO": 4.0, "LTO": 1.0})
    cycle_fade_pct_per_cycle: Mapping[str, float] = field(
        default_factory=lambda: {"LFP": 0.004, "NMC": 0.01, "NCA": 0.012, "LMO": 0.015, "LTO": 0.002})
    km_cost_kwh_years: float = 0.01  # kWh·years a string-km of transport is worth
    soh_excess_cost_kwh_years: float = 0.2  # kWh·years per SOH point above a demand's minimum
    string_energy_ref_kwh: float | None = None  # e_ref; None = median energy of the strings built
    time_limit_s: float = 100.0
    mip_rel_gap: float = 0.005
    threads: int = 2


SUPPLY_COLUMNS = ("serial", "outlet", "lat", "lon", "chemistry", "soh_pct", "capacity_ah", "ir_mohm",
                  "nominal_voltage_v")
DEMAND_COLUMNS = ("demand_id", "energy_kwh", "voltage_v", "min_soh_pct", "chemistries", "lat", "lon", "warranty")
# Optional demand columns: application, cycles_per_year (default 50; backup sees few cycles).


def _check_columns(frame: pd.DataFrame, cols, what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise MatchingError(f"{what}: missing column(s) {', '.join(missing)}; required: {', '.join(cols)}")


def _numeric(frame: pd.DataFrame, col: str, what: str, key: str, lo: float, hi: float) -> np.ndarray:
    arr = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(arr) | (arr < lo) | (arr > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MatchingError(f"{what}: row {i + 1} ({key} {frame[key].iat[i]}): {col} {_show(frame[col].iat[i])} must be a "
                            f"number from {lo:g} to {hi:g} ({int(bad.sum())} bad row(s))")
    return arr


def _chemistry(values: pd.Series) -> np.ndarray:
    """Canonical chemistry names (NCM → NMC, LiFePO4 → LFP, …); unknown names are kept upper-case."""
    from .policy import CHEMISTRY_SYNONYMS

    upper = values.astype(str).str.strip().str.upper().str.replace(" ", "", regex=False).str.replace("-", "",
                                                                                                     regex=False)
    return upper.map(lambda v: CHEMISTRY_SYNONYMS.get(v, v)).to_numpy(dtype=object)


def _show(v) -> str:
    return "(empty)" if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else repr(str(v))


# --------------------------------------------------------------------------- strings
def build_strings(supply: pd.DataFrame, settings: MatchSettings = MatchSettings()) -> tuple[pd.DataFrame, np.ndarray]:
    """Cut the packs of each outlet into strings of close capacity and resistance.

    Returns (strings, string_of_pack) where ``string_of_pack[i]`` is the string index of
    supply row ``i`` or −1 when it fits no string. Strings carry outlet, lat/lon,
    chemistry, nominal voltage, energy_kwh (n · V · weakest capacity), soh_min, the
    capacity and resistance spreads and their member rows.
    """
    _check_columns(supply, SUPPLY_COLUMNS, "supply")
    n = len(supply)
    cap = _numeric(supply, "capacity_ah", "supply", "serial", 1e-6, 1e5)
    ir = _numeric(supply, "ir_mohm", "supply", "serial", 1e-6, 1e6)
    soh = _numeric(supply, "soh_pct", "supply", "serial", 0, 120)
    volt = _numeric(supply, "nominal_voltage_v", "supply", "serial", 1, 2000)
    _numeric(supply, "lat", "supply", "serial", -90, 90)
    _numeric(supply, "lon", "supply", "serial", -180, 180)
    if "safety_class" in supply.columns:
        not_a = supply["safety_class"].astype(str).str.upper() != "A"
        if not_a.any():
            i = int(np.flatnonzero(not_a.to_numpy())[0])
            raise MatchingError(f"supply: row {i + 1} (serial {supply['serial'].iat[i]}) has safety class "
                                f"{supply['safety_class'].iat[i]!r}; only class A packs may be redeployed")
    if "route" in supply.columns:
        not_reuse = ~supply["route"].astype(str).str.startswith("reuse_")
        if not_reuse.any():
            i = int(np.flatnonzero(not_reuse.to_numpy())[0])
            raise MatchingError(f"supply: row {i + 1} (serial {supply['serial'].iat[i]}) has route "
                                f"{supply['route'].iat[i]!r}; only packs routed to reuse may be matched")
    k = settings.string_packs
    if k < 1:
        raise MatchingError("string_packs must be at least 1")
    chem = _chemistry(supply["chemistry"])
    outlet = supply["outlet"].astype(str).to_numpy()
    cap_lim = 1 + settings.max_capacity_spread_pct / 100
    ir_lim = 1 + settings.max_resistance_spread_pct / 100
    string_of = np.full(n, -1, dtype=np.int64)
    members: list[np.ndarray] = []
    # Resistance bands as wide as the allowed spread: inside a band any string meets the
    # resistance limit, so windows over capacity order only have to check capacity. A
    # second pass with bands shifted by half a width strings packs that sat at a border.
    log_ir = np.log(ir) / np.log(ir_lim) if ir_lim > 1 else np.zeros(n)
    for offset in (0.0, 0.5):
        pool = np.flatnonzero(string_of < 0)
        if len(pool) < k:
            break
        band = np.floor(log_ir[pool] + offset).astype(np.int64)
        key = pd.MultiIndex.from_arrays([outlet[pool], chem[pool], volt[pool], band]).factorize()[0]
        order = pool[np.lexsort((cap[pool], key))]
        key_sorted = key[np.lexsort((cap[pool], key))]
        bounds = np.flatnonzero(np.diff(key_sorted)) + 1
        for grp in np.split(order, bounds):
            m = len(grp)
            if m < k:
                continue
            c = cap[grp]
            r = ir[grp]
            win_c = c[k - 1:] / c[: m - k + 1]  # sorted by capacity: last / first of each window
            if k > 1:
                rw = np.lib.stride_tricks.sliding_window_view(r, k)
                win_r = rw.max(axis=1) / rw.min(axis=1)
            else:
                win_r = np.ones(m)
            ok = (win_c <= cap_lim) & (win_r <= ir_lim)
            i = 0
            # Non-overlapping windows, left to right (a pack that fits no window stays unstrung).
            for st in np.flatnonzero(ok).tolist():
                if st < i:
                    continue
                rows = grp[st:st + k]
                string_of[rows] = len(members)
                members.append(rows)
                i = st + k
    if not members:
        return pd.DataFrame(columns=["outlet", "lat", "lon", "chemistry", "voltage_v", "energy_kwh", "soh_min",
                                     "capacity_spread_pct", "resistance_spread_pct", "members"]), string_of
    mem = np.stack(members)
    lat = pd.to_numeric(supply["lat"]).to_numpy(dtype=float)
    lon = pd.to_numeric(supply["lon"]).to_numpy(dtype=float)
    strings = pd.DataFrame({
        "outlet": outlet[mem[:, 0]], "lat": lat[mem].mean(axis=1), "lon": lon[mem].mean(axis=1),
        "chemistry": chem[mem[:, 0]], "voltage_v": volt[mem[:, 0]],
        "energy_kwh": k * volt[mem[:, 0]] * cap[mem].min(axis=1) / 1000.0,
        "soh_min": soh[mem].min(axis=1),
        "capacity_spread_pct": (cap[mem].max(axis=1) / cap[mem].min(axis=1) - 1) * 100,
        "resistance_spread_pct": (ir[mem].max(axis=1) / ir[mem].min(axis=1) - 1) * 100,
    })
    strings["members"] = list(mem)
    return strings, string_of


# --------------------------------------------------------------------------- the model
@dataclass
class MatchResult:
    """Outcome of :func:`match`."""

    objective: float
    bound: float
    gap: float
    status: str
    served: int
    demands: int
    delivered_kwh: float
    kwh_years: float
    transport_km: float
    greedy_objective: float
    greedy_served: int
    strings: int
    packs_strung: int
    packs_unstrung: int
    solve_s: float
    greedy_s: float
    build_s: float
    variables: int
    assignments: pd.DataFrame = field(repr=False)
    demand_report: pd.DataFrame = field(repr=False)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("assignments", "demand_report")}
        out["improvement_over_greedy_pct"] = (100 * (self.objective - self.greedy_objective) / abs(self.greedy_objective)
                                              if self.greedy_objective else None)
        return out


def _demands(demands: pd.DataFrame) -> dict[str, Any]:
    _check_columns(demands, DEMAND_COLUMNS, "demands")
    ids = demands["demand_id"].astype(str).to_numpy()
    dup = pd.Series(ids).duplicated()
    if dup.any():
        raise MatchingError(f"demands: demand_id {ids[int(np.flatnonzero(dup)[0])]} appears more than once")
    energy = _numeric(demands, "energy_kwh", "demands", "demand_id", 1e-6, 1e7)
    volt = _numeric(demands, "voltage_v", "demands", "demand_id", 1, 2000)
    min_soh = _numeric(demands, "min_soh_pct", "demands", "demand_id", 0, 100)
    lat = _numeric(demands, "lat", "demands", "demand_id", -90, 90)
    lon = _numeric(demands, "lon", "demands", "demand_id", -180, 180)
    cpy = (_numeric(demands, "cycles_per_year", "demands", "demand_id", 0, 10000) if "cycles_per_year" in demands
           else np.full(len(demands), 50.0))
    terms, chems = [], []
    for i, (text, allowed) in enumerate(zip(demands["warranty"].tolist(), demands["chemistries"].tolist())):
        try:
            terms.append(parse_warranty(text))
        except ValueError as exc:
            raise MatchingError(f"demands: row {i + 1} (demand_id {ids[i]}): {exc}") from None
        chems.append(frozenset(_chemistry(pd.Series([c for c in re.split(r"[|;/, ]+", str(allowed)) if c.strip()],
                                                    dtype=object))))
        if not chems[-1]:
            raise MatchingError(f"demands: row {i + 1} (demand_id {ids[i]}): chemistries is empty; list e.g. LFP|NMC")
    return {"ids": ids, "energy": energy, "volt": volt, "min_soh": min_soh, "lat": lat, "lon": lon, "cpy": cpy,
            "terms": terms, "chems": chems}


def _classes(strings: pd.DataFrame, band: float) -> pd.DataFrame:
    s = strings.assign(band=np.floor(strings["soh_min"].to_numpy() / band).astype(int))
    g = s.groupby(["outlet", "chemistry", "voltage_v", "band"], sort=True)
    cls = g.agg(lat=("lat", "mean"), lon=("lon", "mean"), count=("energy_kwh", "size"),
                energy_kwh=("energy_kwh", "min"), soh_min=("soh_min", "min")).reset_index()
    # Members of each class, best (highest energy) first, for disaggregation.
    s["cls"] = g.ngroup()
    order = s.sort_values(["cls", "energy_kwh"], ascending=[True, False]).index.to_numpy()
    cls["string_ids"] = [order[a:b] for a, b in _ranges(s.loc[order, "cls"].to_numpy())]
    return cls


def _ranges(labels: np.ndarray):
    if not len(labels):
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(labels)]])
    return list(zip(starts.tolist(), ends.tolist()))


def _arcs(cls: pd.DataFrame, dem: dict[str, Any], settings: MatchSettings) -> pd.DataFrame:
    """Candidate (class, demand) pairs with their per-string value."""
    outlets = cls.groupby("outlet", sort=False).agg(lat=("lat", "mean"), lon=("lon", "mean"))
    o_names = outlets.index.to_numpy()
    dist = haversine_km(dem["lat"][:, None], dem["lon"][:, None], outlets["lat"].to_numpy()[None, :],
                        outlets["lon"].to_numpy()[None, :])
    kk = min(settings.candidate_outlets, len(o_names))
    near = np.argpartition(dist, kk - 1, axis=1)[:, :kk] if kk < len(o_names) else \
        np.tile(np.arange(len(o_names)), (len(dem["ids"]), 1))
    rows_d = np.repeat(np.arange(len(dem["ids"])), near.shape[1])
    rows_o = near.ravel()
    km = dist[rows_d, rows_o]
    keep = km <= settings.max_distance_km
    pairs = pd.DataFrame({"d": rows_d[keep], "outlet": o_names[rows_o[keep]], "km": km[keep]})
    cls_idx = cls.reset_index().rename(columns={"index": "c"})
    arcs = pairs.merge(cls_idx[["c", "outlet", "chemistry", "voltage_v", "energy_kwh", "soh_min"]], on="outlet")
    d = arcs["d"].to_numpy()
    chem = arcs["chemistry"].to_numpy()
    ok = np.array([ch in dem["chems"][di] for ch, di in zip(chem, d)], dtype=bool)
    ratio = dem["volt"][d] / arcs["voltage_v"].to_numpy()
    series = np.rint(ratio)
    ok &= (np.abs(ratio - series) < 0.02) & (series >= 1) & (settings.string_packs % np.maximum(series, 1) == 0)
    soh = arcs["soh_min"].to_numpy()
    ok &= soh >= dem["min_soh"][d]
    ok &= arcs["energy_kwh"].to_numpy() >= dem["energy"][d] / dem["k"][d] - 1e-9
    end = np.array([t.end_soh_pct for t in dem["terms"]])[d]
    cal = np.array([settings.calendar_fade_pct_per_year.get(c, max(settings.calendar_fade_pct_per_year.values()))
                    for c in chem])
    cyc = np.array([settings.cycle_fade_pct_per_cycle.get(c, max(settings.cycle_fade_pct_per_cycle.values()))
                    for c in chem])
    fade = cal + dem["cpy"][d] * cyc
    life = np.maximum(soh - end, 0) / fade
    need = np.array([t.duration_years(c) for t, c in zip(dem["terms"], dem["cpy"])])[d]
    ok &= life >= need
    arcs = arcs[ok].copy()
    life = np.minimum(life[ok], settings.horizon_years)
    arcs["life_years"] = life
    arcs["kwh_years"] = arcs["energy_kwh"].to_numpy() * life
    arcs["value"] = (arcs["kwh_years"] - settings.km_cost_kwh_years * arcs["km"]
                     - settings.soh_excess_cost_kwh_years * np.maximum(0, arcs["soh_min"] - dem["min_soh"][arcs["d"]]))
    return arcs[arcs["value"] > 0].reset_index(drop=True)


def _greedy(arcs: pd.DataFrame, cls: pd.DataFrame, dem: dict[str, Any]) -> np.ndarray:
    """Greedy baseline: largest demands first, each filled with its best-value strings."""
    avail = cls["count"].to_numpy().astype(np.int64).copy()
    n = np.zeros(len(arcs), dtype=np.int64)
    ranked = arcs.assign(a=np.arange(len(arcs))).sort_values(["d", "value"], ascending=[True, False])
    groups = {int(d): (g["a"].to_numpy(), g["c"].to_numpy()) for d, g in ranked.groupby("d", sort=False)}
    for d in np.argsort(-dem["energy"], kind="stable").tolist():
        if d not in groups:
            continue
        need = int(dem["k"][d])
        taken: list[tuple[int, int, int]] = []
        for a, c in zip(*groups[d]):
            if need == 0:
                break
            k = int(min(avail[c], need))
            if k <= 0:
                continue
            taken.append((a, c, k))
            avail[c] -= k
            need -= k
        if need == 0:
            for a, _c, k in taken:
                n[a] += k
        else:
            for _a, c, k in taken:
                avail[c] += k
    return n


def _objective(arcs: pd.DataFrame, n: np.ndarray) -> float:
    return float((arcs["value"].to_numpy() * n).sum())


def match(supply: pd.DataFrame, demands: pd.DataFrame, settings: MatchSettings = MatchSettings()) -> MatchResult:
    """Build strings from ``supply`` and assign them to ``demands`` (HiGHS MILP + greedy baseline)."""
    import highspy

    t0 = time.perf_counter()
    dem = _demands(demands)
    strings, string_of = build_strings(supply, settings)
    n_d = len(dem["ids"])
    empty = pd.DataFrame(columns=["demand_id", "string", "outlet", "serials", "energy_kwh", "km", "life_years",
                                  "kwh_years"])
    if not len(strings) or not n_d:
        report = pd.DataFrame({"demand_id": dem["ids"], "served": False, "energy_kwh": dem["energy"]})
        return MatchResult(0.0, 0.0, 0.0, "no strings" if not len(strings) else "no demands", 0, n_d, 0.0, 0.0, 0.0,
                           0.0, 0, len(strings), int((string_of >= 0).sum()), int((string_of < 0).sum()), 0.0, 0.0,
                           time.perf_counter() - t0, 0, empty, report)
    cls = _classes(strings, settings.soh_band_pct)
    e_ref = settings.string_energy_ref_kwh or float(np.median(strings["energy_kwh"]))
    dem["k"] = np.maximum(1, np.ceil(dem["energy"] / e_ref - 1e-9)).astype(np.int64)
    arcs = _arcs(cls, dem, settings)
    build_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    n_greedy = _greedy(arcs, cls, dem)
    greedy_s = time.perf_counter() - t1
    greedy_obj = _objective(arcs, n_greedy)

    t2 = time.perf_counter()
    na, nc = len(arcs), len(cls)
    ncol = na + n_d
    a_c = arcs["c"].to_numpy()
    a_d = arcs["d"].to_numpy()
    a_e = arcs["energy_kwh"].to_numpy()
    # Rows: class capacity (nc), then one bank row per demand: Σ_c n[c,d] − k_d·y_d = 0.
    cap_c = cls["count"].to_numpy(dtype=float)
    k_d = dem["k"].astype(float)
    u = np.minimum(cap_c[a_c], k_d[a_d])
    rows = np.concatenate([a_c, nc + a_d, nc + np.arange(n_d)])
    cols = np.concatenate([np.arange(na), np.arange(na), na + np.arange(n_d)])
    vals = np.concatenate([np.ones(na), np.ones(na), -k_d])
    inf = highspy.kHighsInf
    row_lo = np.concatenate([np.full(nc, -inf), np.zeros(n_d)])
    row_hi = np.concatenate([cap_c, np.zeros(n_d)])
    col_hi = np.concatenate([u, np.ones(n_d)])
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = ncol, nc + n_d
    lp.col_cost_ = np.concatenate([arcs["value"].to_numpy(), np.zeros(n_d)])
    lp.col_lower_ = np.zeros(ncol)
    lp.col_upper_ = col_hi
    lp.row_lower_ = row_lo
    lp.row_upper_ = row_hi
    lp.sense_ = highspy.ObjSense.kMaximize
    order = np.lexsort((rows, cols))
    start = np.searchsorted(cols[order], np.arange(ncol + 1))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start.astype(np.int32)
    lp.a_matrix_.index_ = rows[order].astype(np.int32)
    lp.a_matrix_.value_ = vals[order]
    lp.integrality_ = [highspy.HighsVarType.kInteger] * ncol
    h = new_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(settings.time_limit_s))
    h.setOptionValue("mip_rel_gap", float(settings.mip_rel_gap))
    h.setOptionValue("threads", int(settings.threads))
    h.passModel(lp)
    # Start from the greedy plan so the solver always has a feasible incumbent.
    y_greedy = np.zeros(n_d)
    served_g = np.bincount(a_d, weights=n_greedy, minlength=n_d) > 0
    y_greedy[served_g] = 1
    sol = highspy.HighsSolution()
    sol.col_value = list(np.concatenate([n_greedy.astype(float), y_greedy]))
    sol.value_valid = True
    h.setSolution(sol)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    x = np.asarray(h.getSolution().col_value)
    solve_s = time.perf_counter() - t2
    if len(x) != ncol:
        n_opt, obj, bound = n_greedy, greedy_obj, float("nan")
    else:
        n_opt = np.rint(x[:na]).astype(np.int64)
        obj = _objective(arcs, n_opt)
        bound = float(info.mip_dual_bound)
        if obj < greedy_obj:  # keep the better plan
            n_opt, obj = n_greedy, greedy_obj
    gap = (bound - obj) / abs(obj) if obj and math.isfinite(bound) else float("nan")

    assignments = _disaggregate(arcs, cls, strings, supply, dem, n_opt)
    served = np.zeros(n_d, dtype=bool)
    served[np.unique(a_d[n_opt > 0])] = True
    delivered = np.bincount(a_d, weights=a_e * n_opt, minlength=n_d)
    report = pd.DataFrame({"demand_id": dem["ids"], "served": served, "energy_kwh": dem["energy"],
                           "strings_needed": dem["k"], "delivered_kwh": delivered, "warranty": [t.text for t in dem["terms"]],
                           "warranty_end_soh_pct": [t.end_soh_pct for t in dem["terms"]],
                           "warranty_years": [t.years for t in dem["terms"]],
                           "warranty_cycles": [t.cycles for t in dem["terms"]]})
    return MatchResult(objective=obj, bound=bound, gap=gap, status=status, served=int(served.sum()), demands=n_d,
                       delivered_kwh=float(delivered.sum()),
                       kwh_years=float((arcs["kwh_years"].to_numpy() * n_opt).sum()),
                       transport_km=float((arcs["km"].to_numpy() * n_opt).sum()), greedy_objective=greedy_obj,
                       greedy_served=int(served_g.sum()), strings=len(strings),
                       packs_strung=int((string_of >= 0).sum()), packs_unstrung=int((string_of < 0).sum()),
                       solve_s=solve_s, greedy_s=greedy_s, build_s=build_s, variables=ncol,
                       assignments=assignments, demand_report=report)


def _disaggregate(arcs, cls, strings, supply, dem, n) -> pd.DataFrame:
    """Turn class counts into named strings and pack serials."""
    serial = supply["serial"].astype(str).to_numpy()
    next_free = np.zeros(len(cls), dtype=np.int64)
    rows = []
    for a in np.flatnonzero(n).tolist():
        c = int(arcs["c"].iat[a])
        ids = cls["string_ids"].iat[c][next_free[c]: next_free[c] + n[a]]
        next_free[c] += n[a]
        for s in ids.tolist():
            rows.append({"demand_id": dem["ids"][arcs["d"].iat[a]], "string": int(s), "outlet": strings["outlet"].iat[s],
                         "serials": serial[strings["members"].iat[s]].tolist(),
                         "energy_kwh": float(strings["energy_kwh"].iat[s]), "km": float(arcs["km"].iat[a]),
                         "life_years": float(arcs["life_years"].iat[a]),
                         "kwh_years": float(strings["energy_kwh"].iat[s] * arcs["life_years"].iat[a])})
    return pd.DataFrame(rows, columns=["demand_id", "string", "outlet", "serials", "energy_kwh", "km", "life_years",
                                       "kwh_years"])
