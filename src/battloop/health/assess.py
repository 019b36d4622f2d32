"""``battloop assess``: calibrate every installed pack's aging from its evidence and
store the forecast (Django side of the health package).

Evidence (:mod:`battloop.health.estimate`), each at its month of the pack's history:

* monthly medians of the BMS-reported SOH from the lake, corrected for the BMS's optimism
  (:func:`~battloop.health.estimate.bms_soh_evidence`: bias +2 pp, sd 3 pp per reading, and
  each BMS's own bias, sd 1.5 pp, shared by its readings as a random effect in the
  calibration, :data:`~battloop.health.forecast.BMS_BIAS_SD`); where a pack
  has a measured capacity, its BMS's reported fade is rescaled to the measured one (BMSs
  lag), and a BMS more than 10 pp off the measurement is left out (:func:`_bms_check`);
* bench capacity tests stored by ``battloop triage grade --bench F --store``
  (:func:`~battloop.health.estimate.capacity_test_evidence`: ~1 % sd, far stronger);
* outage discharges found in sub-hourly current/voltage series in the lake, with a rested
  voltage on both sides (:func:`~battloop.health.estimate.series_evidence`);
* resistance: bench DCIR and current steps inside discharges, each brought to 25 C by an
  Arrhenius law (:func:`~battloop.health.estimate.resistance_at_reference`), fused by inverse
  variance (:func:`~battloop.health.estimate.fuse_resistance`) and stored next to the model's ratio.
Model: the semi-empirical aging model (:mod:`battloop.health.models`) integrated over
each pack's own history at its site's seasonal climate (cabinet offset included) with
the BLAST-Lite pack factor 1.2; per-pack rate multipliers with an empirical-Bayes
cohort prior per pack model (which fixes the OEM) and, nested in it, per climate zone
(:func:`battloop.health.forecast.calibrate_packs`);
forecast 15 years ahead monthly (:func:`battloop.health.forecast.forecast_packs`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from django.utils import timezone

from battloop.registry.models import Chemistry, Pack, Site

from .estimate import (UNKNOWN_BENCH_TEMP_SD_C, EvidenceRejected, ResistanceEvidence, SeriesFindings, bms_soh_evidence,
                       capacity_test_evidence, fuse_resistance, resistance_at_reference, series_evidence)
from .forecast import (DAYS_PER_MONTH, TRIAGE_THRESHOLDS, Scenario, calibrate_packs, cohort_initial_capacity, crossing_samples_from_loss,
                       forecast_packs, seasonal_temperature_c)
from .models import UnknownChemistryError, get_parameters, pack_factor_for, resolve_chemistry, simulate_aging, state_at
from .outlook import aging_anomalies, fleet_backup_outlook, pack_energy_wh, quarter_labels, retirements_per_quarter
from .records import HealthAssessment, OutlookRun, RetirementForecast, SiteBackupOutlook

#: Pack vs cell aging: pack life 25 % shorter than cell life (BLAST-Lite rule of thumb, DOMAIN.md §3),
#: the same factor the demo world ages its packs with. The fleet is LFP first, so LFP's exponent sets it.
PACK_FACTOR = pack_factor_for("LFP")
HORIZON_MONTHS = 180
METHOD = "semi-empirical calendar+cycle, cohort-calibrated (battloop health v1)"
#: Telecom backup retires a pack below 80 % SOH (DOMAIN.md §3); the portfolio outlook counts crossings of it.
RETIREMENT_SOH = 0.80
OUTLOOK_QUARTERS = 20  # five years
OUTLOOK_SAMPLES = 201  # joint fleet scenarios behind the P10/P50/P90 counts (forecast.crossing_samples_from_loss)
#: Replacement price of a new 48 V LFP backup pack per kWh (placeholder market level,
#: ~3,000-4,000 CNY for a 4.8 kWh pack); set ``--price-cny-per-kwh`` or BATTLOOP_REPLACEMENT_CNY_PER_KWH.
DEFAULT_REPLACEMENT_CNY_PER_KWH = 700.0
FIRST_LIFE = ("installed", "flagged")
#: Outage discharges per year when a pack's own cycle counter says nothing (DOMAIN.md §3: 12 a year at
#: 50 % DOD barely matter for float-charged LFP, but more frequent outages do).
DEFAULT_OUTAGES_PER_YEAR = 12.0
#: Months ahead at which site backup energy is kept: monthly for five years, yearly after,
#: so that a country-scale fleet (millions of sites) holds ~70 values per site and quantile
#: instead of 181. A site falling short after year five is dated to the year.
OUTLOOK_MONTHS = np.r_[0:61, 72:HORIZON_MONTHS + 1:12]
#: The lake scan for sub-hourly discharges keeps samples below -1 A (the per-pack 0.02 C
#: threshold of :func:`battloop.health.estimate.series_evidence` applies afterwards).
DISCHARGE_SCAN_FLOOR_A = 1.0


def _outages_per_year(p, today) -> float:
    """Recent usage from the pack's BMS cycle counter (cycles since install / years installed)."""
    lr = getattr(p, "latest_reading", None)
    years = (today - p.install_date).days / 365.25
    if lr is None or lr.cycle_count is None or years < 0.25:
        return DEFAULT_OUTAGES_PER_YEAR
    return float(min(max(lr.cycle_count / years, 0.0), 365.0))


def _lake_connection():
    """A DuckDB connection to the telemetry lake and its reading files, or (None, []) when it holds none."""
    from battloop.telemetry.service import lake

    the_lake = lake()
    files = the_lake.files()
    return (the_lake.connect(), files) if files else (None, [])


def _monthly_bms_soh(serials: list[str], con) -> dict[str, list[tuple[dt.date, float]]]:
    if con is None:
        return {}
    rows = con.execute(
        "SELECT pack_serial, epoch_us(date_trunc('month', ts)) AS m, median(soh_pct) FROM readings "
        "WHERE soh_pct IS NOT NULL GROUP BY ALL ORDER BY pack_serial, m").fetchall()
    wanted = set(serials)
    out: dict[str, list] = {}
    for serial, m_us, soh in rows:
        if serial in wanted:
            out.setdefault(serial, []).append((dt.datetime.fromtimestamp(m_us / 1e6, dt.timezone.utc).date(), float(soh)))
    return out


