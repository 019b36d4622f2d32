import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from battloop.logistics.network import NetworkInfeasible, NetworkInputError
from battloop.logistics.registry_plan import PlanSettings, plan


class Command(BaseCommand):
    help = "Plan the reverse-logistics network for packs triaged to recycling or reuse (hubs to open, flows, cost, CO2, gap)."

    def add_arguments(self, parser):
        parser.add_argument("--time-limit", type=float, default=120.0)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        try:
            result, info = plan(PlanSettings(time_limit_s=o["time_limit"]))
        except (NetworkInfeasible, NetworkInputError) as exc:
            raise CommandError(str(exc)) from None
        if result is None:
            self.stdout.write(f"nothing to move: no pack is triaged to recycling or reuse ({info})")
            return
        doc = {"input": info, **result.to_json()}
        out = Path(settings.DATA_DIR) / "plans"
        out.mkdir(exist_ok=True)
        path = out / f"plan-{timezone.now():%Y%m%dT%H%M%S}.json"
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1, default=str))
        if o["json"]:
            self.stdout.write(json.dumps(doc, ensure_ascii=False, default=str))
            return
        self.stdout.write(f"{info['tonnes']} t from {info['sources']} sites; {len(result.opened_hubs)} hubs opened of {info['hubs']} "
                          f"candidates; status {result.status}, objective {result.objective:,.0f}, gap {result.gap}")
        self.stdout.write(f"cost: {result.cost_breakdown}; transport CO2 {result.transport_co2_kg} kg; saved to {path}")
