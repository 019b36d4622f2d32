"""battloop assess fuses measured evidence with the BMS's: bench capacity tests and DCIR
(stored by the bench import), outage discharges and current steps found in the lake's
sub-hourly series; the measured resistance shows on the pack page and in the API."""

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from battloop.health.assess import BENCH_DCIR_FLOOR_MOHM, BENCH_DCIR_REL_SD, BMS_DEFAULT_BIAS, assess
from battloop.health.estimate import OCV_TABLES, resistance_factor_to_reference
from battloop.health.forecast import seasonal_temperature_c
from battloop.health.records import HealthAssessment
from battloop.registry.models import Pack
from battloop.telemetry.service import ingest_files, lake
from battloop.triage.bench import import_bench

TODAY = dt.date(2026, 11, 1)  # the demo fixture's today


@pytest.fixture
def demo(demo_instance):
    return demo_instance(6, seed=5)


def seasoned_lfp_pack() -> Pack:
    """An installed LFP pack in service for five years or more (its BMS has a long SOH series)."""
    return (Pack.objects.filter(state="installed", model__chemistry="LFP", install_date__lte=TODAY - dt.timedelta(days=5 * 365))
            .select_related("model").order_by("install_date", "serial").first())


def bms_implied_soh(pack: Pack) -> float:
    """What the pack's BMS says now, less its generic optimism: the level the BMS-only assessment sits at."""
    return pack.latest_reading.soh_pct / 100.0 - BMS_DEFAULT_BIAS


def bench(tmp_path, name, serial, date, capacity_ah=None, dcir_mohm=None, temp_c=25):
    f = tmp_path / name
    f.write_text("serial,test_date,capacity_ah,test_temp_c,dcir_mohm,visual_ok\n"
                 f"{serial},{date},{'' if capacity_ah is None else capacity_ah},{temp_c},{'' if dcir_mohm is None else dcir_mohm},true\n")
    report = import_bench(f).report
    assert report.applied == 1, report
    return f


def test_a_bench_test_below_the_bms_pulls_soh_and_eol_down_and_counts_as_evidence(demo, tmp_path):
    assess(today=TODAY)
    p = seasoned_lfp_pack()
    before = HealthAssessment.objects.get(pack=p)
    others = dict(HealthAssessment.objects.exclude(pack=p).values_list("pack_id", "soh_p50_pct"))
    assert before.evidence_sources == {"bms": before.evidence_count}
    measured = bms_implied_soh(p) - 0.06  # the bench finds 6 pp less than the BMS implies
    bench(tmp_path, "b.csv", p.serial, "2026-10-15", capacity_ah=round(measured * p.model.rated_capacity_ah, 2))
    r = assess(today=TODAY)
    after = HealthAssessment.objects.get(pack=p)
    assert r["evidence"]["bench_capacity_tests"] == 1
    assert after.evidence_count == before.evidence_count + 1
    assert after.evidence_sources == {"bms": before.evidence_count, "capacity_test": 1}
    # the BMS lags: its reported fade, rescaled to the bench's at the test, gives the shape; SOH follows the bench
    assert after.soh_p50_pct < before.soh_p50_pct - 2
    assert after.soh_p50_pct == pytest.approx(100 * measured, abs=1.0)
    assert after.soh_p10_pct <= after.soh_p50_pct <= after.soh_p90_pct
    assert after.eol70_p50 < before.eol70_p50
    assert after.rate_multiplier_p50 > before.rate_multiplier_p50
    # the other packs of the cohort move only through its prior; no other pack gains evidence
    now = dict(HealthAssessment.objects.exclude(pack=p).values_list("pack_id", "soh_p50_pct"))
    assert now.keys() == others.keys() and max(abs(now[k] - others[k]) for k in now) < 0.5
    assert not HealthAssessment.objects.exclude(pack=p).filter(evidence_sources__has_key="capacity_test").exists()


