"""Bench grading of removed packs: measurements → SOH, resistance ratio and safety class A/B/C.

The safety judgement follows DOMAIN.md §5 and GB/T 38698.1-2020 (safety judgement and
classification before packing and transport): class A intact, B abnormal (swelling,
leakage, abnormal voltage…), C damaged or dangerous (thermal event, deformation…). The
class rules are data, ``policies/safety_classes.yaml``, in the same rule language as
triage policies (see :mod:`battloop.triage.rules`), so each class comes with the findings
that set it.

Bench CSV columns (one row per pack; only ``serial`` is required, empty = not measured):

=========================  ===============================================================
``serial``                 pack serial
``chemistry``              LFP, NMC, NCA, LMO, LTO (synonyms accepted)
``rated_capacity_ah``      nameplate capacity, Ah
``capacity_ah``            capacity measured in a full discharge test, Ah
``test_rate_c``            discharge rate of that test, C (recorded with the result)
``test_temp_c``            ambient temperature of that test, °C (used for the 25 °C correction)
``dcir_mohm``              DC internal resistance (ΔV/ΔI), mΩ, at ``test_temp_c``
``baseline_dcir_mohm``     the same model's new-pack DCIR at 25 °C, mΩ (gives ``ir_ratio`` =
                           ``dcir_25c_mohm`` ÷ baseline: the DCIR brought to 25 °C by the Arrhenius
                           law of :func:`battloop.health.estimate.resistance_factor_to_reference`;
                           a DCIR test outside ``valid_temp_c`` is refused like a capacity test)
``ocv_v``                  open-circuit voltage at rest, V
``cells_in_series``        cells in series (15 or 16 for 48 V LFP)
``insulation_mohm``        insulation resistance pack → casing, MΩ (with ``nominal_voltage_v``)
``insulation_ohm_per_v``   or the insulation already in Ω/V
``nominal_voltage_v``      pack nominal voltage, V
``cell_v_max_mv`` / ``cell_v_min_mv`` / ``cell_spread_mv``  cell voltages at rest, mV
visual flags               ``visual_ok`` (inspector found nothing), ``swelling``, ``leakage``,
                           ``deformation``, ``corrosion``, ``connector_damage``,
                           ``casing_damage``, ``burn_marks`` (true/false)
BMS history                ``thermal_events``, ``fault_count``, ``short_circuit_count``,
                           ``protection_count``, ``overtemp_count``, ``cycle_count``, ``bms_soh_pct``
``anti_theft_locked``      true/false
=========================  ===============================================================

Capacity is corrected to 25 °C with ``C25 = Ct / (1 + k (t − 25))`` (the telecom battery
test convention of YD/T 799 / IEC 60896-11; ``k`` is a setting of the rules file), then
``soh_pct = 100 · C25 / rated``. Contradictory results (inspector ticked "no visible
damage" and a damage flag; min cell voltage above max; a spread that does not equal
max − min) and impossible values (negative resistance) are errors naming file, line,
column and serial.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from battloop.health.estimate import resistance_factor_to_reference

from .policy import CHEMISTRIES, DossierError, validate_table
from .rules import FieldSpec, RuleSet, columns_from_frame, compile_rules, evaluate_rules
from .rules_yaml import RuleFileError, line_of, load_yaml_with_lines

SAFETY_CLASSES = ("A", "B", "C")
VISUAL_FLAGS = ("swelling", "leakage", "deformation", "corrosion", "connector_damage", "casing_damage", "burn_marks")


def _n(doc, lo, hi, unit=""):
    return FieldSpec("number", doc, lo, hi, unit=unit)


def _i(doc, hi=1e9):
    return FieldSpec("integer", doc, 0, hi)


BENCH_FIELDS: dict[str, FieldSpec] = {
    "serial": FieldSpec("text", "pack serial", required=True),
    "chemistry": FieldSpec("enum", "cell chemistry", values=CHEMISTRIES),
    "rated_capacity_ah": _n("nameplate capacity", 0, 10000, "Ah"),
    "capacity_ah": _n("measured capacity", 0, 10000, "Ah"),
    "test_rate_c": _n("test discharge rate", 0, 10, "C"),
    "test_temp_c": _n("test temperature", -40, 80, "°C"),
    "dcir_mohm": _n("DC internal resistance", 0, 1e5, "mΩ"),
    "baseline_dcir_mohm": _n("new-pack DC internal resistance", 0, 1e5, "mΩ"),
    "ocv_v": _n("open-circuit voltage", 0, 1500, "V"),
    "cells_in_series": _i("cells in series", 1000),
    "insulation_mohm": _n("insulation resistance", 0, 1e6, "MΩ"),
    "insulation_ohm_per_v": _n("insulation resistance per volt", 0, 1e9, "Ω/V"),
    "nominal_voltage_v": _n("nominal pack voltage", 0, 1500, "V"),
    "cell_v_max_mv": _n("highest cell voltage", 0, 5000, "mV"),
    "cell_v_min_mv": _n("lowest cell voltage", 0, 5000, "mV"),
    "cell_spread_mv": _n("cell-voltage spread", 0, 5000, "mV"),
    "visual_ok": FieldSpec("bool", "inspector found no visible damage"),
    **{flag: FieldSpec("bool", f"visual finding: {flag.replace('_', ' ')}") for flag in VISUAL_FLAGS},
    "thermal_events": _i("thermal events"),
    "fault_count": _i("BMS faults"),
    "short_circuit_count": _i("BMS short-circuit protections"),
    "protection_count": _i("BMS protections of any kind"),
    "overtemp_count": _i("BMS over-temperature protections"),
    "cycle_count": _i("cycles", 1e7),
    "bms_soh_pct": _n("SOH reported by the BMS", 0, 120, "%"),
    "anti_theft_locked": FieldSpec("bool", "anti-theft lock engaged"),
}
#: Bench-sheet columns kept as notes; any other unknown column is an error (a misspelt
#: damage flag must not grade a swollen pack as intact).
BENCH_PASSTHROUGH = ("notes", "note", "comment", "comments", "tested_by", "test_date", "date", "site", "outlet",
                     "model", "operator")
#: Fields the class rules read: bench fields plus the derived ones.
GRADING_FIELDS: dict[str, FieldSpec] = {
    **BENCH_FIELDS,
    "soh_pct": _n("capacity at 25 °C ÷ rated", 0, 120, "%"),
    "ir_ratio": _n("DCIR ÷ baseline", 0, 20, "×"),
    "ocv_cell_v": _n("open-circuit voltage per cell", 0, 10, "V"),
}


class GradingError(ValueError):
    """Bench results cannot be graded; ``problems`` name file, line, column and serial."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class SafetyRules:
    """Compiled safety-class rules plus the capacity-test settings of the same file."""

    def __init__(self, rules: RuleSet, reference_temp_c: float, temp_coeff_per_c: float,
                 valid_temp_c: tuple[float, float], max_capacity_ratio: float):
        self.rules = rules
        self.reference_temp_c = reference_temp_c
        self.temp_coeff_per_c = temp_coeff_per_c
        self.valid_temp_c = valid_temp_c
        self.max_capacity_ratio = max_capacity_ratio

    @property
    def identity(self) -> str:
        return self.rules.identity


