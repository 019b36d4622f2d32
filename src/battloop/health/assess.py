"""``battloop assess``: calibrate every installed pack's aging from its evidence and
store the forecast (Django side of the health package).

Evidence: monthly medians of the BMS-reported SOH from the lake, corrected for the BMS's
optimism (:func:`battloop.health.estimate.bms_soh_evidence`: bias +2 pp, sd 3 pp).
Model: the semi-empirical aging model (:mod:`battloop.health.models`) integrated over
each pack's own history at its site's seasonal climate (cabinet offset included) with
the BLAST-Lite pack factor 1.2; per-pack rate multipliers with an empirical-Bayes
cohort prior per pack model (:func:`battloop.health.forecast.calibrate_packs`);
forecast 15 years ahead monthly (:func:`battloop.health.forecast.forecast_packs`).
"""

from __future__ import annotations

import datetime as dt
import math
import time

import numpy as np
from django.db import transaction
from django.utils import timezone

from battloop.registry.models import Pack

from .estimate import bms_soh_evidence
from .forecast import DAYS_PER_MONTH, calibrate_packs, forecast_packs, seasonal_temperature_c
from .models import simulate_aging, state_at
from .outlook import aging_anomalies
from .records import HealthAssessment

PACK_FACTOR = 1.2
HORIZON_MONTHS = 180
METHOD = "semi-empirical calendar+cycle, cohort-calibrated (battloop health v1)"


def _monthly_bms_soh(serials: list[str]) -> dict[str, list[tuple[dt.date, float]]]:
    from battloop.telemetry.service import lake

    the_lake = lake()
    if not the_lake.files():
        return {}
    con = the_lake.connect()
    rows = con.execute(
        "SELECT pack_serial, epoch_us(date_trunc('month', ts)) AS m, median(soh_pct) FROM readings "
        "WHERE soh_pct IS NOT NULL GROUP BY ALL ORDER BY pack_serial, m").fetchall()
    wanted = set(serials)
    out: dict[str, list] = {}
    for serial, m_us, soh in rows:
        if serial in wanted:
            out.setdefault(serial, []).append((dt.datetime.fromtimestamp(m_us / 1e6, dt.timezone.utc).date(), float(soh)))
    return out


def _months_between(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 12 + (b.month - a.month)


def assess(today: dt.date | None = None) -> dict:
    started = time.perf_counter()
    today = today or timezone.localdate()
    packs = list(Pack.objects.filter(state__in=["installed", "flagged", "redeployed"]).exclude(model=None).exclude(install_date=None)
                 .exclude(site=None).select_related("model", "site"))
    evidence = _monthly_bms_soh([p.serial for p in packs])
    stored = 0
    anomalies = 0
    now = timezone.now()
    cohorts: dict[str, list[Pack]] = {}
    for p in packs:
        cohorts.setdefault(p.model.code, []).append(p)
    results = []
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
        n_obs = max((len(evidence.get(p.serial, [])) for p in group), default=0)
        soh = np.full((len(group), max(n_obs, 1)), np.nan)
        nom = np.zeros_like(soh)
        sd = np.full_like(soh, 0.03)
        for i, p in enumerate(group):
            for j, (month, reported) in enumerate(evidence.get(p.serial, [])):
                k = min(max(_months_between(p.install_date, month), 0), n_hist - 1)
                ev = bms_soh_evidence(reported / 100.0, t_days=k * DAYS_PER_MONTH)
                soh[i, j], nom[i, j], sd[i, j] = ev.soh, loss[i, k], ev.sd
        post = calibrate_packs(soh, nom, sd)
        # State at each pack's "now": re-run its history to its own length for the aging state.
        ahead = seasonal_temperature_c(np.array([p.site.annual_mean_temp_c or 15.0 for p in group]),
                                       np.array([p.site.temp_amplitude_c or 10.0 for p in group]), HORIZON_MONTHS,
                                       start_month=today.month, offset_c=np.array([p.site.cabinet_offset_c + 2.0 for p in group]))
        mq = post.multiplier_quantiles()
        now_loss = np.array([loss[i, hist_months[i] - 1] for i in range(len(group))])
        soh_now = np.clip(1.0 - mq[::-1] * now_loss[None, :], 0, 1)  # P10, P50, P90 of SOH
        # Each pack's aging state at its own "now", read off the fleet run above.
        state = state_at(chemistry, nominal, hist_months - 1, multiplier=PACK_FACTOR)
        fc = forecast_packs(chemistry, post, ahead, soc_float=0.97, state=state, pack_factor=PACK_FACTOR)
        flags = aging_anomalies(post.log_m_mean, post.log_m_sd, post.cohort.log_m_mean, post.cohort.log_m_sd,
                                pack_ids=[p.serial for p in group])
        flag_by = dict(zip(flags["pack"], flags["reason"]))

        def month_date(m):
            if not math.isfinite(m):
                return None
            return today + dt.timedelta(days=int(m * DAYS_PER_MONTH))

        for i, p in enumerate(group):
            reason = flag_by.get(p.serial, "")
            anomalies += bool(reason)
            results.append(HealthAssessment(
                pack=p, assessed_at=now, method=METHOD, evidence_count=int(post.n_evidence[i]),
                soh_p10_pct=round(100 * soh_now[0, i], 2), soh_p50_pct=round(100 * soh_now[1, i], 2), soh_p90_pct=round(100 * soh_now[2, i], 2),
                resistance_ratio_p50=round(float(fc.resistance[1, i, 0]), 4), rate_multiplier_p50=round(float(math.exp(post.log_m_mean[i])), 4),
                eol80_p10=month_date(fc.crossing_months[0.8][0, i]), eol80_p50=month_date(fc.crossing_months[0.8][1, i]),
                eol80_p90=month_date(fc.crossing_months[0.8][2, i]), eol70_p50=month_date(fc.crossing_months[0.7][1, i]),
                eol60_p50=month_date(fc.crossing_months[0.6][1, i]), anomaly=reason[:300]))
    with transaction.atomic():
        HealthAssessment.objects.filter(pack__in=[r.pack for r in results]).delete()
        HealthAssessment.objects.bulk_create(results, batch_size=2000)
        stored = len(results)
    return {"packs": stored, "with_evidence": sum(1 for r in results if r.evidence_count), "anomalies": anomalies,
            "seconds": time.perf_counter() - started}
