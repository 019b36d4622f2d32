"""battloop ingest with the registry: unknown serials quarantined, latest-reading
projection, alarms opened and cleared as pack events, idempotent re-ingest."""

import datetime as dt

import pytest
from django.core.management import call_command

from battloop.registry.audit import verify_chains
from battloop.registry.models import Organization, Pack, PackModel, Site
from battloop.telemetry.models import ActiveAlarm, LatestReading
from battloop.telemetry.service import lake


@pytest.fixture
def fleet(db, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("BATTLOOP_LAKE_DIR", str(tmp_path / "lake"))
    ctc = Organization.objects.create(code="ctc", name="CTC", kind="tower_company")
    oem = Organization.objects.create(code="oem", name="OEM", kind="oem")
    model = PackModel.objects.create(code="M1", oem=oem, chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100, energy_kwh=4.8,
                                     mass_kg=45, cell_count=15, cell_configuration="15S1P", design_life_years=10)
    site = Site.objects.create(code="GD1", site_type="outdoor_cabinet", owner=ctc)
    from battloop.registry.importer import import_packs

    f = tmp_path / "p.csv"
    f.write_text("serial,model,install_date,site,location\nA1,M1,2020-01-01,GD1,slot 1\nA2,M1,2020-01-01,GD1,slot 2\n")
    import_packs(f)
    return tmp_path


def export(path, rows):
    lines = ["ts,pack_serial,site_code,source,voltage_v,current_a,soc_pct,soh_pct,temp_min_c,temp_max_c,cell_v_min,cell_v_max"]
    lines += [",".join(str(x) for x in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingest_projection_alarms_and_idempotence(fleet, capsys):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    t0, t1 = (now - dt.timedelta(hours=2)).isoformat(), (now - dt.timedelta(hours=1)).isoformat()
    f1 = export(fleet / "day1.csv", [
        (t0, "A1", "GD1", "fsu", 53.1, 0.5, 99, 96, 30, 31, 3.54, 3.55),
        (t1, "A1", "GD1", "fsu", 53.0, 0.4, 99, 96, 47, 49, 3.53, 3.56),   # hot cabinet
        (t1, "A2", "GD1", "fsu", 52.9, 0.2, 98, 95, 28, 29, 3.40, 3.60),   # cell spread 200 mV
        (t1, "ZZ9", "GD1", "fsu", 52.9, 0.2, 98, 95, 28, 29, 3.50, 3.52),  # unknown serial
    ])
    call_command("ingest", str(f1), "--format", "csv")
    out = capsys.readouterr().out
    assert "3 readings accepted, 1 quarantined" in out and "ZZ9" in out
    lr = LatestReading.objects.get(pack__serial="A1")
    assert lr.temp_max_c == 49 and lr.ts == dt.datetime.fromisoformat(t1)
    alarms = set(ActiveAlarm.objects.values_list("pack__serial", "code"))
    assert alarms == {("A1", "over_temperature"), ("A2", "cell_imbalance")}
    ev = Pack.objects.get(serial="A1").events.filter(kind="alarm").get()
    assert ev.payload["alarm"] == "over_temperature" and ev.payload["status"] == "open"
    assert Pack.objects.get(serial="A1").state == "installed"  # alarms do not move the lifecycle

    call_command("ingest", str(f1), "--format", "csv")
    assert "already ingested" in capsys.readouterr().out
    assert lake().connect().execute("SELECT count(*) FROM readings").fetchone()[0] == 3

    # The cabinet cools down: the alarm clears, as an event.
    f2 = export(fleet / "day2.csv", [(now.isoformat(), "A1", "GD1", "fsu", 53.0, 0.3, 99, 96, 25, 26, 3.54, 3.55)])
    call_command("ingest", str(f2), "--format", "csv")
    assert set(ActiveAlarm.objects.values_list("pack__serial", "code")) == {("A2", "cell_imbalance")}
    statuses = [e.payload["status"] for e in Pack.objects.get(serial="A1").events.filter(kind="alarm").order_by("seq")]
    assert statuses == ["open", "cleared"]
    assert not verify_chains().breaks


def test_overlapping_export_adds_no_duplicates(fleet, capsys):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    rows = [((now - dt.timedelta(minutes=m)).isoformat(), "A1", "GD1", "fsu", 53.0, 0.1, 99, 96, 25, 26, 3.54, 3.55) for m in (30, 20, 10)]
    call_command("ingest", str(export(fleet / "a.csv", rows[:2])), "--format", "csv")
    call_command("ingest", str(export(fleet / "b.csv", rows)), "--format", "csv")  # overlaps the first file
    assert lake().connect().execute("SELECT count(*) FROM readings").fetchone()[0] == 3


def test_ingest_real_console_capture(fleet, shared_data, capsys):
    # A real Pylontech capture: its serials are not in this registry, so nothing is
    # accepted silently — every reading is quarantined as an unknown serial.
    call_command("ingest", str(shared_data / "telemetry" / "pylontech_console" / "US"), "--format", "pylontech-console",
                 "--tz", "Asia/Shanghai")
    out = capsys.readouterr().out
    assert "readings accepted" in out and " 0 readings accepted" in out.replace(": 0 readings", " 0 readings")
    assert not any(line.split(": ")[1].startswith(tuple("123456789")) for line in out.splitlines() if "readings accepted" in line)
    assert "unknown serial" in out and LatestReading.objects.count() == 0


def test_identity_conflict_is_quarantined(fleet, capsys):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    path = fleet / "swap.csv"
    path.write_text("ts,pack_serial,site_code,slot,source,voltage_v\n"
                    f"{now},A1,GD1,1,fsu,53.0\n"
                    f"{now},A1,GD1,2,fsu,53.0\n")  # slot 2 holds A2: the BMS there reports A1 (swapped wiring)
    call_command("ingest", str(path), "--format", "csv")
    out = capsys.readouterr().out
    assert "1 readings accepted, 1 quarantined" in out and "identity conflict" in out