def default_rules_path() -> Path:
    return Path(str(resources.files("battloop.triage") / "policies" / "safety_classes.yaml"))


def load_safety_rules(source: str | Path = "default", *, text: str | None = None) -> SafetyRules:
    """Load the safety-class rules (``default`` = the shipped file). Errors name file and line."""
    if text is None and str(source) == "default":
        source = default_rules_path()
    data, lines, where, _ = load_yaml_with_lines(source, text)
    rules, extra = compile_rules(data, lines, where, kind="safety-class rule file", outcomes=SAFETY_CLASSES,
                                 base_fields=GRADING_FIELDS, extra_top_keys=("capacity_test",), outcome_key="class")
    ct = extra.get("capacity_test") or {}
    problems = []
    allowed = {"reference_temp_c", "temp_coeff_per_c", "valid_temp_c", "max_capacity_ratio"}
    if not isinstance(ct, dict):
        raise RuleFileError([f"{where}:{line_of(lines, ('capacity_test',))}: capacity_test must be a mapping"])
    for key, value in ct.items():
        ln = line_of(lines, ("capacity_test", key))
        if key not in allowed:
            problems.append(f"{where}:{ln}: unknown key '{key}' in capacity_test; allowed: {', '.join(sorted(allowed))}")
        elif key == "valid_temp_c":
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
                    and value[0] < value[1]):
                problems.append(f"{where}:{ln}: valid_temp_c must be [low, high] in °C with low < high")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{where}:{ln}: {key} must be a number, got {value!r}")
    if problems:
        raise RuleFileError(problems)
    return SafetyRules(rules, float(ct.get("reference_temp_c", 25.0)), float(ct.get("temp_coeff_per_c", 0.006)),
                       tuple(ct.get("valid_temp_c", (10.0, 40.0))), float(ct.get("max_capacity_ratio", 1.3)))


