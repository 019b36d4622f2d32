import datetime as dt

from telemetry_helpers import CONSOLE, RS485
from battloop.telemetry.ingest import ingest_path
from battloop.telemetry.lake import Lake

UTC = dt.timezone.utc


def test_ingest_rs485_with_cells_and_slot_serials(tmp_path):
    lake = Lake(tmp_path / "lake")
    res = ingest_path(lake, RS485 / "us2000_3modules_1", "pylontech-rs485",
                      reader_options={"ts": dt.datetime(2024, 3, 1, tzinfo=UTC),
                                      "pack_serials": {1: "US2K-A", 2: "US2K-B"}},
                      checks={"now": dt.datetime(2024, 6, 1, tzinfo=UTC)})
    assert (res.accepted, res.quarantined) == (2, 1)  # slot 3 has no serial → quarantined, not lost
    con = lake.connect()
    assert con.execute("SELECT reason, slot FROM quarantine").fetchall() == [("missing pack serial", 3)]
    assert con.execute("SELECT count(*) FROM cells").fetchall()[0][0] == 45
    again = ingest_path(lake, RS485 / "us2000_3modules_1", "pylontech-rs485")
    assert again.skipped


def test_ingest_console_capture_against_registry(tmp_path):
    lake = Lake(tmp_path / "lake")
    res = ingest_path(lake, CONSOLE / "US" / "pwr.txt", "pylontech-console",
                      reader_options={"tz": "Asia/Shanghai", "pack_serials": {1: "A", 2: "B", 3: "C", 4: "D"},
                                      "site_code": "SZ-001"},
                      checks={"known_serials": {"A", "B", "C"},
                              "expected_serial": {("SZ-001", 1): "A", ("SZ-001", 2): "X"}})
    assert res.accepted == 2
    assert res.report["by_reason"] == {"identity conflict": 1, "unknown serial": 1}
    assert res.report["unknown_serials"] == ["D"]
