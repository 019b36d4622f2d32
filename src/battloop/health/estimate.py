"""SOH and resistance evidence from every source, each with its uncertainty, and a per-pack filter.

Pure NumPy; no Django.

Sources (DOMAIN.md section 3):

* capacity tests -- full discharge Ah against rated Ah (IEC 61960-3 / YD/T 2344.1
  style test), with meter and temperature uncertainty;
* outage discharges -- coulomb counting across a partial discharge, with the
  SOC at both ends read from the rested voltage through the chemistry's OCV
  curve (Plett, *Battery Management Systems* vol. 1, ch. 2; Ng et al. 2009,
  Appl. Energy 86:1506). The SOC uncertainty at each end is the voltage
  uncertainty divided by the OCV slope there, so flat LFP plateaus give wide
  errors and shallow discharges are rejected as uninformative;
* BMS-reported SOH -- treated as biased and noisy evidence (many BMS report a
  lagging, optimistic value: default bias +2 pp, sd 3 pp, both settable per
  BMS model);
* DC resistance from current steps, R = dV/dI (IEC 61960-3 section 7.8 DC method),
  with the resolution of the voltage and current sensors, reported at 25 C through an
  Arrhenius law (:func:`resistance_at_reference`) so that winter and summer readings compare.

:class:`SohFilter` fuses the evidence of one pack over time with a Kalman filter
of SOH and its fade rate per day (Plett 2004, J. Power Sources 134:262 uses the
same structure for capacity estimation) plus the BMS's unknown extra bias, so a
noisy BMS reading counts for less than a capacity test, measurements calibrate
the BMS, and old evidence decays into the trend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .models import R_GAS, arrhenius, check_temperature_c

# Open-circuit voltage per cell vs SOC (25 C, rested). LFP/graphite: typical
# A123/CATL-class curve (flat 3.26-3.34 V plateau); NMC/graphite: typical
# NMC532 curve. Representative shapes from Plett vol. 1, fig. 2.x and vendor
# datasheets; replace with the pack model's own table when known.
OCV_TABLES = {
    "LFP": (np.array([0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 0.98, 1.0]),
            np.array([2.50, 2.90, 3.10, 3.20, 3.245, 3.27, 3.285, 3.29, 3.295, 3.31, 3.33, 3.335, 3.34, 3.38, 3.45])),
    "NMC": (np.array([0.0, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 1.0]),
            np.array([3.00, 3.40, 3.50, 3.58, 3.63, 3.68, 3.74, 3.82, 3.91, 4.00, 4.08, 4.18])),
}


#: Highest per-cell voltage read as a rested (or float-charged) cell: the upper charge limit of
#: typical cell datasheets (LFP 3.65 V; NMC 4.2 V plus the 50 mV a charger may overshoot). A
#: float-charged pack rests above the top of its OCV table and reads as full, which it is; above
#: the charge limit the value is not one cell's voltage.
CHARGE_LIMIT_V_CELL = {"LFP": 3.65, "NMC": 4.25}
#: How far below the table's empty voltage (or above the top of a caller's own table) a rested
#: cell voltage may read: sensor error plus LFP hysteresis (~15 mV each, Plett vol. 1, sec. 2.7).
REST_VOLTAGE_MARGIN_V = 0.05
#: No single Li-ion cell rests above this: a larger value is a pack or module voltage.
PACK_VOLTAGE_HINT_V = 10.0


class EvidenceRejected(ValueError):
    """An input that carries no usable health information; the message says why and what would help."""


def _finite(value, name: str, unit: str = "") -> float:
    """``value`` as a float, refusing NaN and infinity with the field named."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EvidenceRejected(f"{name} = {value!r} is not a number") from None
    if not np.isfinite(v):
        raise EvidenceRejected(f"{name} = {v}{unit and ' ' + unit} is not a finite number: give a real value (NaN and inf carry none)")
    return v


def _positive(value, name: str, unit: str = "", allow_zero: bool = False) -> float:
    v = _finite(value, name, unit)
    if v < 0 or (v == 0 and not allow_zero):
        raise EvidenceRejected(f"{name} = {v:g}{unit and ' ' + unit} must be {'non-negative' if allow_zero else 'positive'}")
    return v


@dataclass(frozen=True)
class SohEvidence:
    """One SOH estimate (fraction of rated capacity) with its standard deviation."""

    t_days: float
    soh: float
    sd: float
    source: str
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ResistanceEvidence:
    t_days: float
    resistance_ohm: float
    sd_ohm: float
    source: str = "dc_step"
    detail: dict = field(default_factory=dict)


def _chem_key(chemistry) -> str:
    key = str(chemistry).strip().upper()
    key = {"NCM": "NMC", "NCA": "NMC", "LIFEPO4": "LFP"}.get(key, key)
    if key not in OCV_TABLES:
        raise EvidenceRejected(f"no OCV curve for chemistry {chemistry!r}: known are {', '.join(OCV_TABLES)}; pass ocv_table=(soc, volts)")
    return key


def _chem(chemistry):
    return OCV_TABLES[_chem_key(chemistry)]