def test_a_bms_far_off_the_measured_capacity_is_left_out(demo, tmp_path):
    assess(today=TODAY)
    p = seasoned_lfp_pack()
    before = HealthAssessment.objects.get(pack=p)
    bench(tmp_path, "b.csv", p.serial, "2026-10-15", capacity_ah=round(0.60 * p.model.rated_capacity_ah, 2))
    r = assess(today=TODAY)
    after = HealthAssessment.objects.get(pack=p)
    assert after.evidence_sources == {"bms_left_out": before.evidence_count, "capacity_test": 1}
    assert after.evidence_count == 1
    assert after.soh_p50_pct == pytest.approx(60.0, abs=1.5)
    assert after.eol80_p50 <= before.eol80_p50 and after.eol70_p50 < before.eol70_p50
    assert any(x["pack"] == p.serial and x["kind"] == "bms" and "left out" in x["reason"] for x in r["evidence_rejected"])


def test_bench_dcir_is_fused_into_a_measured_resistance_with_its_sd(demo, tmp_path):
    p = seasoned_lfp_pack()
    bench(tmp_path, "old.csv", p.serial, "2025-06-01", dcir_mohm=30)  # over a year before the latest: resistance grew since
    bench(tmp_path, "a.csv", p.serial, "2026-10-15", dcir_mohm=40)
    bench(tmp_path, "b.csv", p.serial, "2026-10-20", dcir_mohm=44)
    bench(tmp_path, "later.csv", p.serial, "2026-11-20", dcir_mohm=90)  # after the assessment date: not seen
    r = assess(today=TODAY)
    h = HealthAssessment.objects.get(pack=p)
    sd = [math.hypot(BENCH_DCIR_REL_SD * x, BENCH_DCIR_FLOOR_MOHM) for x in (40, 44)]
    w = np.array([1 / s**2 for s in sd])
    assert h.resistance_mohm_measured == pytest.approx(float(np.dot(w, [40, 44]) / w.sum()), abs=1e-3)
    assert h.resistance_mohm_sd == pytest.approx(float(1 / np.sqrt(w.sum())), abs=1e-3)
    assert h.resistance_evidence_count == 2 and h.resistance_measured_on == dt.date(2026, 10, 20)
    assert r["evidence"]["bench_resistance_tests"] == 3 and r["with_measured_resistance"] == 1
    assert HealthAssessment.objects.exclude(pack=p).filter(resistance_mohm_measured__isnull=False).count() == 0
    assert h.evidence_sources == {"bms": h.evidence_count}  # a DCIR-only sheet says nothing about capacity


def test_bench_dcir_of_a_cold_and_a_warm_day_agree_at_25_c(demo, tmp_path):
    # the same 40 mOhm (at 25 C) pack tested in a 10 C store and a 35 C yard reads 62 and 31 mOhm;
    # both are brought to 25 C before they are fused
    p = seasoned_lfp_pack()
    read = {temp: 40.0 / float(resistance_factor_to_reference(temp)) for temp in (10.0, 35.0)}
    assert read[10.0] > 55 and read[35.0] < 33
    bench(tmp_path, "cold.csv", p.serial, "2026-10-15", dcir_mohm=round(read[10.0], 3), temp_c=10)
    bench(tmp_path, "warm.csv", p.serial, "2026-10-20", dcir_mohm=round(read[35.0], 3), temp_c=35)
    assess(today=TODAY)
    h = HealthAssessment.objects.get(pack=p)
    assert h.resistance_mohm_measured == pytest.approx(40.0, abs=0.05)
    assert h.resistance_evidence_count == 2
    # the correction's own uncertainty (Ea +/- 6 kJ/mol) is in the sd: wider than two 25 C tests would
    # give, though an Ea error moves a cold and a warm reading in opposite directions, so it largely
    # cancels between them (measured 0.98 against 0.85 mOhm)
    sd_at_25 = math.hypot(BENCH_DCIR_REL_SD * 40, BENCH_DCIR_FLOOR_MOHM) / math.sqrt(2)
    assert 1.05 * sd_at_25 < h.resistance_mohm_sd < 0.05 * 40


def _ocv(soc):
    soc_pts, v_pts = OCV_TABLES["LFP"]
    return np.interp(soc, soc_pts, v_pts)