#: A pack's measured capacity reveals how its own BMS reports fade. BMS SOH estimators lag:
#: they under-report fade more the older the pack (DOMAIN.md section 3), so the BMS's reported
#: loss is rescaled to the measured loss at the readings within this many months of a
#: measurement; the BMS then still gives the shape of the pack's history, the measurement its level.
BMS_ANCHOR_MONTHS = 2
#: The generic BMS optimism when nothing measured says otherwise (:func:`bms_soh_evidence`'s default).
BMS_DEFAULT_BIAS = 0.02
#: Below this reported loss the ratio of measured to reported fade says nothing (a new pack).
BMS_MIN_LOSS_TO_SCALE = 0.03
#: A BMS further than this from a measured capacity (after the generic bias) is not estimating
#: capacity (stuck, never recalibrated): its readings are left out.
BMS_TRUST_LIMIT = 0.10
#: The rescaling of a BMS's reported fade is held within this range: a measurement at or above the
#: pack's start where the BMS reports a few percent of fade would give a zero or negative scale
#: (every reading at "new", with no uncertainty), not a rescaled history.
BMS_SCALE_RANGE = (0.2, 5.0)
#: A bench DCIR reading: ~3 % repeatability of the pulse method plus ~0.5 mΩ of contacts and
#: leads (IEC 61960-3 sec. 7.8 DC method; typical 4-wire bench rigs).
BENCH_DCIR_REL_SD = 0.03
#: sd of a cabinet temperature estimated from the site's monthly climate normal: day-to-day weather
#: and the time of day of an outage (~5 C about the monthly mean)
CLIMATE_TEMP_SD_C = 5.0
BENCH_DCIR_FLOOR_MOHM = 0.5
#: Relative sd added to a capacity test whose temperature was not recorded (room 25 +- 4 C at 0.5 %/C).
UNKNOWN_TEST_TEMP_REL_SD = 0.02
#: Resistance grows with age: only evidence within this many days of the latest counts.
RESISTANCE_WINDOW_DAYS = 365
_CELLS_IN_SERIES = re.compile(r"(\d+)\s*S", re.I)


@dataclass
class _Evidence:
    """Measured evidence per pack id: SOH (date, soh, sd, source) and resistance (date, ohm, sd, source),
    plus counts and rejections for the report."""

    soh: dict = field(default_factory=dict)
    resistance: dict = field(default_factory=dict)
    counts: dict = field(default_factory=lambda: {"bench_capacity_tests": 0, "bench_resistance_tests": 0,
                                                  "bench_before_install": 0, "outage_discharges": 0,
                                                  "outage_discharges_rejected": 0, "current_steps": 0,
                                                  "series_conflicting_readings": 0,
                                                  "packs_bms_left_out": 0})
    rejected: list = field(default_factory=list)  # (serial, date, kind, reason)
    #: per pack model whose packs' own tests pinned the cohort's starting capacity: (% of rated, packs)
    initial_capacity: dict = field(default_factory=dict)

    def add_soh(self, pack_id, when: dt.date, soh: float, sd: float, source: str):
        self.soh.setdefault(pack_id, []).append((when, soh, sd, source))

    def add_resistance(self, pack_id, when: dt.date, evidence: ResistanceEvidence):
        self.resistance.setdefault(pack_id, []).append((when, evidence))


def _bench_evidence(pack_ids, packs_by_id: dict, today: dt.date, ev: _Evidence) -> None:
    """Capacity and DCIR of every bench test of the packs (``pack_ids``: a subquery), up to ``today``: one query."""
    from battloop.triage.models import BenchResult

    rows = (BenchResult.objects.filter(pack_id__in=pack_ids).order_by("pack_id", "tested_at", "id")
            .values_list("pack_id", "tested_at", "capacity_ah", "test_temp_c", "rated_capacity_ah", "dcir_mohm"))
    for pack_id, tested_at, capacity_ah, temp_c, rated_ah, dcir_mohm in rows.iterator(chunk_size=5000):
        p = packs_by_id[pack_id]
        when = timezone.localdate(tested_at)
        if when > today:
            continue  # an assessment as of ``today`` does not see later tests
        if dcir_mohm is not None:
            # one bad bench row is left out with its reason, never the whole fleet's assessment
            if not dcir_mohm > 0:
                ev.rejected.append((p.serial, when, "resistance", f"bench DCIR {dcir_mohm} mΩ: it must be positive"))
            else:
                ohm = dcir_mohm / 1000.0
                read = ResistanceEvidence(0.0, ohm, math.hypot(BENCH_DCIR_REL_SD * ohm, BENCH_DCIR_FLOOR_MOHM / 1000.0), "bench")
                try:  # at 25 C, so that a winter and a summer test compare
                    ev.add_resistance(pack_id, when, resistance_at_reference(read, temp_c, unknown_temp_sd_c=UNKNOWN_BENCH_TEMP_SD_C))
                    ev.counts["bench_resistance_tests"] += 1
                except EvidenceRejected as exc:
                    ev.rejected.append((p.serial, when, "resistance", f"bench DCIR: {exc}"))
        if capacity_ah is None:
            continue
        if when < p.install_date:
            # a test before this service life (e.g. of a second-life pack) is not on its aging path from install
            ev.counts["bench_before_install"] += 1
            ev.rejected.append((p.serial, when, "capacity_test", f"tested before the pack's install date {p.install_date}"))
            continue
        rated = rated_ah or p.nameplate_capacity_ah or p.model.rated_capacity_ah
        try:
            e = capacity_test_evidence(capacity_ah, rated, temp_c=25.0 if temp_c is None else temp_c)
        except EvidenceRejected as exc:
            ev.rejected.append((p.serial, when, "capacity_test", f"bench capacity test: {exc}"))
            continue
        sd = e.sd if temp_c is not None else math.hypot(e.sd, UNKNOWN_TEST_TEMP_REL_SD * e.soh)
        ev.add_soh(pack_id, when, e.soh, sd, "capacity_test")
        ev.counts["bench_capacity_tests"] += 1


def _one_reading_per_instant(us: np.ndarray, current_a: np.ndarray, voltage_v: np.ndarray) -> tuple[np.ndarray, int]:
    """Which readings of one time-ordered series (sorted by time, then current, then voltage)
    to use, and how many were left out as conflicting: of readings at the same instant, one
    is kept when they all agree, none when any two disagree."""
    same = np.diff(us) == 0
    differ = same & ((current_a[1:] != current_a[:-1]) | (voltage_v[1:] != voltage_v[:-1]))
    conflicting = np.isin(us, us[1:][differ])
    return np.r_[True, ~same] & ~conflicting, int(np.count_nonzero(conflicting))


