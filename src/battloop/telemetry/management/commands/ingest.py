from django.core.management.base import BaseCommand, CommandError

from battloop.telemetry.lake import LakeError
from battloop.telemetry.readers import READERS
from battloop.telemetry.service import ingest_files


class Command(BaseCommand):
    help = "Ingest telemetry files into the lake (reader → quality checks → Parquet), idempotently; refresh latest readings and alarms."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="files (or, for pylontech-console, directories of captures)")
        parser.add_argument("--format", required=True, choices=sorted(READERS), dest="fmt")
        parser.add_argument("--mapping", help="column mapping name or file (csv)")
        parser.add_argument("--tz", help="zone of device clocks / naive timestamps, e.g. Asia/Shanghai")
        parser.add_argument("--site", help="site code for sources that carry none")
        parser.add_argument("--profile", help="Modbus profile (modbus-dump)")

    def handle(self, *args, **o):
        opts = {k: o[k] for k in ("mapping", "tz", "site", "profile") if o.get(k)}
        if "site" in opts:
            opts["site_code"] = opts.pop("site")
        try:
            results = ingest_files(o["paths"], o["fmt"], opts)
        except (LakeError, ValueError, OSError) as exc:
            raise CommandError(str(exc)) from None
        for r in results:
            if r.skipped:
                self.stdout.write(f"{r.path}: already ingested (content {r.sha256[:12]}…); nothing added")
                continue
            reasons = ", ".join(f"{k} {v}" for k, v in r.report.get("by_reason", {}).items())
            self.stdout.write(f"{r.path}: {r.accepted:,} readings accepted, {r.quarantined:,} quarantined"
                              f"{' (' + reasons + ')' if reasons else ''} in {r.seconds:.1f} s")
            unknown = r.report.get("unknown_serials") or []
            if unknown:
                self.stdout.write(f"  unknown serials ({len(unknown)}): {', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''}"
                                  f" — register them with battloop import-packs, then re-ingest")
