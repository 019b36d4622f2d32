import shutil
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from rich.console import Console
from rich.table import Table

from battloop.demo.build import DEMO_PASSWORD, DEMO_USER, load_fleet, load_telemetry, summary
from battloop.demo.fleet import generate

MARKER = ".battloop-demo"


class Command(BaseCommand):
    help = "Build a fresh demo instance (realistic fleet across Chinese cities) through the import path, then serve it."

    def add_arguments(self, parser):
        parser.add_argument("--sites", type=int, default=300, help="number of sites (default 300: the whole demo in under two minutes on 2 cores)")
        parser.add_argument("--packs-per-site", type=float, default=4.0, help="mean packs per site (default 4)")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--data-dir", help="where to build the instance (default: ./battloop-demo, or BATTLOOP_DATA_DIR)")
        parser.add_argument("--no-serve", action="store_true", help="stop after building")
        parser.add_argument("--no-telemetry", action="store_true", help="registry only: no simulated telemetry")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, **o):
        console = Console(file=self.stdout, highlight=False)
        started = time.perf_counter()
        data_dir = Path(settings.DATA_DIR)
        self._reset(data_dir)
        call_command("migrate", verbosity=0, interactive=False)
        fleet = generate(sites=o["sites"], packs_per_site=o["packs_per_site"], seed=o["seed"])
        console.print(f"building demo fleet in {data_dir}: {len(fleet.sites):,} sites, {len(fleet.packs):,} packs (seed {o['seed']})")
        reports = load_fleet(fleet, data_dir / "demo-input")
        for r in reports:
            console.print(f"  import {r.kind}: {r.applied:,} applied, {r.quarantined:,} quarantined ({r.rows_per_second:,.0f} rows/s)")
        if not o["no_telemetry"]:
            t0 = time.perf_counter()
            tele = load_telemetry(fleet, data_dir / "demo-input", timezone.localdate(), seed=o["seed"])
            console.print(f"  telemetry: {tele['readings']:,} readings in the lake, {tele.get('quarantined', 0):,} quarantined, "
                          f"{tele.get('open_alarms', 0)} alarms open ({time.perf_counter() - t0:.1f} s)")
            from battloop.health.assess import assess

            health = assess()
            console.print(f"  health: {health['packs']:,} packs assessed, {health['anomalies']} aging faster than their cohort "
                          f"({health['seconds']:.1f} s); {health.get('sites_short_now', 0):,} of {health.get('sites', 0):,} sites "
                          f"short of their required backup now, {health.get('sites_short_within_5y_p50', 0):,} within five years (P50)")
            from battloop.triage.policy import load_policy
            from battloop.triage.registry_triage import run as triage_run

            tri = triage_run(load_policy("default"), actor="demo")
            console.print(f"  triage: {tri['packs']:,} flagged or stored packs routed: "
                          + ", ".join(f"{k} {v}" for k, v in tri["routes"].items() if v))
            from battloop.logistics.registry_routes import plan_with_busiest_hub_routes

            t0 = time.perf_counter()
            lg = plan_with_busiest_hub_routes(created_by="demo")
            if lg is not None:
                run, info, rr = lg["run"], lg["info"], lg["routes"]
                console.print(f"  logistics: {info['tonnes']} t to move from {info['sources']} sites; "
                              f"{len(run.opened_hubs)} consolidation hub(s) opened, status {run.status} (plan run {run.pk})"
                              + (f"; {run.message}" if not run.has_plan else ""))
                if rr is not None:
                    console.print(f"  collection routes at {rr.hub_id}: {len(rr.routes)} truck(s), {rr.total_distance_km:,.0f} km, "
                                  f"{len(rr.consignments)} long-haul consignment(s), {len(rr.unserved)} pickup(s) not collected "
                                  f"({time.perf_counter() - t0:.1f} s)")
                elif lg["routes_error"]:
                    console.print(f"  collection routes: {lg['routes_error']}")
                # where hubs pay off: today's backlog plus the retirements the health outlook expects in five years
                from battloop.logistics.registry_plan import run_scenario

                t0 = time.perf_counter()
                five, info5 = run_scenario("five-year", ["forecast_years=5"], time_limit_s=60, created_by="demo")
                if five is not None:
                    console.print(f"  logistics, five-year scenario: {info5['tonnes']} t ({info5['forecast_tonnes']} t expected to retire); "
                                  f"{len(five.opened_hubs)} hub(s) opened, status {five.status} ({time.perf_counter() - t0:.1f} s)")
        for title, rows in summary().items():
            table = Table(title=f"packs by {title}", show_header=False)
            for key, n in rows:
                table.add_row(str(key or "—"), f"{n:,}")
            console.print(table)
        console.print(f"built in {time.perf_counter() - started:.1f} s")
        if o["no_serve"]:
            console.print(f"demo login: {DEMO_USER} / {DEMO_PASSWORD}  (start the web app with: battloop serve)")
            return
        console.print(f"\nserving http://{o['host']}:{o['port']}/  —  log in as [bold]{DEMO_USER}[/bold] / [bold]{DEMO_PASSWORD}[/bold]  (Ctrl-C stops)")
        call_command("serve", host=o["host"], port=o["port"])

    def _reset(self, data_dir: Path) -> None:
        """A demo instance is rebuilt from scratch each time; refuse to touch anything else."""
        if connection.vendor != "sqlite":
            from battloop.registry.models import Pack

            call_command("migrate", verbosity=0, interactive=False)
            if Pack.objects.exists():
                raise CommandError("the configured database already holds packs; the demo builds only into an empty database")
            return
        db_path = Path(settings.DATABASES["default"]["NAME"])
        marker = data_dir / MARKER
        if db_path.exists() and not marker.exists():
            from battloop.registry.models import Pack

            call_command("migrate", verbosity=0, interactive=False)
            if Pack.objects.exists():
                raise CommandError(f"{data_dir} holds a battloop instance that is not a demo; "
                                   f"give --data-dir for a new directory")
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(db_path) + suffix).unlink(missing_ok=True)
        for sub in ("quarantine", "lake", "demo-input"):
            shutil.rmtree(data_dir / sub, ignore_errors=True)
        marker.write_text("this directory holds a battloop demo instance; `battloop demo` rebuilds it\n")
