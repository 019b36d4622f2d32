from django.core.management.base import BaseCommand

from battloop.registry.importer import import_models

from ._common import add_import_arguments, run_import


class Command(BaseCommand):
    help = "Import pack models from CSV/XLSX (OEM, chemistry, voltage, capacity, cells, design life)."

    def add_arguments(self, parser):
        add_import_arguments(parser, owner=False)

    def handle(self, *args, **options):
        run_import(import_models, options, self.stdout)