def read_bench_csv(path: str | Path) -> pd.DataFrame:
    """Read bench results from CSV → typed frame (see the module docstring for columns)."""
    path = Path(path)
    if not path.is_file():
        raise GradingError([f"{path}: no such file; give a CSV of bench results"])
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise GradingError([f"{path}: not a readable UTF-8 CSV ({exc})"]) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    return validate_bench(raw, where=str(path))


def validate_bench(raw: pd.DataFrame, *, where: str = "bench results", first_line: int = 2,
                   row_problems: list[tuple[int, str, str]] | None = None) -> pd.DataFrame:
    """Type bench results and refuse contradictions; errors name file, line, column and serial.
    With ``row_problems`` (see :func:`battloop.triage.policy.validate_table`) bad rows are
    reported there instead of raising."""
    try:
        return validate_table(raw, BENCH_FIELDS, ("serial",), where=where, first_line=first_line,
                              check=_contradictions, passthrough=BENCH_PASSTHROUGH, row_problems=row_problems)
    except DossierError as exc:
        raise GradingError(exc.problems) from None


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name in frame.columns:
        return frame[name].to_numpy(dtype="float64", na_value=np.nan)
    return np.full(len(frame), np.nan)


def _contradictions(out: pd.DataFrame, report) -> None:
    ok = _col(out, "visual_ok")
    for flag in VISUAL_FLAGS:
        v = _col(out, flag)
        report((ok == 1.0) & (v == 1.0), flag,
               lambda i, f=flag: f"contradictory inspection: visual_ok is true (no visible damage) but {f} is true; "
                                 f"re-inspect and correct one of them")
    vmax, vmin, spread = _col(out, "cell_v_max_mv"), _col(out, "cell_v_min_mv"), _col(out, "cell_spread_mv")
    with np.errstate(invalid="ignore"):
        report(vmin > vmax, "cell_v_min_mv",
               lambda i: f"lowest cell {vmin[i]:g} mV is above highest cell {vmax[i]:g} mV; the columns are swapped "
                         f"or mistyped")
        report(np.abs((vmax - vmin) - spread) > 1.0, "cell_spread_mv",
               lambda i: f"spread {spread[i]:g} mV contradicts max − min = {vmax[i] - vmin[i]:g} mV; give one or "
                         f"the other, or correct them")
        dc, base = _col(out, "dcir_mohm"), _col(out, "baseline_dcir_mohm")
        report(base == 0, "baseline_dcir_mohm", lambda i: "baseline resistance 0 mΩ; give the new-pack DCIR")
        report(_col(out, "rated_capacity_ah") == 0, "rated_capacity_ah", lambda i: "rated capacity 0 Ah; give the "
                                                                                 "nameplate capacity")
        report(_col(out, "cells_in_series") == 0, "cells_in_series", lambda i: "0 cells in series")
        report((dc == 0), "dcir_mohm", lambda i: "resistance 0 mΩ is not a measurement; repeat the DCIR test")


def derive(bench: pd.DataFrame, rules: SafetyRules) -> tuple[pd.DataFrame, list[str]]:
    """Derived bench quantities (SOH at 25 °C, ir_ratio, Ω/V, cell spread, OCV per cell) and problems."""
    out, found = derive_rows(bench, rules)
    where = bench.attrs.get("source", "bench results")
    first = bench.attrs.get("first_line", 2)
    serial = out["serial"].astype(str).to_numpy()
    shown: dict[str, int] = {}
    problems = []
    for i, column, message in found:
        shown[column] = shown.get(column, 0) + 1
        if shown[column] <= 50:
            problems.append(f"{where}:{first + i}: column {column}, serial {serial[i]}: {message}")
    return out, problems


