import csv
import datetime as dt
import json

import pytest

from telemetry_helpers import PACE_MAP, free_port, pace_image
from battloop.telemetry.readers import ReaderError
from battloop.telemetry.readers.modbus import (decode_registers, load_profile, poll_modbus, read_modbus_dump,
                                               registers_needed)
from battloop.telemetry.schema import Quality

TS = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.timezone.utc)


def test_pace_profile_agrees_with_the_published_v13_map():
    """Our own profile must say what the PACE v1.3 register table says."""
    rows = list(csv.DictReader(PACE_MAP.open(encoding="utf-8"), delimiter=";"))
    table = {r["documented name"].strip(): r for r in rows if r.get("documented name")}
    prof = load_profile("pace-bms-v1.3")
    expect = {"current_a": ("Current", "10mA", 0.01), "voltage_v": ("Voltage of pack", "10mV", 0.01),
              "soc_pct": ("SOC", "%", None), "soh_pct": ("SOH", "%", None),
              "remaining_ah": ("Remain capacity", "10mAH", 0.01), "full_ah": ("Full capacity", "10mAH", 0.01),
              "cycle_count": ("Battery cycle counts", "Cycles", None)}
    for col, (doc_name, unit, scale) in expect.items():
        row = table[doc_name]
        assert prof["reading"][col]["register"] == int(row["register"]), col
        assert row["unit"] == unit
        assert prof["reading"][col].get("scale") == scale
    assert prof["cells"]["cell_v"]["register"] == int(table["Cell voltage 1"]["register"])
    assert prof["bitmaps"]["protection"]["register"] == int(table["Protection flag"]["register"])
    assert prof["reading"]["pack_serial"]["register"] == int(table["PACK SN"]["register"].split("-")[0])


def test_decode_pace_register_image():
    row, cells, extra = decode_registers(pace_image(), "pace-bms-v1.3", ts=TS, unit=1)
    assert row["current_a"] == pytest.approx(-12.34)
    assert row["voltage_v"] == pytest.approx(53.21)
    assert (row["soc_pct"], row["soh_pct"], row["cycle_count"]) == (87, 96, 123)
    assert (row["remaining_ah"], row["full_ah"]) == (87.0, 100.0)
    assert row["pack_serial"] == "PACK-48V-0001"
    assert row["cell_v_min"] == pytest.approx(3.300) and row["cell_v_max"] == pytest.approx(3.315)
    assert row["temp_min_c"] == pytest.approx(-1.5) and row["temp_max_c"] == pytest.approx(26.2)
    assert sorted(row["alarm_codes"]) == ["pace.fault.temperature_sensor_fault", "pace.protection.short_circuit",
                                          "pace.warning.charge_over_temperature"]
    assert extra["pace.status"] == ["pace.status.charge_mosfet_on", "pace.status.discharge_mosfet_on"]
    assert extra["mosfet_temp_c"] == pytest.approx(30.0)
    assert len(cells) == 16 and cells[0]["cell_v"] == pytest.approx(3.3) and cells[3]["temp_c"] == pytest.approx(-1.5)


def test_dump_text_and_json_forms(tmp_path):
    regs = pace_image()
    txt = tmp_path / "dump.txt"
    txt.write_text("# profile: pace-bms-v1.3\n# unit: 2\n# ts: 2024-05-01T10:00:00Z\n"
                   + "\n".join(f"{k} {v}" if k % 2 else f"0x{k:04X}={v}" for k, v in regs.items()))
    t1, m1 = read_modbus_dump(txt)
    js = tmp_path / "dump.json"
    js.write_text(json.dumps({"profile": "pace-bms-v1.3", "unit": 2, "ts": "2024-05-01T10:00:00Z",
                              "registers": {str(k): v for k, v in regs.items()}}))
    t2, _ = read_modbus_dump(js)
    assert t1.to_pylist() == t2.to_pylist()
    r = t1.to_pylist()[0]
    assert r["slot"] == 2 and r["ts"] == TS and r["source"] == "modbus:pace-bms-v1.3"
    assert m1["cells"].num_rows == 16


