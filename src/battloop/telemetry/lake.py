"""The telemetry lake: partitioned, append-only Parquet on a local (or mounted) disk.

Layout (DESIGN.md principle 3)::

    <root>/readings/date=YYYY-MM-DD/part-<id>.parquet     canonical readings (zstd)
    <root>/cells/date=YYYY-MM-DD/part-<id>.parquet        companion cell table
    <root>/quarantine/date=YYYY-MM-DD/part-<id>.parquet   rejected rows + reason
    <root>/_manifest/<sha256>.json                        one per ingested file

Every file is written under a temporary name in its final directory, fsynced and
moved into place with ``os.replace``, so a reader (DuckDB, Dask) never sees a partial
Parquet file, even if the disk fills up mid-write. File names are unique (time +
random id), so concurrent writers never collide. Rows in a file are sorted by pack,
then time. A file ingest is idempotent: its content hash is recorded in the manifest
after all its parts are in place; parts of an interrupted ingest carry the hash in
their name and are removed when the file is ingested again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import quality as q
from .schema import CELL_SCHEMA, QUARANTINE_SCHEMA, READING_SCHEMA, Quality, duckdb_columns

DATASETS = {"readings": READING_SCHEMA, "cells": CELL_SCHEMA, "quarantine": QUARANTINE_SCHEMA}
FLUSH_ROWS = 500_000  # chunks smaller than this are merged before writing
ZSTD_LEVEL = 1  # level 1: ~3x smaller than raw at >500 MB/s; higher levels cost CPU for little


class LakeError(RuntimeError):
    """A lake operation that cannot be done; the message names the path and the fix."""


@dataclass
class IngestResult:
    path: str
    sha256: str
    skipped: bool = False
    accepted: int = 0
    quarantined: int = 0
    files: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    seconds: float = 0.0
    #: latest accepted ts per pack after this file (pack_serial, ts), for the next file's checks
    watermark: pa.Table | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "watermark"}


def file_sha256(path: str | Path, chunk: int = 4 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Lake:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ----------------------------------------------------------------- writing
    def _partition_dir(self, dataset: str, day: str) -> Path:
        d = self.root / dataset / f"date={day}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write(self, table: pa.Table, dataset: str = "readings", *, tag: str = "", sort: bool = True) -> list[str]:
        """Append ``table`` to ``dataset``: one new file per UTC date it spans."""
        if dataset not in DATASETS:
            raise LakeError(f"unknown dataset {dataset!r}; one of {', '.join(DATASETS)}")
        if table.num_rows == 0:
            return []
        schema = DATASETS[dataset]
        if table.schema != schema:
            table = table.select(schema.names).cast(schema)
        # UTC day number by integer division: much cheaper than formatting dates
        day_no = np.floor_divide(table.column("ts").cast(pa.int64()).to_numpy(), 86_400_000_000)
        lo, hi = int(day_no.min()), int(day_no.max())
        written = []
        for d in (range(lo, hi + 1) if hi - lo < 4000 else np.unique(day_no)):
            part = table if lo == hi else table.filter(pa.array(day_no == d))
            if part.num_rows == 0:
                continue
            if sort:
                part = part.take(pa.array(_order(part)))
            day = (dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).isoformat()
            written.append(self._write_file(part, self._partition_dir(dataset, day), tag))
        return written

    def _write_file(self, table: pa.Table, directory: Path, tag: str) -> str:
        name = f"part-{tag + '-' if tag else ''}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
        final = directory / name
        tmp = directory / f".{name}.tmp"  # never matches '*.parquet' globs
        try:
            with open(tmp, "wb") as fh:
                with pq.ParquetWriter(fh, table.schema, compression="zstd", compression_level=ZSTD_LEVEL) as w:
                    w.write_table(table, row_group_size=1_000_000)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise LakeError(f"{directory}: writing a lake file failed ({exc.strerror or exc}); nothing was "
                                "published; free disk space or check permissions, then ingest again") from exc
            raise
        _fsync_dir(directory)
        return str(final)

    # ----------------------------------------------------------------- ingest
    def manifest_path(self, sha: str) -> Path:
        return self.root / "_manifest" / f"{sha}.json"

    def is_ingested(self, sha: str) -> bool:
        return self.manifest_path(sha).exists()

    def ingest(self, path: str | Path, tables: Callable[[], Iterable[pa.Table]], *, cells: pa.Table | None = None,
               cells_fn: Callable[[], pa.Table | None] | None = None, fmt: str = "", checks: dict | None = None,
               flush_rows: int = FLUSH_ROWS) -> IngestResult:
        """Stream a source file's tables through quality checks into the lake, once.

        ``tables`` is a zero-argument callable returning the reader's canonical tables
        (called only if the file is new). ``checks`` are keyword arguments for
        :func:`battloop.telemetry.quality.check` (known serials, slot map, ...).
        """
        t0 = time.perf_counter()
        path = Path(path)
        sha = file_sha256(path)
        res = IngestResult(path=str(path), sha256=sha)
        if self.is_ingested(sha):
            res.skipped = True
            return res
        (self.root / "_manifest").mkdir(parents=True, exist_ok=True)
        lock = self.root / "_manifest" / f"{sha}.lock"
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _lock_alive(lock):
                raise LakeError(f"{path}: another ingest of the same content is running (lock {lock}); "
                                "wait for it, or remove the lock if that process died") from None
            lock.unlink(missing_ok=True)  # its owner died (e.g. killed): take over
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        tag = sha[:16]
        # Parquet encoding and zstd release the GIL: write files on a background thread
        # while the next block is parsed and checked (at most two blocks in flight).
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-writer")
        pending: list[Future] = []
        try:
            self._remove_parts(tag)  # leftovers of an interrupted ingest of this file
            totals: dict[str, int] = {}
            unknown: set[str] = set()
            buf: list[pa.Table] = []
            buffered = 0
            offset = 0
            # out-of-order detection carries over block boundaries through a watermark
            wm = (checks or {}).get("last_ts")
            watermark = None if wm is None else q._as_watermark(wm)
            kw = {k: v for k, v in (checks or {}).items() if k != "last_ts"}

            def submit(fn, *a, **k):
                while len(pending) >= 2:
                    res.files += pending.pop(0).result()
                pending.append(pool.submit(fn, *a, **k))

            for table in tables():
                acc, quar, rep = q.check(table, origin=str(path), row_offset=offset, last_ts=watermark, **kw)
                dup_removed = False
                late = pc.not_equal(pc.bit_wise_and(acc.column("quality"), int(Quality.OUT_OF_ORDER)), 0)
                if acc.num_rows and pc.any(late).as_py():
                    # Only rows older than what was already seen can repeat a stored row:
                    # look those up in the lake (after pending writes land) and the buffer.
                    while pending:
                        res.files += pending.pop(0).result()
                    acc, dup = self._split_stored_duplicates(acc, late, buf, str(path), offset)
                    if dup.num_rows:
                        dup_removed = True
                        rep.by_reason["duplicate of a stored reading"] = dup.num_rows
                        quar = pa.concat_tables([quar, dup])
                if acc.num_rows:
                    watermark = q.advance_watermark(watermark, acc, rep.latest if not dup_removed else None)
                offset += table.num_rows
                for k, v in rep.by_reason.items():
                    totals[k] = totals.get(k, 0) + v
                unknown.update(rep.unknown_serials)
                res.accepted += acc.num_rows
                res.quarantined += quar.num_rows
                if quar.num_rows:
                    submit(self.write, quar, "quarantine", tag=tag)
                if acc.num_rows:
                    buf.append(acc)
                    buffered += acc.num_rows
                if buffered >= flush_rows:
                    submit(self._flush, buf, tag)
                    buf, buffered = [], 0
            if buf:
                submit(self._flush, buf, tag)
            if cells is None and cells_fn is not None:
                cells = cells_fn()
            if cells is not None and cells.num_rows:
                # cells of readings that were quarantined stay too: they are raw evidence
                submit(self.write, cells, "cells", tag=tag)
            while pending:
                res.files += pending.pop(0).result()
            res.report = {"by_reason": totals, "unknown_serials": sorted(unknown)}
            res.watermark = watermark
            res.seconds = time.perf_counter() - t0
            manifest = {"path": str(path), "sha256": sha, "format": fmt, "accepted": res.accepted,
                        "quarantined": res.quarantined, "files": [os.path.relpath(f, self.root) for f in res.files],
                        "report": res.report, "ingested_at": dt.datetime.now(dt.timezone.utc).isoformat()}
            self._write_json(self.manifest_path(sha), manifest)
        except BaseException:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)
            self._remove_parts(tag)
            raise
        finally:
            pool.shutdown(wait=True)
            lock.unlink(missing_ok=True)
        return res

    def _split_stored_duplicates(self, acc: pa.Table, late, buf: list[pa.Table], origin: str, offset: int
                                 ) -> tuple[pa.Table, pa.Table]:
        cand = acc.filter(late)
        keys = [self.existing_keys(cand)] + [b.select(["pack_serial", "ts", "source"]) for b in buf]
        seen = pa.concat_tables([k.cast(keys[0].schema) for k in keys])
        if seen.num_rows == 0:
            return acc, QUARANTINE_SCHEMA.empty_table()
        probe = pa.table({"pack_serial": acc.column("pack_serial"), "ts": acc.column("ts"),
                          "source": acc.column("source"), "_i": pa.array(np.arange(acc.num_rows))})
        hit = probe.join(seen.group_by(["pack_serial", "ts", "source"]).aggregate([]),
                         ["pack_serial", "ts", "source"], join_type="inner")
        if hit.num_rows == 0:
            return acc, QUARANTINE_SCHEMA.empty_table()
        mask = np.zeros(acc.num_rows, dtype=bool)
        mask[hit.column("_i").to_numpy()] = True
        dup = acc.filter(pa.array(mask))
        n = dup.num_rows
        extra = [pa.array(["duplicate of a stored reading"] * n), pa.array([None] * n, pa.string()),
                 pa.nulls(n, pa.int64()), pa.array([origin] * n)]
        dup_q = pa.Table.from_arrays(dup.columns + extra, schema=QUARANTINE_SCHEMA)
        return acc.filter(pa.array(~mask)), dup_q

    def _flush(self, buf: list[pa.Table], tag: str) -> list[str]:
        # quality.check returns each chunk sorted by pack+time; a single chunk needs no
        # second sort, several are merged and sorted together
        if len(buf) == 1:
            return self.write(buf[0], "readings", tag=tag, sort=False)
        return self.write(pa.concat_tables(buf), "readings", tag=tag)

    def _write_json(self, final: Path, doc: dict) -> None:
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def _remove_parts(self, tag: str) -> int:
        n = 0
        for ds in DATASETS:
            for f in (self.root / ds).glob(f"date=*/part-{tag}-*.parquet"):
                f.unlink(missing_ok=True)
                n += 1
        return n

    # ----------------------------------------------------------------- maintenance
    def files(self, dataset: str = "readings") -> list[Path]:
        return sorted((self.root / dataset).glob("date=*/*.parquet"))

    def compact(self, dataset: str = "readings", *, min_files: int = 2) -> dict[str, int]:
        """Merge each partition's files into one sorted file. Returns {date: files merged}.

        The merged file is published before the old ones are removed, so a crash in
        between leaves duplicates for a moment but never loses data; run compact again.
        """
        done = {}
        for d in sorted((self.root / dataset).glob("date=*")):
            parts = sorted(d.glob("*.parquet"))
            if len(parts) < min_files:
                continue
            table = pq.read_table(parts, schema=DATASETS[dataset]) if parts else None
            table = table.take(pa.array(_order(table)))
            self._write_file(table, d, "compact")
            for p in parts:
                p.unlink()
            _fsync_dir(d)
            done[d.name.split("=", 1)[1]] = len(parts)
        return done

    def prune(self, before: dt.date, datasets: Iterable[str] = tuple(DATASETS)) -> dict[str, int]:
        """Delete every partition dated strictly before ``before`` (retention)."""
        removed = {"partitions": 0, "files": 0, "bytes": 0}
        for ds in datasets:
            for d in sorted((self.root / ds).glob("date=*")):
                try:
                    day = dt.date.fromisoformat(d.name.split("=", 1)[1])
                except ValueError:
                    continue
                if day < before:
                    for f in d.iterdir():
                        removed["files"] += 1
                        removed["bytes"] += f.stat().st_size
                    shutil.rmtree(d)
                    removed["partitions"] += 1
        return removed

    # ----------------------------------------------------------------- querying
    def connect(self, database: str = ":memory:", threads: int | None = None):
        """A DuckDB connection with views ``readings``, ``cells``, ``quarantine``."""
        import duckdb

        con = duckdb.connect(database)
        con.execute("SET TimeZone = 'UTC'")  # timestamps stay UTC; display converts
        if threads:
            con.execute(f"SET threads TO {int(threads)}")
        for ds, schema in DATASETS.items():
            if self.files(ds):
                glob = str(self.root / ds / "date=*" / "*.parquet").replace("'", "''")
                con.execute(f"CREATE OR REPLACE VIEW {ds} AS SELECT * EXCLUDE (date) FROM read_parquet('{glob}', "
                            "hive_partitioning = true)")
            else:
                # empty lake: same columns, no rows, so queries still run
                con.execute(f"CREATE OR REPLACE TABLE _empty_{ds} ({duckdb_columns(schema)})")
                con.execute(f"CREATE OR REPLACE VIEW {ds} AS SELECT * FROM _empty_{ds}")
        return con

    def latest(self) -> pa.Table:
        """Latest reading per pack (for the registry's 'latest reading' projection)."""
        con = self.connect()
        return con.sql("SELECT * FROM readings QUALIFY row_number() OVER "
                           "(PARTITION BY pack_serial ORDER BY ts DESC) = 1 ORDER BY pack_serial").to_arrow_table()

    def existing_keys(self, batch: pa.Table, con=None) -> pa.Table:
        """(pack_serial, ts, source) keys of ``batch`` already stored in the lake.

        Pass the result to ``quality.check(seen_keys=...)`` to drop redelivered
        messages (e.g. MQTT QoS 1 duplicates after a restart) as duplicates. Only the
        date partitions the batch touches are scanned.
        """
        empty = pa.table({"pack_serial": pa.array([], pa.string()), "ts": pa.array([], READING_SCHEMA.field("ts").type),
                          "source": pa.array([], pa.string())})
        if batch.num_rows == 0 or not self.files():
            return empty
        day_no = np.unique(np.floor_divide(batch.column("ts").cast(pa.int64()).to_numpy(), 86_400_000_000))
        files = [str(f) for d in day_no
                 for f in (self.root / "readings" / f"date={dt.date(1970, 1, 1) + dt.timedelta(days=int(d))}").glob("*.parquet")]
        if not files:
            return empty
        import duckdb
        con = con or duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.register("_batch_keys", batch.select(["pack_serial", "ts", "source"]))
        file_list = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        out = con.sql(f"SELECT r.pack_serial, r.ts, r.source FROM read_parquet([{file_list}]) r "
                      "SEMI JOIN _batch_keys b USING (pack_serial, ts, source)").to_arrow_table()
        con.unregister("_batch_keys")
        return out.cast(empty.schema)

    def daily_rollup(self, con=None) -> pa.Table:
        con = con or self.connect()
        return con.sql("""
            SELECT pack_serial, date_trunc('day', ts) AS day, count(*) AS n,
                   min(voltage_v) AS v_min, max(voltage_v) AS v_max, avg(current_a) AS i_mean,
                   min(soc_pct) AS soc_min, max(temp_max_c) AS t_max, arg_max(soh_pct, ts) AS soh_last
            FROM readings GROUP BY ALL""").to_arrow_table()


def _lock_alive(lock: Path) -> bool:
    """True while the process that wrote ``lock`` (pid inside) still runs on this host."""
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return time.time() - lock.stat().st_mtime < 3600
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _order(table: pa.Table) -> np.ndarray:
    return q._sort_order(table) if "pack_serial" in table.column_names else np.arange(table.num_rows)