def _check_cell_voltage(v: np.ndarray, v_pts, top_v: float, name: str, what: str) -> None:
    """Refuse rested cell voltages that are NaN or outside what the OCV table can read.

    Below the table's empty voltage by more than :data:`REST_VOLTAGE_MARGIN_V`, or above
    ``top_v``, np.interp would clamp the SOC to 0 or 1 and a wrong input (a pack voltage, a
    reading under load, a dropout) would pass as a full or empty cell.
    """
    if v.size == 0:
        return
    lo_v = float(v_pts[0]) - REST_VOLTAGE_MARGIN_V
    v_min, v_max = float(v.min()), float(v.max())
    if lo_v <= v_min and v_max <= top_v:  # False when either is NaN
        return
    bad = ~(np.isfinite(v) & (v >= lo_v) & (v <= top_v))
    x = float(v[tuple(np.argwhere(bad)[0])]) if v.ndim else float(v)
    at = f" (index {tuple(int(i) for i in np.argwhere(bad)[0])})" if v.ndim else ""
    if not np.isfinite(x):
        raise EvidenceRejected(f"{name} = {x}{at} is not a finite voltage: give the rested cell voltage in V")
    span = f"{what} OCV table spans {float(v_pts[0]):g}..{float(v_pts[-1]):g} V per cell (accepted {lo_v:g}..{top_v:g} V)"
    if x > PACK_VOLTAGE_HINT_V:
        fix = "it looks like a pack voltage: divide by the number of cells in series"
    elif x > top_v:
        fix = "if it is the voltage of several cells in series, divide by their number"
    else:
        fix = "below an empty cell's rested voltage: is it read under load, or a sensor dropout?"
    raise EvidenceRejected(f"{name} = {x:g} V{at} is outside what the OCV curve can read: the {span}; {fix}")


def soc_from_voltage(cell_voltage_v, chemistry="LFP", voltage_sd_v=0.015, ocv_table=None, name: str = "cell_voltage_v"):
    """SOC and its sd from a rested cell voltage, by inverting the OCV curve.

    sd(SOC) = sd(V) / |dOCV/dSOC| at that point (first-order propagation),
    capped at 0.5. The default sd(V) of 15 mV per cell covers sensor error and
    the charge/discharge hysteresis of LFP (~10-20 mV; Plett vol. 1, sec. 2.7).

    A voltage above the table's full value up to the chemistry's charge limit
    (:data:`CHARGE_LIMIT_V_CELL`; for a caller's ``ocv_table``, its top plus
    :data:`REST_VOLTAGE_MARGIN_V`) is a float-charged cell and reads as full.
    NaN, a voltage below the table's empty value by more than the margin, or above
    that limit (a pack voltage, a reading under charge) is refused
    (:class:`EvidenceRejected`, naming ``name``) instead of being clamped to 0 or 1.
    """
    if ocv_table is not None:
        soc_pts, v_pts = ocv_table
        top_v, what = float(v_pts[-1]) + REST_VOLTAGE_MARGIN_V, "given"
    else:
        key = _chem_key(chemistry)
        soc_pts, v_pts = OCV_TABLES[key]
        top_v, what = CHARGE_LIMIT_V_CELL[key], key
    _positive(voltage_sd_v, "voltage_sd_v", "V", allow_zero=True)
    v = np.asarray(cell_voltage_v, dtype=float)
    _check_cell_voltage(v, v_pts, top_v, name, what)
    soc = np.interp(v, v_pts, soc_pts)
    slope = np.gradient(v_pts, soc_pts)
    dvds = np.interp(soc, soc_pts, slope)
    sd = np.minimum(voltage_sd_v / np.maximum(np.abs(dvds), 1e-6), 0.5)
    return soc, sd


def capacity_test_evidence(discharged_ah, rated_ah, t_days=0.0, temp_c=25.0, meter_rel_sd=0.01, temp_coeff_per_c=0.005):
    """SOH from a full capacity test: discharged Ah / rated Ah, corrected to 25 C.

    Capacity rises ~0.5 %/C near room temperature (typical Li-ion datasheet
    derating); the correction's own uncertainty grows with the distance from 25 C.
    NaN or infinite inputs and test temperatures outside -60..120 C (the aging
    model's :data:`~battloop.health.models.TEMP_RANGE_C`: a value there is a unit
    error such as Kelvin) are refused (:class:`EvidenceRejected`).
    """
    if not (np.isfinite(rated_ah) and rated_ah > 0):
        raise EvidenceRejected(f"rated capacity rated_ah = {rated_ah} Ah must be a positive number: give the pack model's rated Ah")
    if not (np.isfinite(discharged_ah) and discharged_ah > 0):
        raise EvidenceRejected(f"discharged capacity discharged_ah = {discharged_ah} Ah is not a valid test result")
    check_temperature_c(temp_c, "temp_c", error=EvidenceRejected,
                        fix="give the test's temperature in C (25 when it was run at room temperature)")
    t_days = _finite(t_days, "t_days", "days")
    _positive(meter_rel_sd, "meter_rel_sd", allow_zero=True)
    _positive(temp_coeff_per_c, "temp_coeff_per_c", "1/C", allow_zero=True)
    temp_c = float(temp_c)
    corr = 1.0 + temp_coeff_per_c * (temp_c - 25.0)
    soh = discharged_ah / rated_ah / corr
    sd = soh * np.hypot(meter_rel_sd, 0.3 * temp_coeff_per_c * abs(temp_c - 25.0))
    notes = {}
    if soh > 1.1:
        notes["warning"] = "capacity above 110 % of rated: check the rated capacity of the pack model"
    return SohEvidence(float(t_days), float(soh), float(sd), "capacity_test", {"discharged_ah": discharged_ah, **notes})