def _series_evidence(packs_by_serial: dict, today: dt.date, ev: _Evidence, con, lake_files: list) -> None:
    """Outage discharges and current steps in the lake's sub-hourly series: two queries.

    Candidate pack-days are those with at least three discharge samples (a daily summary has
    one reading a day and never qualifies; the filter on current lets DuckDB skip the row
    groups of float-charged packs). Their readings and those of the days either side (the
    rests before and after) are then read from those days' partitions only, per pack and
    source, in time order.

    Two readings of one pack and source at the same instant are the same reading ingested
    twice when they agree, and count once; when they disagree (e.g. a daily summary stamped
    on a minute of a sub-hourly series) neither is known to be the pack's state at that
    instant, and both are left out. Either way the series does not depend on the order in
    which the lake's files return tied rows.
    """
    import pyarrow as pa

    if con is None:
        return
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0), dt.timezone.utc)
    days = con.execute(
        "SELECT pack_serial, source, CAST(ts AS DATE) AS day FROM readings "
        "WHERE current_a <= ? AND voltage_v IS NOT NULL AND ts < ? GROUP BY ALL HAVING count(*) >= 3",
        [-DISCHARGE_SCAN_FLOOR_A, end]).fetchall()
    windows = {(serial, source, day + dt.timedelta(days=k)) for serial, source, day in days if serial in packs_by_serial
               for k in (-1, 0, 1)}
    dates = {d.isoformat() for _, _, d in windows}
    files = [str(f) for f in lake_files if f.parent.name.split("=", 1)[-1] in dates]  # the lake's date=YYYY-MM-DD partitions
    if not files:
        return
    con.register("_windows", pa.table({"pack_serial": [w[0] for w in windows], "source": [w[1] for w in windows],
                                       "day": pa.array([w[2] for w in windows], pa.date32())}))
    # the pack's temperature is the middle of its cells' min and max (either alone where only one is
    # reported; every lake file carries both columns of the reading schema)
    rows = con.execute(
        "SELECT r.pack_serial, r.source, epoch_us(r.ts) AS us, r.current_a, r.voltage_v, "
        "(coalesce(r.temp_min_c, r.temp_max_c) + coalesce(r.temp_max_c, r.temp_min_c)) / 2 AS temp_c "
        "FROM read_parquet(?, union_by_name = true) r "
        "JOIN _windows w ON r.pack_serial = w.pack_serial AND r.source IS NOT DISTINCT FROM w.source AND CAST(r.ts AS DATE) = w.day "
        "WHERE r.ts < ? AND r.current_a IS NOT NULL AND r.voltage_v IS NOT NULL "
        "ORDER BY r.pack_serial, r.source, us, r.current_a, r.voltage_v, temp_c NULLS LAST",
        [files, end]).fetchnumpy()
    con.unregister("_windows")
    if not len(rows["us"]):
        return
    serial, source = rows["pack_serial"].astype(object), rows["source"].astype(object)
    key_change = np.flatnonzero((serial[1:] != serial[:-1]) | (source[1:] != source[:-1])) + 1
    for a, b in zip(np.r_[0, key_change], np.r_[key_change, len(serial)]):
        p = packs_by_serial.get(serial[a])
        if p is None:
            continue  # not a pack in service (or a serial the registry does not know)
        us = rows["us"][a:b].astype(np.int64)
        keep, conflicting = _one_reading_per_instant(us, rows["current_a"][a:b], rows["voltage_v"][a:b])
        ev.counts["series_conflicting_readings"] += conflicting
        m = _CELLS_IN_SERIES.search(p.model.cell_configuration or "")
        day0 = dt.datetime.combine(p.install_date, dt.time(0), dt.timezone.utc).timestamp()
        if m is None:
            ev.rejected.append((p.serial, None, "series", f"pack model {p.model.code} has no cell configuration like '16S1P': "
                                                          "its cell voltages, hence its SOC, cannot be read"))
            continue
        # where the pack reports no temperature, the cabinet's is estimated from the site's climate
        # (monthly normal plus the cabinet offset, as the aging history uses), known to CLIMATE_TEMP_SD_C
        temp = np.ma.filled(np.ma.asarray(rows["temp_c"][a:b], dtype=float), np.nan)[keep]
        temp_sd = np.where(np.isfinite(temp), 0.0, CLIMATE_TEMP_SD_C)
        if np.isnan(temp).any():
            month = us[keep].astype("datetime64[us]").astype("datetime64[M]").astype(np.int64) % 12 + 1  # UTC calendar month
            climate = seasonal_temperature_c(p.site.annual_mean_temp_c or 15.0, p.site.temp_amplitude_c or 10.0, 12,
                                             offset_c=p.site.cabinet_offset_c + 2.0)
            temp = np.where(np.isfinite(temp), temp, climate[month - 1])
        found: SeriesFindings = series_evidence(us[keep] / 1e6, rows["current_a"][a:b][keep], rows["voltage_v"][a:b][keep],
                                                int(m.group(1)), p.nameplate_capacity_ah or p.model.rated_capacity_ah,
                                                chemistry=p.model.chemistry, t0_s=day0, temp_c=temp, temp_sd_c=temp_sd)
        for e in found.soh:
            when = p.install_date + dt.timedelta(days=int(math.floor(e.t_days)))
            if e.t_days < 0:  # like a bench test before install: not on this service life's aging path
                ev.counts["outage_discharges_rejected"] += 1
                ev.rejected.append((p.serial, when, "outage", f"before the pack's install date {p.install_date}"))
                continue
            ev.add_soh(p.pk, when, e.soh, e.sd, e.source)
            ev.counts["outage_discharges"] += 1
        for r in found.resistance:
            ev.add_resistance(p.pk, p.install_date + dt.timedelta(days=int(math.floor(r.t_days))), r)
            ev.counts["current_steps"] += 1
        for t_days, kind, reason in found.rejected:
            when = p.install_date + dt.timedelta(days=int(math.floor(t_days)))
            if kind == "outage":
                ev.counts["outage_discharges_rejected"] += 1
            ev.rejected.append((p.serial, when, kind, reason))


