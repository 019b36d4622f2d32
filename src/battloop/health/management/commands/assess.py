import json

from django.core.management.base import BaseCommand, CommandError

from battloop.health.assess import assess, what_if
from battloop.health.forecast import Q0_MEAN_LIMIT, Scenario

WHAT_IF_KEYS = ("sites", "sites_short_now", "sites_short_within_5y_p50", "retiring_5y_p10", "retiring_5y_p50", "retiring_5y_p90",
                "cost_5y_cny_p50")


class Command(BaseCommand):
    help = ("Assess fleet health: calibrate each pack's aging on its evidence, store SOH now and end-of-life dates "
            "(P10/P50/P90), each site's backup-time outlook and the owners' retirements per quarter.")

    def add_arguments(self, parser):
        parser.add_argument("--price-cny-per-kwh", type=float, default=None,
                            help="replacement price for the retirement costs (default: BATTLOOP_REPLACEMENT_CNY_PER_KWH or 700)")
        parser.add_argument("--retirement-soh-pct", type=float, default=None,
                            help="SOH (%%) at which your packs retire: the retirements per quarter count crossings of it and each "
                                 "pack's forecast gives its dates (default 80)")
        parser.add_argument("--what-if", action="store_true",
                            help="store nothing: compare a scenario with the baseline (use with --temp-offset-c / --outage-multiplier)")
        parser.add_argument("--temp-offset-c", type=float, default=0.0, help="scenario: shift every site's temperature (cooling retrofit: -5)")
        parser.add_argument("--outage-multiplier", type=float, default=1.0, help="scenario: scale every pack's outage rate (2 = twice as many)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **o):
        scenario = Scenario(temp_offset_c=o["temp_offset_c"], outage_multiplier=o["outage_multiplier"])
        knobs = scenario.temp_offset_c != 0.0 or scenario.outage_multiplier != 1.0
        if knobs and not o["what_if"]:
            raise CommandError("--temp-offset-c and --outage-multiplier describe a what-if scenario: add --what-if "
                               "(the stored outlook stays the baseline)")
        if not 0 <= scenario.outage_multiplier <= 100:
            raise CommandError(f"--outage-multiplier {scenario.outage_multiplier}: use a factor between 0 and 100")
        if not -30 <= scenario.temp_offset_c <= 30:
            raise CommandError(f"--temp-offset-c {scenario.temp_offset_c}: use an offset between -30 and +30 °C")
        try:
            pct = o["retirement_soh_pct"]
            if pct is not None and not 20 <= pct <= 95:
                raise CommandError(f"--retirement-soh-pct {pct:g}: give a percentage between 20 and 95 (e.g. 75)")
            retire = None if pct is None else pct / 100.0
            if o["what_if"]:
                base, what = what_if(scenario, price_cny_per_kwh=o["price_cny_per_kwh"], retirement_soh=retire)
            else:
                r = assess(price_cny_per_kwh=o["price_cny_per_kwh"], retirement_soh=retire)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if o["what_if"]:
            out = {"scenario": {"temp_offset_c": scenario.temp_offset_c, "outage_multiplier": scenario.outage_multiplier},
                   "baseline": {k: base.get(k) for k in WHAT_IF_KEYS}, "what_if": {k: what.get(k) for k in WHAT_IF_KEYS}}
            if o["json"]:
                self.stdout.write(json.dumps(out, indent=2))
                return
            self.stdout.write(f"what-if: temperature {scenario.temp_offset_c:+g} °C, outages x{scenario.outage_multiplier:g} "
                              f"(nothing stored)")
            self.stdout.write(f"{'':34s}{'baseline':>14s}{'what-if':>14s}")
            for k in WHAT_IF_KEYS:
                self.stdout.write(f"{k.replace('_', ' '):34s}{out['baseline'][k]:>14,.1f}{out['what_if'][k]:>14,.1f}")
            return
        if o["json"]:
            self.stdout.write(json.dumps(r, indent=2, default=str))
            return
        self.stdout.write(f"assessed {r['packs']:,} packs ({r['with_evidence']:,} with telemetry evidence), "
                          f"{r['anomalies']} aging faster than their cohort, in {r['seconds']:.1f} s")
        e = r["evidence"]
        self.stdout.write(f"measured evidence: {e['bench_capacity_tests']:,} bench capacity tests, {e['outage_discharges']:,} outage "
                          f"discharges ({e['outage_discharges_rejected']:,} found but uninformative), {e['bench_resistance_tests']:,} "
                          f"bench DCIR and {e['current_steps']:,} current-step resistances ({r['with_measured_resistance']:,} packs "
                          f"with a measured resistance)")
        left = r["packs_left_out"]
        if left["no_pack_model"] or left["no_install_date"]:
            self.stdout.write(f"not assessed and not counted in their site's backup: {left['no_pack_model']:,} packs without a pack "
                              f"model, {left['no_install_date']:,} without an install date (fix them in the registry)")
        if left["no_aging_law"]:
            self.stdout.write(f"not assessed and not counted in their site's backup: {left['no_aging_law']:,} packs of a chemistry "
                              f"without an aging law ({', '.join(left['no_aging_law_chemistries'])}); the laws cover LFP and NMC/NCA")
        if e.get("packs_without_resistance"):
            self.stdout.write(f"{e['packs_without_resistance']:,} packs have neither a measured DC resistance nor one in their pack "
                              "model's datasheet: their backup hours do not count resistance growth")
        for c in r["initial_capacity"]:
            edge = abs(c["pct_of_rated"] - 100.0) >= 100.0 * Q0_MEAN_LIMIT - 0.05
            self.stdout.write(f"new {c['model']} packs delivered {c['pct_of_rated']:.1f} % of rated (from {c['packs']:,} packs tested "
                              "at commissioning and again later); their aging is counted from there"
                              + (f" -- at the {100 * Q0_MEAN_LIMIT:.0f} % limit of the estimate: check the model's rated capacity" if edge else ""))
        for x in r["evidence_rejected"][:5]:
            self.stdout.write(f"  not used: {x['pack']} {x['date'] or ''} {x['kind']}: {x['reason']}")
        if r.get("sites"):
            self.stdout.write(f"backup outlook of {r['sites']:,} sites: {r['sites_short_now']:,} short of their required hours now, "
                              f"{r['sites_short_within_5y_p50']:,} within five years (P50); "
                              f"{r['retiring_5y_p50']:,.0f} packs retire (below {r['retirement_soh_pct']:g} % SOH) within five years (P10-P90 {r['retiring_5y_p10']:,.0f}-"
                              f"{r['retiring_5y_p90']:,.0f}), replacement {r['cost_5y_cny_p50']:,.0f} CNY (P50)")
