"""Build the demo instance: organizations, then models, sites and packs loaded through
the same import path users use (CSV files → importer)."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db.models import Count

from battloop.registry.importer import ImportReport, import_models, import_packs, import_sites
from battloop.registry.models import Organization, Pack
from battloop.web.models import Membership, Role

from .fleet import Fleet

DEMO_USER = "demo"
DEMO_PASSWORD = "battloop-demo"


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def load_fleet(fleet: Fleet, workdir: Path, progress=None) -> list[ImportReport]:
    workdir.mkdir(parents=True, exist_ok=True)
    for o in fleet.organizations:
        Organization.objects.update_or_create(code=o["code"], defaults={k: v for k, v in o.items() if k != "code"})
    reports = [
        import_models(write_csv(workdir / "pack_models.csv", fleet.models), actor="demo"),
        import_sites(write_csv(workdir / "sites.csv", fleet.sites), actor="demo"),
        import_packs(write_csv(workdir / "packs.csv", fleet.packs), actor="demo", progress=progress),
    ]
    User = get_user_model()
    user = User.objects.filter(username=DEMO_USER).first()
    if user is None:
        user = User.objects.create_superuser(DEMO_USER, "demo@example.invalid", DEMO_PASSWORD)
    Membership.objects.get_or_create(user=user, organization=Organization.objects.get(code="ctc"), defaults={"role": Role.ADMIN})
    return reports


def summary() -> dict[str, list[tuple[str, int]]]:
    packs = Pack.objects
    return {
        "state": list(packs.values_list("state").annotate(n=Count("id")).order_by("-n")),
        "chemistry": list(packs.values_list("model__chemistry").annotate(n=Count("id")).order_by("-n")),
        "province": list(packs.exclude(site=None).values_list("site__province").annotate(n=Count("id")).order_by("-n")[:12]),
        "origin": list(packs.values_list("origin").annotate(n=Count("id")).order_by("-n")),
    }


def load_telemetry(fleet: Fleet, workdir: Path, today, seed: int = 7) -> dict:
    """Simulate the fleet's whole life of daily readings (plus a few 1-minute outage days)
    and ingest them through the same path as any user's export."""
    import pyarrow.parquet as pq

    from battloop.telemetry.models import ActiveAlarm
    from battloop.telemetry.service import ingest_files

    from .world import outage_day_minutes, simulate

    sites = {s["code"]: s for s in fleet.sites}
    models = {m["code"]: m for m in fleet.models}
    daily, faults = simulate(fleet.packs, sites, models, today, seed=seed)
    if daily.num_rows == 0:
        return {"readings": 0}
    def as_export(table):
        # FSU exports carry epoch milliseconds; write them so, and read them back like any export.
        import pyarrow.compute as pc

        return table.set_column(0, "ts", pc.divide(table.column("ts").cast("int64"), 1000))

    files = [workdir / "telemetry-daily.parquet"]
    pq.write_table(as_export(daily), files[0], compression="zstd")
    detailed = []
    for i, p in enumerate([p for p in fleet.packs if p["state"] == "installed"][:3]):
        m = models[p["model"]]
        detailed.append(outage_day_minutes(p["serial"], p["site"], today - timedelta(days=3 + i), m["rated_capacity_ah"],
                                           m["cell_count"], load_a=sites[p["site"]]["load_w"] / 48 / 2, hours=2.5 + i, seed=seed + i))
    if detailed:
        import pyarrow as pa

        files.append(workdir / "telemetry-1min.parquet")
        pq.write_table(as_export(pa.concat_tables(detailed, promote_options="default")), files[1], compression="zstd")
    results = ingest_files(files, "csv")
    return {"readings": sum(r.accepted for r in results), "quarantined": sum(r.quarantined for r in results),
            "open_alarms": ActiveAlarm.objects.count(), "faults": faults}
