from django.core.management.base import BaseCommand, CommandError

from battloop.registry.audit import verify_chains


class Command(BaseCommand):
    help = "Recompute event hashes and pack projections; report the first bad event of every broken chain."

    def add_arguments(self, parser):
        parser.add_argument("--serial", help="verify one pack only")
        parser.add_argument("--limit", type=int, default=50, help="print at most this many breaks")

    def handle(self, *args, **o):
        try:
            result = verify_chains(o["serial"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        for brk in result.breaks[: o["limit"]]:
            self.stdout.write(f"BROKEN {brk}")
        rate = result.events / result.seconds if result.seconds else 0
        self.stdout.write(f"verified {result.packs:,} packs, {result.events:,} events in {result.seconds:.1f} s "
                          f"({rate:,.0f} events/s): {len(result.breaks)} broken")
        if result.breaks:
            raise CommandError(f"{len(result.breaks)} pack chain(s) broken")
