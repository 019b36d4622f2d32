"""Benchmark: OR-Library cap41–cap134 (and optionally Holmberg p1–p20) with HiGHS,
against PuLP + CBC on the same instances and the same strong formulation.

    .venv/bin/python benchmarks/cflp.py [--data DIR] [--holmberg] [--peer-python PATH]

PuLP/CBC runs in this interpreter if ``pulp`` is importable, otherwise in the side
environment ``.venv-peers`` (needs ``pulp`` and ``numpy``) through a subprocess.
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

from battloop.logistics.instances import read_capopt, read_holmberg, read_orlib_cap  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("BATTLOOP_SHARED_DATA", ROOT.parent / "shared" / "data")) / "netopt"


def instances(data: Path, holmberg: bool):
    opt = read_capopt(data / "orlib_cap" / "capopt.txt")
    for name, v in opt.items():
        yield name, "orlib", data / "orlib_cap" / f"{name}.txt", v, False
    if holmberg:
        folder = data / "holmberg_sscflp" / "original"
        vals = [float(x) for x in (folder / "os_optimal_values.txt").read_text().split()]
        for k in range(1, 21):
            yield f"p{k}", "holmberg", folder / f"p{k}", vals[k - 1], True


def read(fmt, path):
    return read_orlib_cap(path) if fmt == "orlib" else read_holmberg(path)


def solve_pulp(inst, single_source: bool) -> tuple[float, float]:
    """Same strong formulation with PuLP and its bundled CBC; returns (objective, seconds incl. model build)."""
    import pulp

    t0 = time.perf_counter()
    m, n = inst.n_facilities, inst.n_customers
    prob = pulp.LpProblem(inst.name, pulp.LpMinimize)
    y = [pulp.LpVariable(f"y{i}", cat="Binary") for i in range(m)]
    cat = "Binary" if single_source else "Continuous"
    x = [[pulp.LpVariable(f"x{i}_{j}", 0, 1, cat=cat) for j in range(n)] for i in range(m)]
    prob += pulp.lpSum(inst.fixed_cost[i] * y[i] for i in range(m)) + pulp.lpSum(
        inst.cost[i, j] * x[i][j] for i in range(m) for j in range(n))
    for j in range(n):
        prob += pulp.lpSum(x[i][j] for i in range(m)) == 1
    for i in range(m):
        prob += pulp.lpSum(inst.demand[j] * x[i][j] for j in range(n)) <= inst.capacity[i] * y[i]
        for j in range(n):
            prob += x[i][j] <= y[i]
    prob += pulp.lpSum(inst.capacity[i] * y[i] for i in range(m)) >= float(inst.demand.sum())
    prob.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=1e-9, threads=1))
    return float(pulp.value(prob.objective)), time.perf_counter() - t0


def peer_only(data: Path, holmberg: bool) -> None:
    out = {}
    for name, fmt, path, _, ss in instances(data, holmberg):
        out[name] = solve_pulp(read(fmt, path), ss)
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--holmberg", action="store_true", help="also Holmberg p1-p20 single-source")
    ap.add_argument("--peer-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--peer-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.peer_only:
        return peer_only(a.data, a.holmberg)

    from battloop.logistics.cflp import solve_cflp

    rows = []
    t_all = time.perf_counter()
    for name, fmt, path, ref, ss in instances(a.data, a.holmberg):
        t0 = time.perf_counter()
        res = solve_cflp(read(fmt, path), single_source=ss)
        secs = time.perf_counter() - t0  # read + build + solve
        rows.append((name, ref, res.objective, abs(res.objective - ref) / ref, secs, res.status))
    t_highs = time.perf_counter() - t_all

    peer: dict | None = None
    peer_note = ""
    try:
        import pulp  # noqa: F401

        t0 = time.perf_counter()
        peer = {name: solve_pulp(read(fmt, path), ss) for name, fmt, path, _, ss in instances(a.data, a.holmberg)}
        peer_note = f"PuLP {pulp.__version__} + CBC (this interpreter)"
    except ImportError:
        if Path(a.peer_python).exists():
            cmd = [a.peer_python, __file__, "--peer-only", "--data", str(a.data)] + (["--holmberg"] if a.holmberg else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0:
                peer = json.loads(proc.stdout.strip().splitlines()[-1])
                ver = subprocess.run([a.peer_python, "-c", "import importlib.metadata as m;print(m.version('pulp'))"],
                                     capture_output=True, text=True).stdout.strip()
                peer_note = f"PuLP {ver} + CBC ({a.peer_python})"
            else:
                peer_note = f"peer run failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}"
        else:
            peer_note = f"PuLP not importable and no peer interpreter at {a.peer_python}; run `make bench-peers`"

    print(f"{'instance':<9} {'reference':>14} {'HiGHS':>16} {'rel.err':>9} {'HiGHS s':>8}" + (f" {'CBC':>16} {'CBC s':>8}" if peer else ""))
    for name, ref, obj, err, secs, st in rows:
        line = f"{name:<9} {ref:>14.3f} {obj:>16.6f} {err:>9.1e} {secs:>8.3f}"
        if peer:
            po, ps = peer[name]
            line += f" {po:>16.6f} {ps:>8.3f}"
        print(line)
    worst = max(r[3] for r in rows)
    print(f"\ninstances: {len(rows)}   all optimal: {all(r[5] == 'optimal' for r in rows)}   worst relative error: {worst:.2e}")
    print(f"HiGHS (highspy) total: {t_highs:.2f} s")
    if peer:
        t_peer = sum(v[1] for v in peer.values())
        peer_err = max(abs(peer[r[0]][0] - r[1]) / r[1] for r in rows)
        print(f"{peer_note} total: {t_peer:.2f} s   worst relative error: {peer_err:.2e}")
        print(f"ratio CBC / HiGHS: {t_peer / t_highs:.2f}x")
    else:
        print(f"peer: {peer_note}")


if __name__ == "__main__":
    main()
