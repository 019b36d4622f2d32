"""Fleet forecast benchmark: 2,000,000 packs, 15 years ahead, monthly, with P10/P50/P90.

Usage (main environment)::

    .venv/bin/python benchmarks/fleet_forecast.py                 # 2 M packs, 180 months, 2 workers
    .venv/bin/python benchmarks/fleet_forecast.py --packs 200000  # smaller run

What is timed: for every pack, the aging model (battloop.health.models) is
continued from the pack's present aging state through 180 monthly steps of its
site's seasonal temperature (+ cabinet offset), float SOC and outage cycling;
SOH P10/P50/P90 for every month, resistance P10/P50/P90 for every year and the
P10/P50/P90 month of crossing 80/70/60/20 % are computed from each pack's
posterior rate multiplier (battloop.health.forecast.forecast_fleet_periodic, the
climate-normal fast path of forecast_packs; the unit tests check both agree). SOH
quantiles are kept for the whole fleet in shared memory (uint16, 0.01 pp).

Peak memory is the peak over the run of the summed proportional set size
(PSS, /proc/PID/smaps_rollup) of this process and its workers, so shared
memory is counted once.

Peer: NREL BLAST-Lite (PyPI ``blast-lite``; it pins numpy<2, so it lives in the
side environment ``.venv-peers``). When that interpreter exists, the same
script is re-run inside it with ``--peer-only``: it simulates a sample of the
same packs (same seed, same conditions, daily input, 15 years) with
``Lfp_Gr_SonyMurata3Ah_Battery`` one pack at a time -- BLAST-Lite's API is per
cell -- and the speed ratio per pack is printed, with the agreement of the
15-year capacities as a sanity check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

N_MONTHS_DEFAULT = 180
THRESHOLDS = (0.8, 0.7, 0.6, 0.2)


def fleet_conditions(n: int, seed: int = 2026):
    """Synthetic but plausible conditions for n packs (numpy only; shared by main and peer mode)."""
    rng = np.random.default_rng(seed)
    return {
        "climate_mean_c": rng.uniform(8.0, 26.0, n),  # annual mean air temperature (Harbin .. Hainan)
        "climate_amp_c": rng.uniform(2.0, 16.0, n),  # half of the annual range
        "cabinet_offset_c": rng.uniform(2.0, 8.0, n),  # outdoor cabinet above ambient
        "soc_float": rng.uniform(0.95, 1.0, n),
        "outages_per_year": rng.gamma(2.0, 6.0, n),
        "outage_dod": rng.uniform(0.2, 0.8, n),
        "years_in_service": rng.uniform(0.0, 8.0, n),
        "log_m_mean": rng.normal(0.0, 0.2, n),
        "log_m_sd": rng.uniform(0.05, 0.3, n),
    }


def monthly_temps(c, sl, n_months):
    months = np.arange(n_months) % 12 + 1
    cyc = np.cos(2 * np.pi * (months - 7) / 12.0)
    return (c["climate_mean_c"][sl, None] + c["cabinet_offset_c"][sl, None]) + c["climate_amp_c"][sl, None] * cyc[None, :]


# ---------------------------------------------------------------- main environment


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


class PeakMemory(threading.Thread):
    """Samples the summed PSS of this process and its children every 50 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_kb = 0
        self.stop = False

    def run(self):
        me = os.getpid()
        while not self.stop:
            pids = [me]
            try:
                with open(f"/proc/{me}/task/{me}/children") as f:
                    pids += [int(p) for p in f.read().split()]
            except OSError:
                pass
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in pids))
            time.sleep(0.05)


_G = {}


def _init_worker(shm_name, shape, cross_name, cross_shape, res_name, res_shape, n, n_months, seed):
    from multiprocessing import shared_memory

    _G["shm"] = shared_memory.SharedMemory(name=shm_name)
    _G["soh"] = np.ndarray(shape, dtype=np.uint16, buffer=_G["shm"].buf)
    _G["shm2"] = shared_memory.SharedMemory(name=cross_name)
    _G["cross"] = np.ndarray(cross_shape, dtype=np.float32, buffer=_G["shm2"].buf)
    _G["shm3"] = shared_memory.SharedMemory(name=res_name)
    _G["res"] = np.ndarray(res_shape, dtype=np.float16, buffer=_G["shm3"].buf)
    _G["cond"] = fleet_conditions(n, seed)
    _G["n_months"] = n_months