def outage_discharge_evidence(time_s, current_a, v_rest_start_cell, v_rest_end_cell, rated_ah, t_days=0.0, chemistry="LFP",
                              min_delta_soc=0.3, current_rel_sd=0.01, voltage_sd_v=0.015, ocv_table=None):
    """SOH from a partial (outage) discharge by coulomb counting between OCV-derived SOC endpoints.

    ``time_s`` and ``current_a`` (discharge positive) cover the discharge;
    ``v_rest_*_cell`` are rested per-cell voltages before and after it. SOH =
    Ah / (dSOC * rated). Rejected (:class:`EvidenceRejected`) when the SOC swing
    is below ``min_delta_soc`` or too uncertain to say anything (relative sd > 25 %),
    and for non-finite samples, rest voltages the OCV curve cannot read (e.g. a pack
    voltage: see :func:`soc_from_voltage`) or a non-positive ``rated_ah``.
    """
    t = np.asarray(time_s, dtype=float)
    i = np.asarray(current_a, dtype=float)
    if t.size < 2 or t.size != i.size:
        raise EvidenceRejected("outage discharge needs matching time and current arrays with at least two samples")
    # before the order check: NaN compares false, so NaN time stamps would pass it
    if not np.isfinite(t).all():
        k = int(np.flatnonzero(~np.isfinite(t))[0])
        raise EvidenceRejected(f"time_s[{k}] = {t[k]}: outage discharge time stamps must be finite seconds")
    if np.any(np.diff(t) <= 0):
        raise EvidenceRejected("outage discharge time stamps must increase strictly")
    if not np.isfinite(i).all():
        k = int(np.flatnonzero(~np.isfinite(i))[0])
        raise EvidenceRejected(f"current_a[{k}] = {i[k]}: current has NaN or infinite samples; "
                               "interpolate short gaps before coulomb counting")
    if not (np.isfinite(rated_ah) and rated_ah > 0):
        raise EvidenceRejected(f"rated capacity rated_ah = {rated_ah} Ah must be a positive number: give the pack model's rated Ah")
    if not (np.isfinite(min_delta_soc) and 0 < min_delta_soc <= 1):
        raise EvidenceRejected(f"min_delta_soc = {min_delta_soc} must be a SOC fraction in (0, 1], e.g. 0.3")
    t_days = _finite(t_days, "t_days", "days")
    _positive(current_rel_sd, "current_rel_sd", allow_zero=True)
    ah = float(np.trapezoid(i, t) / 3600.0)
    s0, sd0 = soc_from_voltage(v_rest_start_cell, chemistry, voltage_sd_v, ocv_table, name="v_rest_start_cell")
    s1, sd1 = soc_from_voltage(v_rest_end_cell, chemistry, voltage_sd_v, ocv_table, name="v_rest_end_cell")
    dsoc = float(s0 - s1)
    if dsoc < min_delta_soc:
        raise EvidenceRejected(f"discharge too shallow: SOC {float(s0):.2f} -> {float(s1):.2f} (dSOC {dsoc:.2f} < {min_delta_soc}); "
                               "only discharges deeper than that say something about capacity")
    if ah <= 0:
        raise EvidenceRejected(f"net charge {ah:.3f} Ah is not a discharge (is the current sign discharge-positive?)")
    soh = ah / (dsoc * rated_ah)
    rel = np.sqrt(current_rel_sd**2 + (float(sd0) ** 2 + float(sd1) ** 2) / dsoc**2)
    if rel > 0.25:
        raise EvidenceRejected(f"SOC endpoints too uncertain (relative sd {rel:.0%}): rest voltages on the flat OCV plateau; "
                               "use discharges that end below ~20 % SOC or start from full charge")
    return SohEvidence(float(t_days), float(soh), float(soh * rel), "outage_discharge",
                       {"ah": ah, "soc_start": float(s0), "soc_end": float(s1), "delta_soc": dsoc})


def bms_soh_evidence(reported_soh, t_days=0.0, bias=0.02, sd=0.03):
    """BMS-reported SOH as biased, noisy evidence: soh = reported - bias, with sd.

    Accepts percent (0-100+) or fraction; values above 100 % are clipped to the
    bias-corrected value but flagged.
    """
    v = float(reported_soh)
    if not np.isfinite(v) or v < 0:
        raise EvidenceRejected(f"BMS SOH {reported_soh!r} is not a valid reading")
    t_days = _finite(t_days, "t_days", "days")
    bias = _finite(bias, "bias")
    sd = _positive(sd, "sd")
    if v > 1.5:  # percent
        v /= 100.0
    detail = {"reported": float(reported_soh)}
    if v > 1.0:
        detail["warning"] = "BMS reports SOH above 100 %"
    return SohEvidence(float(t_days), v - bias, sd, "bms", detail)


