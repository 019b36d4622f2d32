"""API latency under load: pack detail and pack list with N packs in the database.

    python benchmarks/api_latency.py --packs 1000000 --db sqlite postgres [--duration 20]

Builds a fresh instance with N packs (through the import path), starts `battloop serve`
(gunicorn, 2 workers × 4 threads) on loopback, and drives it with wrk (Debian package
`wrk`) using an API token: random pack detail, and the first page of the pack list.
Prints p50/p95/p99 latency and requests/s, and — as the ceiling of the same server
stack — a static file served by WhiteNoise. Goal: p95 ≤ 150 ms for pack detail and
≥ 300 requests/s on 2 cores with PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql://postgres@127.0.0.1:5432/battloop_apibench"
BATTLOOP = str(Path(sys.executable).with_name("battloop"))

LUA_DETAIL = """
math.randomseed(os.time())
request = function()
  local i = math.random(0, %d)
  return wrk.format("GET", string.format("/api/v1/packs/API%%09d", i), {["Authorization"] = "Bearer %s"})
end
"""


P95 = """
done = function(summary, latency, requests)
  io.write(string.format("P95_US %d\\n", latency:percentile(95)))
end
"""


def build(db: str, n: int, workdir: Path) -> dict:
    env = dict(os.environ, BATTLOOP_DATA_DIR=str(workdir / f"data-{db}"), DJANGO_SETTINGS_MODULE="battloop.config.settings")
    if db == "postgres":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS battloop_apibench")
            conn.execute("CREATE DATABASE battloop_apibench")
        env["BATTLOOP_DATABASE_URL"] = PG_BENCH
    else:
        env.pop("BATTLOOP_DATABASE_URL", None)
    csv = workdir / f"packs-{n}.csv"
    if not csv.exists():
        with open(csv, "w") as f:
            f.write("serial,model,install_date,site\n")
            for i in range(n):
                f.write(f"API{i:09d},LFP48-100,20{15 + i % 10}-03-01,S{i % max(1, n // 4):07d}\n")
    script = f"""
import django; django.setup()
from django.core.management import call_command
call_command('migrate', verbosity=0)
from battloop.registry.models import *
from battloop.web.models import ApiToken, Membership
from django.contrib.auth import get_user_model
org = Organization.objects.create(code='ctc', name='CTC', kind='tower_company')
oem = Organization.objects.create(code='oem', name='OEM', kind='oem')
PackModel.objects.create(code='LFP48-100', oem=oem, chemistry='LFP', nominal_voltage_v=48, rated_capacity_ah=100, energy_kwh=4.8, mass_kg=45, cell_count=15, cell_configuration='15S1P', design_life_years=10)
Site.objects.bulk_create([Site(code=f'S{{i:07d}}', site_type='macro_bts', owner=org) for i in range({max(1, n // 4)})], batch_size=5000)
from battloop.registry.importer import import_packs
r = import_packs({str(csv)!r})
assert r.applied == {n}, r
u = get_user_model().objects.create_user('bench', password='x')
Membership.objects.create(user=u, organization=org, role='auditor')
print(ApiToken.issue(u, org, 'auditor', 'bench')[1])
"""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    print(f"{db}: built {n:,} packs in {time.perf_counter() - t0:.0f} s", flush=True)
    return {"env": env, "token": out.stdout.strip().splitlines()[-1]}


def wrk(url: str, seconds: int, script: str | None = None, connections: int = 16) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    tmp = None
    script = (script or "") + P95
    if script:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        tmp.write(script)
        tmp.close()
        cmd += ["-s", tmp.name]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    if tmp:
        os.unlink(tmp.name)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    p95 = re.search(r"P95_US (\d+)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"p50": pct(50), "p90": pct(90), "p95": int(p95.group(1)) / 1000 if p95 else float("nan"), "p99": pct(99), "rps": rps, "errors": int(non2xx.group(1)) if non2xx else 0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packs", type=int, default=100_000)
    ap.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--port", type=int, default=8791)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="battloop-apibench-") as tmp:
        work = Path(tmp)
        for db in args.db:
            inst = build(db, args.packs, work)
            server = subprocess.Popen([BATTLOOP, "serve", "--port", str(args.port), "--workers", "2", "--threads", "4"],
                                      env=inst["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                base = f"http://127.0.0.1:{args.port}"
                for _ in range(100):
                    try:
                        urllib.request.urlopen(base + "/login/", timeout=1)
                        break
                    except Exception:
                        time.sleep(0.3)
                detail = wrk(base, args.duration, LUA_DETAIL % (args.packs - 1, inst["token"]))
                lst = wrk(base + "/api/v1/packs?limit=50&state=installed", args.duration,
                          f'wrk.headers["Authorization"] = "Bearer {inst["token"]}"')
                static = wrk(base + "/static/web/app.css", max(5, args.duration // 3))
                for name, r in (("pack detail", detail), ("pack list (50)", lst), ("static file (ceiling)", static)):
                    print(f"{db:9s} {args.packs:>9,} packs | {name:22s} p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms  "
                          f"p99 {r['p99']:7.1f} ms  {r['rps']:8.0f} req/s  non-2xx {r['errors']}", flush=True)
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
