"""``battloop telemetry``: read telemetry sources and check them before ingesting."""

from __future__ import annotations

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from battloop.telemetry.jsonout import jsonable, table_rows
from battloop.telemetry.readers import READERS, ReaderError, get_reader


def _utc(value: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--ts {value!r} is not an ISO 8601 time (e.g. 2024-05-01T10:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


class Command(BaseCommand):
    help = "Read telemetry files (CSV exports, Pylontech console/RS485, Modbus dumps) or poll a Modbus pack."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        rd = sub.add_parser("read", help="print the canonical readings a file yields")
        rd.add_argument("path", help="file (or, for pylontech-console, a directory of captures)")
        rd.add_argument("--format", required=True, choices=sorted(READERS), dest="fmt")
        rd.add_argument("--json", action="store_true", help="print a JSON list of canonical rows")
        rd.add_argument("--cells", action="store_true", help="print the cell table instead of readings")
        rd.add_argument("--meta", action="store_true", help="with --json: print {readings, metadata}")
        rd.add_argument("--tz", help="zone of device clocks / naive timestamps (IANA name, e.g. Asia/Shanghai)")
        rd.add_argument("--ts", help="time for sources that carry none (ISO 8601); default: file time")
        rd.add_argument("--site", help="site code to put on every reading")
        rd.add_argument("--profile", help="Modbus profile (modbus-dump)")
        rd.add_argument("--mapping", help="column mapping name or file (csv)")
        rd.add_argument("--limit", type=int, help="print at most N rows (a CSV is then read only that far)")
        pm = sub.add_parser("poll-modbus", help="read a live pack over Modbus TCP")
        pm.add_argument("--host", required=True)
        pm.add_argument("--port", type=int, default=502)
        pm.add_argument("--unit", type=int, help="unit/slave id (default: the profile's)")
        pm.add_argument("--profile", required=True)
        pm.add_argument("--timeout", type=float, default=3.0)
        pm.add_argument("--site", help="site code to put on the reading")
        pm.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            if opts["action"] == "read":
                table, meta = self._read(opts)
            else:
                from battloop.telemetry.readers.modbus import poll_modbus
                table, meta = poll_modbus(opts["host"], opts["port"], opts["unit"], opts["profile"],
                                          timeout_s=opts["timeout"], site_code=opts["site"])
        except ReaderError as exc:
            raise CommandError(str(exc)) from None
        for w in meta.get("rejected_frames", [])[:50]:
            self.stderr.write(f"warning: line {w['line']}: frame rejected: {w['reason']}")
        if meta.get("parse_errors"):
            self.stderr.write(f"warning: {meta.get('invalid_rows', len(meta['parse_errors']))} rows have unparsable "
                              "values (they will be quarantined on ingest); first: "
                              + "; ".join(f"row {e['row']} {e['column']}={e['value']!r}" for e in meta["parse_errors"][:5]))
        out = meta.get("cells") if opts.get("cells") else table
        if opts.get("limit") is not None:
            out = out.slice(0, max(0, opts["limit"]))
        if opts.get("json"):
            if opts.get("meta"):
                doc = {"readings": table_rows(table),
                       "metadata": jsonable({k: v for k, v in meta.items() if k != "cells"}),
                       "cells": table_rows(meta["cells"]) if meta.get("cells") is not None else []}
            else:
                doc = table_rows(out)
            self.stdout.write(json.dumps(doc, ensure_ascii=False, indent=1))
            return
        rows = table_rows(out)
        if not rows:
            self.stdout.write("no rows")
            return
        cols = [c for c in rows[0] if any(r[c] not in (None, [], "") for r in rows)]
        self.stdout.write("  ".join(cols))
        for r in rows:
            self.stdout.write("  ".join("-" if r[c] is None else str(r[c]) for c in cols))
        self.stdout.write(f"{len(rows)} rows ({meta.get('source')}, {meta.get('input')})")

    def _read_csv_head(self, path, kw, limit):
        """Stream only as many blocks as needed for ``limit`` rows of a large export."""
        import pyarrow as pa

        from battloop.telemetry.readers.csv_export import iter_csv_export
        from battloop.telemetry.schema import READING_SCHEMA
        meta: dict = {}
        parts, n = [], 0
        for t in iter_csv_export(path, metadata=meta, **kw):
            parts.append(t)
            n += t.num_rows
            if n >= limit:
                break
        return (pa.concat_tables(parts) if parts else READING_SCHEMA.empty_table()), meta

    def _read(self, opts):
        fmt = opts["fmt"]
        reader = get_reader(fmt)
        kw = {}
        if fmt == "csv":
            kw = {"mapping": opts.get("mapping"), "tz": opts.get("tz")}
            if opts.get("limit") is not None and not str(opts["path"]).lower().endswith((".xlsx", ".xlsm", ".parquet")):
                return self._read_csv_head(opts["path"], kw, opts["limit"])
        elif fmt == "pylontech-console":
            kw = {"tz": opts.get("tz"), "site_code": opts.get("site"),
                  "ts": _utc(opts["ts"]) if opts.get("ts") else None}
        elif fmt == "pylontech-rs485":
            kw = {"site_code": opts.get("site"), "ts": _utc(opts["ts"]) if opts.get("ts") else None}
        elif fmt == "modbus-dump":
            kw = {"profile": opts.get("profile"), "site_code": opts.get("site"),
                  "ts": _utc(opts["ts"]) if opts.get("ts") else None}
        try:
            return reader(opts["path"], **kw)
        except MemoryError:
            raise CommandError(f"{opts['path']}: too large to read as {fmt}") from None
