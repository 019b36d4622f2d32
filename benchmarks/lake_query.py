"""Per-pack daily rollup over a telemetry lake, in seconds.

    python benchmarks/lake_query.py                   # 10 M readings
    python benchmarks/lake_query.py --rows 100000000  # the issue's 100 M figure
    python benchmarks/lake_query.py --keep /tmp/lakebench   # reuse the built lake

Builds a lake of ``--rows`` canonical readings (``--packs`` packs, one reading a
minute, written through ``Lake.write``: zstd, date partitions, sorted by pack+time),
then times in the same run

1. battloop: ``Lake.daily_rollup()`` — DuckDB over the lake's views, and
2. peer: the same rollup (count, min/max voltage, mean current, min SOC, max
   temperature per pack and day) with pyarrow's own dataset scanner + group_by,

and prints seconds, readings/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from battloop.telemetry.lake import Lake  # noqa: E402
from battloop.telemetry.schema import READING_SCHEMA, TS_TYPE, conform  # noqa: E402


def build(lake: Lake, rows: int, packs: int, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    serials = pa.array([f"BL48{i:08d}" for i in range(packs)], pa.string())
    minutes = rows // packs
    start_us = 1_714_521_600_000_000
    per_day = 1440
    for day0 in range(0, minutes, per_day):
        m = min(per_day, minutes - day0)
        n = m * packs
        pack = np.repeat(np.arange(packs), m)  # pack-major: already sorted by pack, then time
        minute = np.tile(np.arange(day0, day0 + m), packs)
        t = pa.table({
            "ts": pa.array(start_us + minute * 60_000_000, pa.int64()).cast(TS_TYPE),
            "pack_serial": serials.take(pa.array(pack)),
            "source": pa.repeat(pa.scalar("bench", pa.string()), n),
            "voltage_v": rng.normal(53.0, 0.5, n),
            "current_a": rng.normal(-1.0, 3.0, n),
            "soc_pct": rng.uniform(20, 100, n).round(1),
            "temp_max_c": rng.normal(30, 5, n).round(1),
        })
        lake.write(conform(t, READING_SCHEMA), sort=False)


def peer_rollup(root: Path) -> pa.Table:
    dataset = ds.dataset(root / "readings", format="parquet", partitioning="hive")
    t = dataset.to_table(columns=["pack_serial", "ts", "voltage_v", "current_a", "soc_pct", "temp_max_c"])
    t = t.append_column("day", pc.floor_temporal(t.column("ts"), unit="day"))
    return t.group_by(["pack_serial", "day"]).aggregate([
        ("voltage_v", "count"), ("voltage_v", "min"), ("voltage_v", "max"), ("current_a", "mean"),
        ("soc_pct", "min"), ("temp_max_c", "max")])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--packs", type=int, default=10_000)
    ap.add_argument("--keep", help="lake directory to keep and reuse")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="battloop-lakebench-"))
    lake = Lake(root)
    try:
        if not lake.files():
            t0 = time.perf_counter()
            build(lake, args.rows, args.packs)
            print(f"built lake: {args.rows:,} readings, {len(lake.files())} files, "
                  f"{sum(f.stat().st_size for f in lake.files()) / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
        pa.set_cpu_count(args.threads)
        con = lake.connect(threads=args.threads)
        n = con.execute("SELECT count(*) FROM readings").fetchall()[0][0]
        t0 = time.perf_counter()
        ours = lake.daily_rollup(con)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        peer = peer_rollup(root)
        t_peer = time.perf_counter() - t0
        assert ours.num_rows == peer.num_rows, (ours.num_rows, peer.num_rows)
        print(f"readings              {n:,}  (threads {args.threads}); {ours.num_rows:,} pack-days")
        print(f"battloop (DuckDB)     {t_ours:7.2f} s  {n / t_ours:14,.0f} readings/s")
        print(f"pyarrow group_by      {t_peer:7.2f} s  {n / t_peer:14,.0f} readings/s")
        print(f"ratio battloop/peer   {t_peer / t_ours:7.2f}x")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