def dc_resistance(v_before, v_after, i_before, i_after, t_days=0.0, voltage_sd_v=0.002, current_sd_a=0.1, min_delta_i_a=1.0):
    """DC resistance R = |dV / dI| from a current step (IEC 61960-3 DC method), with its sd."""
    dv = float(v_before) - float(v_after)
    di = float(i_after) - float(i_before)
    if not np.isfinite(dv) or not np.isfinite(di):
        raise EvidenceRejected(f"resistance step has NaN or infinite voltage or current (v_before={v_before}, v_after={v_after}, "
                               f"i_before={i_before}, i_after={i_after}): give the readings on both sides of the step")
    t_days = _finite(t_days, "t_days", "days")
    _positive(voltage_sd_v, "voltage_sd_v", "V", allow_zero=True)
    _positive(current_sd_a, "current_sd_a", "A", allow_zero=True)
    if abs(di) < min_delta_i_a:
        raise EvidenceRejected(f"current step {abs(di):.2f} A is below {min_delta_i_a} A: too small for a resistance estimate")
    r = abs(dv / di)
    sd = np.sqrt((np.sqrt(2) * voltage_sd_v / abs(di)) ** 2 + (r * np.sqrt(2) * current_sd_a / abs(di)) ** 2)
    return ResistanceEvidence(float(t_days), r, float(sd), "dc_step", {"delta_v": dv, "delta_i": di})


#: Temperature dependence of a pack's DC (pulse) resistance, R(T) = R_25 exp(Ea/R_gas (1/T - 1/T_25)).
#: A DCIR pulse of a few seconds reads the ohmic part (electrolyte conduction, Ea = 17.1 kJ/mol;
#: Ecker et al. 2015, J. Electrochem. Soc. 162:A1836) plus charge transfer (LFP electrode
#: reaction, Ea = 39.6 kJ/mol; Prada et al. 2013, J. Electrochem. Soc. 160:A616). The share of
#: each depends on the cell and the pulse, so the effective Ea is taken between them, with an sd
#: that spans both: 28 +/- 6 kJ/mol. A reading at 5 C then counts as 2.2x its 25 C value, known to
#: +/- 17 %; a reading at 25 C needs no correction and gets no extra uncertainty.
RESISTANCE_EA_J_MOL = 28_000.0
RESISTANCE_EA_SD_J_MOL = 6_000.0
RESISTANCE_REFERENCE_TEMP_C = 25.0
#: sd of the temperature when a reading has none: a bench stands indoors, a cabinet sees the weather.
UNKNOWN_BENCH_TEMP_SD_C = 5.0
UNKNOWN_CABINET_TEMP_SD_C = 10.0


#: Range of pack temperatures the correction is trusted over: outside it the Arrhenius law is
#: extrapolated too far (x23 at -40 C) and the pack's non-cell resistance (MOSFETs, shunt,
#: busbars, which hardly depend on temperature) would be corrected as if it were the cells'.
RESISTANCE_VALID_TEMP_C = (0.0, 45.0)


def resistance_factor_to_reference(temp_c, ea_j_mol: float = RESISTANCE_EA_J_MOL,
                                   reference_temp_c: float = RESISTANCE_REFERENCE_TEMP_C):
    """R_25 / R(T) by the Arrhenius law above (the aging model's :func:`~battloop.health.models.arrhenius`
    factor of T against 25 C), elementwise; 1 where the temperature is NaN or masked (taken as 25 C)."""
    t = np.ma.filled(np.ma.asarray(temp_c, dtype=float), np.nan)
    known = t > -273.15  # False for NaN too
    return np.where(known, arrhenius(np.where(known, t, reference_temp_c), ea_j_mol, reference_temp_c + 273.15), 1.0)


