import datetime as dt

import pyarrow as pa
import pytest

from battloop.telemetry.schema import (CELL_SCHEMA, QUARANTINE_SCHEMA, READING_COLUMNS, READING_SCHEMA, Quality,
                                       conform, duckdb_columns, readings_from_rows)


def test_canonical_columns_and_units():
    assert READING_COLUMNS == (
        "ts", "pack_serial", "site_code", "source", "slot", "voltage_v", "current_a", "soc_pct", "soh_pct",
        "remaining_ah", "full_ah", "cycle_count", "temp_min_c", "temp_max_c", "cell_v_min", "cell_v_max",
        "alarm_codes", "quality")
    assert READING_SCHEMA.field("ts").type == pa.timestamp("us", tz="UTC")
    assert not READING_SCHEMA.field("ts").nullable
    assert QUARANTINE_SCHEMA.names[: len(READING_COLUMNS)] == list(READING_COLUMNS)
    assert QUARANTINE_SCHEMA.names[len(READING_COLUMNS):] == ["reason", "field", "row_index", "origin"]
    assert {"pack_serial", "cell_index", "cell_v", "temp_c"} <= set(CELL_SCHEMA.names)


def test_conform_adds_missing_drops_extra_and_casts():
    t = pa.table({"ts": pa.array([0], pa.int64()).cast(pa.timestamp("us", tz="UTC")), "voltage_v": [53],
                  "junk": ["x"]})
    c = conform(t)
    assert c.schema == READING_SCHEMA
    assert c.column("voltage_v").to_pylist() == [53.0] and c.column("quality").to_pylist() == [0]
    with pytest.raises(ValueError, match="column 'voltage_v'"):
        conform(pa.table({"ts": t.column("ts"), "voltage_v": ["high"]}))


def test_duckdb_columns_follow_the_arrow_schema():
    cols = duckdb_columns()
    assert cols.startswith("ts TIMESTAMPTZ, pack_serial VARCHAR")
    assert "alarm_codes VARCHAR[]" in cols and cols.endswith("quality UINTEGER")


def test_quality_bits_are_distinct_and_combine():
    bits = [b.value for b in Quality if b.value]
    assert len(bits) == len(set(bits)) and all(b & (b - 1) == 0 for b in bits)
    r = readings_from_rows([{"ts": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
                             "quality": int(Quality.TS_ASSUMED | Quality.DERIVED)}]).to_pylist()[0]
    assert Quality(r["quality"]) == Quality.TS_ASSUMED | Quality.DERIVED and r["alarm_codes"] == []
