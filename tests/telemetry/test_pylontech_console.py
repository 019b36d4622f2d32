import datetime as dt

import pytest

from telemetry_helpers import CONSOLE
from battloop.telemetry.readers import ReaderError
from battloop.telemetry.readers.pylontech_console import read_pylontech_console
from battloop.telemetry.schema import CELL_SCHEMA, READING_SCHEMA, Quality

UTC = dt.timezone.utc


def by_slot(table):
    return {r["slot"]: r for r in table.to_pylist()}


def test_us_stack_session_merges_pwr_info_stat_bat():
    t, meta = read_pylontech_console(CONSOLE / "US")
    assert t.schema == READING_SCHEMA
    rows = by_slot(t)
    assert sorted(rows) == [1, 2, 3, 4]  # slots 5-16 are Absent
    m1 = rows[1]
    assert m1["pack_serial"] == "Yxxxxxxxxxxxxxx7"  # Barcode from 'info 1'
    assert m1["cycle_count"] == 108  # 'CYCLE Times' from 'stat 1'
    assert m1["soh_pct"] == 100.0
    assert m1["full_ah"] == 100.0  # 'Total Coulomb : 100000 mAH' (US5000)
    assert m1["cell_v_min"] == pytest.approx(3.327)
    assert m1["temp_min_c"] == pytest.approx(26.6) and m1["temp_max_c"] == pytest.approx(26.8)
    assert m1["ts"] == dt.datetime(2023, 9, 16, 11, 50, 32, tzinfo=UTC)
    assert m1["quality"] & Quality.TZ_ASSUMED
    assert rows[3]["cycle_count"] == 685 and rows[4]["cycle_count"] == 656
    assert {r["pack_serial"][0] for r in rows.values()} == {"Y", "H", "P"}
    cells = meta["cells"]
    assert cells.schema == CELL_SCHEMA
    assert cells.num_rows == 60  # 4 modules x 15 cells
    assert len(meta["events"]) == 32 and meta["events"][0]["Info"].startswith("The device start")


def test_time_zone_applied_to_bms_clock():
    t, _ = read_pylontech_console(CONSOLE / "US" / "pwr.txt", tz="Asia/Shanghai")
    r = by_slot(t)[1]
    assert r["ts"] == dt.datetime(2023, 9, 16, 3, 50, 32, tzinfo=UTC)
    assert not r["quality"] & Quality.TZ_ASSUMED


def test_pytes_prompt_cr_line_endings_and_real_coulomb():
    t, meta = read_pylontech_console(CONSOLE / "eb")
    rows = by_slot(t)
    assert sorted(rows) == [1, 2]
    assert rows[1]["voltage_v"] == pytest.approx(48.314)  # files in name order: "pwr.txt" read last
    assert rows[1]["full_ah"] == pytest.approx(49.7)  # 'Real Coulomb' preferred over nominal
    assert rows[1]["cycle_count"] == 62 and rows[2]["cycle_count"] == 67
    assert rows[1]["pack_serial"] == "LBXXXXXXXXXXXXX4"
    assert meta["devices"][1]["Device name"] == "E-BOX-4850P"


def test_hv_controller_single_system_row():
    t, meta = read_pylontech_console(CONSOLE / "SC")
    assert t.num_rows == 1
    r = t.to_pylist()[0]
    assert r["voltage_v"] == pytest.approx(235.573)
    assert r["soc_pct"] == 7.0 and r["remaining_ah"] == pytest.approx(5.18)
    assert r["soh_pct"] == 99.0 and r["cycle_count"] == 203
    assert r["pack_serial"] == "H225xxxxxxxxxx54"
    assert meta["cells"].num_rows == 75


def test_unknown_firmware_with_barcode_column_and_no_prompt():
    # Pytes E-BOX-48100V-D style: extra Barcode/DevType columns, '\n' endings, no prompt,
    # an alarm state, and a slot printed absent
    text = (
        "Power Volt   Curr   Tempr  Tlow   Thigh  Vlow   Vhigh  Base.St  Volt.St  Curr.St  Temp.St  Coulomb  "
        "Time                 B.V.St   B.T.St   MosTempr M.T.St   Barcode            DevType\n"
        "1     52010  -2500  31000  30000  33000  3461   3472   Dischg   Normal   Normal   HighTemp 91%      "
        "2024-07-01 08:00:05  Normal   Normal   32000    Normal   PPTAP0123456789    E-BOX-48100V-D\n"
        "2     -      -      -      -      -      -      -      Absent   -        -        -        -        "
        "-                    -        -        -        -        -                  -\n"
    )
    t, meta = read_pylontech_console(text.encode(), tz="UTC")
    assert t.num_rows == 1
    r = t.to_pylist()[0]
    assert r["pack_serial"] == "PPTAP0123456789"
    assert r["current_a"] == pytest.approx(-2.5)
    assert r["soc_pct"] == 91.0 and r["temp_max_c"] == 33.0
    assert "pylontech.temp_st.hightemp" in r["alarm_codes"]
    assert r["ts"] == dt.datetime(2024, 7, 1, 8, 0, 5, tzinfo=UTC)