def write_series(path, p: Pack, day: dt.date, capacity_ah: float, load_a=25.0, steps=False, temp_c=None):
    """A 1-min series of one outage on ``day`` from 13:00: 2 h float rest, a discharge of 70 % of
    ``capacity_ah``, 2 h rest.
    With ``steps``: 1 s samples around a load step in the middle of the discharge."""
    cells = int(p.model.cell_configuration.upper().split("S")[0])
    r_ohm = 0.035
    t0 = dt.datetime.combine(day, dt.time(13), dt.timezone.utc).timestamp()
    ts, cur, volt = [], [], []
    t, soc = t0, 1.0
    for _ in range(120):
        ts.append(t); cur.append(0.05); volt.append(cells * 3.45); t += 60
    for k in range(int(0.7 * capacity_ah / load_a * 60)):
        if steps and k == 60:  # a second of higher load, sampled every second
            for load in (load_a, load_a, load_a + 30, load_a + 30):
                ts.append(t); cur.append(-load); volt.append(cells * _ocv(soc) - load * r_ohm); t += 1
        ts.append(t); cur.append(-load_a); volt.append(cells * _ocv(soc) - load_a * r_ohm); t += 60
        soc -= load_a / 60 / capacity_ah
    for _ in range(120):
        ts.append(t); cur.append(0.0); volt.append(cells * _ocv(soc)); t += 60
    n = len(ts)
    pq.write_table(pa.table({"ts": pa.array(np.round(np.array(ts) * 1000).astype(np.int64)), "pack_serial": [p.serial] * n,
                             "site_code": [p.site.code] * n, "voltage_v": np.round(volt, 3), "current_a": np.round(cur, 2),
                             **({} if temp_c is None else {"temp_min_c": [temp_c - 1.0] * n, "temp_max_c": [temp_c + 1.0] * n})}),
                   path)
    res = ingest_files([path], "csv")
    assert res[0].accepted == n and res[0].quarantined == 0
    return soc


def test_a_rested_outage_in_the_lake_is_fused_and_the_demo_outages_are_rejected_with_the_reason(demo, tmp_path):
    r = assess(today=TODAY)
    # the demo's 1-min outage days go straight from discharge to recharge: no rested end voltage
    assert r["evidence"]["outage_discharges"] == 0 and r["evidence"]["outage_discharges_rejected"] == 3
    assert {x["reason"] for x in r["evidence_rejected"] if x["kind"] == "outage"} == {
        "no rest after the discharge (the charger resumed at once): the SOC at its end is unknown"}
    # the daily summary's 12:00 reading shares its instant with a minute of each outage day, but the
    # export names each row's source (fsu-daily, bms-1min): two series, nothing in conflict
    assert r["evidence"]["series_conflicting_readings"] == 0
    p = seasoned_lfp_pack()
    before = HealthAssessment.objects.get(pack=p)
    capacity = (bms_implied_soh(p) - 0.06) * p.model.rated_capacity_ah
    write_series(tmp_path / "outage.parquet", p, dt.date(2026, 10, 20), capacity, steps=True)
    r = assess(today=TODAY)
    after = HealthAssessment.objects.get(pack=p)
    assert r["evidence"]["outage_discharges"] == 1 and r["evidence"]["current_steps"] == 2  # the load up, and down again
    assert after.evidence_sources == {"bms": before.evidence_count, "outage_discharge": 1}
    assert after.soh_p50_pct < before.soh_p50_pct - 2
    assert after.soh_p50_pct == pytest.approx(100 * capacity / p.model.rated_capacity_ah, abs=2.0)
    assert after.eol70_p50 < before.eol70_p50  # (this pack is already below 80 %)
    # the load steps read the pack's 35 mOhm; the series carries no temperature, so the cabinet's in
    # October is taken from the site's climate (monthly normal + cabinet offset) to bring them to 25 C
    site = p.site
    october_c = seasonal_temperature_c(site.annual_mean_temp_c or 15.0, site.temp_amplitude_c or 10.0, 12,
                                       offset_c=site.cabinet_offset_c + 2.0)[9]
    assert after.resistance_mohm_measured == pytest.approx(35.0 * float(resistance_factor_to_reference(october_c)), rel=0.015)
    assert after.resistance_evidence_count == 2 and after.resistance_measured_on == dt.date(2026, 10, 20)


