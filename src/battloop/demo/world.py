"""The demo world: a whole life of telemetry for every pack of a demo fleet. Pure: no
Django; deterministic under a seed.

Per pack and day (one daily-summary reading, as an FSU/NMS export gives):
- cabinet temperature = the site's annual mean + a seasonal sine (peak in late July) +
  the cabinet offset + weather noise;
- float charge near full SOC; grid outages as a Poisson process whose rate depends on
  the site type (rural and off-grid sites lose the grid far more often) and on the
  province's climate zone (typhoon and plateau regions more); an outage's depth of
  discharge is outage hours × site load ÷ the energy of the packs at the site;
- ground-truth capacity and resistance from :func:`battloop.health.models.simulate_aging`
  (the same model the forecasts use), with a per-pack rate multiplier (cell-to-cell
  spread), a per-pack initial capacity off rated by sd 1 %, and the BLAST-Lite pack
  factor 1.2;
- the BMS's SOH as real BMSs report it: biased upward by a few points, noisy, in whole
  percent; a cycle counter counting outages.

Injected faults so the alarms have something to find: a hot cabinet (one site's
cooling failed two weeks ago: ≈48 °C), a cell imbalance (one pack's cell spread grows), a
swapped serial (one pack reports its neighbour's serial for a day), a fast-aging pack (a
bad cell lot: 2.5x its cohort's aging rate, among packs in service for 4+ years). And a few detailed
outage days at 1-minute resolution.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from battloop.health.models import pack_factor_for, simulate_aging

OUTAGES_PER_YEAR = {"macro_bts": 6.0, "outdoor_cabinet": 8.0, "indoor": 3.0, "data_centre": 0.5, "rural": 24.0, "off_grid": 60.0}
ZONE_OUTAGE_FACTOR = {"IV": 1.5, "VI": 1.4, "VII": 1.2}  # typhoon coast, plateau, arid north-west
PACK_FACTOR = pack_factor_for("LFP")  # pack life 25 % shorter than cell life, BLAST-Lite rule of thumb (DOMAIN.md §3)


@dataclass(frozen=True)
class Faults:
    hot_site: str | None
    imbalanced_pack: str | None
    swapped: tuple[str, str] | None
    fast_aging_pack: str | None = None


def simulate(packs: list[dict], sites: dict[str, dict], models: dict[str, dict], today: dt.date, seed: int = 7,
             history_days: int | None = None) -> tuple[pa.Table, Faults]:
    """Daily readings for every installed pack from install (or ``history_days`` ago) to yesterday."""
    rng = np.random.default_rng(seed + 1000)
    live = [p for p in packs if p.get("site") and p["state"] in ("installed", "flagged") and p.get("model") in models]
    if not live:
        return pa.table({}), Faults(None, None, None)
    site_codes = sorted({p["site"] for p in live})
    hot_site = site_codes[int(rng.integers(len(site_codes)))]
    imbalanced = live[int(rng.integers(len(live)))]["serial"]
    by_site: dict[str, list[dict]] = {}
    for p in live:
        by_site.setdefault(p["site"], []).append(p)
    pair_site = next((s for s, ps in by_site.items() if len(ps) >= 2 and s != hot_site), None)
    swapped = (by_site[pair_site][0]["serial"], by_site[pair_site][1]["serial"]) if pair_site else None
    # drawn from its own stream so the other packs' histories stay as they were for a seed
    seasoned = sorted(p["serial"] for p in live if (today - dt.date.fromisoformat(p["install_date"])).days >= 4 * 365
                      and p["serial"] != imbalanced)
    fast = seasoned[int(np.random.default_rng(seed + 2000).integers(len(seasoned)))] if seasoned else None

    out: dict[str, list] = {k: [] for k in ("ts", "pack_serial", "site_code", "slot", "source", "voltage_v", "current_a", "soc_pct", "soh_pct",
                                            "remaining_ah", "full_ah", "cycle_count", "temp_min_c", "temp_max_c", "cell_v_min", "cell_v_max")}
    energy_at_site = {s: sum(models[p["model"]]["energy_kwh"] for p in ps) for s, ps in by_site.items()}
    # new packs deliver their rated capacity only within a tolerance: each pack's initial capacity is
    # off rated by its own offset (sd 1 %, the spread of first capacities in the public cell data),
    # drawn from a stream of its own so the rest of the world stays as it was
    initial_rng = np.random.default_rng(seed + 3000)
    initial_offset = {p["serial"]: float(initial_rng.normal(0.0, 0.01)) for p in live}
    for chemistry in sorted({models[p["model"]]["chemistry"] for p in live}):
        group = [p for p in live if models[p["model"]]["chemistry"] == chemistry]
        starts = np.array([max(dt.date.fromisoformat(p["install_date"]), today - dt.timedelta(days=history_days)) if history_days
                           else dt.date.fromisoformat(p["install_date"]) for p in group])
        installs = np.array([dt.date.fromisoformat(p["install_date"]) for p in group])
        n_days = np.array([(today - s).days for s in starts])
        life_days = np.array([(today - i).days for i in installs])
        length = int(life_days.max())
        k = np.arange(length)[None, :]
        first_doy = np.array([i.timetuple().tm_yday for i in installs])[:, None]
        doy = (first_doy + k) % 365
        site_rows = [sites[p["site"]] for p in group]
        mean_t = np.array([s["annual_mean_temp_c"] + s["cabinet_offset_c"] for s in site_rows])[:, None]
        amp = np.array([s["temp_amplitude_c"] for s in site_rows])[:, None]
        temp = mean_t + amp * np.sin(2 * np.pi * (doy - 115) / 365.0) + rng.normal(0, 2.0, (len(group), length))
        # Conditioned rooms hold 18-28 °C; outdoor cabinets have a heater that keeps them above ~3 °C.
        conditioned = np.array([s["site_type"] in ("indoor", "data_centre") for s in site_rows])
        temp[conditioned] = np.clip(temp[conditioned], 18.0, 28.0)
        temp[~conditioned] = np.maximum(temp[~conditioned], 3.0 + rng.normal(0, 0.5, temp[~conditioned].shape))
        hot = np.array([p["site"] == hot_site for p in group])
        # The hot-cabinet fault: the cooling failed two weeks ago and the cabinet sits near 48 °C.
        for i in np.flatnonzero(hot):  # each pack's history starts at its install: its last days end at life_days[i]
            temp[i, max(0, life_days[i] - 14):life_days[i]] = 48.0 + rng.normal(0, 1.0, min(14, life_days[i]))
        rate = np.array([OUTAGES_PER_YEAR[s["site_type"]] * ZONE_OUTAGE_FACTOR.get(s["climate_zone"].split()[0], 1.0)
                         for s in site_rows])[:, None] / 365.0
        outages = rng.poisson(np.broadcast_to(rate, temp.shape))
        hours = rng.gamma(2.0, 1.2, temp.shape) * (outages > 0)
        load_kw = np.array([s["load_w"] / 1000 for s in site_rows])[:, None]
        site_kwh = np.array([energy_at_site[p["site"]] for p in group])[:, None]
        dod = np.clip(hours * load_kw / site_kwh, 0.0, 0.9)
        efc = dod * outages
        multiplier = rng.lognormal(0.0, 0.12, (len(group), 1))
        multiplier[[p["serial"] == fast for p in group]] *= 2.5
        # The cabinet, not the cell core, is what we know; the cells float a bit warmer.
        res = simulate_aging(chemistry, np.clip(temp + 2.0, -40, 80), soc_mean=0.97, efc_per_step=efc,
                             dod=np.where(dod > 0, dod, 0.5), degradation_multiplier=multiplier, pack_factor=PACK_FACTOR)
        cycles = np.cumsum(outages, axis=1)
        for i, p in enumerate(group):
            first = life_days[i] - n_days[i]
            sl = slice(first, life_days[i])
            days = n_days[i]
            if days <= 0:
                continue
            m = models[p["model"]]
            rated = m["rated_capacity_ah"]
            q = res.q[i, sl] + initial_offset[p["serial"]]
            full_ah = rated * q
            bias = rng.uniform(1.0, 4.0)  # BMSs report optimistic SOH
            bms_soh = np.clip(np.round(100 * q + bias + rng.normal(0, 1.0, days)), 0, 100)
            soc = np.where(outages[i, sl] > 0, 100 * (1 - dod[i, sl]), 99.0 + rng.normal(0, 0.4, days)).clip(0, 100)
            cells = m["cell_count"]
            v_cell = 3.38 + 0.0012 * soc  # LFP float plateau; enough for a summary
            spread = np.full(days, 0.012)
            if p["serial"] == imbalanced:
                spread += np.linspace(0, 0.18, days) ** 2 / 0.18  # a weak cell drifting away
            base = dt.datetime.combine(installs[i] + dt.timedelta(days=int(first)), dt.time(12), dt.timezone.utc)
            # columns as arrays per pack (one list entry per pack, not per reading): a 2,000-site
            # fleet has ~13 million readings, which as Python objects would need many gigabytes
            base_us = int(base.timestamp() * 1_000_000)
            out["ts"].append(base_us + np.arange(days, dtype=np.int64) * 86_400_000_000)
            serials = np.full(days, p["serial"], dtype=object)
            if swapped and p["serial"] == swapped[0]:
                serials[-1] = swapped[1]  # wiring swap: the BMS reports its neighbour's serial
            out["pack_serial"].append(serials)
            out["site_code"].append(np.full(days, p["site"], dtype=object))
            out["slot"].append(np.full(days, int(p["location"].split()[-1]), dtype=np.int64))  # the rack position the FSU reads it at
            out["source"].append(np.full(days, "fsu-daily", dtype=object))
            out["voltage_v"].append(np.round(v_cell * cells, 2))
            out["current_a"].append(np.round(rng.normal(0.3, 0.1, days), 2))
            out["soc_pct"].append(np.round(soc, 1))
            out["soh_pct"].append(bms_soh)
            out["full_ah"].append(np.round(full_ah, 1))
            out["remaining_ah"].append(np.round(full_ah * soc / 100, 1))
            out["cycle_count"].append(cycles[i, sl].astype(np.int64))
            t = temp[i, sl]
            out["temp_min_c"].append(np.round(t - 1.5, 1))
            out["temp_max_c"].append(np.round(t + 1.0, 1))
            out["cell_v_min"].append(np.round(v_cell - spread / 2, 3))
            out["cell_v_max"].append(np.round(v_cell + spread / 2, 3))
    if not out["ts"]:
        return pa.table({}), Faults(hot_site, imbalanced, swapped, fast)
    cols = {k: np.concatenate(v) for k, v in out.items()}
    table = pa.table({"ts": pa.array(cols.pop("ts"), pa.timestamp("us", tz="UTC")),
                      **{k: pa.array(v, pa.string() if v.dtype == object else None) for k, v in cols.items()}})
    return table, Faults(hot_site, imbalanced, swapped, fast)


def outage_day_minutes(serial: str, site: str, day: dt.date, rated_ah: float, cells: int, load_a: float, hours: float,
                       seed: int = 0) -> pa.Table:
    """One day at 1-minute resolution with a grid outage: float, discharge, recharge."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(24 * 60)
    start = 9 * 60
    end = start + int(hours * 60)
    current = np.where((minutes >= start) & (minutes < end), -load_a, 0.0)
    recharge = (minutes >= end) & (minutes < end + int(hours * 60 * 1.1))
    current = np.where(recharge, 0.2 * rated_ah, current) + rng.normal(0, 0.05, minutes.size)
    charge_ah = np.cumsum(current) / 60
    soc = np.clip(99 + 100 * charge_ah / rated_ah, 0, 100)
    v_cell = np.where(current < -0.5, 3.25 - 0.002 * (100 - soc), 3.38 + 0.0012 * soc + 0.002 * np.clip(current, 0, None))
    ts = [dt.datetime.combine(day, dt.time(0), dt.timezone.utc) + dt.timedelta(minutes=int(m)) for m in minutes]
    return pa.table({
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "pack_serial": [serial] * minutes.size, "site_code": [site] * minutes.size,
        "source": ["bms-1min"] * minutes.size, "voltage_v": np.round(v_cell * cells, 3), "current_a": np.round(current, 2),
        "soc_pct": np.round(soc, 1), "temp_max_c": np.round(28 + 0.02 * np.abs(current), 1),
        "cell_v_min": np.round(v_cell - 0.006, 3), "cell_v_max": np.round(v_cell + 0.006, 3),
    })
