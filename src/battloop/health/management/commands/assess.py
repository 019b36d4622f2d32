from django.core.management.base import BaseCommand

from battloop.health.assess import assess


class Command(BaseCommand):
    help = "Assess fleet health: calibrate each pack's aging on its evidence, store SOH now and end-of-life dates (P10/P50/P90)."

    def handle(self, *args, **o):
        r = assess()
        self.stdout.write(f"assessed {r['packs']:,} packs ({r['with_evidence']:,} with telemetry evidence), "
                          f"{r['anomalies']} aging faster than their cohort, in {r['seconds']:.1f} s")
