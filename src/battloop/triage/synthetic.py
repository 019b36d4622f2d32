"""Synthetic but plausible triage inputs: dossiers, graded supply at outlets, second-life demands.

Used by the benchmark and by tests at small scale. Places (outlets, demand sites) are
drawn from a table of real coordinates when one is given (e.g. the prefecture-level
cities of China), else uniformly inside mainland China's bounding box. Mixes follow
DOMAIN.md §1 and §4: mostly LFP 48 V packs, some NMC; SOH of retired packs spread
around the 60–80 % band; a few percent of class B/C packs, locks and thermal events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WARRANTIES = ("1 year or 500 cycles to 70%", "2 years or 1,000 cycles to 70%", "3 years or 1,500 cycles to 70%",
              "18 months or 800 cycles to 75%")
APPLICATIONS = ("rural_bts_backup", "micro_grid", "community_storage")


def _places(n: int, rng: np.random.Generator, places: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if places is not None and len(places):
        idx = rng.integers(0, len(places), n)
        lat = places["lat"].to_numpy(dtype=float)[idx] + rng.normal(0, 0.05, n)
        lon = places["lon"].to_numpy(dtype=float)[idx] + rng.normal(0, 0.05, n)
        return lat, lon, idx
    return rng.uniform(21.0, 45.0, n), rng.uniform(98.0, 124.0, n), np.zeros(n, dtype=int)


def synthetic_dossiers(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` dossiers with every column the default policy reads (typed values, not text)."""
    rng = np.random.default_rng(seed)
    chem = rng.choice(np.array(["LFP", "NMC", "NCA", "LMO"], dtype=object), n, p=[0.86, 0.10, 0.03, 0.01])
    soh = np.clip(rng.normal(68, 14, n), 3, 100).round(2)
    spread = np.abs(rng.normal(3.0, 1.5, n))
    return pd.DataFrame({
        "serial": pd.Series(np.arange(n)).map("BL{:09d}".format).to_numpy(dtype=object),
        "chemistry": chem,
        "soh_pct": np.where(rng.random(n) < 0.03, np.nan, soh),
        "ir_ratio": np.where(rng.random(n) < 0.01, np.nan, rng.lognormal(np.log(1.25), 0.18, n).round(3)),
        "safety_class": rng.choice(np.array(["A", "B", "C"], dtype=object), n, p=[0.94, 0.045, 0.015]),
        "soh_p10_pct": np.clip(soh - spread * 1.2816, 0, 120).round(2),
        "soh_p90_pct": np.clip(soh + spread * 1.2816, 0, 120).round(2),
        "age_years": rng.uniform(2, 12, n).round(1),
        "thermal_events": (rng.random(n) < 0.004).astype(float),
        "fault_count": rng.poisson(0.3, n).astype(float),
        "anti_theft_locked": rng.random(n) < 0.02,
        "insulation_ohm_per_v": rng.lognormal(np.log(5e4), 1.0, n).round(0),
        "cell_spread_mv": np.abs(rng.normal(25, 25, n)).round(1),
        "eol_soh_pct": np.where(rng.random(n) < 0.5, 80.0, np.nan),
        "pretreated": rng.random(n) < 0.3,
    })


def synthetic_supply(n_packs: int, n_outlets: int, seed: int = 0, places: pd.DataFrame | None = None) -> pd.DataFrame:
    """Graded class A packs routed to reuse, at ``n_outlets`` outlets (48 V LFP and NMC 100/150 Ah)."""
    rng = np.random.default_rng(seed)
    o_lat, o_lon, _ = _places(n_outlets, rng, places)
    outlet = rng.integers(0, n_outlets, n_packs)
    chem = rng.choice(np.array(["LFP", "NMC"], dtype=object), n_packs, p=[0.9, 0.1])
    rated = rng.choice(np.array([100.0, 150.0]), n_packs, p=[0.75, 0.25])
    soh = np.where(chem == "LFP", rng.uniform(60, 95, n_packs), rng.uniform(80.5, 95, n_packs)).round(2)
    return pd.DataFrame({
        "serial": pd.Series(np.arange(n_packs)).map("SL{:08d}".format).to_numpy(dtype=object),
        "outlet": pd.Series(outlet).map("OUT{:04d}".format).to_numpy(dtype=object),
        "lat": o_lat[outlet], "lon": o_lon[outlet], "chemistry": chem, "soh_pct": soh,
        "capacity_ah": (rated * soh / 100).round(2),
        "ir_mohm": (rng.lognormal(np.log(25.0), 0.12, n_packs) * np.where(rated > 100, 0.7, 1.0)).round(2),
        "nominal_voltage_v": np.where(chem == "LFP", 48.0, 51.8), "safety_class": "A",
    })


def synthetic_demands(n: int, seed: int = 0, places: pd.DataFrame | None = None) -> pd.DataFrame:
    """Second-life demands: rural BTS backup (small), micro-grids and community storage (larger)."""
    rng = np.random.default_rng(seed + 1)
    lat, lon, _ = _places(n, rng, places)
    app = rng.choice(np.array(APPLICATIONS, dtype=object), n, p=[0.6, 0.25, 0.15])
    energy = np.where(app == "rural_bts_backup", rng.choice([15.0, 20.0, 30.0], n),
                      np.where(app == "micro_grid", rng.choice([40.0, 60.0, 80.0], n), rng.choice([60.0, 100.0], n)))
    return pd.DataFrame({
        "demand_id": pd.Series(np.arange(n)).map("D{:05d}".format).to_numpy(dtype=object), "application": app,
        "energy_kwh": energy, "voltage_v": np.where(rng.random(n) < 0.1, 96.0, 48.0),
        "min_soh_pct": np.where(app == "rural_bts_backup", 65.0, 75.0),
        "chemistries": np.where(app == "community_storage", "LFP", np.where(rng.random(n) < 0.5, "LFP", "LFP|NMC")),
        "lat": lat, "lon": lon, "warranty": rng.choice(np.array(WARRANTIES, dtype=object), n),
        "cycles_per_year": np.where(app == "rural_bts_backup", 30.0, np.where(app == "micro_grid", 300.0, 250.0)),
    })


def prefecture_places(path) -> pd.DataFrame:
    """Prefecture-level city coordinates (lat, lon) from the adcode table (GCJ-02, within ~0.5 km of WGS-84)."""
    t = pd.read_csv(path).dropna(subset=["lat_gcj02", "lon_gcj02"])
    return pd.DataFrame({"lat": t["lat_gcj02"].astype(float), "lon": t["lon_gcj02"].astype(float),
                         "name": t["display_name"]})