def test_load_steps_in_a_cold_cabinet_are_stored_at_25_c(demo, tmp_path):
    # the cells' temperatures (7..9 C) travel with the steps: 35 mOhm read at 8 C is ~18 mOhm at 25 C
    p = seasoned_lfp_pack()
    capacity = (bms_implied_soh(p) - 0.06) * p.model.rated_capacity_ah
    write_series(tmp_path / "outage.parquet", p, dt.date(2026, 10, 20), capacity, steps=True, temp_c=8.0)
    r = assess(today=TODAY)
    h = HealthAssessment.objects.get(pack=p)
    assert r["evidence"]["current_steps"] == 2
    assert h.resistance_mohm_measured == pytest.approx(35.0 * float(resistance_factor_to_reference(8.0)), rel=0.02)
    assert h.resistance_mohm_measured < 20


def test_readings_at_one_instant_count_once_when_they_agree_and_not_at_all_when_they_disagree(demo, tmp_path):
    p = seasoned_lfp_pack()
    capacity = (bms_implied_soh(p) - 0.06) * p.model.rated_capacity_ah
    write_series(tmp_path / "outage.parquet", p, dt.date(2026, 10, 20), capacity)
    the_lake = lake()
    stored = pa.concat_tables([pq.read_table(f) for f in the_lake.files() if f.parent.name == "date=2026-10-20"])
    stored = stored.filter(pc.equal(stored.column("pack_serial"), p.serial)).sort_by("ts")
    assert stored.column("current_a")[130].as_py() < 0 and stored.column("current_a")[140].as_py() < 0  # in the discharge
    # the lake holds two more readings with the keys of stored ones (as an interrupted compaction
    # leaves them): one the same, one at rest, stamped on a minute of it
    again = stored.take([130])
    rested = stored.take([140])
    rested = rested.set_column(rested.schema.get_field_index("current_a"), "current_a", pa.array([0.3]))
    the_lake.write(pa.concat_tables([again, rested]))
    # whichever order the lake returns the tied readings in, the discharge stays whole
    r = assess(today=TODAY)
    assert r["evidence"]["outage_discharges"] == 1
    assert r["evidence"]["series_conflicting_readings"] == 2  # the pair at minute 140
    assert HealthAssessment.objects.get(pack=p).evidence_sources["outage_discharge"] == 1


def test_the_readings_kept_at_one_instant_do_not_depend_on_their_order():
    from itertools import permutations

    from battloop.health.assess import _one_reading_per_instant

    # instants 0 and 2: one reading twice; instant 1: two readings that disagree
    rows = [(0, -20.0, 52.0), (0, -20.0, 52.0), (1, -20.0, 51.9), (1, 0.3, 53.5), (2, -20.0, 51.8), (2, -20.0, 51.8), (3, 0.0, 53.0)]
    for perm in permutations(rows):
        ordered = sorted(perm, key=lambda x: x[0])  # sorted by time only: ties in any order
        us, cur, volt = (np.array(c) for c in zip(*ordered))
        keep, conflicting = _one_reading_per_instant(us, cur, volt)
        assert sorted(zip(us[keep].tolist(), cur[keep].tolist())) == [(0, -20.0), (2, -20.0), (3, 0.0)]
        assert conflicting == 2


def test_measured_resistance_shows_on_the_pack_page_and_in_the_api(demo, tmp_path, client):
    from django.contrib.auth import get_user_model

    from battloop.web.access import actor_for_user, packs_for

    user = get_user_model().objects.get(username="demo")
    visible = packs_for(actor_for_user(user))
    p = visible.filter(state="installed").select_related("model").order_by("serial").first()
    bench(tmp_path, "a.csv", p.serial, "2026-10-15", capacity_ah=round(0.85 * p.model.rated_capacity_ah, 2), dcir_mohm=40)
    assess(today=TODAY)
    client.force_login(user)
    html = client.get(f"/packs/{p.serial}/").content.decode()
    assert "40.0 ± 1.3 mΩ" in html and "2026-10-15" in html
    assert "capacity tests 1" in html
    data = client.get(f"/api/v1/packs/{p.serial}/health").json()
    assert data["resistance_mohm_measured"] == pytest.approx(40.0)
    assert data["resistance_mohm_sd"] == pytest.approx(1.3, abs=0.001)
    assert data["resistance_evidence_count"] == 1 and data["resistance_measured_on"] == "2026-10-15"
    assert data["evidence_sources"]["capacity_test"] == 1
    other = visible.filter(health__isnull=False).exclude(pk=p.pk).first()
    html = client.get(f"/packs/{other.serial}/").content.decode()
    assert "not measured" in html
    assert client.get(f"/api/v1/packs/{other.serial}/health").json()["resistance_mohm_measured"] is None