def test_mixed_line_endings_and_other_prompt():
    text = ("\r\nbms_01>pwr 3\r\n@\r\n Power  3\r\n Voltage         : 53100       mV\n"
            " Current         : -1500       mA\r Temperature     : 24000       mC\r\n"
            " Coulomb         : 88          %\n Total Coulomb   : 100000      mAH\r\n"
            "Command completed successfully\r\n$$\r\nbms_01>")
    t, _ = read_pylontech_console(text.encode(), ts=dt.datetime(2024, 1, 1, tzinfo=UTC))
    r = t.to_pylist()[0]
    assert (r["slot"], r["voltage_v"], r["current_a"], r["soc_pct"]) == (3, 53.1, -1.5, 88.0)
    assert r["remaining_ah"] == pytest.approx(88.0) and r["quality"] & Quality.DERIVED


def test_serial_from_slot_map_when_firmware_prints_none():
    t, _ = read_pylontech_console(CONSOLE / "US" / "pwr.txt", pack_serials={2: "REG-0002"})
    rows = by_slot(t)
    assert rows[2]["pack_serial"] == "REG-0002" and rows[2]["quality"] & Quality.SERIAL_FROM_SLOT
    assert rows[1]["pack_serial"] is None


def test_truncated_capture_is_clear_error():
    data = (CONSOLE / "US" / "pwr.txt").read_bytes()
    header_only = data[: data.index(b"Power Volt") - 1]
    with pytest.raises(ReaderError, match="no table header|no Pylontech console output"):
        read_pylontech_console(header_only)
    # a capture cut mid-row still yields the complete rows
    cut = data[: data.index(b"\n3     ")] + b"\n3     499"
    t, _ = read_pylontech_console(cut)
    assert sorted(by_slot(t)) == [1, 2, 3] and by_slot(t)[2]["voltage_v"] == pytest.approx(49.882)


def test_binary_garbage_rejected():
    import random
    rnd = random.Random(1)
    with pytest.raises(ReaderError, match="binary|not a text capture|no Pylontech"):
        read_pylontech_console(bytes(rnd.randrange(256) for _ in range(5000)))


def test_very_long_line_rejected_without_reading_everything(tmp_path):
    p = tmp_path / "long.txt"
    with open(p, "wb") as fh:
        fh.write(b"pylon>pwr\n")
        fh.write(b"A" * 200_000)
    with pytest.raises(ReaderError, match="longer than"):
        read_pylontech_console(p)
    big = tmp_path / "huge.txt"
    with open(big, "wb") as fh:
        fh.truncate(40 * 1024 * 1024)  # sparse, 40 MB: refused before reading
    with pytest.raises(ReaderError, match="more than"):
        read_pylontech_console(big)


def test_non_utf8_bytes_are_tolerated():
    data = (CONSOLE / "eb" / "info 1.txt").read_bytes().replace(b"PYTES\r", b"PYT\xff\xfeS\r")
    data += (CONSOLE / "eb" / "pwr.txt").read_bytes()
    t, meta = read_pylontech_console(data)
    assert by_slot(t)[1]["pack_serial"] == "LBXXXXXXXXXXXXX4"
    assert "\ufffd" in meta["devices"][1]["Manufacturer"]


def test_empty_and_missing_inputs():
    with pytest.raises(ReaderError, match="empty"):
        read_pylontech_console(b"  \r\n")
    with pytest.raises(ReaderError, match="no such file"):
        read_pylontech_console("/nonexistent/capture.txt")


def test_pwrsys_summary_unknown_commands_and_hv_units():
    text = (b"pylon>pwrsys\r\n@\r\nSystem is discharging\r\n Total Num                : 2\r\n"
            b" System Volt              : 49953      mV\r\n System Curr              : -3130      mA\r\n"
            b" System RC                : 78224      mAH\r\n System SOH               : 100        %\r\n"
            b"Command completed successfully\r\npylon>help\r\n@\r\npwr  -- show power\r\npylon>pwr 1\r\n@\r\n"
            b" Voltage         : 49959       mV\r\n Current         : 15939       mA\r\n"
            b" Coulomb         : 45          %\r\n")
    t, meta = read_pylontech_console(text, ts=dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert meta["system"]["System Volt"] == pytest.approx(49.953)
    assert meta["system"]["System RC"] == pytest.approx(78.224) and meta["system"]["state"] == "System is discharging"
    assert meta["other"] == {"other:help": ["pwr  -- show power"]}
    assert t.to_pylist()[0]["voltage_v"] == pytest.approx(49.959)
    _, sc = read_pylontech_console(CONSOLE / "SC")
    assert [u["index"] for u in sc["units"]] == [1, 2, 3, 4, 5]
    assert sc["units"][0]["voltage_v"] == pytest.approx(47.27) and sc["units"][0]["remaining_ah"] == 8.14
