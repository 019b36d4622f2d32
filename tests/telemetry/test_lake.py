import datetime as dt
import errno
import threading

import pyarrow.parquet as pq
import pytest

from battloop.telemetry.lake import Lake, LakeError
from battloop.telemetry.readers.csv_export import iter_csv_export
from battloop.telemetry.schema import READING_SCHEMA, readings_from_rows

UTC = dt.timezone.utc


def export(tmp_path, name="e.csv", n=500, start=1_714_557_600, serials=5, extra=""):
    rows = "".join(f"{start + 3600 * i},P{i % serials},{53 + (i % 10) / 10}\n" for i in range(n))
    p = tmp_path / name
    p.write_text("ts,serial,voltage\n" + rows + extra)
    return p


def ingest(lake, p, **kw):
    return lake.ingest(p, lambda: iter_csv_export(p), fmt="csv", **kw)


def test_partitioned_zstd_sorted_and_queryable(tmp_path):
    lake = Lake(tmp_path / "lake")
    res = ingest(lake, export(tmp_path))
    assert res.accepted == 500 and res.quarantined == 0
    days = sorted(p.name for p in (tmp_path / "lake" / "readings").iterdir())
    assert days[0] == "date=2024-05-01" and len(days) == 22  # 500 hours from 10:00
    f = lake.files()[0]
    meta = pq.ParquetFile(f).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    t = pq.read_table(f)
    keys = list(zip(t.column("pack_serial").to_pylist(), t.column("ts").to_pylist()))
    assert keys == sorted(keys)
    con = lake.connect()
    assert con.execute("SELECT count(*), count(DISTINCT pack_serial) FROM readings").fetchone() == (500, 5)
    assert lake.latest().num_rows == 5
    roll = lake.daily_rollup()
    assert sum(roll.column("n").to_pylist()) == 500


def test_ingest_is_idempotent_and_quarantine_is_kept(tmp_path):
    lake = Lake(tmp_path / "lake")
    p = export(tmp_path, extra="1714557600,P0,53.0\n0,P9,53.0\n1714557600,P1,abc\n")
    r1 = ingest(lake, p)
    assert (r1.accepted, r1.quarantined) == (500, 3)
    r2 = ingest(lake, p)
    assert r2.skipped and r2.accepted == 0
    con = lake.connect()
    assert con.execute("SELECT count(*) FROM readings").fetchone()[0] == 500
    reasons = dict(con.execute("SELECT reason, count(*) FROM quarantine GROUP BY 1").fetchall())
    assert reasons == {"duplicate (pack_serial, ts, source)": 1, "timestamp at epoch zero (clock not set)": 1,
                       "unparsable value": 1}
    assert lake.is_ingested(r1.sha256)


def test_failed_write_publishes_nothing(tmp_path, monkeypatch):
    """A full disk mid-write: no partial Parquet file becomes visible, no temp left."""
    lake = Lake(tmp_path / "lake")
    real = pq.ParquetWriter.write_table

    def failing(self, table, *a, **kw):
        real(self, table.slice(0, 10), *a, **kw)  # some bytes reach the disk first
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing)
    p = export(tmp_path)
    with pytest.raises(LakeError, match="No space left on device.*nothing was published"):
        ingest(lake, p)
    leftovers = [x for x in (tmp_path / "lake").rglob("*") if x.is_file()]
    assert leftovers == []  # no parquet, no temp file, no manifest, no lock
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real)
    assert ingest(lake, p).accepted == 500  # and the retry works


def test_interrupted_ingest_leaves_no_duplicates_on_retry(tmp_path):
    lake = Lake(tmp_path / "lake")
    p = export(tmp_path, n=3000)
    calls = {"n": 0}

    def boom():
        for t in iter_csv_export(p, block_bytes=16 * 1024):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            yield t

    with pytest.raises(KeyboardInterrupt):
        lake.ingest(p, boom, flush_rows=1)
    assert lake.files() == []  # parts of the interrupted ingest were removed
    ingest(lake, p)
    assert lake.connect().execute("SELECT count(*) FROM readings").fetchone()[0] == 3000


def test_concurrent_writers_never_collide(tmp_path):
    lake = Lake(tmp_path / "lake")
    t = readings_from_rows([{"ts": dt.datetime(2024, 5, 1, 10, tzinfo=UTC), "pack_serial": f"W{i}",
                             "source": "mqtt", "voltage_v": 53.0} for i in range(50)])
    errors = []

    def worker():
        try:
            for _ in range(10):
                lake.write(t)
        except Exception as exc:  # pragma: no cover - would fail the test below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    [x.start() for x in threads]
    [x.join() for x in threads]
    assert errors == []
    assert len(lake.files()) == 40
    assert lake.connect().execute("SELECT count(*) FROM readings").fetchone()[0] == 2000


def test_compact_merges_and_keeps_every_row(tmp_path):
    lake = Lake(tmp_path / "lake")
    for i in range(3):
        ingest(lake, export(tmp_path, name=f"e{i}.csv", n=48, start=1_714_557_600 + i * 60))
    before = len(lake.files())
    done = lake.compact()
    assert done == {"2024-05-01": 3, "2024-05-02": 3, "2024-05-03": 3}
    assert len(lake.files()) == 3 < before
    t = pq.read_table(lake.files()[0])
    keys = list(zip(t.column("pack_serial").to_pylist(), t.column("ts").to_pylist()))
    assert keys == sorted(keys) and len(keys) == 42  # 10:00-23:00, three files
    assert lake.connect().execute("SELECT count(*) FROM readings").fetchone()[0] == 144