def resistance_at_reference(ev: ResistanceEvidence, temp_c=None, temp_sd_c: float = 0.0,
                            unknown_temp_sd_c: float = UNKNOWN_CABINET_TEMP_SD_C,
                            ea_j_mol: float = RESISTANCE_EA_J_MOL, ea_sd_j_mol: float = RESISTANCE_EA_SD_J_MOL,
                            reference_temp_c: float = RESISTANCE_REFERENCE_TEMP_C,
                            valid_temp_c: tuple = RESISTANCE_VALID_TEMP_C) -> ResistanceEvidence:
    """The resistance reading at the reference temperature (25 C), with the correction's uncertainty.

    Arrhenius law of the module constants: a cold pack reads high, a warm one low, and a trend
    or a ratio to the new-pack value compares like with like only at one temperature.

    The uncertainty has three parts, kept apart in ``detail`` because they are not alike when
    readings are fused (:func:`fuse_resistance`): the reading's own (``sd_measurement_ohm``,
    independent between readings); the error of Ea (``log_sd_ea``, signed: the same Ea error
    moves cold readings down and warm ones up, in every reading of every pack alike); and the
    error of the temperature (``log_sd_temp``: ``temp_sd_c`` of an estimated temperature, or
    ``unknown_temp_sd_c`` around 25 C for a reading without one, whose value is then kept as
    read). ``sd_ohm`` is their total for this reading alone. Temperatures outside
    ``valid_temp_c`` are refused (:class:`EvidenceRejected`).
    """
    t_ref_k = reference_temp_c + 273.15
    if not (np.isfinite(ev.resistance_ohm) and ev.resistance_ohm > 0 and np.isfinite(ev.sd_ohm) and ev.sd_ohm >= 0):
        raise EvidenceRejected(f"{ev.source} resistance at t = {ev.t_days} days is {ev.resistance_ohm} +/- {ev.sd_ohm} ohm: "
                               "give a positive, finite resistance and sd")
    _positive(temp_sd_c, "temp_sd_c", "C", allow_zero=True)
    _positive(unknown_temp_sd_c, "unknown_temp_sd_c", "C", allow_zero=True)
    # NaN means "not measured" (a gap in the lake); an infinite value is a broken reading and meets the range check
    known = temp_c is not None and not np.isnan(float(temp_c))
    if not known:
        t_k, temp_sd, factor, x = t_ref_k, unknown_temp_sd_c, 1.0, 0.0
    else:
        temp_c = float(temp_c)
        lo, hi = valid_temp_c
        if not lo <= temp_c <= hi:
            raise EvidenceRejected(f"resistance reading at {temp_c:g} C: outside {lo:g}..{hi:g} C, where the 25 C correction "
                                   "would be a guess; measure nearer room temperature")
        t_k, temp_sd = temp_c + 273.15, float(temp_sd_c)
        x = 1.0 / t_k - 1.0 / t_ref_k  # > 0 when colder than the reference
        factor = float(np.exp(-ea_j_mol / R_GAS * x))  # R_ref = R(T) * factor (resistance_factor_to_reference)
    r = ev.resistance_ohm * factor
    sd_meas = ev.sd_ohm * factor
    log_sd_ea = -ea_sd_j_mol / R_GAS * x  # d ln R_ref per 1 sd of Ea
    log_sd_temp = ea_j_mol / (R_GAS * t_k**2) * temp_sd  # d ln R / dT times the temperature's sd
    sd = float(np.sqrt(sd_meas**2 + (r * log_sd_ea) ** 2 + (r * log_sd_temp) ** 2))
    detail = {**ev.detail, "temp_c": temp_c if known else None, "measured_ohm": ev.resistance_ohm, "factor_to_reference": factor,
              "sd_measurement_ohm": float(sd_meas), "log_sd_ea": float(log_sd_ea), "log_sd_temp": float(log_sd_temp)}
    if not known:
        detail["temperature_note"] = f"no temperature: taken as {reference_temp_c:g} +/- {unknown_temp_sd_c:g} C"
    return ResistanceEvidence(ev.t_days, float(r), sd, ev.source, detail)