def derive_rows(bench: pd.DataFrame, rules: SafetyRules) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """:func:`derive` with its problems as (row index, column, message), for importers that
    quarantine the rows concerned and keep the others."""
    out = bench.copy()
    problems: list[tuple[int, str, str]] = []
    cap, rated, temp = _col(out, "capacity_ah"), _col(out, "rated_capacity_ah"), _col(out, "test_temp_c")
    lo, hi = rules.valid_temp_c
    with np.errstate(invalid="ignore", divide="ignore"):
        bad_temp = ~np.isnan(cap) & ~np.isnan(temp) & ((temp < lo) | (temp > hi))
        for i in np.flatnonzero(bad_temp):
            problems.append((int(i), "test_temp_c", f"capacity test at {temp[i]:g} °C is outside {lo:g}–{hi:g} °C; "
                                                    f"repeat it in that window"))
        no_rated = ~np.isnan(cap) & np.isnan(rated)
        for i in np.flatnonzero(no_rated):
            problems.append((int(i), "rated_capacity_ah", "a capacity test needs the rated capacity to give an SOH"))
        t = np.where(np.isnan(temp), rules.reference_temp_c, temp)
        c25 = cap / (1.0 + rules.temp_coeff_per_c * (t - rules.reference_temp_c))
        soh = 100.0 * c25 / rated
        too_high = soh > 100.0 * rules.max_capacity_ratio
        for i in np.flatnonzero(too_high):
            problems.append((int(i), "capacity_ah", f"{cap[i]:g} Ah is more than {rules.max_capacity_ratio:g} × rated "
                                                    f"{rated[i]:g} Ah; check the rating and the test"))
        out["capacity_25c_ah"] = np.where(bad_temp | too_high, np.nan, c25)
        out["soh_pct"] = np.where(bad_temp | too_high, np.nan, soh)
        # a cold pack reads a high DCIR: compare with the new-pack value at the same 25 °C, by the
        # law the health assessment uses (a test without a temperature is taken as at 25 °C)
        dcir = _col(out, "dcir_mohm")
        bad_dcir_temp = ~np.isnan(dcir) & ~np.isnan(temp) & ((temp < lo) | (temp > hi))
        for i in np.flatnonzero(bad_dcir_temp & ~bad_temp):
            problems.append((int(i), "test_temp_c", f"DCIR test at {temp[i]:g} °C is outside {lo:g}–{hi:g} °C, where its "
                                                    f"25 °C value would be a guess; repeat it in that window"))
        out["dcir_25c_mohm"] = np.where(bad_dcir_temp, np.nan, dcir * resistance_factor_to_reference(temp))
        out["ir_ratio"] = out["dcir_25c_mohm"] / _col(out, "baseline_dcir_mohm")
        ins = _col(out, "insulation_ohm_per_v")
        from_mohm = _col(out, "insulation_mohm") * 1e6 / _col(out, "nominal_voltage_v")
        out["insulation_ohm_per_v"] = np.where(np.isnan(ins), from_mohm, ins)
        spread = _col(out, "cell_spread_mv")
        out["cell_spread_mv"] = np.where(np.isnan(spread), _col(out, "cell_v_max_mv") - _col(out, "cell_v_min_mv"),
                                         spread)
        out["ocv_cell_v"] = _col(out, "ocv_v") / _col(out, "cells_in_series")
    problems.sort(key=lambda p: p[0])
    out.attrs = dict(bench.attrs)
    return out, problems