def test_prune_really_deletes(tmp_path):
    lake = Lake(tmp_path / "lake")
    ingest(lake, export(tmp_path, n=72))  # 2024-05-01 .. 05-03
    r = lake.prune(dt.date(2024, 5, 3))
    assert r["partitions"] == 2 and r["bytes"] > 0
    assert not (tmp_path / "lake" / "readings" / "date=2024-05-01").exists()
    assert lake.connect().execute("SELECT min(ts)::DATE::VARCHAR FROM readings").fetchone()[0] == "2024-05-03"


def test_empty_lake_views_have_the_schema(tmp_path):
    con = Lake(tmp_path / "nothing").connect()
    cols = [c[0] for c in con.execute("DESCRIBE readings").fetchall()]
    assert cols == READING_SCHEMA.names
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0


def test_redelivered_batch_is_recognised_as_stored(tmp_path):
    """What an at-least-once stream (MQTT QoS 1) needs: keys already in the lake."""
    from battloop.telemetry import quality
    lake = Lake(tmp_path / "lake")
    rows = [{"ts": dt.datetime(2024, 5, 1, 10, m, tzinfo=UTC), "pack_serial": "M1", "source": "mqtt",
             "voltage_v": 53.0} for m in range(5)]
    first = readings_from_rows(rows[:3])
    lake.write(first)
    again = readings_from_rows(rows)  # 3 redelivered + 2 new
    seen = lake.existing_keys(again)
    assert seen.num_rows == 3
    acc, quar, _ = quality.check(again, seen_keys=seen, now=dt.datetime(2024, 6, 1, tzinfo=UTC))
    assert acc.num_rows == 2 and set(quar.column("reason").to_pylist()) == {"duplicate of a stored reading"}
    assert lake.existing_keys(readings_from_rows([])).num_rows == 0


def test_out_of_order_detected_across_blocks_of_one_file(tmp_path):
    lake = Lake(tmp_path / "lake")
    lines = [f"{1714557600 + 60 * i},P1,53.0" for i in range(2000)]
    lines.append("1714557600,P1,53.0")    # duplicate of the first row, 2 000 rows later
    lines.append("1714557630,P1,53.0")    # late: older than rows in earlier blocks
    p = tmp_path / "late.csv"
    p.write_text("ts,serial,voltage\n" + "\n".join(lines) + "\n")
    res = lake.ingest(p, lambda: iter_csv_export(p, block_bytes=8 * 1024))
    con = lake.connect()
    flagged = con.execute("SELECT epoch(ts)::BIGINT FROM readings WHERE quality & 32 <> 0").fetchall()
    assert flagged == [(1714557630,)]
    # the duplicate of a row from an earlier block is caught too
    assert (res.accepted, res.quarantined) == (2001, 1)
    assert con.execute("SELECT reason FROM quarantine").fetchall() == [("duplicate of a stored reading",)]
    assert res.report["by_reason"] == {"duplicate of a stored reading": 1}


def test_reingest_of_overlapping_export_adds_no_duplicates(tmp_path):
    lake = Lake(tmp_path / "lake")
    a = export(tmp_path, name="a.csv", n=100)
    ingest(lake, a)
    b = tmp_path / "b.csv"  # next day's export repeats the last 10 rows of the first
    b.write_text("ts,serial,voltage\n" + "".join(f"{1714557600 + 3600 * i},P{i % 5},{53 + (i % 10) / 10}\n"
                                                  for i in range(90, 120)))
    last = lake.connect().sql("SELECT pack_serial, max(ts) AS ts FROM readings GROUP BY 1").to_arrow_table()
    res = ingest(lake, b, checks={"last_ts": last})  # the registry's latest-reading projection
    assert (res.accepted, res.quarantined) == (20, 10)
    assert lake.connect().execute("SELECT count(*) FROM readings").fetchall()[0][0] == 120


def test_stale_lock_of_a_killed_ingest_is_taken_over(tmp_path):
    import subprocess
    import sys
    lake = Lake(tmp_path / "lake")
    p = export(tmp_path, n=10)
    from battloop.telemetry.lake import file_sha256
    sha = file_sha256(p)
    (tmp_path / "lake" / "_manifest").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / "lake" / "_manifest" / f"{sha}.lock"
    lock.write_text(dead.stdout.strip())  # pid of a process that has exited
    # a part left behind by the killed ingest, named with the file's hash
    part_dir = tmp_path / "lake" / "readings" / "date=2024-05-01"
    part_dir.mkdir(parents=True)
    import pyarrow.parquet as pq_
    from battloop.telemetry.schema import READING_SCHEMA as RS
    pq_.write_table(RS.empty_table(), part_dir / f"part-{sha[:16]}-x.parquet")
    assert ingest(lake, p).accepted == 10
    assert not lock.exists()
    assert lake.connect().execute("SELECT count(*) FROM readings").fetchall()[0][0] == 10
    lock.write_text(str(__import__("os").getpid()))  # a live owner: refused with a clear message
    q = export(tmp_path, name="other.csv", n=11)
    lock.rename(lock.with_name(f"{file_sha256(q)}.lock"))
    with pytest.raises(LakeError, match="another ingest of the same content is running"):
        ingest(lake, q)
