"""Site backup-time outlook, portfolio retirements per quarter, and aging anomalies.

Pure NumPy/pandas; no Django. ``battloop assess`` loads packs and sites from
the registry, calls these functions and stores the results.

Backup time follows the usual telecom sizing relation (YD/T 2344.1 / IEEE
1184-style): usable energy = sum over parallel packs of nominal voltage x
rated Ah x SOH x usable DOD x discharge efficiency; hours = energy / load.
Resistance growth lowers the usable energy further through the voltage drop
at the site's load current (a first-order correction: the cut-off voltage is
reached earlier by I*R/ (V_nominal - V_cutoff) of the window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .trajectory import Z_P90


class OutlookInputError(ValueError):
    """Bad input to an outlook function; names the field and the fix."""


#: Discharge cut-off as a share of nominal voltage (43.2 V of a 48 V string, 2.88 V per LFP cell
#: of 15S; YD/T 2344.1 sizing uses about this end voltage).
CUTOFF_SHARE = 0.9


def pack_energy_wh(soh, rated_ah, nominal_v=48.0, usable_dod=0.9, efficiency=0.95, resistance_ohm=None, current_a=None,
                   cutoff_v=None):
    """Usable discharge energy of each pack: V_nominal x rated Ah x SOH x usable DOD x efficiency.

    With ``resistance_ohm`` and ``current_a`` (the pack's share of the load) the voltage drop
    ``I R`` brings the cut-off forward by that share of the window between nominal and cut-off
    voltage (``cutoff_v``, default :data:`CUTOFF_SHARE` of nominal): energy x (1 - I R / (V - V_cut)).
    A first-order correction; it is why a pack whose resistance has doubled gives less backup
    than its capacity says.
    """
    rated = np.asarray(rated_ah, dtype=float)
    if np.any(rated <= 0):
        raise OutlookInputError("rated_ah must be positive for every pack")
    volts = np.asarray(nominal_v, dtype=float)
    energy = volts * rated * np.clip(np.asarray(soh, dtype=float), 0, None) * usable_dod * efficiency
    if resistance_ohm is None or current_a is None:
        return energy
    window = volts - (CUTOFF_SHARE * volts if cutoff_v is None else np.asarray(cutoff_v, dtype=float))
    drop = np.asarray(current_a, dtype=float) * np.asarray(resistance_ohm, dtype=float)
    return energy * np.clip(1.0 - np.nan_to_num(drop, nan=0.0) / window, 0.0, 1.0)


def backup_hours(soh, rated_ah, load_w, nominal_v=48.0, usable_dod=0.9, efficiency=0.95, resistance_ohm=None,
                 cutoff_v=None, axis=-1):
    """Backup time in hours of packs in parallel feeding ``load_w``.

    ``soh``/``rated_ah``/``resistance_ohm`` are arrays over packs along ``axis``
    (extra leading axes, e.g. quantiles or months, broadcast); the packs share the load
    current equally.
    """
    soh = np.asarray(soh, dtype=float)
    if load_w <= 0:
        raise OutlookInputError(f"site load {load_w} W must be positive")
    n = soh.shape[axis] if soh.ndim else 1
    current_per_pack = load_w / np.asarray(nominal_v, dtype=float) / max(n, 1)
    energy_wh = pack_energy_wh(soh, rated_ah, nominal_v, usable_dod, efficiency, resistance_ohm, current_per_pack, cutoff_v)
    return np.sum(energy_wh, axis=axis) / load_w


@dataclass
class SiteOutlook:
    hours_now: float
    required_hours: float
    meets_now: bool
    hours_forecast: np.ndarray  # (3, n_months): P10, P50, P90
    first_short_month: dict  # quantile -> months ahead when backup falls below required (inf = never)
    earliest_failing_pack: int | None  # index of the pack that crosses its threshold first (P50)


def site_outlook(soh_now, soh_forecast, rated_ah, load_w, required_hours, pack_crossing_p50=None, **kw) -> SiteOutlook:
    """Backup time now and forecast against the required hours for one site.

    ``soh_forecast`` is (3, npacks, n_months) (P10, P50, P90 from
    :func:`battloop.health.forecast.forecast_packs`). Summing per-pack quantiles
    assumes packs at a site age together (same cabinet, same climate), which is
    conservative for the P10.
    """
    soh_forecast = np.asarray(soh_forecast, dtype=float)
    now = float(backup_hours(np.asarray(soh_now, float), rated_ah, load_w, **kw))
    fc = np.stack([backup_hours(np.moveaxis(soh_forecast[q], 0, -1), rated_ah, load_w, **kw) for q in range(soh_forecast.shape[0])])
    # forecast month k (0-based) is k + 1 months ahead
    first = dict(zip(("p10", "p50", "p90"), (first_short_index(fc, required_hours) + 1.0).tolist()))
    worst = None
    if pack_crossing_p50 is not None and len(pack_crossing_p50):
        c = np.asarray(pack_crossing_p50, dtype=float)
        worst = int(np.argmin(c)) if np.isfinite(c).any() else int(np.argmin(np.asarray(soh_now)))
    elif np.size(soh_now):
        worst = int(np.argmin(soh_forecast[1, :, -1]))
    return SiteOutlook(now, float(required_hours), now >= required_hours, fc, first, worst)


def first_short_index(hours, required_hours):
    """Index along the last (time) axis of the first value below ``required_hours``; inf if none.

    NaN hours (an unknown load) compare False, so they are never short.
    """
    short = np.asarray(hours, dtype=float) < required_hours
    return np.where(short.any(axis=-1), np.argmax(short, axis=-1).astype(float), np.inf)


@dataclass
class FleetBackupOutlook:
    hours: np.ndarray  # (nsites, 3, 1 + n_months): P10, P50, P90 backup hours now (index 0) and each month ahead
    meets_now: np.ndarray  # (nsites,) P50 backup now >= required
    first_short_month: np.ndarray  # (nsites, 3): first index on the time axis (months ahead when it is monthly) at which
    # the P10/P50/P90 backup falls short; 0 = short now, inf = never


def fleet_backup_outlook(site_energy_wh, load_w, required_hours) -> FleetBackupOutlook:
    """Backup time of many sites at once, from the summed usable energy of their packs.

    ``site_energy_wh`` is (nsites, 3, n_times) -- now first, then any increasing months
    ahead -- holding the sum over each site's packs of
    :func:`pack_energy_wh` at their P10/P50/P90 SOH now and in each forecast month (the
    sum of per-pack quantiles: packs of a site share cabinet and climate and age
    together, the conservative reading). Sites with an unknown or non-positive load get
    NaN hours and never-short months: their backup time cannot be stated.
    """
    e = np.asarray(site_energy_wh, dtype=float)
    if e.ndim != 3 or e.shape[1] != 3:
        raise OutlookInputError(f"site_energy_wh must be (nsites, 3, n_times), got shape {e.shape}")
    load = np.asarray(load_w, dtype=float)
    req = np.asarray(required_hours, dtype=float)
    if load.shape != (e.shape[0],) or req.shape != (e.shape[0],):
        raise OutlookInputError(f"load_w and required_hours need one value per site ({e.shape[0]})")
    known = np.isfinite(load) & (load > 0)
    hours = np.where(known[:, None, None], e / np.where(known, load, 1.0)[:, None, None], np.nan)
    return FleetBackupOutlook(hours, hours[:, 1, 0] >= req, first_short_index(hours, req[:, None, None]))


def quarter_labels(start: pd.Timestamp, n_quarters: int):
    start = pd.Timestamp(start)
    return [str(p) for p in pd.period_range(start.to_period("Q"), periods=n_quarters, freq="Q")]


def retirements_per_quarter(crossing_month_samples, group_keys: dict | None = None, kwh=None, price_per_kwh: float | None = None,
                            start=None, n_quarters: int = 20) -> pd.DataFrame:
    """Retirements per quarter with P10/P50/P90, by arbitrary groups.

    ``crossing_month_samples`` is (npacks, nsamples): months from ``start`` at
    which each pack crosses its retirement threshold, in each joint sample
    (``inf`` = not within the horizon; e.g. from
    :func:`battloop.health.forecast.crossing_month_samples`). Sample j of every
    pack is treated as one joint fleet scenario. ``group_keys`` maps a name
    (province, model, owner...) to an array of labels per pack. Returns one row
    per (group..., quarter) with count and kWh quantiles and the replacement cost
    at ``price_per_kwh`` (P50 kWh x price; P10/P90 alongside).
    """
    s = np.asarray(crossing_month_samples, dtype=float)
    if s.ndim != 2:
        raise OutlookInputError(f"crossing_month_samples must be (npacks, nsamples), got shape {s.shape}")
    npacks, ns = s.shape
    kwh = np.ones(npacks) if kwh is None else np.asarray(kwh, dtype=float)
    if kwh.shape != (npacks,):
        raise OutlookInputError(f"kwh has {kwh.shape} values for {npacks} packs")
    start = pd.Timestamp(start) if start is not None else pd.Timestamp.now(tz="UTC").normalize().tz_localize(None)
    # quarter index of each sample (0 = the quarter containing start)
    month0 = start.month - 1
    # crossing month s (1 = the month after start) falls in calendar month month0 + s
    fin = np.isfinite(s)
    q = np.where(fin, np.floor((month0 + np.where(fin, s, 0)) / 3.0) - month0 // 3, -1).astype(int)
    q = np.where((q >= 0) & (q < n_quarters), q, -1)
    groups = group_keys or {}
    names = list(groups)
    labels = pd.DataFrame({k: np.asarray(v) for k, v in groups.items()}) if names else pd.DataFrame(index=range(npacks))
    if len(labels) != npacks:
        raise OutlookInputError(f"group keys have {len(labels)} rows for {npacks} packs")
    codes, uniques = (pd.factorize(pd.MultiIndex.from_frame(labels.astype(str))) if names else (np.zeros(npacks, int), [()]))
    ng = len(uniques)
    count = np.zeros((ng, n_quarters, ns))
    energy = np.zeros((ng, n_quarters, ns))
    for j in range(ns):
        ok = q[:, j] >= 0
        np.add.at(count[:, :, j], (codes[ok], q[ok, j]), 1.0)
        np.add.at(energy[:, :, j], (codes[ok], q[ok, j]), kwh[ok])
    qlabels = quarter_labels(start, n_quarters)
    rows = []
    cq = np.percentile(count, [10, 50, 90], axis=-1)
    eq = np.percentile(energy, [10, 50, 90], axis=-1)
    # cumulative to the end of each quarter: quantiles of the running sum per joint scenario
    # (a sum of per-quarter quantiles would not be a quantile of anything)
    ccq = np.percentile(np.cumsum(count, axis=1), [10, 50, 90], axis=-1)
    ceq = np.percentile(np.cumsum(energy, axis=1), [10, 50, 90], axis=-1)
    for g in range(ng):
        key = uniques[g] if names else ()
        key = key if isinstance(key, tuple) else (key,)
        for qi in range(n_quarters):
            row = dict(zip(names, key))
            row.update({"quarter": qlabels[qi], "count_p10": cq[0, g, qi], "count_p50": cq[1, g, qi], "count_p90": cq[2, g, qi],
                        "kwh_p10": eq[0, g, qi], "kwh_p50": eq[1, g, qi], "kwh_p90": eq[2, g, qi],
                        "cum_count_p10": ccq[0, g, qi], "cum_count_p50": ccq[1, g, qi], "cum_count_p90": ccq[2, g, qi],
                        "cum_kwh_p10": ceq[0, g, qi], "cum_kwh_p50": ceq[1, g, qi], "cum_kwh_p90": ceq[2, g, qi]})
            if price_per_kwh is not None:
                row.update({"cost_p10": eq[0, g, qi] * price_per_kwh, "cost_p50": eq[1, g, qi] * price_per_kwh,
                            "cost_p90": eq[2, g, qi] * price_per_kwh})
            rows.append(row)
    return pd.DataFrame(rows)


def aging_anomalies(log_m_mean, log_m_sd, cohort_mean, cohort_sd, pack_ids=None, min_probability: float = 0.9,
                    cohort_labels=None, evidence=None):
    """Packs aging faster than their cohort, with the evidence.

    A pack is flagged when the posterior probability that its rate multiplier
    exceeds its cohort's P90 is at least ``min_probability`` -- i.e. it is
    credibly in the fast tail, not merely noisy. ``cohort_mean``/``cohort_sd`` (log m)
    are one cohort's or one per pack: the prior each pack was calibrated with (a pack
    model within one climate zone), so a pack is compared with the packs that live like it.
    ``cohort_labels(i)`` names pack ``i``'s cohort and ``evidence(i)`` gives its evidence in
    words (what was measured and what the cohort would show); both go into the reason, and are
    asked for the flagged packs only (a fleet has millions of packs and a handful of anomalies).
    Returns a DataFrame sorted by that probability with the multiplier, the cohort P90
    and a one-line reason.
    """
    from scipy.special import ndtr

    mu = np.asarray(log_m_mean, dtype=float)
    sd = np.maximum(np.asarray(log_m_sd, dtype=float), 1e-9)
    c_mean = np.broadcast_to(np.asarray(cohort_mean, dtype=float), mu.shape)
    thr = c_mean + Z_P90 * np.broadcast_to(np.asarray(cohort_sd, dtype=float), mu.shape)
    p_fast = ndtr((mu - thr) / sd)
    ids = np.asarray(pack_ids) if pack_ids is not None else np.arange(mu.size)
    flag = np.flatnonzero(p_fast >= min_probability)

    def reason(i):
        label = f" of {cohort_labels(i)}" if cohort_labels else ""
        note = evidence(i) if evidence else ""
        note = f"; {note}" if note else ""
        return f"ages {np.exp(mu[i] - c_mean[i]):.2f}x the median pack{label} (P(> their P90) = {p_fast[i]:.0%}){note}"

    df = pd.DataFrame({"pack": ids[flag], "rate_multiplier": np.exp(mu[flag]), "rate_multiplier_p10": np.exp(mu - Z_P90 * sd)[flag],
                       "cohort_p90_multiplier": np.exp(thr)[flag], "p_faster_than_cohort_p90": p_fast[flag], "flagged": True,
                       "reason": [reason(i) for i in flag]})
    return df.sort_values("p_faster_than_cohort_p90", ascending=False).reset_index(drop=True)


def crossing_probability(horizon, p10, p50, p90):
    """Probability that a pack crosses its threshold by ``horizon``, from its P10/P50/P90
    crossing times (any common unit; NaN or inf = beyond the forecast horizon).

    The crossing-time CDF is read as piecewise linear through (P10, 0.1), (P50, 0.5) and
    (P90, 0.9), with linear tails reaching 0 and 1 one inter-quantile gap beyond P10 and
    P90 -- enough for expected volumes; the exact distribution lives in the forecast samples.
    """
    h = np.asarray(horizon, dtype=float)
    q = [np.asarray(x, dtype=float) for x in (p10, p50, p90)]
    q10, q50, q90 = (np.where(np.isfinite(x), x, np.inf) for x in q)
    q50 = np.maximum(q50, q10)
    q90 = np.maximum(q90, q50)
    with np.errstate(invalid="ignore"):
        lo = q10 - np.where(np.isfinite(q50), np.maximum(q50 - q10, 1e-9), 0.0)
        hi = q90 + np.where(np.isfinite(q90), np.maximum(q90 - q50, 1e-9), 0.0)

    def seg(x0, x1, y0, y1):
        # a quantile beyond the forecast horizon: the probability stays at the last known level
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(np.isfinite(x1) & (x1 > x0), (h - x0) / (x1 - x0), np.where(np.isfinite(x1), 1.0, 0.0))
        return y0 + (y1 - y0) * np.clip(np.nan_to_num(f, nan=0.0), 0.0, 1.0)

    out = np.where(h < lo, 0.0, np.where(h < q10, seg(lo, q10, 0.0, 0.1), np.where(h < q50, seg(q10, q50, 0.1, 0.5),
                   np.where(h < q90, seg(q50, q90, 0.5, 0.9), np.where(h < hi, seg(q90, hi, 0.9, 1.0), 1.0)))))
    return np.where(np.isfinite(q10), out, 0.0)
