"""``battloop lake``: maintain and query the telemetry lake."""

from __future__ import annotations

import datetime as dt
import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from battloop.telemetry.jsonout import table_rows
from battloop.telemetry.lake import DATASETS, Lake, LakeError


def default_lake_dir() -> str:
    return str(getattr(settings, "BATTLOOP_LAKE_DIR", None) or os.environ.get("BATTLOOP_LAKE_DIR")
               or os.path.join(str(getattr(settings, "DATA_DIR", "battloop-data")), "lake"))


class Command(BaseCommand):
    help = "Maintain the telemetry lake: compact partitions, prune old data, run queries."

    def add_arguments(self, parser):
        parser.add_argument("--lake", help="lake directory (default: settings.BATTLOOP_LAKE_DIR)")
        sub = parser.add_subparsers(dest="action", required=True)
        c = sub.add_parser("compact", help="merge each date partition into one sorted file")
        c.add_argument("--dataset", default="readings", choices=sorted(DATASETS))
        p = sub.add_parser("prune", help="delete partitions dated before DATE (retention)")
        p.add_argument("--before", required=True, help="YYYY-MM-DD; partitions strictly before it are deleted")
        p.add_argument("--dataset", action="append", choices=sorted(DATASETS),
                       help="limit to a dataset (repeatable; default: all)")
        s = sub.add_parser("stats", help="files and rows per dataset")
        q = sub.add_parser("query", help="run SQL over the views readings, cells, quarantine")
        q.add_argument("sql")
        for x in (s, q):
            x.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        lake = Lake(opts.get("lake") or default_lake_dir())
        try:
            if opts["action"] == "compact":
                done = lake.compact(opts["dataset"])
                self.stdout.write(f"compacted {len(done)} partitions ({sum(done.values())} files merged)")
            elif opts["action"] == "prune":
                try:
                    before = dt.date.fromisoformat(opts["before"])
                except ValueError:
                    raise CommandError(f"--before {opts['before']!r} is not a date (YYYY-MM-DD)") from None
                r = lake.prune(before, opts.get("dataset") or tuple(DATASETS))
                self.stdout.write(f"deleted {r['partitions']} partitions, {r['files']} files, {r['bytes']} bytes "
                                  f"dated before {before}")
            elif opts["action"] == "stats":
                con = lake.connect()
                stats = {ds: {"files": len(lake.files(ds)),
                              "rows": con.execute(f"SELECT count(*) FROM {ds}").fetchall()[0][0]} for ds in DATASETS}
                self.stdout.write(json.dumps(stats) if opts.get("json") else
                                  "\n".join(f"{k}: {v['rows']} rows in {v['files']} files" for k, v in stats.items()))
            else:
                import duckdb
                try:
                    table = lake.connect().sql(opts["sql"]).to_arrow_table()
                except duckdb.Error as exc:
                    raise CommandError(f"query failed: {exc}") from None
                rows = table_rows(table)
                if opts.get("json"):
                    self.stdout.write(json.dumps(rows, ensure_ascii=False))
                else:
                    for r in rows:
                        self.stdout.write(str(r))
        except (LakeError, OSError) as exc:
            raise CommandError(str(exc)) from None
