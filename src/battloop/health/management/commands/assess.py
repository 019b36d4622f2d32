from django.core.management.base import BaseCommand, CommandError

from battloop.health.assess import assess


class Command(BaseCommand):
    help = ("Assess fleet health: calibrate each pack's aging on its evidence, store SOH now and end-of-life dates "
            "(P10/P50/P90), each site's backup-time outlook and the owners' retirements per quarter.")

    def add_arguments(self, parser):
        parser.add_argument("--price-cny-per-kwh", type=float, default=None,
                            help="replacement price for the retirement costs (default: BATTLOOP_REPLACEMENT_CNY_PER_KWH or 700)")

    def handle(self, *args, **o):
        try:
            r = assess(price_cny_per_kwh=o["price_cny_per_kwh"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"assessed {r['packs']:,} packs ({r['with_evidence']:,} with telemetry evidence), "
                          f"{r['anomalies']} aging faster than their cohort, in {r['seconds']:.1f} s")
        if r.get("sites"):
            self.stdout.write(f"backup outlook of {r['sites']:,} sites: {r['sites_short_now']:,} short of their required hours now, "
                              f"{r['sites_short_within_5y_p50']:,} within five years (P50)")