def _pack_start(measured: list, install_date: dt.date, cohort_start: float, loss_row, p_first: float) -> float:
    """A pack's initial capacity (fraction of rated): its own measurements within BMS_ANCHOR_MONTHS of
    install (a commissioning test) with the loss the law gives by then added back (under t^0.44 an
    LFP pack has lost about 2 pp at three weeks), else its cohort's
    (:func:`~battloop.health.forecast.cohort_initial_capacity`)."""
    early = [(soh + _loss_at(loss_row, _age_months(install_date, when), p_first), 1.0 / sd**2)
             for when, soh, sd, _ in measured if _months_between(install_date, when) <= BMS_ANCHOR_MONTHS]
    if not early:
        return cohort_start
    return float(np.average([v for v, _ in early], weights=[w for _, w in early]))


def _bms_check(bms: list, measured: list, install_date: dt.date, start: float = 1.0) -> tuple[float, float] | None:
    """How this pack's BMS compares with its measured capacity: (gap, fade scale).

    A BMS reports the fade from the pack's own start (100 % when new); measurements are against
    rated, and the pack started at ``start`` of rated. ``gap`` is the SOH the BMS implies (less
    the generic bias, from ``start``) minus the measured SOH, from its readings within
    BMS_ANCHOR_MONTHS of each measurement; ``scale`` the measured loss from ``start`` over the
    reported loss there (1 when the reported loss is too small to compare; held within
    BMS_SCALE_RANGE). Both are inverse-variance weighted over the measurements; None when no
    reading is near a measurement.
    """
    if not bms or not measured:
        return None
    months = np.array([_months_between(install_date, m) for m, _ in bms])
    reported = np.array([r for _, r in bms]) / 100.0 - BMS_DEFAULT_BIAS
    gaps, scales, weights = [], [], []
    for when, soh, sd, _ in measured:
        near = np.abs(months - _months_between(install_date, when)) <= BMS_ANCHOR_MONTHS
        if near.any():
            level = float(np.median(reported[near]))
            gaps.append(start - (1.0 - level) - soh)
            scales.append((start - soh) / (1.0 - level) if 1.0 - level >= BMS_MIN_LOSS_TO_SCALE else 1.0)
            weights.append(1.0 / sd**2)
    if not gaps:
        return None
    return float(np.average(gaps, weights=weights)), float(np.clip(np.average(scales, weights=weights), *BMS_SCALE_RANGE))


def _measured_resistance(items: list) -> dict | None:
    """GLS fusion (:func:`~battloop.health.estimate.fuse_resistance`) of the resistance evidence
    within RESISTANCE_WINDOW_DAYS of the latest."""
    if not items:
        return None
    latest = max(w for w, _ in items)
    recent = [e for w, e in items if (latest - w).days <= RESISTANCE_WINDOW_DAYS]
    fused = fuse_resistance(recent)
    return {"resistance_mohm_measured": round(1000 * fused["resistance_ohm"], 3), "resistance_mohm_sd": round(1000 * fused["sd_ohm"], 3),
            "resistance_evidence_count": len(recent), "resistance_measured_on": latest}


