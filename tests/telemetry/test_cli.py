import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from telemetry_helpers import CONSOLE, RS485
from battloop.telemetry.schema import READING_COLUMNS


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_read_console_json_is_canonical_rows():
    out, _ = run("telemetry", "read", "--format", "pylontech-console", str(CONSOLE / "US"), "--json",
                 "--tz", "Asia/Shanghai")
    rows = json.loads(out)
    assert [r["slot"] for r in rows] == [1, 2, 3, 4]
    assert all(list(r) == list(READING_COLUMNS) for r in rows)
    assert rows[0]["ts"] == "2023-09-16T03:50:32Z"
    assert rows[0]["pack_serial"] == "Yxxxxxxxxxxxxxx7" and rows[0]["cycle_count"] == 108


def test_read_rs485_json_and_cells():
    out, _ = run("telemetry", "read", "--format", "pylontech-rs485", str(RS485 / "us2000_3modules_1"), "--json",
                 "--ts", "2024-03-01T12:00:00Z")
    rows = json.loads(out)
    assert [r["voltage_v"] for r in rows] == [49.545, 49.52, 49.504]
    out, _ = run("telemetry", "read", "--format", "pylontech-rs485", str(RS485 / "us2000_3modules_1"), "--json",
                 "--cells")
    assert len(json.loads(out)) == 45


def test_read_csv_and_modbus_dump(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("ts,serial,voltage,soc\n1714557600000,A,53.2,80\n1714557660000,A,oops,81\n")
    out, err = run("telemetry", "read", "--format", "csv", str(p), "--json")
    rows = json.loads(out)
    assert len(rows) == 2 and rows[0]["ts"] == "2024-05-01T10:00:00Z" and rows[1]["voltage_v"] is None
    assert "row 2 voltage='oops'" in err
    d = tmp_path / "d.txt"
    d.write_text("# ts: 2024-05-01T10:00:00Z\n1 5300\n2 77\n")
    out, _ = run("telemetry", "read", "--format", "modbus-dump", str(d), "--profile", "pace-bms-v1.3", "--json")
    r = json.loads(out)[0]
    assert (r["voltage_v"], r["soc_pct"], r["source"]) == (53.0, 77, "modbus:pace-bms-v1.3")


def test_table_output():
    out, _ = run("telemetry", "read", "--format", "pylontech-console", str(CONSOLE / "eb" / "pwr.txt"))
    assert out.splitlines()[-1].startswith("2 rows (pylontech-console")


@pytest.mark.parametrize("fmt,content,match", [
    ("pylontech-rs485", b"~2002460091421103\r", "truncated"),
    ("pylontech-rs485", b"\x00\x01\x02\xff" * 100, "not ASCII"),
    ("pylontech-console", b"\x00" * 100, "binary"),
    ("csv", b"a,b\n1,2\n", "no timestamp column"),
    ("modbus-dump", b"1 2\n", "no profile given"),
])
def test_bad_input_is_a_command_error(tmp_path, fmt, content, match):
    p = tmp_path / "bad"
    p.write_bytes(content)
    with pytest.raises(CommandError, match=match):
        run("telemetry", "read", "--format", fmt, str(p), "--json")


def test_bad_ts_option():
    with pytest.raises(CommandError, match="not an ISO 8601 time"):
        run("telemetry", "read", "--format", "pylontech-rs485", str(RS485 / "us2000_3modules_1"), "--ts", "yesterday")


def test_lake_command_compact_prune_stats_query(tmp_path):
    from battloop.telemetry.lake import Lake
    from battloop.telemetry.readers.csv_export import iter_csv_export
    lake_dir = tmp_path / "lake"
    for i in range(2):
        p = tmp_path / f"e{i}.csv"
        p.write_text("ts,serial,voltage\n" + "".join(f"{1714557600 + 3600 * h + i},A,53\n" for h in range(30)))
        Lake(lake_dir).ingest(p, lambda p=p: iter_csv_export(p))
    out, _ = run("lake", "--lake", str(lake_dir), "compact")
    assert "compacted 2 partitions (4 files merged)" in out
    out, _ = run("lake", "--lake", str(lake_dir), "stats", "--json")
    assert json.loads(out)["readings"] == {"files": 2, "rows": 60}
    out, _ = run("lake", "--lake", str(lake_dir), "prune", "--before", "2024-05-02")
    assert out.startswith("deleted 1 partitions")
    out, _ = run("lake", "--lake", str(lake_dir), "query", "SELECT count(*) AS n FROM readings", "--json")
    assert json.loads(out) == [{"n": 32}]
    with pytest.raises(CommandError, match="not a date"):
        run("lake", "--lake", str(lake_dir), "prune", "--before", "soon")
    with pytest.raises(CommandError, match="query failed"):
        run("lake", "--lake", str(lake_dir), "query", "SELECT nope FROM readings")


def test_poll_modbus_verb_against_live_server(modbus_server):
    out, _ = run("telemetry", "poll-modbus", "--host", "127.0.0.1", "--port", str(modbus_server), "--unit", "3",
                 "--profile", "pace-bms-v1.3", "--json")
    r = json.loads(out)[0]
    assert (r["pack_serial"], r["soc_pct"], r["slot"]) == ("LIVE-PACK-7", 87, 3)
    with pytest.raises(CommandError, match="Modbus profile 'nope' not found"):
        run("telemetry", "poll-modbus", "--host", "127.0.0.1", "--port", str(modbus_server), "--profile", "nope")


def test_read_limit_streams_only_the_head(tmp_path):
    p = tmp_path / "big.csv"
    p.write_text("ts,serial,voltage\n" + "".join(f"{1714557600 + i},P{i % 9},53.0\n" for i in range(50000)))
    out, _ = run("telemetry", "read", "--format", "csv", str(p), "--json", "--limit", "3")
    rows = json.loads(out)
    assert [r["pack_serial"] for r in rows] == ["P0", "P1", "P2"]
