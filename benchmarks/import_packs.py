"""Import benchmark: battloop's validated pack import vs a raw bulk insert of the same rows.

    python benchmarks/import_packs.py --rows 100000 1000000 --db sqlite postgres

For each backend and size, on a fresh database: (1) ``import_packs`` (parse, validate,
duplicate checks against the file and the database, hash-chained registration event per
pack, one transaction); (2) the peer: parse the same CSV with the csv module and insert
the same pack rows into the same table with ``executemany`` (SQLite) or ``COPY``
(PostgreSQL), nothing else. Prints rows/s and the ratio. Goal: ratio ≥ 0.3, and 1M rows
in under 2 minutes on SQLite.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/battloop_bench"


def make_csv(path: Path, rows: int, sites: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["serial", "model", "manufacture_date", "install_date", "site", "location"])
        for i in range(rows):
            w.writerow([f"BENCH{i:09d}", "LFP48-100", f"20{15 + i % 10}-01-{1 + i % 28:02d}", f"20{15 + i % 10}-03-{1 + i % 28:02d}",
                        f"S{i % sites:06d}", f"slot {i % 4 + 1}"])


def run_one(db: str, rows: int, workdir: Path) -> None:
    """Runs in a child process so settings (database) are fresh."""
    os.environ["BATTLOOP_DATA_DIR"] = str(workdir / f"data-{db}-{rows}")
    if db == "postgres":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS battloop_bench")
            conn.execute("CREATE DATABASE battloop_bench")
        os.environ["BATTLOOP_DATABASE_URL"] = PG_BENCH
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "battloop.config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from battloop.registry.importer import _PACK_COLUMNS, bulk_insert, import_packs
    from battloop.registry.models import Organization, PackModel, Site

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(code="ctc", name="CTC", kind="tower_company")
    oem = Organization.objects.create(code="oem", name="OEM", kind="oem")
    model = PackModel.objects.create(code="LFP48-100", oem=oem, chemistry="LFP", nominal_voltage_v=48, rated_capacity_ah=100,
                                     energy_kwh=4.8, mass_kg=45, cell_count=15, cell_configuration="15S1P", design_life_years=10)
    n_sites = max(1, rows // 4)
    Site.objects.bulk_create([Site(code=f"S{i:06d}", site_type="macro_bts", owner=org) for i in range(n_sites)], batch_size=5000)
    path = workdir / f"packs-{rows}.csv"
    if not path.exists():
        make_csv(path, rows, n_sites)

    t0 = time.perf_counter()
    report = import_packs(path, actor="bench")
    t_import = time.perf_counter() - t0
    assert report.applied == rows, (report.applied, report.quarantined, report.first_errors[:3])

    # The peer: the same rows into the same (emptied) table, no validation, no events.
    with connection.cursor() as cur:
        cur.execute("DELETE FROM registry_packevent") if db == "sqlite" else cur.execute("TRUNCATE registry_packevent, registry_pack CASCADE")
        if db == "sqlite":
            cur.execute("DELETE FROM registry_pack")
    site_ids = dict(Site.objects.values_list("code", "id"))
    adapt = connection.ops.adapt_datetimefield_value
    from django.utils import timezone

    now = adapt(timezone.now())
    t0 = time.perf_counter()
    with transaction.atomic():
        with open(path, newline="") as f:
            reader = csv.reader(f)
            next(reader)
            batch = []
            for i, (serial, _m, mfg, inst, site, loc) in enumerate(reader, start=1):
                batch.append((i, serial, None, "", model.id, None, mfg, inst, org.id, org.id, site_ids[site], loc, "installed", "new",
                              "", "full", "", None, i + 1, 0, "", now))
                if len(batch) == 50_000:
                    bulk_insert("registry_pack", _PACK_COLUMNS, batch)
                    batch = []
            bulk_insert("registry_pack", _PACK_COLUMNS, batch)
    t_raw = time.perf_counter() - t0
    print(f"{db:9s} {rows:>9,} rows | battloop import {t_import:7.1f} s {rows / t_import:>10,.0f} rows/s | "
          f"raw {'COPY' if db == 'postgres' else 'executemany'} {t_raw:6.1f} s {rows / t_raw:>10,.0f} rows/s | ratio {t_raw / t_import:.2f}",
          flush=True)

    t0 = time.perf_counter()
    # Re-create the chain to time verify-chain over the imported events.
    with connection.cursor() as cur:
        cur.execute("DELETE FROM registry_pack") if db == "sqlite" else cur.execute("TRUNCATE registry_packevent, registry_pack CASCADE")
    from battloop.registry.models import ImportBatch

    ImportBatch.objects.all().delete()
    import_packs(path, actor="bench")
    from battloop.registry.audit import verify_chains

    t0 = time.perf_counter()
    result = verify_chains()
    t_verify = time.perf_counter() - t0
    print(f"{db:9s} verify-chain over {result.events:,} events: {t_verify:.1f} s ({result.events / t_verify:,.0f} events/s), "
          f"{len(result.breaks)} broken", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000])
    ap.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    ap.add_argument("--child", nargs=3, metavar=("DB", "ROWS", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_one(args.child[0], int(args.child[1]), Path(args.child[2]))
        return
    with tempfile.TemporaryDirectory(prefix="battloop-bench-") as tmp:
        for rows in args.rows:
            for db in args.db:
                subprocess.run([sys.executable, __file__, "--child", db, str(rows), tmp], check=True)


if __name__ == "__main__":
    main()
