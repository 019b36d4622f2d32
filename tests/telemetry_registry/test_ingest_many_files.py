"""Several exports ingested in one call: a row an earlier file stored is a duplicate for a later
one, and an export's own source column keeps two instruments sampling at one instant apart."""

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from battloop.registry.models import Organization, Pack, PackModel, Site
from battloop.telemetry.service import ingest_files, lake

UTC = dt.timezone.utc


def _pack(serial="MF-1"):
    owner = Organization.objects.create(code="ctc", name="CTC", kind="tower_company")
    oem = Organization.objects.create(code="oem", name="OEM", kind="oem")
    model = PackModel.objects.create(code="M1", oem=oem, chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100, energy_kwh=4.8,
                                     mass_kg=45, cell_count=15, cell_configuration="15S1P", design_life_years=10)
    site = Site.objects.create(code="GD1", site_type="outdoor_cabinet", owner=owner)
    return Pack.objects.create(serial=serial, model=model, owner=owner, custodian=owner, site=site, state="installed",
                               install_date=dt.date(2024, 1, 1))


def _export(path, rows, with_source=True):
    cols = {"ts": [r[0].isoformat() for r in rows], "pack_serial": [r[1] for r in rows],
            "voltage_v": [r[2] for r in rows], "current_a": [r[3] for r in rows]}
    if with_source:
        cols["source"] = [r[4] for r in rows]
    pq.write_table(pa.table(cols), path)
    return path


def test_a_later_file_repeating_an_earlier_files_row_is_a_duplicate(db, tmp_path, monkeypatch):
    monkeypatch.setenv("BATTLOOP_LAKE_DIR", str(tmp_path / "lake"))
    _pack()
    t = [dt.datetime(2026, 10, 1, 12, m, tzinfo=UTC) for m in range(5)]
    a = _export(tmp_path / "a.parquet", [(x, "MF-1", 53.0, 0.2, "") for x in t], with_source=False)
    # the second export repeats minute 2 with another value, and adds minute 5
    b = _export(tmp_path / "b.parquet", [(t[2], "MF-1", 50.0, -20.0, ""),
                                         (dt.datetime(2026, 10, 1, 12, 5, tzinfo=UTC), "MF-1", 53.0, 0.2, "")],
                with_source=False)
    ra, rb = ingest_files([a, b], "csv")
    assert (ra.accepted, rb.accepted, rb.quarantined) == (5, 1, 1)
    assert rb.report["by_reason"] == {"duplicate of a stored reading": 1}
    con = lake().connect()
    assert con.execute("SELECT count(*), count(DISTINCT ts) FROM readings").fetchone() == (6, 6)
    assert con.execute("SELECT voltage_v FROM readings WHERE ts = ?", [t[2]]).fetchone() == (53.0,)


def test_an_exports_own_source_keeps_two_instruments_apart(db, tmp_path, monkeypatch):
    monkeypatch.setenv("BATTLOOP_LAKE_DIR", str(tmp_path / "lake"))
    _pack()
    noon = dt.datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    daily = _export(tmp_path / "daily.parquet", [(noon, "MF-1", 53.6, 0.3, "fsu-daily")])
    minute = _export(tmp_path / "minute.parquet", [(noon + dt.timedelta(minutes=m), "MF-1", 51.0, -25.0, "bms-1min")
                                                   for m in range(-2, 3)] + [(noon + dt.timedelta(minutes=3), "MF-1", 51.0, -25.0, " ")])
    rd, rm = ingest_files([daily, minute], "csv")
    assert (rd.accepted, rm.accepted, rm.quarantined) == (1, 6, 0)
    con = lake().connect()
    got = dict(con.execute("SELECT source, count(*) FROM readings GROUP BY source").fetchall())
    # a blank source cell falls back to the format's own label
    assert got == {"csv:fsu-daily": 1, "csv:bms-1min": 5, "csv": 1}
    # re-ingesting either file changes nothing
    assert all(r.skipped for r in ingest_files([daily, minute], "csv"))
