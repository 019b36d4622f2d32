from django.core.management.base import BaseCommand

from battloop.registry.importer import import_sites

from ._common import add_import_arguments, run_import


class Command(BaseCommand):
    help = "Import sites from CSV/XLSX (code, type, coordinates, province, climate, owner)."

    def add_arguments(self, parser):
        add_import_arguments(parser)

    def handle(self, *args, **options):
        run_import(import_sites, options, self.stdout, owner=options["owner"])