def _work(bounds):
    from battloop.health.forecast import forecast_fleet_periodic
    from battloop.health.models import AgingState, calendar_rate, cycle_rate, get_parameters, resistance_rate

    lo, hi = bounds
    c = _G["cond"]
    sl = slice(lo, hi)
    n_months = _G["n_months"]
    p = get_parameters("LFP")
    # present aging state: the years in service at the site's mean cabinet temperature (virtual time)
    t_mean = c["climate_mean_c"][sl] + c["cabinet_offset_c"][sl]
    days = c["years_in_service"][sl] * 365.25
    efc_month = c["outages_per_year"][sl] * c["outage_dod"][sl] / 12.0
    efc_done = efc_month * days / (365.25 / 12)
    state = AgingState(s_cal=calendar_rate(p, t_mean, c["soc_float"][sl]) ** (1.0 / p.p_cal) * days,
                       s_cyc=cycle_rate(p, t_mean, c["outage_dod"][sl]) ** (1.0 / p.p_cyc) * efc_done,
                       s_res=resistance_rate(p, t_mean, c["soc_float"][sl]) ** (1.0 / p.p_res) * days, efc=efc_done)
    _, res, cross = forecast_fleet_periodic("LFP", c["log_m_mean"][sl], c["log_m_sd"][sl], monthly_temps(c, sl, 12), n_months,
                                            soc_float=c["soc_float"][sl], efc_per_month=efc_month, dod=c["outage_dod"][sl],
                                            state=state, thresholds=THRESHOLDS, soh_out=_G["soh"][:, lo:hi, :])
    _G["res"][:, lo:hi, :] = res.astype(np.float16)
    for j, thr in enumerate(THRESHOLDS):
        _G["cross"][j, :, lo:hi] = cross[thr]
    return hi - lo


def run_main(args):
    from multiprocessing import get_context, shared_memory

    n, n_months = args.packs, args.months
    mon = PeakMemory()
    mon.start()
    t0 = time.perf_counter()
    shape = (3, n, n_months)
    shm = shared_memory.SharedMemory(create=True, size=int(np.prod(shape)) * 2)
    cross_shape = (len(THRESHOLDS), 3, n)
    shm2 = shared_memory.SharedMemory(create=True, size=int(np.prod(cross_shape)) * 4)
    n_years = n_months // 12
    res_shape = (3, n, n_years)
    shm3 = shared_memory.SharedMemory(create=True, size=max(int(np.prod(res_shape)) * 2, 1))
    try:
        chunks = [(lo, min(lo + args.chunk, n)) for lo in range(0, n, args.chunk)]
        ctx = get_context("fork")
        with ctx.Pool(args.workers, initializer=_init_worker,
                      initargs=(shm.name, shape, shm2.name, cross_shape, shm3.name, res_shape, n, n_months, args.seed)) as pool:
            done = sum(pool.imap_unordered(_work, chunks))
        elapsed = time.perf_counter() - t0
        mon.stop = True
        mon.join()
        soh = np.ndarray(shape, dtype=np.uint16, buffer=shm.buf)
        cross = np.ndarray(cross_shape, dtype=np.float32, buffer=shm2.buf)
        final_p50 = soh[1, :, -1].astype(np.float64) / 10000
        print(f"packs forecast:        {done:,} x {n_months} months (P10/P50/P90 SOH monthly, resistance yearly, 4 thresholds)")
        print(f"wall time:             {elapsed:.1f} s on {args.workers} worker(s), chunk {args.chunk:,}")
        print(f"throughput:            {done / elapsed:,.0f} packs/s ({done * n_months / elapsed / 1e6:.1f} M pack-months/s)")
        print(f"peak memory (sum PSS): {mon.peak_kb / 1024 / 1024:.2f} GB")
        print(f"fleet SOH P50 at {n_months // 12} y: median {np.median(final_p50):.3f}, share below 80 %: {np.mean(final_p50 < 0.8):.1%}")
        c80 = cross[0, 1]
        print(f"packs crossing 80 % within the horizon (P50): {np.isfinite(c80).mean():.1%}")
        result = {"packs": done, "months": n_months, "seconds": elapsed, "peak_pss_gb": mon.peak_kb / 1024 / 1024}
    finally:
        for s in (shm, shm2, shm3):
            s.close()
            s.unlink()
    return result


# ---------------------------------------------------------------- peer (side environment)