class SohFilter:
    """Kalman filter (Kalman 1960; Plett 2004, J. Power Sources 134:262 for capacity) of one pack's SOH.

    State: SOH, its fade rate per day, and the part of the BMS's optimism that
    :func:`bms_soh_evidence` did not already take off (its nominal ``bias``).

    Process model: soh(t+dt) = soh + rate*dt; the rate is a random walk (the fade
    rate drifts slowly with temperature and usage), integrated as a continuous
    white-noise acceleration (Bar-Shalom et al. 2001, *Estimation with Applications
    to Tracking and Navigation*, sec. 6.2); the BMS's extra bias is a constant.
    ``rate_prior_per_day`` comes from the cohort model (e.g. the aging model's present slope).

    Prior: ``soh0 +/- soh0_sd``, ``rate_prior_per_day +/- rate_sd_per_day`` and
    ``0 +/- bms_bias_sd`` hold at ``t0_days`` (the install, day 0 of ``t_days``), and
    the process model carries them to the first evidence. A first capacity test at
    day 2500 therefore meets a prior that has faded with the prior rate and widened
    by its uncertainty, not the new-pack value. ``t0_days=None`` applies the prior at
    the first evidence instead (for a pack whose install date is unknown; ``soh0``
    and ``soh0_sd`` should then describe the pack at that time).

    ``bms_bias_sd`` (default 2 pp) is an assumption: BMS optimism of roughly 0 to 4 pp
    around the nominal 2 pp of :func:`bms_soh_evidence`; set it per BMS model when known.
    BMS evidence (``source == "bms"``) observes SOH plus the extra bias; all other
    evidence observes SOH. Capacity tests and outage discharges so calibrate the BMS
    (:attr:`bms_bias`), and BMS readings alone leave the SOH about as uncertain as
    that bias (``bms_bias_sd``): the filter does not claim to know the offset they
    hide. Limits:
    one bias for all BMS evidence of the pack (one BMS), constant in time; a BMS whose
    optimism grows with age (one that lags the fade) pulls the rate towards its
    slower reported fade until measurements contradict it.

    Evidence must come in time order (:meth:`fuse` sorts it); a time before the
    filter's present one, or a NaN/infinite time, value or sd, is refused
    (:class:`EvidenceRejected`) and leaves the state unchanged.
    """

    def __init__(self, soh0=1.0, soh0_sd=0.03, rate_prior_per_day=-3e-5, rate_sd_per_day=3e-5, rate_walk_per_day=2e-7,
                 bms_bias_sd=0.02, t0_days: float | None = 0.0):
        soh0 = _finite(soh0, "soh0")
        rate = _finite(rate_prior_per_day, "rate_prior_per_day", "1/day")
        sds = [_positive(soh0_sd, "soh0_sd", allow_zero=True), _positive(rate_sd_per_day, "rate_sd_per_day", "1/day", allow_zero=True),
               _positive(bms_bias_sd, "bms_bias_sd", allow_zero=True)]
        self.x = np.array([soh0, rate, 0.0], dtype=float)
        self.P = np.diag(np.square(sds))
        self.q_rate = _positive(rate_walk_per_day, "rate_walk_per_day", "1/day", allow_zero=True) ** 2
        self.t = None if t0_days is None else _finite(t0_days, "t0_days", "days")
        self.history = []

    def _check(self, ev: SohEvidence, t_now) -> None:
        if not np.isfinite(ev.t_days):
            raise EvidenceRejected(f"{ev.source} evidence has t_days = {ev.t_days}: give its time in days since the install")
        if not (np.isfinite(ev.soh) and np.isfinite(ev.sd) and ev.sd > 0):
            raise EvidenceRejected(f"{ev.source} evidence at t = {ev.t_days} has no finite value or sd")
        if t_now is not None and ev.t_days < t_now:
            raise EvidenceRejected(f"evidence at t = {ev.t_days} days is older than the filter state ({t_now}); "
                                   "feed evidence in time order, none before t0_days")

    def _predict(self, t):
        if self.t is None:
            self.t = t
            return
        dt = t - self.t
        F = np.eye(3)
        F[0, 1] = dt
        Q = np.zeros((3, 3))
        Q[:2, :2] = self.q_rate * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q
        self.t = t

    def update(self, ev: SohEvidence):
        self._check(ev, self.t)
        self._predict(ev.t_days)
        H = np.array([1.0, 0.0, 1.0 if ev.source == "bms" else 0.0])
        S = H @ self.P @ H + ev.sd**2
        innov = ev.soh - H @ self.x
        # robust step: an innovation beyond 4 sigma is down-weighted (outlier readings)
        scale = max(1.0, abs(innov) / (4 * np.sqrt(S)))
        S_eff = H @ self.P @ H + (ev.sd * scale) ** 2
        K = self.P @ H / S_eff
        self.x = self.x + K * innov
        self.P = (np.eye(3) - np.outer(K, H)) @ self.P
        self.history.append((ev.t_days, float(self.x[0]), float(np.sqrt(self.P[0, 0])), ev.source, bool(scale > 1.0)))
        return self.soh, self.soh_sd

    def fuse(self, evidence):
        evidence = list(evidence)
        # all checked before any is used, so a bad item leaves the state as it was
        t_now = self.t
        for ev in evidence:
            self._check(ev, t_now)
        for ev in sorted(evidence, key=lambda e: e.t_days):
            self.update(ev)
        return self.soh, self.soh_sd

    @property
    def soh(self) -> float:
        return float(self.x[0])

    @property
    def soh_sd(self) -> float:
        return float(np.sqrt(self.P[0, 0]))

    @property
    def rate_per_day(self) -> float:
        return float(self.x[1])

    @property
    def bms_bias(self) -> float:
        """How much more optimistic the BMS is than the bias already taken off its readings (fraction of rated)."""
        return float(self.x[2])

    @property
    def bms_bias_sd(self) -> float:
        return float(np.sqrt(self.P[2, 2]))


