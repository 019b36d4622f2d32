"""CSV → validated lake throughput, against DuckDB's own CSV → Parquet copy.

    python benchmarks/ingest_csv.py                 # 10 M readings
    python benchmarks/ingest_csv.py --rows 100000000
    python benchmarks/ingest_csv.py --rows 2000000 --keep /tmp/bench

Generates an FSU-style export (epoch-ms time, serial, site, mV/mA/m°C fields, Chinese
tool style not needed here), then in the same run times

1. battloop: ``iter_csv_export`` (streamed blocks, unit conversion) → ``quality.check``
   (every check vectorized) → ``Lake.ingest`` (zstd Parquet, sorted by pack+time,
   atomic renames), and
2. DuckDB: ``COPY (SELECT * FROM read_csv(...)) TO '...parquet'`` (no validation, no
   sorting) on the same file with the same threads,

and prints readings/s for both, the ratio, and peak RSS of each step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from battloop.telemetry.lake import Lake  # noqa: E402
from battloop.telemetry.readers.csv_export import iter_csv_export  # noqa: E402


def generate(path: Path, rows: int, packs: int = 100_000, chunk: int = 2_000_000, seed: int = 7) -> None:
    """An export of ``rows`` readings from ``packs`` packs at one reading a minute."""
    rng = np.random.default_rng(seed)
    start_ms = 1_714_521_600_000  # 2024-05-01T00:00Z
    serials = np.array([f"BL48{i:08d}" for i in range(packs)], dtype=object)
    sites = np.array([f"S{i // 4:06d}" for i in range(packs)], dtype=object)
    first = True
    with open(path, "wb") as fh:
        for off in range(0, rows, chunk):
            n = min(chunk, rows - off)
            i = np.arange(off, off + n)
            pack = i % packs
            minute = i // packs
            t = pa.table({
                "ts": start_ms + minute * 60_000,
                "pack_serial": pa.array(serials[pack], pa.string()),
                "site_code": pa.array(sites[pack], pa.string()),
                "voltage_mv": rng.integers(51000, 54000, n),
                "current_ma": rng.integers(-20000, 5000, n),
                "soc_pct": rng.integers(20, 101, n),
                "soh_pct": rng.integers(70, 101, n),
                "cycle_count": rng.integers(0, 3000, n),
                "temp_min_mc": rng.integers(15000, 30000, n),
                "temp_max_mc": rng.integers(30000, 45000, n),
                "cell_mv_min": rng.integers(3200, 3300, n),
                "cell_mv_max": rng.integers(3300, 3400, n),
            })
            pacsv.write_csv(t, fh, write_options=pacsv.WriteOptions(include_header=first, quoting_style="none"))
            first = False


def _step(step: str, csv_path: Path, work: Path, threads: int) -> dict:
    """One measured step, run in its own process so its peak memory is its own."""
    pa.set_cpu_count(threads)
    pa.set_io_thread_count(threads)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = ru0.ru_utime + ru0.ru_stime
    t0 = time.perf_counter()
    if step == "battloop":
        lake_dir = work / "lake"
        shutil.rmtree(lake_dir, ignore_errors=True)
        res = Lake(lake_dir).ingest(csv_path, lambda: iter_csv_export(csv_path))
        secs = time.perf_counter() - t0
        out = {"rows": res.accepted + res.quarantined, "accepted": res.accepted, "quarantined": res.quarantined,
               "files": len(res.files), "bytes": sum(f.stat().st_size for f in lake_dir.rglob("*.parquet"))}
    else:
        import duckdb
        target = work / "duckdb.parquet"
        con = duckdb.connect()
        con.execute(f"SET threads TO {threads}")
        con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}')) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        secs = time.perf_counter() - t0
        out = {"rows": con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchall()[0][0],
               "bytes": target.stat().st_size}
    out["seconds"] = secs
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_mb"] = ru.ru_maxrss / 1024
    out["cpu_s"] = ru.ru_utime + ru.ru_stime - cpu0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--keep", help="work directory to keep (default: a temp dir, removed)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--step", choices=["battloop", "duckdb"], help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(_step(args.step, Path(args.csv), Path(args.keep), args.threads)))
        return
    work = Path(args.keep or tempfile.mkdtemp(prefix="battloop-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / f"export_{args.rows}.csv"
    try:
        if not csv_path.exists():
            t0 = time.perf_counter()
            generate(csv_path, args.rows)
            print(f"generated {args.rows:,} rows, {csv_path.stat().st_size / 1e9:.2f} GB in "
                  f"{time.perf_counter() - t0:.1f} s")
        res = {}
        for step in ("battloop", "duckdb"):
            out = subprocess.run([sys.executable, __file__, "--step", step, "--csv", str(csv_path), "--keep", str(work),
                                  "--threads", str(args.threads)], check=True, capture_output=True, text=True)
            res[step] = json.loads(out.stdout.strip().splitlines()[-1])
            assert res[step]["rows"] == args.rows, res[step]
        ours, duck = res["battloop"], res["duckdb"]
        print(f"rows                  {args.rows:,}  (threads {args.threads}, {csv_path.stat().st_size / 1e9:.2f} GB CSV)")
        print(f"battloop CSV->lake    {ours['seconds']:7.2f} s  {args.rows / ours['seconds']:12,.0f} readings/s  "
              f"(accepted {ours['accepted']:,}, quarantined {ours['quarantined']:,}, {ours['files']} files, "
              f"{ours['bytes'] / 1e6:.0f} MB, peak RSS {ours['peak_rss_mb']:.0f} MB, CPU {ours['cpu_s']:.1f} s)")
        print(f"duckdb COPY           {duck['seconds']:7.2f} s  {args.rows / duck['seconds']:12,.0f} readings/s  "
              f"({duck['bytes'] / 1e6:.0f} MB, peak RSS {duck['peak_rss_mb']:.0f} MB, CPU {duck['cpu_s']:.1f} s)")
        print(f"ratio battloop/duckdb {duck['seconds'] / ours['seconds']:7.2f}x wall, "
              f"{duck['cpu_s'] / ours['cpu_s']:.2f}x CPU  (goal >= 0.5x and >= 1,000,000 readings/s)")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall-clock figures assume an idle machine)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
