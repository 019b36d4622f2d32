"""Benchmark: Augerat CVRP set A with the OR-Tools routing engine (time limit per instance),
optionally against PyVRP (hybrid genetic search) on the same instances and time limit.

    .venv/bin/python benchmarks/cvrp.py [--time-limit 10] [--data DIR] [--only A-n32-k5,...] [--peer-python PATH]

Costs are EUC_2D rounded (CVRPLIB convention); gaps are against the optimum in
each file's COMMENT line.  PyVRP runs in this interpreter if importable,
otherwise in ``.venv-peers`` (needs ``pyvrp``) through a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_DATA = Path(os.environ.get("BATTLOOP_SHARED_DATA", ROOT.parent / "shared" / "data")) / "netopt"


def files(data: Path, only: str | None):
    fs = sorted((data / "cvrplib" / "A").glob("*.vrp"))
    if only:
        keep = set(only.split(","))
        fs = [f for f in fs if f.stem in keep]
    return fs


def pyvrp_run(fs, time_limit: float) -> dict:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    out = {}
    for f in fs:
        t0 = time.perf_counter()
        data = pyvrp.read(str(f), round_func="round")
        res = pyvrp.Model.from_data(data).solve(stop=MaxRuntime(time_limit), seed=1, display=False)
        out[f.stem] = (int(round(res.cost())) if res.is_feasible() else None, time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--only", default=None, help="comma-separated instance names")
    ap.add_argument("--peer-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--peer-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    fs = files(a.data, a.only)
    if a.peer_only:
        print(json.dumps(pyvrp_run(fs, a.time_limit)))
        return

    from battloop.logistics.instances import read_cvrplib
    from battloop.logistics.routing import solve_cvrp

    rows = []
    for f in fs:
        inst = read_cvrplib(f)
        res = solve_cvrp(inst, time_limit_s=a.time_limit)
        rows.append((inst.name, inst.best_known, res.cost, res.gap, res.seconds, res.vehicles_used))
        print(f"  {inst.name:<10} {res.cost:>6} / {inst.best_known:>6.0f}  gap {res.gap:6.2%}  {res.seconds:5.1f} s", flush=True)

    peer, note = None, ""
    if not a.no_peer:
        try:
            import pyvrp

            peer = pyvrp_run(fs, a.time_limit)
            from importlib.metadata import version

            note = f"PyVRP {version('pyvrp')} (this interpreter)"
        except ImportError:
            if Path(a.peer_python).exists():
                cmd = [a.peer_python, __file__, "--peer-only", "--data", str(a.data), "--time-limit", str(a.time_limit)]
                if a.only:
                    cmd += ["--only", a.only]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode == 0:
                    peer = json.loads(proc.stdout.strip().splitlines()[-1])
                    ver = subprocess.run([a.peer_python, "-c", "import importlib.metadata as m;print(m.version('pyvrp'))"],
                                         capture_output=True, text=True).stdout.strip()
                    note = f"PyVRP {ver} ({a.peer_python})"
                else:
                    note = "peer run failed: " + (proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else str(proc.returncode))
            else:
                note = f"PyVRP not importable and no peer interpreter at {a.peer_python}"

    print(f"\n{'instance':<10} {'best':>6} {'OR-Tools':>9} {'gap':>7} {'s':>6}" + (f" {'PyVRP':>7} {'gap':>7}" if peer else ""))
    for name, bk, cost, gap, secs, _ in rows:
        line = f"{name:<10} {bk:>6.0f} {cost:>9} {gap:>7.2%} {secs:>6.1f}"
        if peer:
            pc = peer[name][0]
            line += f" {pc:>7} {(pc - bk) / bk:>7.2%}" if pc is not None else f" {'-':>7} {'-':>7}"
        print(line)
    gaps = [r[3] for r in rows]
    secs = [r[4] for r in rows]
    print(f"\nOR-Tools routing (GLS, {a.time_limit:g} s limit): mean gap {sum(gaps) / len(gaps):.3%}, "
          f"max {max(gaps):.2%}, optimal hits {sum(g == 0 for g in gaps)}/{len(gaps)}, "
          f"mean time {sum(secs) / len(secs):.2f} s per instance")
    if peer:
        pg = [(peer[r[0]][0] - r[1]) / r[1] for r in rows if peer[r[0]][0] is not None]
        print(f"{note}: mean gap {sum(pg) / len(pg):.3%}, max {max(pg):.2%}, optimal hits {sum(g == 0 for g in pg)}/{len(pg)}")
    elif note:
        print(f"peer: {note}")


if __name__ == "__main__":
    main()