def fuse_resistance(evidence, baseline_ohm=None):
    """Generalised-least-squares mean of resistance evidence, and growth vs baseline.

    Readings brought to 25 C by :func:`resistance_at_reference` share two errors: that of the
    activation energy, and that of the temperatures where they were estimated or unknown
    (counted as shared, since cabinets run systematically warm or cold). Their covariance is
    ``diag(sd_measurement^2) + u u' + v v'`` with ``u_i = r_i log_sd_ea_i`` and ``v_i = r_i
    log_sd_temp_i``; the GLS weights are ``C^-1 1`` (Aitken 1935), so a hundred cold-cabinet
    steps count together like one reading with their shared correction error, and cannot outvote
    a 25 C bench test, and the fused sd keeps the correction error that averaging cannot remove.
    Readings without that detail are independent with their ``sd_ohm`` (plain inverse variance).
    """
    ev = list(evidence)
    if not ev:
        raise EvidenceRejected("no resistance evidence")
    if baseline_ohm is not None and not (np.isfinite(baseline_ohm) and baseline_ohm >= 0):
        raise EvidenceRejected(f"baseline_ohm = {baseline_ohm} must be the new pack's positive resistance in ohm (or None)")
    r = np.array([e.resistance_ohm for e in ev])
    d = np.array([e.detail.get("sd_measurement_ohm", e.sd_ohm) for e in ev]) ** 2
    bad = ~(np.isfinite(r) & (r > 0) & np.isfinite(d) & (d > 0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise EvidenceRejected(f"resistance evidence {k} ({ev[k].source}, t = {ev[k].t_days} days) is {r[k]} ohm with measurement "
                               f"sd {np.sqrt(d[k])} ohm: fusion needs a positive, finite value and sd")
    U = np.column_stack([r * np.array([e.detail.get("log_sd_ea", 0.0) for e in ev]),
                         r * np.array([e.detail.get("log_sd_temp", 0.0) for e in ev])])
    # C^-1 = D^-1 - D^-1 U (I + U' D^-1 U)^-1 U' D^-1 (Woodbury): O(n) for any number of readings
    di = 1.0 / d
    k = np.eye(2) + (U.T * di) @ U
    ci_one = di - di * (U @ np.linalg.solve(k, U.T @ di))
    total = float(np.sum(ci_one))
    mean = float(ci_one @ r / total)
    sd = float(1.0 / np.sqrt(total))
    out = {"resistance_ohm": mean, "sd_ohm": sd}
    if baseline_ohm:
        out["growth"] = mean / baseline_ohm
    return out


# ---------------------------------------------------------------- evidence found in telemetry series

#: A segment is a discharge when the pack delivers at least this share of its rated capacity per
#: hour (0.02 C: ~2 A on a 100 Ah pack, above the ~0.1-0.5 A float and sensor noise of a
#: backup pack) and at least ``DISCHARGE_FLOOR_A``.
DISCHARGE_C_RATE = 0.02
DISCHARGE_FLOOR_A = 1.0
#: At rest: |I| at most this share of rated per hour (float current of a full pack, sensor offset).
REST_C_RATE = 0.01
#: A rested voltage needs this long without current: LFP relaxes to within ~10 mV of its
#: OCV in about 30 min (Plett vol. 1, sec. 2.7; longer rests are better, shorter are not OCV).
MIN_REST_S = 1800.0
#: Coulomb counting across a longer silence between two samples is guesswork.
MAX_SAMPLE_GAP_S = 600.0
#: A current step reads a DC resistance only when both samples are this close: IEC 61960-3
#: (sec. 7.8.3) reads the voltage 10 s and 1 s into each current level; longer spacing adds
#: diffusion polarization and SOC drift to dV.
MAX_STEP_GAP_S = 10.0


@dataclass(frozen=True)
class SeriesFindings:
    """What one pack's current/voltage series says: accepted evidence and, per rejected
    candidate, when it happened and why it says nothing."""

    soh: list
    resistance: list
    rejected: list  # (t_days, kind, reason)


def _runs(flag: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges [start, end) where ``flag`` is True."""
    f = np.r_[False, flag, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(f))
    return list(zip(edges[::2], edges[1::2]))


def series_evidence(time_s, current_a, voltage_v, cells_in_series: int, rated_ah: float, chemistry="LFP", t0_s: float = 0.0,
                    min_rest_s: float = MIN_REST_S, max_gap_s: float = MAX_SAMPLE_GAP_S, max_step_gap_s: float = MAX_STEP_GAP_S,
                    voltage_sd_v: float = 0.015, min_delta_soc: float = 0.3, temp_c=None, temp_sd_c=None) -> SeriesFindings:
    """Outage discharges and current steps in one pack's time series (one source, time-ordered).

    ``current_a`` is positive while charging (the telemetry convention), ``voltage_v`` the pack
    voltage; ``t0_s`` is the time that ``t_days`` of the evidence counts from.

    * An outage discharge is a run of discharge samples (>= 0.02 C) without gaps over
      ``max_gap_s``, with a rest (|I| <= 0.01 C for ``min_rest_s``) on both sides: the voltage
      at the end of each rest, divided by ``cells_in_series``, gives the SOC at that end
      through the OCV curve (:func:`outage_discharge_evidence`, which also rejects shallow
      or plateau-bound ones). A float-charged pack rests on its float voltage, which reads
      as full -- what it is. When the charger resumes at once after the outage there is no
      rested voltage at the end, and the discharge is rejected with that reason.
    * A current step gives R = dV/dI (:func:`dc_resistance`) when two consecutive samples at
      most ``max_step_gap_s`` apart both discharge (only the battery sets the voltage; at
      the start of an outage the drop from the charger's float voltage is not I*R) and the
      voltage moves against the current (more load, lower voltage). With ``temp_c`` (the
      pack's temperature per sample, NaN where not known; ``temp_sd_c`` its sd where it is an
      estimate, e.g. from the site's climate) the step is reported at 25 C
      (:func:`resistance_at_reference`, mean of the two samples); without, as read, with the
      spread of an unknown cabinet temperature in its sd. A step outside 0..45 C is rejected.
    """
    t = np.asarray(time_s, dtype=float)
    i = np.asarray(current_a, dtype=float)
    v = np.asarray(voltage_v, dtype=float)
    if not (t.shape == i.shape == v.shape) or t.ndim != 1:
        raise EvidenceRejected("time, current and voltage series must be one-dimensional and of equal length")
    # before the order check: NaN compares false, so NaN time stamps would pass it
    if not np.isfinite(t).all():
        k = int(np.flatnonzero(~np.isfinite(t))[0])
        raise EvidenceRejected(f"time_s[{k}] = {t[k]}: series time stamps must be finite seconds (drop readings without a time)")
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise EvidenceRejected("series time stamps must increase strictly (sort and drop duplicate readings first)")
    if not (np.isfinite(cells_in_series) and cells_in_series > 0 and np.isfinite(rated_ah) and rated_ah > 0):
        raise EvidenceRejected(f"cells in series ({cells_in_series}) and rated capacity ({rated_ah} Ah) must be positive")
    t0_s = _finite(t0_s, "t0_s", "s")
    temp = np.full(t.shape, np.nan) if temp_c is None else np.ma.filled(np.ma.asarray(temp_c, dtype=float), np.nan)
    temp_sd = np.zeros(t.shape) if temp_sd_c is None else np.broadcast_to(np.asarray(temp_sd_c, dtype=float), t.shape)
    if temp.shape != t.shape:
        raise EvidenceRejected("the temperature series must match the time series in length")
    ok = np.isfinite(i) & np.isfinite(v)
    t, i, v, temp, temp_sd = t[ok], i[ok], v[ok], temp[ok], temp_sd[ok]
    soh, res, rejected = [], [], []
    if t.size < 2:
        return SeriesFindings(soh, res, rejected)
    days = (t - t0_s) / 86400.0
    discharge = i <= -max(DISCHARGE_C_RATE * rated_ah, DISCHARGE_FLOOR_A)
    rest = np.abs(i) <= REST_C_RATE * rated_ah
    gap = np.r_[np.diff(t), np.inf]  # gap after each sample

    # outage discharges: split discharge runs at long silences
    for a, b in _runs(discharge):
        cuts = [a] + [k + 1 for k in range(a, b - 1) if gap[k] > max_gap_s] + [b]
        for s, e in zip(cuts[:-1], cuts[1:]):
            if e - s < 2:
                continue
            # the rest before: contiguous rest samples ending right before s, no long silence
            k0 = s - 1
            if k0 < 0 or not rest[k0] or gap[k0] > max_gap_s:
                rejected.append((float(days[s]), "outage", "no rest before the discharge: the SOC at its start is unknown"))
                continue
            k = k0
            while k - 1 >= 0 and rest[k - 1] and gap[k - 1] <= max_gap_s:
                k -= 1
            if t[k0] - t[k] < min_rest_s:
                rejected.append((float(days[s]), "outage", f"rest before the discharge lasted {(t[k0] - t[k]) / 60:.0f} min, "
                                                           f"under {min_rest_s / 60:.0f} min: the voltage is not yet the OCV"))
                continue
            k1 = e  # first sample after the run
            if k1 >= t.size or not rest[k1] or gap[e - 1] > max_gap_s:
                why = ("the charger resumed at once" if k1 < t.size and i[k1] > 0 else "the series ends or goes silent")
                rejected.append((float(days[s]), "outage", f"no rest after the discharge ({why}): the SOC at its end is unknown"))
                continue
            k = k1
            while k + 1 < t.size and rest[k + 1] and gap[k] <= max_gap_s:
                k += 1
            if t[k] - t[k1] < min_rest_s:
                rejected.append((float(days[s]), "outage", f"rest after the discharge lasted {(t[k] - t[k1]) / 60:.0f} min, "
                                                           f"under {min_rest_s / 60:.0f} min: the voltage is not yet the OCV"))
                continue
            # count the charge from the last rested sample to the first one after (trapezoid)
            seg = slice(k0, k1 + 1)
            try:
                soh.append(outage_discharge_evidence(t[seg] - t[k0], -i[seg], v[k0] / cells_in_series, v[k] / cells_in_series,
                                                     rated_ah, t_days=float(days[s]), chemistry=chemistry,
                                                     voltage_sd_v=voltage_sd_v, min_delta_soc=min_delta_soc))
            except EvidenceRejected as exc:
                rejected.append((float(days[s]), "outage", str(exc)))

    # current steps within a discharge
    for k in np.flatnonzero(discharge[:-1] & discharge[1:] & (gap[:-1] <= max_step_gap_s)):
        di = i[k + 1] - i[k]
        dv = v[k + 1] - v[k]
        if abs(di) < DISCHARGE_FLOOR_A or dv * di <= 0:
            continue  # no step, or the voltage did not move against the current (not an I*R drop)
        try:
            step = dc_resistance(v[k], v[k + 1], -i[k], -i[k + 1], t_days=float(days[k + 1]))
            known = np.isfinite(temp[k:k + 2])
            at = (float(np.mean(temp[k:k + 2][known])), float(np.mean(temp_sd[k:k + 2][known]))) if known.any() else (None, 0.0)
            res.append(resistance_at_reference(step, at[0], temp_sd_c=at[1]))
        except EvidenceRejected as exc:
            rejected.append((float(days[k + 1]), "step", str(exc)))
    return SeriesFindings(soh, res, rejected)