def run_peer(args):
    """Runs inside .venv-peers: BLAST-Lite on a sample of the same packs, one at a time."""
    from blast import models  # noqa: PLC0415 - only available in the side environment

    n_months = args.months
    c = fleet_conditions(args.packs, args.seed)
    idx = np.linspace(0, args.packs - 1, args.sample).astype(int)
    days = int(round(n_months * 365.25 / 12))
    t_s = np.arange(days + 1) * 86400.0
    month_of_day = ((np.arange(days + 1) / (365.25 / 12)).astype(int) % 12) + 1
    q_end, secs = [], []
    for i in idx:
        temp = (c["climate_mean_c"][i] + c["cabinet_offset_c"][i]
                + c["climate_amp_c"][i] * np.cos(2 * np.pi * (month_of_day - 7) / 12.0))
        soc = np.full(days + 1, c["soc_float"][i])
        # outages as SOC dips of the pack's DOD, evenly spread
        n_out = int(c["outages_per_year"][i] * days / 365.25)
        if n_out:
            soc[np.linspace(1, days - 1, n_out).astype(int)] -= c["outage_dod"][i]
        cell = models.Lfp_Gr_SonyMurata3Ah_Battery(degradation_scalar=float(np.exp(c["log_m_mean"][i])))
        t0 = time.perf_counter()
        cell.simulate_battery_life({"Time_s": t_s, "SOC": soc, "Temperature_C": temp})
        secs.append(time.perf_counter() - t0)
        q_end.append(float(cell.outputs["q"][-1]))
    print(json.dumps({"sample": int(len(idx)), "seconds_per_pack": float(np.mean(secs)), "q_end": q_end, "idx": idx.tolist()}))


def ours_for_sample(args, idx):
    """Our P50 path for the peer's sample packs, new packs (no history), daily-equivalent monthly steps."""
    from battloop.health.models import simulate_aging

    c = fleet_conditions(args.packs, args.seed)
    idx = np.asarray(idx)
    sl = idx
    months = np.arange(args.months) % 12 + 1
    cyc = np.cos(2 * np.pi * (months - 7) / 12.0)
    temp = (c["climate_mean_c"][sl] + c["cabinet_offset_c"][sl])[:, None] + c["climate_amp_c"][sl][:, None] * cyc
    efc = (c["outages_per_year"][sl] * c["outage_dod"][sl] / 12.0)[:, None] * np.ones(args.months)
    res = simulate_aging("LFP", temp, c["soc_float"][sl][:, None], efc, c["outage_dod"][sl][:, None], 365.25 / 12,
                         np.exp(c["log_m_mean"][sl])[:, None])
    return res.q[:, -1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packs", type=int, default=2_000_000)
    ap.add_argument("--months", type=int, default=N_MONTHS_DEFAULT)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=25_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--sample", type=int, default=20, help="packs simulated by the peer")
    ap.add_argument("--peer-python", default=str(Path(__file__).resolve().parents[1] / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--peer-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args(argv)
    if args.peer_only:
        run_peer(args)
        return 0
    src = Path(__file__).resolve().parents[1] / "src"
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    ours = run_main(args)
    if args.no_peer:
        return 0
    if not Path(args.peer_python).exists():
        print(f"peer: BLAST-Lite not run ({args.peer_python} missing; create it with `make bench-peers`)")
        return 0
    cmd = [args.peer_python, __file__, "--peer-only", "--packs", str(args.packs), "--months", str(args.months),
           "--seed", str(args.seed), "--sample", str(args.sample)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"peer: BLAST-Lite failed:\n{out.stderr.strip()[-2000:]}")
        return 1
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    per_pack_ours = ours["seconds"] / ours["packs"]
    print(f"peer BLAST-Lite (Lfp_Gr_SonyMurata3Ah, daily input, one pack at a time): {peer['seconds_per_pack'] * 1000:.1f} ms/pack "
          f"on a sample of {peer['sample']} (peer run {time.perf_counter() - t0:.0f} s)")
    print(f"  ours: {per_pack_ours * 1e6:.2f} us/pack  ->  speed ratio {peer['seconds_per_pack'] / per_pack_ours:,.0f}x per pack")
    print(f"  BLAST-Lite would need {peer['seconds_per_pack'] * ours['packs'] / 3600:.1f} h for the fleet on one core")
    q_ours = ours_for_sample(args, peer["idx"])
    q_peer = np.array(peer["q_end"], dtype=float)
    ok = np.isfinite(q_peer)
    diff = 100 * (q_ours[ok] - q_peer[ok])
    bad = f" ({(~ok).sum()} BLAST-Lite result(s) NaN, left out)" if (~ok).any() else ""
    if ok.any():
        print(f"  15-year capacity, ours minus BLAST-Lite (new packs): mean {diff.mean():+.2f} pp, MAE {np.abs(diff).mean():.2f} pp{bad}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
