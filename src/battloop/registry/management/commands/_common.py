"""Shared pieces of the registry's CLI verbs."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table


def import_progress(enabled: bool):
    """A Rich progress bar over bytes read; a no-op context when output is not a terminal."""
    if not enabled:
        class _Null:
            def __enter__(self):
                return None

            def __exit__(self, *exc):
                return False
        return _Null()
    return Progress(TextColumn("[bold]importing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True)


def print_report(report, stdout) -> None:
    console = Console(file=stdout, soft_wrap=True, highlight=False)
    if report.status == "unchanged":
        console.print(report.message)
        return
    console.print(f"[bold]{report.kind} import[/bold] of {report.file} → batch {report.batch_id}: {report.status}")
    console.print(f"rows {report.rows_total:,}: applied {report.applied:,}, corrected {report.corrected:,}, "
                  f"unchanged {report.unchanged:,}, quarantined {report.quarantined:,} "
                  f"({report.seconds:.1f} s, {report.rows_per_second:,.0f} rows/s)")
    if report.unknown_columns:
        console.print(f"ignored columns (not mapped): {', '.join(report.unknown_columns)}")
    if report.quarantined:
        table = Table(title=f"first quarantined rows (all in {report.quarantine_path})")
        for col in ("row", "field", "value", "reason"):
            table.add_column(col, overflow="fold")
        for e in report.first_errors:
            table.add_row(str(e.row), e.field, (e.value or "")[:40], e.reason)
        console.print(table)
        console.print("errors by field: " + ", ".join(f"{k} {v}" for k, v in report.errors_by_field.items()))
    console.print(f"quarantine report: {report.quarantine_path}")


def add_import_arguments(parser, owner: bool = True) -> None:
    parser.add_argument("file", help="CSV or XLSX file")
    parser.add_argument("--mapping", help="YAML mapping file: columns: {field: 'Their header'}, defaults: {owner: ORG}")
    if owner:
        parser.add_argument("--owner", help="organization code for rows without an owner column")
    parser.add_argument("--sheet", help="XLSX sheet name (default: the first)")
    parser.add_argument("--quarantine", help="where to write the quarantine CSV (default: in the data directory)")
    parser.add_argument("--force", action="store_true", help="re-evaluate a file that was already imported")
    parser.add_argument("--actor", default="cli", help="who is importing (recorded on events)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_import(func, options, stdout, **extra):
    from django.core.management.base import CommandError

    from battloop.registry.importer import ImportFailed

    show = not options["no_progress"] and sys.stderr.isatty()
    try:
        with import_progress(show) as bar:
            task = bar.add_task("import", total=None) if bar else None
            cb = (lambda done, total: bar.update(task, completed=done, total=total)) if bar else None
            report = func(options["file"], actor=options["actor"], mapping=options["mapping"], sheet=options["sheet"],
                          quarantine_path=options["quarantine"], force=options["force"], progress=cb, **extra)
    except ImportFailed as exc:
        raise CommandError(str(exc)) from None
    print_report(report, stdout)
    return report