def _months_between(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 12 + (b.month - a.month)


#: a BMS's monthly median SOH is dated to the first of its month and stands for the middle of it
BMS_MONTH_MIDDLE_DAYS = 15


def _age_months(install_date: dt.date, when: dt.date) -> float:
    """A pack's age at ``when`` in (fractional) months of :data:`DAYS_PER_MONTH` days; 0 before install."""
    return max((when - install_date).days, 0) / DAYS_PER_MONTH


def _loss_at_ages(loss, ages, p_first: float) -> np.ndarray:
    """The nominal loss of each pack's history at fractional ages: ``loss`` (packs, months) with
    ``loss[i, k]`` the loss at the end of month k + 1, ``ages`` (packs, n) in months.

    Within the first month the loss follows the calendar law's own ``t^p`` from 0 at install: a
    commissioning test a week in has about half the first month's loss under t^0.44, not a
    quarter (linear) or all of it (the month's end, which read a 104 % test as a 106 % start).
    Later, linear between month ends; beyond the history, its last value."""
    loss = np.atleast_2d(np.asarray(loss, dtype=float))
    ages = np.clip(np.atleast_2d(np.asarray(ages, dtype=float)), 0.0, float(loss.shape[1]))
    padded = np.concatenate([np.zeros((loss.shape[0], 1)), loss], axis=1)  # padded[:, k] = loss at age k months
    k = np.minimum(np.floor(ages).astype(np.int64), loss.shape[1] - 1)
    lo, hi = np.take_along_axis(padded, k, axis=1), np.take_along_axis(padded, k + 1, axis=1)
    linear = lo + (ages - k) * (hi - lo)
    return np.where(ages < 1.0, padded[:, 1:2] * ages**p_first, linear)


def _evidence_table(rows: list) -> tuple:
    """Per-pack evidence rows ``(age in months, soh, sd, source)`` as padded arrays (packs, most rows):
    ``(soh, age, sd, from_bms)``, a missing row NaN in ``soh`` (sd 0.03, never weighed)."""
    width = max(1, max((len(r) for r in rows), default=0))
    soh, age = np.full((len(rows), width), np.nan), np.zeros((len(rows), width))
    sd, from_bms = np.full((len(rows), width), 0.03), np.zeros((len(rows), width), dtype=bool)
    for i, rows_i in enumerate(rows):
        for j, (a, v, s, src) in enumerate(rows_i):
            soh[i, j], age[i, j], sd[i, j], from_bms[i, j] = v, a, s, src == "bms"
    return soh, age, sd, from_bms


def _loss_at(loss_row, age_months: float, p_first: float) -> float:
    """:func:`_loss_at_ages` of one pack at one age."""
    return float(_loss_at_ages(np.asarray(loss_row, dtype=float)[None, :], [[age_months]], p_first)[0, 0])


def date_ahead(today: dt.date, months: float) -> dt.date | None:
    """The date ``months`` (fractional) after ``today``; None for a crossing beyond the horizon."""
    return None if not math.isfinite(months) else today + dt.timedelta(days=int(months * DAYS_PER_MONTH))


@dataclass
class _ScenarioOutlook:
    """What one forecast scenario accumulates over the cohorts: assessments, site energy, retirements."""

    n_sites: int
    results: list = field(default_factory=list)
    retire_months: list = field(default_factory=list)
    retire_packs: list = field(default_factory=list)
    retire_p50: dict = field(default_factory=dict)  # pack id -> P50 date of crossing the retirement SOH
    site_energy: np.ndarray = None  # (nsites, 3, OUTLOOK_MONTHS.size): P10/P50/P90 usable Wh of every site's packs

    def __post_init__(self):
        self.site_energy = np.zeros((self.n_sites, 3, OUTLOOK_MONTHS.size), dtype=np.float32)


def replacement_price_cny_per_kwh() -> float:
    import os

    raw = os.environ.get("BATTLOOP_REPLACEMENT_CNY_PER_KWH", "")
    try:
        return float(raw) if raw else DEFAULT_REPLACEMENT_CNY_PER_KWH
    except ValueError:
        raise ValueError(f"BATTLOOP_REPLACEMENT_CNY_PER_KWH={raw!r} is not a number (CNY per kWh)") from None


def assess(today: dt.date | None = None, price_cny_per_kwh: float | None = None, retirement_soh: float | None = None) -> dict:
    """Assess every pack in service, store the assessments and the site and portfolio outlook,
    and re-triage the packs already triaged (their SOH evidence changed).

    ``retirement_soh`` (a fraction; default :data:`RETIREMENT_SOH`) is the operator's line: the
    retirements per quarter count its crossings, each pack's stored forecast carries its dates
    next to the triage thresholds', and a site's earliest failing pack is the first to cross it."""
    started = time.perf_counter()
    today = today or timezone.localdate()
    price = _price(price_cny_per_kwh)
    retire_at = _retirement_soh(retirement_soh)
    sites, (run,), anomalies, measured = _run(today, [None], retire_at)
    with transaction.atomic():
        # a subquery, not a list of ids: a fleet of millions would pass SQLite's limit on bound variables
        # every pack in service at a site: one this run left out (it lost its install date or model, or
        # its chemistry has no aging law) must not keep an old assessment that reads as current
        HealthAssessment.objects.filter(pack__in=_in_service_at_sites()).delete()
        HealthAssessment.objects.bulk_create(run.results, batch_size=2000)
        outlook = _store_outlook(today, timezone.now(), price, run, sites, retire_at=retire_at)
    from battloop.triage.registry_triage import retriage_after_assessment  # packs already triaged see the new SOH
    retriage_after_assessment([r.pack for r in run.results])
    return {"packs": len(run.results), "with_evidence": sum(1 for r in run.results if r.evidence_count), "anomalies": anomalies,
            "seconds": time.perf_counter() - started, "evidence": measured.counts,
            "evidence_rejected": [{"pack": s, "date": w, "kind": k, "reason": r} for s, w, k, r in measured.rejected[:50]],
            "with_measured_resistance": sum(1 for r in run.results if r.resistance_evidence_count),
            "initial_capacity": [{"model": code, "pct_of_rated": pct, "packs": n}
                                 for code, (pct, n) in sorted(measured.initial_capacity.items())],
            "packs_left_out": packs_left_out(), **outlook}


def what_if(scenario: Scenario, today: dt.date | None = None, price_cny_per_kwh: float | None = None,
            retirement_soh: float | None = None) -> tuple[dict, dict]:
    """The outlook summary under ``scenario`` (a cooling retrofit: ``temp_offset_c=-5``; more
    outages: ``outage_multiplier=2``) next to the baseline, both from one calibration; stores nothing."""
    today = today or timezone.localdate()
    price = _price(price_cny_per_kwh)
    retire_at = _retirement_soh(retirement_soh)
    sites, (base, what), _, _ = _run(today, [None, scenario], retire_at)
    now = timezone.now()
    return (_store_outlook(today, now, price, base, sites, store=False, retire_at=retire_at),
            _store_outlook(today, now, price, what, sites, store=False, retire_at=retire_at))


def _retirement_soh(value: float | None) -> float:
    v = RETIREMENT_SOH if value is None else float(value)
    if not 0.2 <= v <= 0.95:  # also refuses NaN
        hint = f" (give a fraction: {v / 100:g}, not {v:g})" if v > 1 else ""
        raise ValueError(f"retirement SOH {v:g} must be a fraction between 0.2 and 0.95{hint}")
    return v


def _in_service_at_sites():
    return Pack.objects.filter(state__in=["installed", "flagged", "redeployed"]).exclude(site=None)


def chemistries_with_aging_law() -> list[str]:
    """The registry's chemistries the aging models have a law for (LFP; NMC, NCA on the NMC set). The
    others (LMO, other) get no silent stand-in: their packs are left out and counted."""
    def has_law(chem: str) -> bool:
        try:
            return resolve_chemistry(chem) != "GENERIC"
        except UnknownChemistryError:
            return False

    return [c for c in Chemistry.values if has_law(c)]


def assessed_packs():
    """The packs an assessment covers: in service at a site, with a pack model of a chemistry the aging
    models know and an install date (the aging law needs the chemistry and the time in service)."""
    return _in_service_at_sites().exclude(install_date=None).filter(model__chemistry__in=chemistries_with_aging_law())


def packs_left_out() -> dict:
    """Packs in service at a site that an assessment cannot cover, by what is missing: their
    capacity is not in their site's backup hours either, so the operator has to know."""
    at_sites = _in_service_at_sites()
    no_law = at_sites.exclude(install_date=None).exclude(model=None).exclude(model__chemistry__in=chemistries_with_aging_law())
    return {"no_pack_model": at_sites.filter(model=None).count(), "no_install_date": at_sites.filter(install_date=None).count(),
            "no_aging_law": no_law.count(),
            "no_aging_law_chemistries": sorted(set(no_law.values_list("model__chemistry", flat=True)))}


def _price(price_cny_per_kwh: float | None) -> float:
    price = replacement_price_cny_per_kwh() if price_cny_per_kwh is None else float(price_cny_per_kwh)
    if not price >= 0:
        raise ValueError(f"replacement price {price} CNY/kWh must be zero or positive")
    return price


def _run(today: dt.date, scenarios: list, retire_at: float = RETIREMENT_SOH) -> tuple[dict, list[_ScenarioOutlook], int, _Evidence]:
    """Calibrate every cohort once and forecast it under each scenario (None = the site's own climate and usage)."""
    in_service = assessed_packs()
    packs = list(in_service.select_related("model", "site", "site__owner", "owner", "latest_reading"))
    # every site is in the backup outlook, also one whose packs have all left service (stolen,
    # failed, retired): it has no backup at all and belongs at the top of the list, not off it
    sites = {s.pk: s for s in Site.objects.all()}
    site_row = {sid: i for i, sid in enumerate(sorted(sites))}
    runs = [_ScenarioOutlook(len(site_row)) for _ in scenarios]
    con, lake_files = _lake_connection()
    evidence = _monthly_bms_soh([p.serial for p in packs], con)
    measured = _Evidence()
    _bench_evidence(in_service.values("id"), {p.pk: p for p in packs}, today, measured)
    _series_evidence({p.serial: p for p in packs}, today, measured, con, lake_files)
    anomalies = 0
    no_resistance = 0  # packs whose backup energy has no resistance to correct with
    packs_at_site: dict[int, int] = {}
    for p in packs:
        packs_at_site[p.site_id] = packs_at_site.get(p.site_id, 0) + 1
    now = timezone.now()
    cohorts: dict[str, list[Pack]] = {}
    for p in packs:
        cohorts.setdefault(p.model.code, []).append(p)
    for model_code, group in cohorts.items():
        chemistry = group[0].model.chemistry
        hist_months = np.array([max(1, _months_between(p.install_date, today)) for p in group])
        n_hist = int(hist_months.max())
        # Monthly climate over each pack's own history (index 0 = its install month).
        temps = np.stack([seasonal_temperature_c(p.site.annual_mean_temp_c or 15.0, p.site.temp_amplitude_c or 10.0, n_hist,
                                                 start_month=p.install_date.month, offset_c=p.site.cabinet_offset_c + 2.0)
                          for p in group])
        nominal = simulate_aging(chemistry, temps, soc_mean=0.97, efc_per_step=0.0, dod=0.5, dt_days=DAYS_PER_MONTH,
                                 pack_factor=PACK_FACTOR)
        loss = (nominal.loss_calendar + nominal.loss_cycle) * PACK_FACTOR
        # The cohort's starting capacity from measured capacities alone: a BMS reports fade from the
        # pack's own start, and is compared with the measured fade from there
        p_first = get_parameters(chemistry).p_cal
        own_soh, own_age, own_sd, _ = _evidence_table([[(_age_months(p.install_date, w), v, s_, src)
                                                         for w, v, s_, src in measured.soh.get(p.pk, [])] for p in group])
        cohort_start, _ = cohort_initial_capacity(own_soh, _loss_at_ages(loss, own_age, p_first), own_sd)
        # Every pack's SOH evidence as (month of its history, soh, sd, source).
        observations = []
        for i, p in enumerate(group):
            bms = evidence.get(p.serial, [])
            own = measured.soh.get(p.pk, [])
            check = _bms_check(bms, own, p.install_date, _pack_start(own, p.install_date, cohort_start, loss[i], p_first))
            obs, left_out, scale = [], 0, 1.0
            if check is not None and abs(check[0]) > BMS_TRUST_LIMIT:
                left_out = len(bms)  # this BMS does not track the measured capacity
                measured.counts["packs_bms_left_out"] += 1
                measured.rejected.append((p.serial, None, "bms", f"BMS SOH is {100 * check[0]:+.1f} pp off the measured capacity "
                                                                 f"(beyond {100 * BMS_TRUST_LIMIT:.0f} pp): its {len(bms)} monthly readings are left out"))
                bms = []
            elif check is not None:
                scale = check[1]
            for month, reported in bms:
                ev = bms_soh_evidence(reported / 100.0, bias=BMS_DEFAULT_BIAS)
                # the BMS's reported loss, rescaled to what the measurements found
                obs.append((_age_months(p.install_date, month + dt.timedelta(days=BMS_MONTH_MIDDLE_DAYS)), 1.0 - (1.0 - ev.soh) * scale,
                            ev.sd * scale, ev.source))
            obs.extend((_age_months(p.install_date, when), v, s, src) for when, v, s, src in own)
            observations.append((obs, left_out))
        soh, ages, sd, from_bms = _evidence_table([obs for obs, _ in observations])
        sources = []
        for obs, left_out in observations:
            counted: dict[str, int] = {"bms_left_out": left_out} if left_out else {}
            for *_, src in obs:
                counted[src] = counted.get(src, 0) + 1
            sources.append(counted)
        nom = _loss_at_ages(loss, ages, p_first)
        # a BMS's own bias is shared by its readings; climate zones are sub-cohorts of the pack model
        # (the model fixes the OEM), each with its own prior
        post = calibrate_packs(soh, nom, sd, bms=from_bms, groups=[p.site.climate_zone or "unknown" for p in group])
        if post.q0_packs:
            measured.initial_capacity[model_code] = (round(100.0 * post.q0_mean, 2), post.q0_packs)
        ahead = seasonal_temperature_c(np.array([p.site.annual_mean_temp_c or 15.0 for p in group]),
                                       np.array([p.site.temp_amplitude_c or 10.0 for p in group]), HORIZON_MONTHS,
                                       start_month=today.month, offset_c=np.array([p.site.cabinet_offset_c + 2.0 for p in group]))
        # today on the evidence's clock (exact age); SOH may stand above 100 % of rated, as the forecast does
        now_loss = _loss_at_ages(loss, np.array([[_age_months(p.install_date, today)] for p in group]), p_first)[:, 0]
        soh_now = post.soh_quantiles(now_loss[:, None])[:, :, 0]  # P10, P50, P90 of SOH (never below 0)
        # Each pack's aging state at its own "now", read off the fleet run above.
        state = state_at(chemistry, nominal, hist_months - 1, multiplier=PACK_FACTOR)
        usage = np.array([_outages_per_year(p, today) for p in group])
        rated = np.array([p.model.rated_capacity_ah for p in group])
        volts = np.array([p.model.nominal_voltage_v for p in group])
        # each pack's share of its site's load current (packs of a site in parallel); NaN: load unknown
        current = np.array([(sites[p.site_id].load_w or np.nan) / p.model.nominal_voltage_v / packs_at_site[p.site_id] for p in group])
        # resistance now, relative to new, per quantile of m (low m first), and each pack's base:
        # its measured DCIR at 25 C (relative growth then counts from today) or its model's datasheet value
        r_now = 1.0 + post.multiplier_quantiles() * (nominal.r[np.arange(len(group)), hist_months - 1] - 1.0)[None, :]
        fused = [_measured_resistance(measured.resistance.get(p.pk, [])) for p in group]
        base_ohm = np.array([f["resistance_mohm_measured"] / 1000.0 / r_now[1, i] if f else
                             (p.model.dc_resistance_mohm / 1000.0 if p.model.dc_resistance_mohm else np.nan)
                             for i, (p, f) in enumerate(zip(group, fused))])
        no_resistance += int(np.isnan(base_ohm).sum())
        rows = np.array([site_row[p.site_id] for p in group])
        first_life = np.array([p.state in FIRST_LIFE for p in group])
        # each pack against the packs of its model in its own climate zone (the prior it was calibrated with)
        flags = aging_anomalies(post.log_m_mean, post.log_m_sd, post.prior_mean, post.prior_sd, pack_ids=[p.serial for p in group],
                                cohort_labels=lambda i: f"{model_code} in {group[i].site.climate_zone or 'an unknown climate zone'}",
                                evidence=lambda i: _anomaly_evidence(group[i], observations[i][0], sources[i], loss[i],
                                                                     post.prior_mean[i], post.q0_mean, p_first))
        flag_by = dict(zip(flags["pack"], flags["reason"]))
        anomalies += len(flag_by)
        for sc, out in zip(scenarios, runs):
            fc = forecast_packs(chemistry, post, ahead, soc_float=0.97, outages_per_year=usage, state=state, pack_factor=PACK_FACTOR,
                                scenario=sc, loss_now=now_loss, thresholds=sorted({*TRIAGE_THRESHOLDS, retire_at}, reverse=True))
            # backup energy of each pack, summed per site
            soh_path = np.concatenate([soh_now[:, :, None], fc.soh], axis=-1)[:, :, OUTLOOK_MONTHS]  # (3, n, months kept)
            r_path = np.concatenate([r_now[:, :, None], fc.resistance], axis=-1)[:, :, OUTLOOK_MONTHS]
            # the pessimistic energy pairs low SOH with high resistance: resistance quantiles reversed
            energy = pack_energy_wh(soh_path, rated[None, :, None], volts[None, :, None],
                                    resistance_ohm=base_ohm[None, :, None] * r_path[::-1], current_a=current[None, :, None])
            np.add.at(out.site_energy, rows, np.moveaxis(energy, 0, 1))
            if first_life.any():
                # a pack below the line already is due now: month 0 counts in the current quarter
                out.retire_months.append(crossing_samples_from_loss(fc.loss_nominal[first_life], post.subset(first_life),
                                                                    retire_at, OUTLOOK_SAMPLES, loss_now=now_loss[first_life],
                                                                    seed=zlib.crc32(model_code.encode())))
                out.retire_packs.extend(p for p, f in zip(group, first_life) if f)
            for i, p in enumerate(group):
                # every threshold's P10/P50/P90 crossing date, once: the indexed columns and the stored forecast share them
                dates = {thr: [date_ahead(today, months[j, i]) for j in range(3)] for thr, months in fc.crossing_months.items()}
                out.retire_p50[p.pk] = dates[retire_at][1]
                out.results.append(HealthAssessment(
                    pack=p, assessed_at=now, method=METHOD, evidence_count=int(post.n_evidence[i]),
                    soh_p10_pct=round(100 * soh_now[0, i], 2), soh_p50_pct=round(100 * soh_now[1, i], 2),
                    soh_p90_pct=round(100 * soh_now[2, i], 2), resistance_ratio_p50=round(float(fc.resistance[1, i, 0]), 4),
                    rate_multiplier_p50=round(float(math.exp(post.log_m_mean[i])), 4),
                    eol80_p10=dates[0.8][0], eol80_p50=dates[0.8][1], eol80_p90=dates[0.8][2], eol70_p50=dates[0.7][1],
                    eol60_p50=dates[0.6][1], anomaly=flag_by.get(p.serial, "")[:300],
                    evidence_sources=sources[i], forecast=_pack_forecast(fc, i, dates, today, (post.q0_mean, post.q0_packs)),
                    **(fused[i] or {})))
    measured.counts["packs_without_resistance"] = no_resistance
    return sites, runs, anomalies, measured


def _anomaly_evidence(pack, observations: list, sources: dict, loss_nominal, prior_log_m: float, cohort_start: float = 1.0,
                      p_first: float = 0.5) -> str:
    """What a pack's anomaly rests on, in words: its evidence by source and its latest measurement
    (a measured capacity before a BMS reading) against the SOH its cohort's median pack would
    show at that age (from the cohort's starting capacity for a measurement; a BMS counts from 100 %)."""
    if not observations:
        return ""
    measured = [o for o in observations if o[3] != "bms"]
    age, soh, _, src = max(measured or observations, key=lambda o: o[0])
    median_pack = (1.0 if src == "bms" else cohort_start) - math.exp(prior_log_m) * _loss_at(loss_nominal, age, p_first)
    when = date_ahead(pack.install_date, age)
    counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(sources.items()))
    return (f"evidence: {counts}; latest {src.replace('_', ' ')} {when:%Y-%m}: SOH {100 * soh:.1f} % where the median pack "
            f"would be at {100 * median_pack:.1f} %")


