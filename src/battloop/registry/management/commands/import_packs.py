from django.core.management.base import BaseCommand

from battloop.registry.importer import import_packs

from ._common import add_import_arguments, run_import


class Command(BaseCommand):
    help = "Import packs from CSV/XLSX: validated rows applied in one transaction, bad rows quarantined."

    def add_arguments(self, parser):
        add_import_arguments(parser)
        parser.add_argument("--audit", action="store_true",
                            help="field-audit file: rows with only serial, site and install date become audit-grade records")

    def handle(self, *args, **options):
        run_import(import_packs, options, self.stdout, owner=options["owner"], audit=options["audit"])