def grade(bench: pd.DataFrame, rules: SafetyRules | None = None, *,
          history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Grade validated bench results → one row per pack with ``safety_class`` and its reasons.

    ``history`` (e.g. from :func:`bench_from_pylontech_console`) fills BMS-history columns the
    bench sheet leaves empty, matched by serial. The result carries the dossier columns a
    triage policy reads (serial, chemistry, soh_pct, ir_ratio, safety_class,
    thermal_events, fault_count, anti_theft_locked, insulation_ohm_per_v, cell_spread_mv,
    cycle_count) plus ``class_rules`` and ``class_reasons``.
    """
    rules = rules or load_safety_rules()
    if history is not None and len(history):
        bench = _fill_from_history(bench, history)
    derived, problems = derive(bench, rules)
    if problems:
        raise GradingError(problems)
    rs = rules.rules
    cols = columns_from_frame(derived, rs.fields, sorted(rs.used_fields()), rs.defaults)
    outcome, _stage, bits = evaluate_rules(rs, cols)
    derived["safety_class"] = np.asarray(rs.outcomes, dtype=object)[outcome]
    names, reasons = [], []
    cache: dict[int, tuple[str, list]] = {}
    for code in bits.tolist():
        if code not in cache:
            fired = [r for j, r in enumerate(rs.rules) if code >> j & 1]
            cache[code] = ("+".join(r.name for r in fired) or "default",
                           [f"{r.name}: {r.why}" for r in fired] or [f"default: {rs.default_why}"])
        names.append(cache[code][0])
        reasons.append(cache[code][1])
    derived["class_rules"] = names
    derived["class_reasons"] = reasons
    derived.attrs["safety_rules"] = rules.identity
    return derived


def _fill_from_history(bench: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    hist = history.drop_duplicates("serial", keep="last").set_index("serial")
    out = bench.copy()
    keys = out["serial"]
    for col in hist.columns:
        if col not in BENCH_FIELDS or col == "serial":
            continue
        filler = keys.map(hist[col]).to_numpy(dtype="float64", na_value=np.nan) if BENCH_FIELDS[col].type != "enum" \
            and BENCH_FIELDS[col].type != "text" else None
        if filler is None:
            continue
        if col in out.columns:
            cur = out[col].to_numpy(dtype="float64", na_value=np.nan)
            out[col] = np.where(np.isnan(cur), filler, cur)
        else:
            out[col] = filler
    out.attrs = dict(bench.attrs)
    return out


def to_dossiers(graded: pd.DataFrame) -> pd.DataFrame:
    """The dossier columns a triage policy reads, from graded bench results."""
    cols = ["serial", "chemistry", "soh_pct", "ir_ratio", "safety_class", "thermal_events", "fault_count",
            "anti_theft_locked", "insulation_ohm_per_v", "cell_spread_mv", "cycle_count"]
    out = pd.DataFrame({c: graded[c] if c in graded.columns else np.nan for c in cols})
    out["chemistry"] = out["chemistry"].astype(object)
    return out


# --------------------------------------------------------------------------- bench captures
_FAULT_COUNTERS = ("SC Times", "BMICERR Times", "RV Times")
_OVERTEMP_COUNTERS = ("COT Times", "DOT Times", "CHT Times", "DHT Times", "Bat OT Times", "Board OT Times",
                      "Bat HT Times", "Board HT Times")


def bms_history_from_pylontech_stat(stat: Mapping[str, str]) -> dict[str, Any]:
    """BMS history counters from one Pylontech ``stat N`` block (key → text, as the console prints it).

    ``fault_count`` = short-circuit + BMIC error + reverse-connection counters;
    ``protection_count`` = every ``… Times`` protection counter (over/under voltage,
    current and temperature, short circuit); ``overtemp_count`` = the over/high-temperature
    counters. ``SOH`` 0 means "not computed" on some firmware and is left missing.
    Counter names follow the Pylontech console (reference/ecosystem.md §1.2).
    """
    def num(key: str) -> float | None:
        v = str(stat.get(key, "")).strip().split()
        try:
            return float(v[0]) if v else None
        except ValueError:
            return None

    def total(keys) -> int | None:
        vals = [num(k) for k in keys if num(k) is not None]
        return int(sum(vals)) if vals else None

    skip = {"Charge Times", "Idle Times", "Shut Times", "Reset Times", "SOH Times", "CYCLE Times", "LifeWarn Times",
            "LifeAlarm Times"}
    protections = [k for k in stat if k.endswith("Times") and k not in skip]
    soh = num("SOH Percent") if num("SOH Percent") is not None else num("SOH")
    return {"cycle_count": None if num("CYCLE Times") is None else int(num("CYCLE Times")),
            "bms_soh_pct": soh if soh else None,
            "fault_count": total(_FAULT_COUNTERS),
            "short_circuit_count": None if num("SC Times") is None else int(num("SC Times")),
            "protection_count": total(protections),
            "overtemp_count": total(_OVERTEMP_COUNTERS)}


def bench_from_pylontech_console(path: str | Path, *, tz: str | None = None) -> pd.DataFrame:
    """BMS history per pack from a Pylontech console capture (file or directory).

    Uses the telemetry reader for the capture; serials come from ``info N`` barcodes.
    Cell spread is max − min cell voltage of the ``pwr`` table (a reading under whatever
    current flowed then, so the bench's rest measurement, when given, takes precedence).
    """
    from battloop.telemetry.readers.pylontech_console import read_pylontech_console

    readings, meta = read_pylontech_console(path, tz=tz)
    frame = readings.to_pandas()
    rows = []
    for slot, stat in sorted(meta.get("stat", {}).items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        match = frame[frame["slot"] == slot] if slot is not None else frame.iloc[0:0]
        serial = None
        if len(match) and match["pack_serial"].notna().any():
            serial = match["pack_serial"].dropna().iloc[0]
        elif slot in meta.get("devices", {}):
            serial = (meta["devices"][slot].get("Barcode") or "").split()[0] if meta["devices"][slot].get("Barcode") \
                else None
        row = {"serial": serial, "slot": slot, **bms_history_from_pylontech_stat(stat)}
        if len(match):
            vmax, vmin = match["cell_v_max"].iloc[0], match["cell_v_min"].iloc[0]
            if pd.notna(vmax) and pd.notna(vmin):
                row["cell_spread_under_load_mv"] = round((vmax - vmin) * 1000.0, 1)
        rows.append(row)
    return pd.DataFrame(rows)
