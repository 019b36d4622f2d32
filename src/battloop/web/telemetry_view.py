"""Downsampled telemetry for charts, from the lake when one exists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path


CHART_COLUMNS = ("voltage_v", "current_a", "soc_pct", "soh_pct", "temp_max_c")


def downsampled_series(serial: str, start: dt.datetime | None, end: dt.datetime | None, points: int) -> dict:
    empty = {"serial": serial, "start": start, "end": end, "bucket_seconds": 0, "columns": list(CHART_COLUMNS), "points": []}
    from battloop.telemetry.service import lake

    readings = Path(lake().root) / "readings"
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
        # epoch microseconds: timezone-aware values would need pytz on the way out of DuckDB
        lo_us, hi_us = con.execute(f"SELECT epoch_us(min(ts)), epoch_us(max(ts)) FROM read_parquet('{glob}', hive_partitioning=true) "
                                   f"WHERE {cond}", params).fetchone()
        if lo_us is None:
            return empty
        to_dt = lambda us: dt.datetime.fromtimestamp(us / 1e6, dt.timezone.utc)  # noqa: E731
        lo, hi = to_dt(lo_us), to_dt(hi_us)
        span = max((hi - lo).total_seconds(), 1.0)
        bucket = max(60, int(span // points) + 1)
        cols = ", ".join(f"avg({c}) AS {c}" for c in CHART_COLUMNS)
        rows = con.execute(
            f"SELECT epoch_us(time_bucket(INTERVAL '{bucket} seconds', ts)) AS b, {cols} FROM read_parquet('{glob}', hive_partitioning=true) "
            f"WHERE {cond} GROUP BY b ORDER BY b", params).fetchall()
    finally:
        con.close()
    return {"serial": serial, "start": lo, "end": hi, "bucket_seconds": bucket, "columns": list(CHART_COLUMNS),
            "points": [{"ts": to_dt(r[0]), "values": {c: (None if v is None else float(v)) for c, v in zip(CHART_COLUMNS, r[1:])}} for r in rows]}