#: Years ahead at which each pack's SOH and resistance quantiles are stored (the forecast runs monthly).
FORECAST_YEARS = (1, 2, 3, 4, 5, 7, 10, 15)


def _pack_forecast(fc, i: int, dates: dict, today: dt.date, start=(1.0, 0)) -> dict:
    """Pack ``i``'s stored forecast: quantile paths at FORECAST_YEARS after ``today`` (the
    assessment's as-of date), every threshold's P10/P50/P90 crossing dates (``dates``:
    threshold -> three dates or None) and the starting capacity its cohort's SOH counts from
    (``start``: fraction of rated, packs whose commissioning tests gave it; 0: rated, assumed)."""
    idx = [min(12 * y, fc.soh.shape[-1]) - 1 for y in FORECAST_YEARS]
    q = ("p10", "p50", "p90")
    return {
        "as_of": today.isoformat(),
        "initial_capacity_pct": round(100.0 * start[0], 2), "initial_capacity_from_packs": int(start[1]),
        "years_ahead": list(FORECAST_YEARS),
        "soh_pct": {k: [round(100.0 * float(v), 2) for v in fc.soh[j, i, idx]] for j, k in enumerate(q)},
        "resistance_ratio": {k: [round(float(v), 4) for v in fc.resistance[j, i, idx]] for j, k in enumerate(q)},
        "crossings": {f"{round(100 * thr)}": {k: (d.isoformat() if d else None) for k, d in zip(q, three)}
                      for thr, three in sorted(dates.items(), reverse=True)},
    }


