"""Downsampled telemetry for charts, from the lake when one exists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings

CHART_COLUMNS = ("voltage_v", "current_a", "soc_pct", "soh_pct", "temp_max_c")


def downsampled_series(serial: str, start: dt.datetime | None, end: dt.datetime | None, points: int) -> dict:
    empty = {"serial": serial, "start": start, "end": end, "bucket_seconds": 0, "columns": list(CHART_COLUMNS), "points": []}
    readings = Path(settings.DATA_DIR) / "lake" / "readings"
    if not readings.exists() or not any(readings.glob("**/*.parquet")):
        return empty
    import duckdb

    con = duckdb.connect()
    try:
        glob = str(readings / "**" / "*.parquet")
        where = ["pack_serial = ?"]
        params: list = [serial]
        if start:
            where.append("ts >= ?")
            params.append(start)
        if end:
            where.append("ts < ?")
            params.append(end)
        cond = " AND ".join(where)
        lo, hi = con.execute(f"SELECT min(ts), max(ts) FROM read_parquet('{glob}', hive_partitioning=true) WHERE {cond}", params).fetchone()
        if lo is None:
            return empty
        span = max((hi - lo).total_seconds(), 1.0)
        bucket = max(60, int(span // points) + 1)
        cols = ", ".join(f"avg({c}) AS {c}" for c in CHART_COLUMNS)
        rows = con.execute(
            f"SELECT time_bucket(INTERVAL '{bucket} seconds', ts) AS b, {cols} FROM read_parquet('{glob}', hive_partitioning=true) "
            f"WHERE {cond} GROUP BY b ORDER BY b", params).fetchall()
    finally:
        con.close()
    return {"serial": serial, "start": lo, "end": hi, "bucket_seconds": bucket, "columns": list(CHART_COLUMNS),
            "points": [{"ts": r[0], "values": {c: (None if v is None else float(v)) for c, v in zip(CHART_COLUMNS, r[1:])}} for r in rows]}
