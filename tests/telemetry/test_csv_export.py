import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from battloop.telemetry.readers import ReaderError
from battloop.telemetry.readers.csv_export import iter_csv_export, read_csv_export
from battloop.telemetry.schema import READING_SCHEMA, Quality

UTC = dt.timezone.utc


def write(tmp_path, text, name="export.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def test_chinese_headers_with_units_in_brackets(tmp_path):
    p = write(tmp_path, "采集时间,电池序列号,站址编码,总电压(mV),电流（mA）,SOC,最高温度(0.1K),剩余容量(mAh)\n"
                        "2024-05-01 18:00:00,BL-1,440300A,53200,-1500,87,3001,87000\n")
    t, meta = read_csv_export(p, tz="Asia/Shanghai")
    r = t.to_pylist()[0]
    assert t.schema == READING_SCHEMA
    assert r["ts"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert (r["pack_serial"], r["site_code"]) == ("BL-1", "440300A")
    assert r["voltage_v"] == pytest.approx(53.2) and r["current_a"] == pytest.approx(-1.5)
    assert r["temp_max_c"] == pytest.approx(26.95) and r["remaining_ah"] == pytest.approx(87.0)
    assert meta["columns"]["voltage_v"] == {"header": "总电压(mV)", "unit": "mv"}


def test_gb18030_encoded_export(tmp_path):
    p = write(tmp_path, "时间,电池条码,电压,电流\n1714557600,SN9,53.1,2.0\n", encoding="gb18030")
    t, meta = read_csv_export(p)
    assert meta["encoding"] == "gb18030"
    assert t.to_pylist()[0]["pack_serial"] == "SN9"


def test_epoch_seconds_ms_and_us_decided_per_value(tmp_path):
    p = write(tmp_path, "ts,serial,voltage_mv,temperature_mc\n"
                        "1714557600,A,53000,25000\n1714557660000,A,53010,25100\n1714557720000000,A,53020,25200\n")
    t, _ = read_csv_export(p)
    ts = t.column("ts").to_pylist()
    assert ts == [dt.datetime(2024, 5, 1, 10, m, tzinfo=UTC) for m in (0, 1, 2)]
    assert t.column("temp_max_c").to_pylist() == pytest.approx([25.0, 25.1, 25.2])


def test_iso_with_offsets_and_naive_in_mapping_zone(tmp_path):
    p = write(tmp_path, "ts,serial,voltage\n2024-05-01T18:00:00+08:00,A,53\n2024-05-01T10:01:00Z,A,53\n")
    t, _ = read_csv_export(p)
    assert t.column("ts").to_pylist() == [dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
                                          dt.datetime(2024, 5, 1, 10, 1, tzinfo=UTC)]


def test_strings_where_numbers_belong_are_flagged_not_dropped(tmp_path):
    p = write(tmp_path, "ts,serial,voltage,current_a,cycles\n"
                        "1714557600,A,53.1,1.0,10\n1714557660,A,fifty,1.0,11\n1714557720,A,53.3,n/a?,12\n"
                        "1714557780,A,53.4,1.0,13\n")
    t, meta = read_csv_export(p)
    assert t.num_rows == 4
    q = t.column("quality").to_pylist()
    assert [bool(x & Quality.INVALID_VALUE) for x in q] == [False, True, True, False]
    assert t.column("voltage_v").to_pylist() == [53.1, None, 53.3, 53.4]
    assert meta["parse_errors"][:2] == [{"row": 2, "column": "voltage", "value": "fifty"},
                                        {"row": 3, "column": "current_a", "value": "n/a?"}]
    assert meta["invalid_rows"] == 2


def test_non_utf8_bytes_in_a_utf8_file(tmp_path):
    body = "ts,serial,voltage\n" + "".join(f"{1714557600 + i},SN{i},53.0\n" for i in range(3000))
    raw = body.encode() + b"1714560600,BAD\xff\xfeSN,53.0\n"
    p = write(tmp_path, raw)
    t, meta = read_csv_export(p)
    assert t.num_rows == 3001
    last = t.to_pylist()[-1]
    assert last["pack_serial"] is None and last["quality"] & Quality.INVALID_VALUE
    assert meta["parse_errors"][0]["row"] == 3001


def test_discharge_positive_mapping_and_unknown_unit(tmp_path):
    m = tmp_path / "vendor.yaml"
    m.write_text("name: vendor\ntimestamp: {headers: [t], unit: auto}\ncurrent_sign: discharge_positive\n"
                 "columns:\n  pack_serial: [{headers: [id]}]\n  current_a: [{headers: [amps], unit: A}]\n"
                 "  soc_pct: [{headers: [soc], unit: fraction}]\n")
    p = write(tmp_path, "t,id,amps,soc\n1714557600,X,12.5,0.87\n")
    r = read_csv_export(p, mapping=str(m))[0].to_pylist()[0]
    assert r["current_a"] == -12.5 and r["soc_pct"] == pytest.approx(87.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("timestamp: {headers: [t]}\ncolumns:\n  voltage_v: [{headers: [v], unit: furlongs}]\n")
    with pytest.raises(ReaderError, match="unit 'furlongs' unknown"):
        read_csv_export(p, mapping=str(bad))


def test_missing_required_columns(tmp_path):
    with pytest.raises(ReaderError, match="no timestamp column"):
        read_csv_export(write(tmp_path, "serial,voltage\nA,1\n"))
    with pytest.raises(ReaderError, match="no pack serial column"):
        read_csv_export(write(tmp_path, "ts,voltage\n1714557600,1\n", name="b.csv"))


def test_very_long_single_line_is_refused_bounded(tmp_path):
    p = tmp_path / "oneline.csv"
    with open(p, "wb") as fh:
        fh.write(b"ts,serial,voltage\n1714557600,A,53\n1714557660,A,")
        fh.write(b"9" * (3 * 1024 * 1024))
        fh.write(b"\n")
    with pytest.raises(ReaderError, match="longer than 1048576 bytes"):
        list(iter_csv_export(p, block_bytes=1024 * 1024))
    q = tmp_path / "noline.csv"
    q.write_bytes(b"x" * (600 * 1024))
    with pytest.raises(ReaderError, match="no line break"):
        read_csv_export(q)


def test_binary_garbage_and_empty(tmp_path):
    with pytest.raises(ReaderError, match="binary"):
        read_csv_export(write(tmp_path, bytes(range(256)) * 10, name="g.csv"))
    with pytest.raises(ReaderError, match="empty"):
        read_csv_export(write(tmp_path, b"", name="e.csv"))


def test_streams_in_blocks(tmp_path):
    rows = "".join(f"{1714557600 + i},P{i % 7},{53 + i % 3}\n" for i in range(20000))
    p = write(tmp_path, "ts,serial,voltage\n" + rows)
    chunks = list(iter_csv_export(p, block_bytes=64 * 1024))
    assert len(chunks) > 3
    assert sum(c.num_rows for c in chunks) == 20000
    assert all(c.schema == READING_SCHEMA for c in chunks)


def test_parquet_and_xlsx_exports(tmp_path):
    src = pa.table({"Time": ["2024-05-01 10:00:00"], "Barcode": ["PQ-1"], "Voltage (mV)": [53150]})
    pq.write_table(src, tmp_path / "e.parquet")
    r = read_csv_export(tmp_path / "e.parquet")[0].to_pylist()[0]
    assert r["voltage_v"] == pytest.approx(53.15) and r["pack_serial"] == "PQ-1"
    import openpyxl
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["时间", "序列号", "电压", "SOH"])
    ws.append(["2024-05-01 10:00:00", "XL-1", 52.9, 93])
    wb.save(tmp_path / "e.xlsx")
    r = read_csv_export(tmp_path / "e.xlsx")[0].to_pylist()[0]
    assert (r["pack_serial"], r["voltage_v"], r["soh_pct"]) == ("XL-1", 52.9, 93.0)
    assert r["ts"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_explicit_epoch_unit_and_zone_assumption_flag(tmp_path):
    m = tmp_path / "ms.yaml"
    m.write_text("timestamp: {headers: [t], unit: ms}\ncolumns:\n  pack_serial: [{headers: [id]}]\n")
    p = write(tmp_path, "t,id\n86400000,X\n")  # 1970-01-02 in ms: magnitude alone would say seconds
    t, _ = read_csv_export(p, mapping=str(m))
    assert t.column("ts").to_pylist() == [dt.datetime(1970, 1, 2, tzinfo=UTC)]
    q = write(tmp_path, "ts,serial\n2024-05-01 10:00:00,A\n", name="naive.csv")
    assert read_csv_export(q)[0].column("quality").to_pylist() == [int(Quality.TZ_ASSUMED)]
    assert read_csv_export(q, tz="UTC")[0].column("quality").to_pylist() == [0]
