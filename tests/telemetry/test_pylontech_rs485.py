import datetime as dt
import struct

import pytest
from hypothesis import given, settings, strategies as st

from telemetry_helpers import RS485
from battloop.telemetry.readers import ReaderError
from battloop.telemetry.readers.pylontech_rs485 import (FrameError, build_frame, decode_analog, decode_frame,
                                                       length_field, read_pylontech_rs485)
from battloop.telemetry.schema import Quality

TS = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
SAMPLE = RS485 / "us2000_3modules_1"


def module_info(cells_mv, temps_c, current_a, voltage_mv, rem_mah, tot_mah, cycles, three_byte=None):
    b = bytes([len(cells_mv)]) + b"".join(struct.pack(">H", v) for v in cells_mv)
    b += bytes([len(temps_c)]) + b"".join(struct.pack(">h", round(t * 10) + 2731) for t in temps_c)
    b += struct.pack(">hH", round(current_a * 100), voltage_mv)
    b += struct.pack(">H", min(rem_mah, 0xFFFF)) + bytes([4 if three_byte else 2])
    b += struct.pack(">HH", min(tot_mah, 0xFFFF), cycles)
    if three_byte:
        b += rem_mah.to_bytes(3, "big") + tot_mah.to_bytes(3, "big")
    return b


def test_real_us2000_frame_three_modules():
    t, meta = read_pylontech_rs485(SAMPLE, ts=TS)
    rows = t.to_pylist()
    assert [r["slot"] for r in rows] == [1, 2, 3]
    r = rows[0]
    assert r["voltage_v"] == pytest.approx(49.545)
    assert r["current_a"] == pytest.approx(-0.26)
    assert (r["remaining_ah"], r["full_ah"], r["cycle_count"]) == (33.5, 50.0, 31)
    assert r["soc_pct"] == pytest.approx(67.0)
    assert r["temp_min_c"] == pytest.approx(22.0) and meta["modules"][0]["bms_temp_c"] == pytest.approx(23.0)
    assert r["cell_v_min"] == pytest.approx(3.301) and r["cell_v_max"] == pytest.approx(3.306)
    assert r["ts"] == TS and not r["quality"] & Quality.TS_ASSUMED
    assert not r["quality"] & Quality.CAPACITY_3BYTE
    assert meta["cells"].num_rows == 45 and meta["rejected_frames"] == []


def test_length_and_checksum_fields_match_real_frame():
    raw = SAMPLE.read_text().replace("\\r", "")
    fr = decode_frame(raw)
    assert (fr.ver, fr.adr, fr.cid1, fr.cid2) == (0x20, 0x02, 0x46, 0x00)
    assert raw[9:13] == length_field(len(fr.info) * 2) == "9142"
    # re-encoding the decoded frame reproduces it byte for byte
    assert build_frame(fr.adr, fr.cid2, fr.info).rstrip("\r") == raw.strip()


def test_three_byte_capacity_when_16_bit_fields_saturate():
    info = bytes([0x11, 2])
    info += module_info([3300] * 15, [25.0, 24.0, 24.5], 12.5, 49600, 61420, 74000, 47, three_byte=True)
    info += module_info([3310] * 16, [26.0, 25.0], -3.0, 52960, 30000, 50000, 40)
    frame = build_frame(0x02, 0x00, info)
    t, meta = read_pylontech_rs485(frame.encode(), ts=TS)
    a, b = t.to_pylist()
    assert (a["remaining_ah"], a["full_ah"]) == (61.42, 74.0)
    assert a["quality"] & Quality.CAPACITY_3BYTE
    assert a["soc_pct"] == pytest.approx(83.0, abs=0.01)
    assert a["current_a"] == 12.5 and a["cycle_count"] == 47
    assert (b["remaining_ah"], b["full_ah"]) == (30.0, 50.0) and not b["quality"] & Quality.CAPACITY_3BYTE
    assert meta["cells"].num_rows == 31


def corrupt_variants():
    good = SAMPLE.read_text().replace("\\r", "").strip()
    bad_chk = good[:-4] + ("0000" if good[-4:] != "0000" else "0001")
    bad_lchk = good[:9] + "1" + good[10:]
    odd = good[:100] + "A" + good[100:]  # one stray character
    nonhex = good[:50] + "G" + good[51:]
    truncated = good[:201]
    return {"checksum": (bad_chk, "CHKSUM mismatch"), "lchksum": (bad_lchk, "LCHKSUM"),
            "odd": (odd, "odd number"), "nonhex": (nonhex, "non-hex"), "truncated": (truncated, "truncated")}