def test_partial_dump_flags_partial_and_assumes_time(tmp_path):
    p = tmp_path / "partial.txt"
    p.write_text("0 100\n1 5300\n")
    t, meta = read_modbus_dump(p, profile="pace-bms-v1.3")
    r = t.to_pylist()[0]
    assert r["voltage_v"] == 53.0 and r["soc_pct"] is None
    assert r["quality"] & Quality.PARTIAL and r["quality"] & Quality.TS_ASSUMED


@pytest.mark.parametrize("content,match", [
    ("0 abc\n", "not an integer"),
    ("0 70000\n", "not a 16-bit"),
    ("0 1 2\n", "expected 'REGISTER VALUE'"),
    ('{"registers": {"0": "12"}}', "not an integer"),
    ('{"registers": [1, 2]}', "needs 'registers'"),
    ('{"registers": {"0": 1', "invalid JSON"),
    ("[" * 100000 + "]" * 100000, "expected 'REGISTER VALUE'"),
])
def test_bad_dumps(tmp_path, content, match):
    p = tmp_path / "bad.txt"
    p.write_text(content)
    with pytest.raises(ReaderError, match=match):
        read_modbus_dump(p, profile="pace-bms-v1.3")


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    p = tmp_path / "nested.json"
    p.write_text('{"registers": ' + "[" * 50000 + "]" * 50000 + "}")
    with pytest.raises(ReaderError):
        read_modbus_dump(p, profile="pace-bms-v1.3")


def test_non_utf8_dump(tmp_path):
    p = tmp_path / "bin.txt"
    p.write_bytes(b"0 1\n\xff\xfe 2\n")
    with pytest.raises(ReaderError, match="not UTF-8"):
        read_modbus_dump(p, profile="pace-bms-v1.3")


def test_unknown_profile_and_bad_profile_file(tmp_path):
    with pytest.raises(ReaderError, match="known profiles: .*huawei-esm-48100.*pace-bms-v1.3"):
        load_profile("no-such-bms")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: x\nreading:\n  volts: {register: 1}\n")
    with pytest.raises(ReaderError, match="reading.volts: not a canonical column"):
        load_profile(str(bad))


def test_huawei_telecom_profile_decodes_anti_theft():
    prof = load_profile("huawei-esm-48100")
    assert prof["default_unit_id"] == 214
    assert 0x7D6B in registers_needed(prof)
    regs = {0x0001: 5350, 0x0002: 150, 0x0003: 95, 0x0004: 91, 0x7D6B: 412, 0x0040: 0b001}
    row, _, _ = decode_registers(regs, prof, ts=TS)
    assert (row["voltage_v"], row["current_a"], row["soh_pct"], row["cycle_count"]) == (53.5, 1.5, 91, 412)
    assert row["alarm_codes"] == ["huawei_esm.alarm.anti_theft_locked"]


def test_live_poll_against_pymodbus_tcp_server(modbus_server):
    t, meta = poll_modbus("127.0.0.1", modbus_server, 3, "pace-bms-v1.3")
    r = t.to_pylist()[0]
    assert r["pack_serial"] == "LIVE-PACK-7"
    assert r["voltage_v"] == pytest.approx(53.21) and r["current_a"] == pytest.approx(-12.34)
    assert r["cycle_count"] == 123 and r["slot"] == 3
    assert "pace.protection.short_circuit" in r["alarm_codes"]
    assert meta["cells"].num_rows == 16 and meta["failed_blocks"] == []


def test_live_poll_connection_refused_is_clear():
    with pytest.raises(ReaderError, match="cannot connect"):
        poll_modbus("127.0.0.1", free_port(), 1, "pace-bms-v1.3", timeout_s=0.5)