def _store_outlook(today, now, price, run_out: _ScenarioOutlook, sites: dict, store: bool = True,
                   retire_at: float = RETIREMENT_SOH) -> dict:
    """Site backup outlook and portfolio retirements per quarter (replaces the previous run when ``store``)."""
    results, retire_months, retire_packs = run_out.results, run_out.retire_months, run_out.retire_packs
    site_ids = sorted(sites)
    if store:
        OutlookRun.objects.all().delete()  # the latest run only; cascades to its rows
    run = OutlookRun(computed_at=now, start_quarter=quarter_labels(today, 1)[0], horizon_quarters=OUTLOOK_QUARTERS,
                                    retirement_soh_pct=100 * retire_at, replacement_cny_per_kwh=price,
                     packs=len(retire_packs), samples=OUTLOOK_SAMPLES)
    if store:
        run.save()
    load = np.array([sites[s].load_w if sites[s].load_w is not None else np.nan for s in site_ids], dtype=float)
    required = np.array([sites[s].required_backup_hours for s in site_ids], dtype=float)
    fb = fleet_backup_outlook(run_out.site_energy, load, required)
    earliest: dict[int, HealthAssessment] = {}
    count: dict[int, int] = {}
    for r in results:
        sid = r.pack.site_id
        count[sid] = count.get(sid, 0) + 1
        # the first to cross the run's retirement SOH (80 % unless the operator set another line)
        when = run_out.retire_p50.get(r.pack.pk)
        if when and (sid not in earliest or when < earliest[sid][1]):
            earliest[sid] = (r, when)

    def short_date(i, q):
        k = fb.first_short_month[i, q]  # an index into OUTLOOK_MONTHS
        return None if not math.isfinite(k) else date_ahead(today, float(OUTLOOK_MONTHS[int(k)]))

    def hours(i, q, month):
        v = fb.hours[i, q, int(np.searchsorted(OUTLOOK_MONTHS, month))]
        return None if not math.isfinite(v) else round(float(v), 3)

    rows = []
    for i, sid in enumerate(site_ids):
        known = math.isfinite(load[i]) and load[i] > 0
        e = earliest.get(sid)
        rows.append(SiteBackupOutlook(
            site_id=sid, run=run, packs=count.get(sid, 0), load_w=float(load[i]) if known else None, required_hours=float(required[i]),
            hours_now_p10=hours(i, 0, 0), hours_now_p50=hours(i, 1, 0), hours_now_p90=hours(i, 2, 0),
            hours_1y_p50=hours(i, 1, 12), hours_3y_p50=hours(i, 1, 36), hours_5y_p50=hours(i, 1, 60),
            meets_now=bool(fb.meets_now[i]) if known else None,
            short_p10=short_date(i, 0), short_p50=short_date(i, 1), short_p90=short_date(i, 2),
            earliest_failing_pack=e[0].pack if e else None, earliest_failing_eol80_p50=e[1] if e else None))
    if store:
        SiteBackupOutlook.objects.all().delete()  # every site has a row of the new run (the old run's went with it)
        SiteBackupOutlook.objects.bulk_create(rows, batch_size=2000)

    n_retire = 0
    fleet = {"retiring_5y_p10": 0.0, "retiring_5y_p50": 0.0, "retiring_5y_p90": 0.0, "cost_5y_cny_p50": 0.0}
    if retire_packs:
        samples = np.concatenate(retire_months)
        kwh = np.array([p.model.energy_kwh for p in retire_packs])
        whole = retirements_per_quarter(samples, None, kwh=kwh, price_per_kwh=price, start=today, n_quarters=OUTLOOK_QUARTERS).iloc[-1]
        fleet = {"retiring_5y_p10": float(whole.cum_count_p10), "retiring_5y_p50": float(whole.cum_count_p50),
                 "retiring_5y_p90": float(whole.cum_count_p90), "cost_5y_cny_p50": round(float(whole.cum_kwh_p50) * price, 2)}
        owner = np.array([p.owner_id or 0 for p in retire_packs])
        dims = {"owner": {"owner": owner},
                "province": {"owner": owner, "group": np.array([p.site.province or "?" for p in retire_packs])},
                "model": {"owner": owner, "group": np.array([p.model.code for p in retire_packs])}}
        out = []
        for dim, keys in dims.items():
            df = retirements_per_quarter(samples, keys, kwh=kwh, price_per_kwh=price, start=today, n_quarters=OUTLOOK_QUARTERS)
            for rec in df.itertuples(index=False):
                if int(rec.owner) == 0 or rec.cum_count_p90 == 0:
                    continue  # no owner on record, or nothing retired by then in any scenario
                out.append(RetirementForecast(
                    run=run, owner_id=int(rec.owner), dimension=dim, group=getattr(rec, "group", "") if dim != "owner" else "",
                    quarter=rec.quarter, count_p10=rec.count_p10, count_p50=rec.count_p50, count_p90=rec.count_p90,
                    kwh_p10=round(rec.kwh_p10, 3), kwh_p50=round(rec.kwh_p50, 3), kwh_p90=round(rec.kwh_p90, 3),
                    cost_cny_p10=round(rec.cost_p10, 2), cost_cny_p50=round(rec.cost_p50, 2), cost_cny_p90=round(rec.cost_p90, 2),
                    cum_count_p10=rec.cum_count_p10, cum_count_p50=rec.cum_count_p50, cum_count_p90=rec.cum_count_p90,
                    cum_cost_cny_p10=round(rec.cum_kwh_p10 * price, 2), cum_cost_cny_p50=round(rec.cum_kwh_p50 * price, 2),
                    cum_cost_cny_p90=round(rec.cum_kwh_p90 * price, 2)))
        if store:
            RetirementForecast.objects.bulk_create(out, batch_size=2000)
        n_retire = len(out)
    return {**fleet, "sites": len(rows), "sites_short_now": int(sum(1 for r in rows if r.meets_now is False)),
            "sites_short_within_5y_p50": int(sum(1 for r in rows if r.short_p50 and r.short_p50 <= today + dt.timedelta(days=5 * 365))),
            "retirement_rows": n_retire, "retirement_soh_pct": round(100 * retire_at, 2)}