@pytest.mark.parametrize("kind", sorted(corrupt_variants()))
def test_corrupt_frames_rejected_with_reason(kind):
    frame, reason = corrupt_variants()[kind]
    with pytest.raises(FrameError, match=reason):
        decode_frame(frame)
    with pytest.raises(ReaderError, match=reason):
        read_pylontech_rs485(frame.encode() + b"\r", ts=TS)


def test_log_with_one_bad_frame_keeps_the_good_ones_and_reports_the_bad():
    good = SAMPLE.read_text().replace("\\r", "").strip()
    bad = corrupt_variants()["checksum"][0]
    request = build_frame(0x02, 0x42, b"\x02").strip()
    log = f"{request}\r\n{good}\r\n{bad}\n{good}\r".encode()
    t, meta = read_pylontech_rs485(log, ts=TS)
    assert t.num_rows == 6
    assert [r["line"] for r in meta["rejected_frames"]] == [3]
    assert "CHKSUM" in meta["rejected_frames"][0]["reason"]


def test_rtn_error_response_is_reported():
    frame = build_frame(0x02, 0x02)  # RTN 0x02: the BMS says our CHKSUM was wrong
    with pytest.raises(ReaderError, match="RTN 0x02"):
        read_pylontech_rs485(frame.encode(), ts=TS)


def test_binary_garbage_and_non_ascii():
    with pytest.raises(ReaderError, match="not ASCII"):
        read_pylontech_rs485(bytes(range(256)) * 4)
    with pytest.raises(ReaderError, match="no YD/T 1363.3 frame"):
        read_pylontech_rs485(b"hello world\r\n")


def test_overlong_line_rejected():
    with pytest.raises(ReaderError, match="longer than any valid frame"):
        read_pylontech_rs485(b"~" + b"20" * 5000 + b"\r", ts=TS)


def test_payload_that_is_not_0x42_layout():
    frame = build_frame(0x02, 0x00, bytes([0x11, 1, 15]) + b"\x0c\xe4" * 3)
    with pytest.raises(ReaderError, match="INFO ends inside"):
        read_pylontech_rs485(frame.encode(), ts=TS)


def test_missing_timestamp_uses_file_time_and_flags_it():
    t, meta = read_pylontech_rs485(SAMPLE)
    assert all(q & Quality.TS_ASSUMED for q in t.column("quality").to_pylist())
    assert meta["ts_assumed"] is True


@settings(max_examples=60, deadline=None)
@given(info=st.binary(max_size=300), adr=st.integers(0, 255), cid2=st.integers(0, 255))
def test_frame_roundtrip_property(info, adr, cid2):
    fr = decode_frame(build_frame(adr, cid2, info))
    assert (fr.adr, fr.cid2, fr.info) == (adr, cid2, info)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_decode_analog_never_crashes(info):
    try:
        decode_analog(info)
    except FrameError:
        pass


def test_alarm_info_0x44_joins_the_analog_reading():
    analog = SAMPLE.read_text().replace("\\r", "").strip()
    alarm_info = bytes([0x11, 3])
    for m in range(3):
        cells = [0] * 15
        if m == 1:
            cells[4] = 0x02  # cell 5 above the upper limit
        temps = [0, 0, 0x02 if m == 2 else 0, 0, 0]  # probe 3 above the upper limit
        status = [0b1 if m == 0 else 0, 0, 0, 0, 0]
        alarm_info += bytes([15, *cells, 5, *temps, 0, 0, 0, *status])
    log = "\r".join([build_frame(2, 0x42, b"\x02").strip(), analog,
                     build_frame(2, 0x44, b"\x02").strip(), build_frame(2, 0x00, alarm_info).strip()])
    t, meta = read_pylontech_rs485(log.encode(), ts=TS)
    codes = {r["slot"]: r["alarm_codes"] for r in t.to_pylist()}
    assert t.num_rows == 3
    assert codes == {1: ["pylontech.status1.bit0"], 2: ["pylontech.cell5_voltage.high"],
                     3: ["pylontech.temperature3.high"]}
