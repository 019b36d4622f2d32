"""The canonical telemetry reading: one Arrow schema for readers, the lake and DuckDB.

A reading is one *wide* row per message (DESIGN.md principle 3): the values a BMS,
FSU export or gateway reports at one instant for one pack. Per-cell detail, where a
source provides it (Pylontech ``bat N``, RS485 CID2 0x42, Modbus cell registers),
goes to the companion cell table keyed by the same ``(pack_serial, ts, source)``.

Conventions (DOMAIN.md §10): timestamps are UTC, ``current_a`` is positive while
charging, ``soh_pct`` is the value *as the BMS reports it* (health estimates live in
the health package), capacities are in Ah.
"""

from __future__ import annotations

import enum
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

TS_TYPE = pa.timestamp("us", tz="UTC")

#: The canonical reading. Order matters: the lake writes columns in this order.
READING_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("pack_serial", pa.string()),
        pa.field("site_code", pa.string()),
        pa.field("source", pa.string()),
        # Position of the pack in its stack/cabinet (Pylontech "Power" slot, RS485
        # module index, Modbus unit id). Used to check identity against the registry.
        pa.field("slot", pa.int16()),
        pa.field("voltage_v", pa.float64()),
        pa.field("current_a", pa.float64()),
        pa.field("soc_pct", pa.float64()),
        pa.field("soh_pct", pa.float64()),
        pa.field("remaining_ah", pa.float64()),
        pa.field("full_ah", pa.float64()),
        pa.field("cycle_count", pa.int32()),
        pa.field("temp_min_c", pa.float64()),
        pa.field("temp_max_c", pa.float64()),
        pa.field("cell_v_min", pa.float64()),
        pa.field("cell_v_max", pa.float64()),
        pa.field("alarm_codes", pa.list_(pa.string())),
        pa.field("quality", pa.uint32(), nullable=False),
    ],
    metadata={"battloop.schema": "reading", "battloop.schema_version": "1"},
)

READING_COLUMNS: tuple[str, ...] = tuple(READING_SCHEMA.names)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in READING_SCHEMA if pa.types.is_floating(f.type) or f.name == "cycle_count"
)

#: Companion table: one row per cell (or per temperature probe) of a module.
CELL_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("pack_serial", pa.string()),
        pa.field("site_code", pa.string()),
        pa.field("source", pa.string()),
        pa.field("slot", pa.int16()),
        pa.field("cell_index", pa.int16(), nullable=False),
        pa.field("cell_v", pa.float64()),
        pa.field("temp_c", pa.float64()),
        pa.field("soc_pct", pa.float64()),
        pa.field("balancing", pa.bool_()),
        pa.field("status", pa.string()),
    ],
    metadata={"battloop.schema": "cell", "battloop.schema_version": "1"},
)

#: Extra columns a quarantined row carries on top of the reading columns.
QUARANTINE_EXTRA = [
    pa.field("reason", pa.string(), nullable=False),
    pa.field("field", pa.string()),
    pa.field("row_index", pa.int64()),
    pa.field("origin", pa.string()),
]
QUARANTINE_SCHEMA = pa.schema(list(READING_SCHEMA) + QUARANTINE_EXTRA,
                              metadata={"battloop.schema": "quarantine", "battloop.schema_version": "1"})


class Quality(enum.IntFlag):
    """Bits of the ``quality`` column: how a value was obtained, not whether it is bad.

    Rows failing a check are not flagged and kept; they go to quarantine
    (see :mod:`battloop.telemetry.quality`).
    """

    OK = 0
    TS_ASSUMED = 1 << 0          # source carries no timestamp; capture/file time used
    TZ_ASSUMED = 1 << 1          # naive local time interpreted in a configured zone
    CAPACITY_3BYTE = 1 << 2      # 16-bit capacity saturated, 3-byte field used (RS485)
    DERIVED = 1 << 3             # value computed from others (e.g. SOC from Ah)
    SERIAL_FROM_SLOT = 1 << 4    # serial not reported by the BMS; taken from slot map
    OUT_OF_ORDER = 1 << 5        # older than data already seen for this pack
    INVALID_VALUE = 1 << 6       # a field could not be parsed (set by readers)
    PARTIAL = 1 << 7             # module absent or values missing in the source


def empty_readings() -> pa.Table:
    return READING_SCHEMA.empty_table()


def empty_cells() -> pa.Table:
    return CELL_SCHEMA.empty_table()


def readings_from_rows(rows: Iterable[Mapping[str, object]]) -> pa.Table:
    """Build a canonical readings table from row dicts (missing keys become null).

    Used by readers whose sources are small (console captures, frames). Bulk paths
    (CSV, Parquet) stay columnar and use :func:`conform`.
    """
    return _from_rows(rows, READING_SCHEMA, defaults={"quality": 0, "alarm_codes": []})


def cells_from_rows(rows: Iterable[Mapping[str, object]]) -> pa.Table:
    return _from_rows(rows, CELL_SCHEMA, defaults={})


def _from_rows(rows, schema: pa.Schema, defaults: Mapping[str, object]) -> pa.Table:
    rows = list(rows)
    cols = {}
    for f in schema:
        default = defaults.get(f.name)
        try:
            cols[f.name] = pa.array([r.get(f.name, default) for r in rows], type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
            raise ValueError(f"column {f.name!r}: a value does not fit {f.type}: {exc}") from None
    return pa.Table.from_pydict(cols, schema=schema)


def conform(table: pa.Table, schema: pa.Schema = READING_SCHEMA) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s columns, order and types.

    Missing columns are added as nulls (``quality`` as 0); extra columns are dropped.
    Raises ``ValueError`` naming the column when a cast is impossible.
    """
    n = table.num_rows
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            if col.type != f.type:
                try:
                    col = col.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise ValueError(f"column {f.name!r}: cannot convert {col.type} to {f.type}: {exc}") from exc
            arrays.append(col)
        elif f.name == "quality":
            arrays.append(pa.array(np.zeros(n, dtype=np.uint32)))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def describe(schema: pa.Schema = READING_SCHEMA) -> Sequence[tuple[str, str]]:
    """(column, Arrow type) pairs, for docs and ``--help`` output."""
    return [(f.name, str(f.type)) for f in schema]


def duckdb_columns(schema: pa.Schema = READING_SCHEMA) -> str:
    """Column list with DuckDB types, derived from the Arrow schema (used by lake views)."""
    mapping = {
        "timestamp[us, tz=UTC]": "TIMESTAMPTZ", "string": "VARCHAR", "int16": "SMALLINT",
        "int32": "INTEGER", "int64": "BIGINT", "uint32": "UINTEGER", "double": "DOUBLE",
        "bool": "BOOLEAN", "list<item: string>": "VARCHAR[]",
    }
    mapping["timestamp[us, tz=UTC]"] = "TIMESTAMPTZ"
    return ", ".join(f"{f.name} {mapping[str(f.type)]}" for f in schema)
