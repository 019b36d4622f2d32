"""Semi-empirical aging models for telecom Li-ion backup packs (LFP, NMC).

Pure NumPy; no Django. This module is the one aging implementation of battloop:
forecasts, scenario knobs and the demo world's ground-truth aging all call
:func:`simulate_aging` / :func:`simulate_capacity_fade`.

Model form (NREL BLAST-Lite family: Smith et al., "Life prediction model for
grid-connected Li-ion battery energy storage system", ACC 2017; Gasper et al.,
J. Energy Storage 73 (2023) 109042; Naumann et al., "Analysis and modeling of
calendar aging of a commercial LiFePO4/graphite cell", J. Energy Storage 17
(2018) 153-169)::

    q = 1 - m * (L_cal + L_cyc)                      relative capacity
    L_cal = k_cal(T, SOC) * t^p_cal                  calendar loss, t in days
    k_cal = k_ref * exp(-Ea/R (1/T - 1/T_ref)) * (s0 + s1*SOC + s2*SOC^2)
    L_cyc = k_cyc(T, DOD) * EFC^p_cyc                cycle loss, EFC = equivalent full cycles
    k_cyc = c_ref * max(exp(-Ea_cyc/R (1/T - 1/T_ref)), exp(+Ea_cold/R (1/T - 1/T_ref))) * DOD^beta
    r = 1 + m * (k_r(T, SOC) * t^p_r + c_r * EFC)    relative DC resistance

Cycling has two temperature regimes (Waldmann et al., "Temperature dependent ageing
mechanisms in Lithium-ion batteries -- A Post-Mortem study", J. Power Sources 262 (2014)
129-135): above about 25 C SEI growth speeds up with temperature, below it lithium plating
on the graphite takes over and cycling costs more the colder the cell is charged. The cycle
law takes the larger of the two Arrhenius branches, which meet at 25 C. A cold cabinet in
Heilongjiang therefore ages a cycled pack faster, not slower, than a temperate one; with a
single warm-side Arrhenius term it would read as protective.

``m`` is the per-pack degradation multiplier (BLAST-Lite's
``degradation_scalar``), calibrated per cohort and per pack by
:mod:`battloop.health.forecast`.

Path dependence. Under time-varying stress the power laws are integrated with
the "virtual time" rule used by BLAST-Lite: at every step the state continues
from the equivalent time that produces the present loss at the new stress. For
``L = k t^p`` this reduces to the exact closed form ``L = (sum_i k_i^(1/p)
dt_i)^p``, so an arbitrary temperature/SOC/throughput history is a cumulative
sum -- vectorised across packs and steps, no Python loop.

Parameter sets (see ``PARAMETER_SETS``):

* ``LFP`` calendar and resistance terms: fitted to the Naumann et al. 2018
  calendar data (17 T/SOC conditions, 0-60 C, 0-100 % SOC; Mendeley
  doi:10.17632/kxh42bfgtj.1, CC BY 4.0). The capacity fit is weighted towards
  float duty, the condition of telecom backup: the check-ups at 100 % SOC count
  five times, and the paper's 885-day values at 100 % SOC (89.0 / 86.4 / 77.4 %
  at 25 / 40 / 60 C) twenty times. One Arrhenius law times one SOC polynomial
  cannot follow every condition of this cell (at 100 % SOC it fades almost as
  fast at 25 C as at 40 C); an unweighted fit (MAE 0.45 pp over all check-ups)
  was 0.63 pp off at 100 % SOC and 3.2 pp optimistic at 25 C/885 days, which
  doubled the forecast float life at 25 C. Weighted: MAE 0.56 pp over all
  check-ups, 0.39 pp at 100 % SOC; at 885 days 90.6 / 85.9 / 77.1 %. It gives
  q = 0.916 after one year at 35 C/100 % SOC, against 0.921 for BLAST-Lite's
  ``Lfp_Gr_SonyMurata3Ah_Battery`` that was fitted to the same cell. The cycle
  term follows the BLAST-Lite ``Lfp_Gr_250AhPrismatic`` form (EFC^0.828), with
  its rate set so that 100 % DOD cycling at 25 C alone costs 20 % at 4,000 EFC.
  Its cold branch is that model's own temperature term ``exp(p7/T)``, p7 = 2190 K
  (Ea 18.2 kJ/mol, cycling fade 1.48x at 10 C and 2.7x at -10 C against 25 C). That
  set was fitted on 10-45 C with charge limited to 0.16 C at 10 C, close to the
  gentle recharge after a telecom outage, and its authors note that the term also
  balances their calendar law over those tests rather than isolating one mechanism.
  Here it stands for the plating regime below 25 C only (above, the warm branch
  holds), and below 10 C it is an extrapolation.
* ``NMC`` calendar term: fitted to BLAST-Lite ``NMC_Gr_75Ah_A`` float outputs
  (Gasper et al. 2023: q = 0.987/0.963/0.884 after one year at 25/35/45 C and
  100 % SOC; 0.905 at 5 years and 0.858 at 10 years at 35 C; least squares on
  these five, which one activation energy cannot all meet: the fit gives
  0.9885/0.9621/0.8838 and 0.904/0.858, within 0.16 pp of each); the cycle term
  costs 20 % at 1,500 EFC (100 % DOD, 25 C), with Waldmann et al. 2014's two
  activation energies, measured on NMC/LMO-graphite 18650s cycled at 1 C from
  -20 to 70 C: 27.0 kJ/mol above 25 C and 55.5 kJ/mol (fade rising as T falls)
  below: 2.2x at 15 C and 20x at -10 C. Those cells were charged at 1 C; plating
  falls steeply with the charge rate, so for a telecom pack recharged at 0.1-0.2 C
  the cold branch is an upper bound; resistance follows the form of the
  BLAST-Lite Kokam NMC111 trend with a gentler rate: +44 % when capacity reaches
  80 % at 35 C float, +17 % at 45 C (Kokam's own cells grow far faster, ~3x in a
  year at 45 C; telecom NMC packs are not that cell).
* ``GENERIC``: an explicit, conservative envelope (at every step the faster
  fading of the LFP and NMC laws) for packs whose chemistry is not recorded.
  It is never chosen silently: the caller has to ask for it by name.

These are cell-level laws. BLAST-Lite's rule of thumb that pack life is 20-30 %
shorter than cell life is available as ``pack_factor`` (default 1.0 = cell
level), an explicit assumption. It multiplies the loss like the rate multiplier
does, so under the calendar law's ``t^p_cal`` it shortens calendar life by
``pack_factor^(-1/p_cal)``: for LFP 1.25 would take 40 % off, not a fifth.
:func:`pack_factor_for` gives the factor of a stated life ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

R_GAS = 8.314462618  # J/(mol K)
T_REF_K = 298.15


class UnknownChemistryError(ValueError):
    """Raised for a chemistry without a parameter set; names the known ones."""


class AgingInputError(ValueError):
    """Raised for unusable stress histories (NaN temperature, bad shapes, negative steps)."""


#: Temperatures accepted as cell temperatures, C. Far wider than any Li-ion cell's operating
#: window, so a value outside is a unit error (298 K, 150 F) or a broken sensor, not a climate.
TEMP_RANGE_C = (-60.0, 120.0)
#: Round-off allowed beyond 0..1 in a fraction computed by the caller (e.g. 1 - dod).
FRACTION_TOLERANCE = 1e-9


def _checked_array(x) -> np.ndarray:
    # an ndarray is checked as it is (float32, int): converting it would copy a fleet-sized array
    return x if isinstance(x, np.ndarray) else np.asarray(x, dtype=float)


def _where(a: np.ndarray, bad: np.ndarray) -> str:
    """' at index (i, j)' of the first True of ``bad``; empty for a scalar."""
    return f" at index {tuple(int(i) for i in np.argwhere(bad)[0])}" if a.ndim else ""


def check_temperature_c(temp_c, name: str = "temp_c", error: type[ValueError] = AgingInputError, fix: str = "") -> None:
    """Refuse NaN, infinite and out-of-range (:data:`TEMP_RANGE_C`) temperatures in C.

    Two reductions (min, max) over the array and no copy of it: NaN propagates into both, so
    the valid case costs two passes; the offending element is looked for only on refusal.
    ``error`` is the class to raise (callers outside this module keep their own); ``fix`` is
    appended to the message for NaN (what to do about a gap).
    """
    a = _checked_array(temp_c)
    if a.size == 0:
        return
    lo_c, hi_c = TEMP_RANGE_C
    t_min, t_max = float(a.min()), float(a.max())
    if lo_c <= t_min and t_max <= hi_c:  # False when either is NaN
        return
    nan = np.isnan(a)
    if nan.any():
        what = f"has {int(nan.sum())} NaN value(s), first{_where(a, nan)}" if a.ndim else "is NaN"
        raise error(f"{name} {what}; {fix or 'give a measured or estimated temperature in C'}")
    bad = (a < lo_c) | (a > hi_c)
    v = float(a[tuple(np.argwhere(bad)[0])]) if a.ndim else float(a)
    hint = "check the unit (Kelvin or Fahrenheit given?)"
    if 200.0 <= v <= 400.0:
        hint = f"it looks like Kelvin ({v:g} K = {v - 273.15:.4g} C): subtract 273.15"
    elif not np.isfinite(v):
        hint = "not a temperature: check the sensor or the import"
    raise error(f"{name} = {v:g}{_where(a, bad)} is outside {lo_c:g}..{hi_c:g} C: {hint}")


def check_fraction(x, name: str, error: type[ValueError] = AgingInputError) -> None:
    """Refuse a state of charge, depth of discharge or capacity ratio that is NaN or outside 0..1.

    The aging laws clip SOC and DOD to 0..1, so a value in percent (98, 50) would silently be
    read as 1.0; it is refused here instead. Two reductions, no copy (see :func:`check_temperature_c`).
    """
    a = _checked_array(x)
    if a.size == 0:
        return
    lo, hi = float(a.min()), float(a.max())
    if -FRACTION_TOLERANCE <= lo and hi <= 1.0 + FRACTION_TOLERANCE:  # False when either is NaN
        return
    nan = np.isnan(a)
    if nan.any():
        raise error(f"{name} has NaN{_where(a, nan)}; give a fraction 0..1")
    high = a > 1.0 + FRACTION_TOLERANCE
    if high.any():
        v = float(a[tuple(np.argwhere(high)[0])]) if a.ndim else float(a)
        raise error(f"{name} = {v:g}{_where(a, high)} is above 1: give fractions, not percent ({v / 100:g}, not {v:g})")
    low = a < -FRACTION_TOLERANCE
    v = float(a[tuple(np.argwhere(low)[0])]) if a.ndim else float(a)
    raise error(f"{name} = {v:g}{_where(a, low)} is negative: give a fraction 0..1")


def check_non_negative(x, name: str, unit: str, error: type[ValueError] = AgingInputError) -> None:
    """Refuse NaN, infinite or negative amounts (step lengths, cycle counts); two reductions, no copy."""
    a = _checked_array(x)
    if a.size == 0:
        return
    lo, hi = float(a.min()), float(a.max())
    if 0.0 <= lo and hi < np.inf:  # False when either is NaN
        return
    bad = ~np.isfinite(a) | (a < 0)
    v = float(a[tuple(np.argwhere(bad)[0])]) if a.ndim else float(a)
    why = " (time runs forward)" if np.isfinite(v) else ""
    raise error(f"{name} = {v:g} {unit}{_where(a, bad)}: {name} must be finite and non-negative{why}")


def _check_multiplier(degradation_multiplier, pack_factor) -> np.ndarray:
    """``m = degradation_multiplier * pack_factor``, refusing NaN, infinite or negative factors."""
    if not (np.isfinite(pack_factor) and pack_factor > 0):
        raise AgingInputError(f"pack_factor = {pack_factor!r}: give a positive number (1.0 = cell level; "
                              "pack_factor_for(chemistry) gives BLAST-Lite's rule of thumb of a 25 % shorter pack life)")
    m = np.asarray(degradation_multiplier, dtype=float)
    if m.size and not (float(m.min()) >= 0.0 and float(m.max()) < np.inf):
        bad = ~np.isfinite(m) | (m < 0)
        v = float(m[tuple(np.argwhere(bad)[0])]) if m.ndim else float(m)
        raise AgingInputError(f"degradation_multiplier = {v:g}{_where(m, bad)}: give a finite, non-negative rate multiplier "
                              "(1.0 = the cohort's nominal aging)")
    return m * pack_factor


@dataclass(frozen=True)
class AgingParameters:
    """One published/derived parameter set; fields carry their units."""

    chemistry: str
    source: str
    k_cal_ref: float  # calendar loss coefficient at 25 C, per day^p_cal
    ea_cal_j_mol: float
    soc_poly: tuple  # (s0, s1, s2) of the SOC stress polynomial, 1.0 at SOC = 1
    p_cal: float
    k_cyc_ref: float  # cycle loss coefficient at 25 C and 100 % DOD, per EFC^p_cyc
    ea_cyc_j_mol: float  # warm branch (SEI growth): cycling fade rises with T above 25 C
    ea_cyc_cold_j_mol: float  # cold branch (lithium plating): cycling fade rises as T falls below 25 C
    dod_exponent: float
    p_cyc: float
    k_res_ref: float  # calendar resistance growth coefficient at 25 C, per day^p_res
    ea_res_j_mol: float
    res_soc_floor: float  # resistance SOC stress = floor + (1 - floor) * SOC
    p_res: float
    k_res_cyc: float  # resistance growth per EFC


#: The cold branch of the LFP cycle law: BLAST-Lite ``Lfp_Gr_250AhPrismatic``'s ``exp(p7 / T)``
#: with p7 = 2190 K, written as an activation energy (p7 * R).
LFP_CYCLE_COLD_EA_J_MOL = 2190.0 * R_GAS

PARAMETER_SETS = {
    "LFP": AgingParameters(
        chemistry="LFP",
        source="calendar/resistance: fit to Naumann et al. 2018 (doi:10.1016/j.est.2018.01.019); cycle: BLAST-Lite Lfp_Gr_250AhPrismatic form",
        k_cal_ref=4.92e-3, ea_cal_j_mol=20_980.0, soc_poly=(0.2207, 0.8549, -0.0756), p_cal=0.435,
        k_cyc_ref=0.2 / 4000.0**0.828, ea_cyc_j_mol=15_000.0, ea_cyc_cold_j_mol=LFP_CYCLE_COLD_EA_J_MOL, dod_exponent=0.6, p_cyc=0.828,
        k_res_ref=4.71e-5, ea_res_j_mol=68_990.0, res_soc_floor=0.51, p_res=1.0, k_res_cyc=2.0e-5,
    ),
    "NMC": AgingParameters(
        chemistry="NMC",
        source="calendar: fit to BLAST-Lite NMC_Gr_75Ah_A outputs (Gasper et al. 2023, doi:10.1016/j.est.2023.109042); resistance: BLAST-Lite Kokam NMC111 trend",
        k_cal_ref=3.854e-4, ea_cal_j_mol=91_330.0, soc_poly=(0.4, 0.6, 0.0), p_cal=0.575,
        k_cyc_ref=0.2 / 1500.0**0.8, ea_cyc_j_mol=27_000.0, ea_cyc_cold_j_mol=55_500.0, dod_exponent=1.0, p_cyc=0.8,
        k_res_ref=2.0e-4, ea_res_j_mol=50_000.0, res_soc_floor=0.5, p_res=0.8, k_res_cyc=1.5e-4,
    ),
}
ALIASES = {"LFP": "LFP", "LIFEPO4": "LFP", "LFP-GR": "LFP", "NMC": "NMC", "NCM": "NMC", "NMC111": "NMC", "NMC532": "NMC",
           "NMC622": "NMC", "NMC811": "NMC", "NCA": "NMC", "GENERIC": "GENERIC"}


#: Pack life as a share of cell life under the same duty: the middle of BLAST-Lite's rule of thumb
#: (pack life 20-30 % shorter than cell life; DOMAIN.md section 3).
PACK_LIFE_RATIO = 0.75


def pack_factor_for(chemistry: str, life_ratio: float = PACK_LIFE_RATIO) -> float:
    """The ``pack_factor`` that makes calendar life ``life_ratio`` times the cell's.

    Loss ``f * k t^p`` reaches a threshold at ``t / f^(1/p)``, so ``f = (1 / life_ratio)^p_cal``:
    1.13 for LFP and 1.18 for NMC at 0.75. Float-charged packs age by calendar, which is why
    the calendar exponent sets it; cycle life shortens a little less (``p_cyc`` is larger).
    """
    if not 0.0 < life_ratio <= 1.0:
        raise AgingInputError(f"life_ratio = {life_ratio!r}: give the pack's share of cell life, 0 < ratio <= 1 (e.g. 0.75)")
    return float((1.0 / life_ratio) ** get_parameters(chemistry).p_cal)


def resolve_chemistry(chemistry: str) -> str:
    """Canonical chemistry key (LFP, NMC or GENERIC); unknown names raise :class:`UnknownChemistryError`."""
    key = ALIASES.get(str(chemistry).strip().upper().replace(" ", ""))
    if key is None:
        raise UnknownChemistryError(
            f"unknown chemistry {chemistry!r}: known are LFP (LiFePO4), NMC (NCM, NCA); "
            "pass chemistry='GENERIC' to use the conservative generic model explicitly"
        )
    return key


def get_parameters(chemistry: str) -> AgingParameters:
    """Parameter set for ``chemistry`` (LFP or NMC/NCM/NCA). GENERIC has no single set: see :func:`simulate_aging`."""
    key = resolve_chemistry(chemistry)
    if key == "GENERIC":
        raise UnknownChemistryError("GENERIC is an envelope of the LFP and NMC sets, not one parameter set; call simulate_aging")
    return PARAMETER_SETS[key]


def arrhenius(temp_c, ea_j_mol: float, t_ref_k: float = T_REF_K):
    """Arrhenius acceleration factor relative to 25 C (Arrhenius 1889)."""
    tk = np.asarray(temp_c, dtype=float) + 273.15
    return np.exp(-ea_j_mol / R_GAS * (1.0 / tk - 1.0 / t_ref_k))


def _calendar_rate(params: AgingParameters, temp_c, soc):
    soc = np.clip(np.asarray(soc, dtype=float), 0.0, 1.0)
    s0, s1, s2 = params.soc_poly
    stress = np.maximum(s0 + s1 * soc + s2 * soc**2, 0.0)
    return params.k_cal_ref * arrhenius(temp_c, params.ea_cal_j_mol) * stress


def cycle_temperature_factor(params: AgingParameters, temp_c):
    """Cycling fade at ``temp_c`` relative to 25 C: the larger of the warm (SEI) and the cold (lithium
    plating) Arrhenius branch, which meet at 25 C (Waldmann et al. 2014, see the module docstring)."""
    return np.maximum(arrhenius(temp_c, params.ea_cyc_j_mol), arrhenius(temp_c, -params.ea_cyc_cold_j_mol))


def _cycle_rate(params: AgingParameters, temp_c, dod):
    dod = np.clip(np.asarray(dod, dtype=float), 0.0, 1.0)
    return params.k_cyc_ref * cycle_temperature_factor(params, temp_c) * dod**params.dod_exponent


def _resistance_rate(params: AgingParameters, temp_c, soc):
    soc = np.clip(np.asarray(soc, dtype=float), 0.0, 1.0)
    return params.k_res_ref * arrhenius(temp_c, params.ea_res_j_mol) * (params.res_soc_floor + (1 - params.res_soc_floor) * soc)


# The public rate functions check the fractions they are given (the laws clip them to 0..1, so
# percent would pass silently); simulate_aging and years_to_threshold check their own inputs
# once, by their own names, and call the unchecked kernels above.
def calendar_rate(params: AgingParameters, temp_c, soc):
    """k_cal(T, SOC) of the calendar law (loss per day^p_cal); ``soc`` a fraction 0..1."""
    check_fraction(soc, "soc")
    return _calendar_rate(params, temp_c, soc)


def cycle_rate(params: AgingParameters, temp_c, dod):
    """k_cyc(T, DOD) of the cycle law (loss per EFC^p_cyc); ``dod`` a fraction 0..1."""
    check_fraction(dod, "dod")
    return _cycle_rate(params, temp_c, dod)


def resistance_rate(params: AgingParameters, temp_c, soc):
    """k_r(T, SOC) of the calendar resistance law (growth per day^p_res); ``soc`` a fraction 0..1."""
    check_fraction(soc, "soc")
    return _resistance_rate(params, temp_c, soc)


def integrate_power_law(rate, dt, p: float, axis: int = -1, initial=0.0):
    """Path-dependent integral of ``L = k t^p`` under a time-varying rate ``k``.

    Virtual-time state update (BLAST-Lite ``update_power_state``) in closed
    form: ``L_n = (S0 + sum_{i<=n} k_i^(1/p) dt_i)^p`` where ``S0 = L0^(1/p)``
    carries the history before the first step (``initial`` = S0, per pack).
    Returns (loss after every step, stress-time state after the last step).
    """
    rate = np.asarray(rate, dtype=float)
    s = np.cumsum(np.power(np.maximum(rate, 0.0), 1.0 / p) * dt, axis=axis)
    s += np.expand_dims(np.asarray(initial, dtype=float), -1) if np.ndim(initial) else initial
    return np.power(s, p), s[..., -1].copy()


@dataclass
class AgingState:
    """Accumulated stress-time of each law after a history (per pack), to continue a simulation.

    ``s_cal``/``s_cyc``/``s_res`` are the virtual-time states S = L^(1/p) of the
    calendar, cycle and resistance laws; ``efc`` the cumulative equivalent full cycles.
    """

    s_cal: np.ndarray | float = 0.0
    s_cyc: np.ndarray | float = 0.0
    s_res: np.ndarray | float = 0.0
    efc: np.ndarray | float = 0.0


@dataclass
class AgingResult:
    """Arrays after every step: relative capacity ``q``, relative resistance ``r`` and the loss split."""

    q: np.ndarray
    r: np.ndarray
    loss_calendar: np.ndarray
    loss_cycle: np.ndarray
    t_days: np.ndarray
    efc: np.ndarray
    final_state: AgingState | None = None


def _as_history(x, name, shape=None):
    a = np.asarray(x, dtype=float)
    if shape is not None:
        try:
            a = np.broadcast_to(a, shape)
        except ValueError:
            raise AgingInputError(f"{name}: shape {np.shape(x)} does not match the temperature history {shape}") from None
    return a


def simulate_aging(chemistry, temp_c, soc_mean=1.0, efc_per_step=0.0, dod=0.5, dt_days=1.0,
                   degradation_multiplier=1.0, pack_factor: float = 1.0, params: AgingParameters | None = None,
                   state: AgingState | None = None) -> AgingResult:
    """Capacity and resistance after every step of a stress history.

    Parameters
    ----------
    chemistry : "LFP", "NMC" (aliases NCM, NCA, NMC811 ...) or the explicit "GENERIC".
    temp_c : array (nsteps,) or (npacks, nsteps), cell temperature in C per step.
        NaN is refused (fill gaps with :func:`fill_temperature_gaps` first).
    soc_mean : mean state of charge per step, fraction 0..1 (float charge: ~1.0); percent is refused.
    efc_per_step : equivalent full cycles in each step (throughput / 2 / capacity), finite, >= 0.
    dod : depth of discharge of the cycles in each step, fraction 0..1; percent is refused.
    dt_days : step length in days (scalar or per step), finite, >= 0.
    degradation_multiplier : per-pack rate multiplier ``m`` (scalar or (npacks, 1)), finite, >= 0.
    pack_factor : pack-vs-cell loss factor; 1.0 = cell. :func:`pack_factor_for` gives the factor
        of a pack life ratio (BLAST-Lite's rule of thumb: 20-30 % shorter, LFP about 1.10-1.17).
    state : :class:`AgingState` of the history before the first step (``final_state``
        of an earlier call), so a forecast continues the pack's real past.

    All inputs broadcast against ``temp_c``; the last axis is time. Bad input raises
    :class:`AgingInputError` naming the field, the value and its index. The checks are
    min/max reductions over the arrays as given (a per-pack column is checked once, not per
    step), so they cost a few passes over the data and copy nothing.
    """
    if params is None and resolve_chemistry(chemistry) == "GENERIC":
        # explicit envelope: the faster-fading chemistry at every step and pack
        if state is not None:
            raise AgingInputError("GENERIC does not continue from a state; simulate the whole history")
        runs = [simulate_aging(c, temp_c, soc_mean, efc_per_step, dod, dt_days, degradation_multiplier, pack_factor) for c in ("LFP", "NMC")]
        worse = runs[0].q <= runs[1].q
        pick = lambda a, b: np.where(worse, a, b)  # noqa: E731
        return AgingResult(q=pick(runs[0].q, runs[1].q), r=np.maximum(runs[0].r, runs[1].r),
                           loss_calendar=pick(runs[0].loss_calendar, runs[1].loss_calendar),
                           loss_cycle=pick(runs[0].loss_cycle, runs[1].loss_cycle), t_days=runs[0].t_days, efc=runs[0].efc)
    p = params or get_parameters(chemistry)
    temp = np.asarray(temp_c, dtype=float)
    if temp.ndim == 0:
        temp = temp[None]
    if temp.ndim > 2:
        raise AgingInputError(f"temp_c must be (nsteps,) or (npacks, nsteps), got shape {temp.shape}")
    check_temperature_c(temp, "temp_c", fix="fill gaps (e.g. fill_temperature_gaps) before simulating")
    shape = temp.shape
    # checked as given, before broadcasting: a per-pack (npacks, 1) column costs npacks, not npacks x nsteps
    soc_in, dod_in = _checked_array(soc_mean), _checked_array(dod)
    check_fraction(soc_in, "soc_mean")
    check_fraction(dod_in, "dod")
    check_non_negative(efc_per_step, "efc_per_step", "EFC")
    check_non_negative(dt_days, "dt_days", "days")
    soc = _as_history(soc_in, "soc_mean", shape)
    efc = _as_history(efc_per_step, "efc_per_step", shape)
    _as_history(dod_in, "dod", shape)  # shape check only: the cycle rate broadcasts against temp itself
    dt = _as_history(dt_days, "dt_days", shape)
    m = _check_multiplier(degradation_multiplier, pack_factor)
    st = state or AgingState()
    # the SOC and DOD stresses are evaluated on the arrays as given and broadcast by the product
    # with the temperature term: same values as on the broadcast views, fewer operations
    l_cal, s_cal = integrate_power_law(_calendar_rate(p, temp, soc_in), dt, p.p_cal, initial=st.s_cal)
    l_cyc, s_cyc = integrate_power_law(_cycle_rate(p, temp, dod_in), efc, p.p_cyc, initial=st.s_cyc)
    l_res, s_res = integrate_power_law(_resistance_rate(p, temp, soc_in), dt, p.p_res, initial=st.s_res)
    efc0 = np.asarray(st.efc, dtype=float)
    efc_cum = np.cumsum(efc, axis=-1) + (efc0[..., None] if efc0.ndim else efc0)
    q = 1.0 - m * (l_cal + l_cyc)
    r = 1.0 + m * (l_res + p.k_res_cyc * efc_cum)
    return AgingResult(q=np.maximum(q, 0.0), r=r, loss_calendar=l_cal, loss_cycle=l_cyc,
                       t_days=np.cumsum(dt, axis=-1), efc=efc_cum,
                       final_state=AgingState(s_cal, s_cyc, s_res, efc_cum[..., -1].copy()))


def state_at(chemistry, result: AgingResult, step: np.ndarray, multiplier=1.0) -> AgingState:
    """The :class:`AgingState` of each pack (row of ``result``) after its own ``step``-th step.

    A fleet simulated in one call with each pack's history starting at column 0 ends at
    different columns for packs of different ages; the virtual-time states follow from the
    losses already computed (``S = L^(1/p)``), so nothing is simulated twice.
    ``multiplier`` is the ``degradation_multiplier × pack_factor`` the result was run with.
    """
    p = get_parameters(chemistry)
    rows = np.arange(result.q.shape[0])
    step = np.asarray(step, dtype=int)
    l_cal = result.loss_calendar[rows, step]
    l_cyc = result.loss_cycle[rows, step]
    efc = result.efc[rows, step]
    m = np.asarray(multiplier, dtype=float).reshape(-1) if np.ndim(multiplier) else float(multiplier)
    l_res = (result.r[rows, step] - 1.0) / m - p.k_res_cyc * efc
    return AgingState(np.power(l_cal, 1.0 / p.p_cal), np.power(l_cyc, 1.0 / p.p_cyc),
                      np.power(np.maximum(l_res, 0.0), 1.0 / p.p_res), efc)


def simulate_capacity_fade(chemistry, temp_c, soc_mean=1.0, efc_per_step=0.0, dod=0.5, dt_days=1.0,
                           degradation_multiplier=1.0, pack_factor: float = 1.0) -> np.ndarray:
    """Relative capacity (SOH as a fraction of initial capacity) after every step.

    The entry point for the demo world simulator and other callers that only
    need capacity. Example: ten packs, ten years of daily float at site
    temperatures, 12 outages a year at 50 % DOD::

        temp = site_temp_c[None, :] + rng.normal(0, 2, (10, 1))   # (10, 3650)
        efc = np.zeros((10, 3650)); efc[:, ::30] = 0.5             # 0.5 EFC per outage
        q = simulate_capacity_fade("LFP", temp, soc_mean=0.98, efc_per_step=efc, dod=0.5)

    See :func:`simulate_aging` for the parameters and the model.
    """
    return simulate_aging(chemistry, temp_c, soc_mean, efc_per_step, dod, dt_days, degradation_multiplier, pack_factor).q


def fill_temperature_gaps(temp_c, fallback_c: float | None = None):
    """Fill NaN temperatures by linear interpolation along time (edges: nearest valid value).

    A row without any valid reading gets ``fallback_c`` (e.g. the site's climate
    normal); without a fallback that is an error. Returns (filled, n_filled).
    """
    if fallback_c is not None:
        check_temperature_c(fallback_c, "fallback_c")
    a = np.array(temp_c, dtype=float, copy=True)
    two_d = a.ndim == 2
    a2 = a if two_d else a[None]
    n_filled = int(np.isnan(a2).sum())
    x = np.arange(a2.shape[-1])
    for i in range(a2.shape[0]):
        row = a2[i]
        ok = ~np.isnan(row)
        if ok.all():
            continue
        if not ok.any():
            if fallback_c is None:
                raise AgingInputError(f"temperature history {i} has no valid reading; give fallback_c (the site's mean temperature)")
            row[:] = fallback_c
            continue
        row[~ok] = np.interp(x[~ok], x[ok], row[ok])
    return (a2 if two_d else a2[0]), n_filled


def years_to_threshold(chemistry, temp_c: float, soc: float = 1.0, efc_per_year: float = 0.0, dod: float = 0.5,
                       threshold: float = 0.8, degradation_multiplier=1.0, pack_factor: float = 1.0, max_years: float = 50.0):
    """Years of constant conditions until capacity falls below ``threshold`` (``inf`` beyond ``max_years``).

    Closed form of the constant-stress laws, solved by bisection; vectorised over
    ``degradation_multiplier``. Inputs are checked as in :func:`simulate_aging` (temperature in C
    within -60..120, SOC, DOD and ``threshold`` as fractions), so a unit error is refused rather
    than answered with a lifetime.
    """
    if resolve_chemistry(chemistry) == "GENERIC":
        return np.minimum(*(years_to_threshold(c, temp_c, soc, efc_per_year, dod, threshold, degradation_multiplier, pack_factor, max_years)
                            for c in ("LFP", "NMC")))
    check_temperature_c(temp_c, "temp_c")
    check_fraction(soc, "soc")
    check_fraction(dod, "dod")
    check_non_negative(efc_per_year, "efc_per_year", "EFC/year")
    if not 0.0 < threshold < 1.0:  # also refuses NaN
        hint = f": give fractions, not percent ({threshold / 100:g}, not {threshold:g})" if threshold > 1 else ""
        raise AgingInputError(f"threshold = {threshold:g} must be a capacity fraction between 0 and 1 (e.g. 0.8){hint}")
    if not (np.isfinite(max_years) and max_years > 0):
        raise AgingInputError(f"max_years = {max_years!r} must be a positive, finite number of years (e.g. 50)")
    p = get_parameters(chemistry)
    kc = _calendar_rate(p, temp_c, soc)
    ky = _cycle_rate(p, temp_c, dod)
    m = _check_multiplier(degradation_multiplier, pack_factor)

    def loss(years):
        d = years * 365.25
        return m * (kc * d**p.p_cal + ky * (efc_per_year * years) ** p.p_cyc)

    target = 1.0 - threshold
    lo = np.zeros_like(m, dtype=float)
    hi = np.full_like(m, max_years, dtype=float)
    never = loss(hi) < target
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        over = loss(mid) >= target
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    return np.where(never, np.inf, hi)