def test_a_bad_bench_row_in_the_store_is_left_out_with_its_reason_and_the_fleet_is_still_assessed(demo, tmp_path):
    from battloop.triage.models import BenchResult

    p = seasoned_lfp_pack()
    bench(tmp_path, "b.csv", p.serial, "2026-10-15", capacity_ah=round(0.8 * p.model.rated_capacity_ah, 2), dcir_mohm=30)
    # stored before the import checked temperatures, or written by another tool: Kelvin, and no resistance
    BenchResult.objects.filter(pack=p).update(test_temp_c=298.15, dcir_mohm=0)
    r = assess(today=TODAY)
    assert r["packs"] == HealthAssessment.objects.count() > 1
    assert r["evidence"]["bench_capacity_tests"] == 0 and r["evidence"]["bench_resistance_tests"] == 0
    reasons = {x["kind"]: x["reason"] for x in r["evidence_rejected"] if x["pack"] == p.serial}
    assert "298.15" in reasons["capacity_test"] and "Kelvin" in reasons["capacity_test"]
    assert "must be positive" in reasons["resistance"]
    assert HealthAssessment.objects.get(pack=p).evidence_sources == {"bms": HealthAssessment.objects.get(pack=p).evidence_count}


def test_commissioning_tests_give_the_cohort_its_starting_capacity(demo, tmp_path, capsys):
    # packs of one model tested at 104 % of rated at their site acceptance (install day) and again last month
    from django.core.management import call_command

    installed = (Pack.objects.filter(state="installed", install_date__lte=TODAY - dt.timedelta(days=3 * 365))
                 .select_related("model").order_by("model__code", "serial"))
    by_model: dict = {}
    for p in installed:
        by_model.setdefault(p.model.code, []).append(p)
    code, packs = max(by_model.items(), key=lambda kv: len(kv[1]))
    assert len(packs) >= 4
    head = "serial,test_date,capacity_ah,test_temp_c,visual_ok"
    commissioning = [f"{p.serial},{p.install_date},{1.04 * p.model.rated_capacity_ah:.2f},25,true" for p in packs]
    later = [f"{p.serial},2026-10-01,{(bms_implied_soh(p) + 0.02) * p.model.rated_capacity_ah:.2f},25,true" for p in packs]
    for name, rows in (("commissioning.csv", commissioning), ("later.csv", later)):  # one dossier per pack and file
        (tmp_path / name).write_text("\n".join([head, *rows]) + "\n")
        assert import_bench(tmp_path / name).report.applied == len(packs)
    r = assess(today=TODAY)
    start = {c["model"]: c for c in r["initial_capacity"]}
    assert set(start) == {code}  # the other models keep rated as their start: none of their packs pinned theirs
    assert start[code]["packs"] == len(packs)
    assert start[code]["pct_of_rated"] == pytest.approx(104.0, abs=0.5)
    # each pack's stored forecast names the start its SOH counts from (the API serves it)
    fc = HealthAssessment.objects.get(pack=packs[0]).forecast
    assert (fc["initial_capacity_pct"], fc["initial_capacity_from_packs"]) == (start[code]["pct_of_rated"], len(packs))
    other = HealthAssessment.objects.exclude(pack__model__code=code).first().forecast
    assert (other["initial_capacity_pct"], other["initial_capacity_from_packs"]) == (100.0, 0)
    call_command("assess")  # the command's own today, a few weeks on: the same starting capacity
    assert f"new {code} packs delivered 10" in capsys.readouterr().out


def test_evidence_sits_at_its_exact_age_on_the_packs_loss_path():
    from battloop.health.assess import _loss_at

    path = np.array([0.02, 0.03, 0.035])  # loss at the end of months 1, 2, 3
    assert _loss_at(path, 0.0, 0.44) == 0.0  # a test on install day: nothing lost yet
    assert _loss_at(path, 0.25, 0.44) == pytest.approx(0.02 * 0.25**0.44)  # a week in: the law's own t^p, about half
    assert _loss_at(path, 1.5, 0.44) == pytest.approx(0.025)
    assert _loss_at(path, 3.0, 0.44) == pytest.approx(0.035)
    assert _loss_at(path, 7.0, 0.44) == pytest.approx(0.035)  # beyond the path: its last value
