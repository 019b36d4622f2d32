"""Synthetic but plausible network-design instances over Chinese prefecture-level cities.

Used by the China-scale benchmark and by demos.  Geography is real (prefecture
seats from an adcode table with lon/lat columns); volumes, costs and capacities
are random draws from a seeded generator and are illustrative only.

Pack mass: a 48 V 100 Ah LFP telecom pack weighs about 45–50 kg, so one tonne is
roughly 20 packs.  Money is in CNY per year: hub fixed costs are annualised,
gate fees are positive when battloop's owner pays (LFP, low metal value) and
negative when the recycler or integrator pays (NMC scrap, second-life packs net
of their repurposing cost).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .network import CandidateHub, Destination, NetworkProblem, NetworkSettings, Source


def read_prefectures(path: str | Path) -> list[dict]:
    """Prefecture seats: dicts with name, province, adcode, lat, lon.

    Accepts the adcode extract (columns ``lon_gcj02``/``lat_gcj02``) or any CSV with
    ``lat``/``lon`` (or ``lng``) columns.
    """
    path = Path(path)
    try:
        fh = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: city table not found") from None
    out = []
    with fh:
        rd = csv.DictReader(fh)
        cols = set(rd.fieldnames or [])
        latc = next((c for c in ("lat_gcj02", "lat", "latitude") if c in cols), None)
        lonc = next((c for c in ("lon_gcj02", "lon", "lng", "longitude") if c in cols), None)
        if not latc or not lonc:
            raise ValueError(f"{path}: needs latitude/longitude columns (lat_gcj02/lon_gcj02 or lat/lon); found {sorted(cols)}")
        for i, row in enumerate(rd, start=2):
            try:
                lat, lon = float(row[latc]), float(row[lonc])
            except (TypeError, ValueError):
                continue  # units without a located seat
            name = row.get("display_name") or row.get("name") or row.get("city") or f"row{i}"
            out.append({"name": name, "province": row.get("province") or row.get("admin_name", ""),
                        "adcode": row.get("adcode", str(i)), "lat": lat, "lon": lon})
    if not out:
        raise ValueError(f"{path}: no rows with coordinates")
    return out


def china_instance(
    cities_csv: str | Path,
    *,
    n_outlets: int = 10_000,
    n_hubs: int = 340,
    n_recyclers: int = 148,
    n_second_life: int = 30,
    seed: int = 7,
    max_hubs_per_group: int | None = 8,
    max_destinations_per_hub: int | None = 20,
) -> NetworkProblem:
    """A China-scale instance: outlets spread over prefectures by a skewed weight,
    one candidate hub per prefecture (cycled if ``n_hubs`` exceeds the cities),
    recyclers and second-life integrators at random prefecture seats;
    3 safety classes × 2 chemistries (LFP, NMC)."""
    rng = np.random.default_rng(seed)
    cities = read_prefectures(cities_csv)
    nC = len(cities)
    lat = np.array([c["lat"] for c in cities])
    lon = np.array([c["lon"] for c in cities])
    # Skewed city weights: eastern, coastal cities carry more sites.
    w = rng.lognormal(0.0, 0.9, nC) * (1.0 + 1.5 * (lon > 110))
    w /= w.sum()
    city_of = rng.choice(nC, size=n_outlets, p=w)
    sources = []
    fleet = np.zeros(nC)
    for i in range(n_outlets):
        c = city_of[i]
        packs = int(rng.poisson(30)) + 1
        fleet[c] += packs * 6  # packs in service behind each retired one (illustrative)
        chem = "NMC" if rng.random() < 0.15 else "LFP"
        n_a, n_b, n_c = rng.multinomial(packs, [0.85, 0.12, 0.03])
        t_pack = 0.048
        sup = {}
        if chem == "LFP":
            reuse = int(rng.binomial(n_a, 0.5))
            if reuse:
                sup[("A", chem, "reuse")] = reuse * t_pack
            if n_a - reuse:
                sup[("A", chem, "recycle")] = (n_a - reuse) * t_pack
        elif n_a:
            sup[("A", chem, "recycle")] = n_a * t_pack
        if n_b:
            sup[("B", chem, "recycle")] = n_b * t_pack
        if n_c:
            sup[("C", chem, "recycle")] = n_c * t_pack
        sources.append(Source(f"O{i:05d}", float(lat[c] + rng.normal(0, 0.15)), float(lon[c] + rng.normal(0, 0.15)),
                              cities[c]["name"], sup))
    total = sum(sum(s.supply_t.values()) for s in sources)
    hubs = []
    for j in range(n_hubs):
        c = j % nC
        share = w[c] * total
        cap = float(max(30.0, share * rng.uniform(1.5, 4.0)))
        allowed = frozenset("ABC") if rng.random() < 0.45 else frozenset("AB")
        hubs.append(CandidateHub(f"H{j:03d}", float(lat[c]), float(lon[c]), cities[c]["name"],
                                 fixed_cost=float(rng.uniform(4e4, 1.2e5)), capacity_t=cap, allowed_classes=allowed,
                                 handling_cost_per_t=float(rng.uniform(80, 200))))
    dests = []
    rc = rng.choice(nC, size=n_recyclers, p=w)
    for r in range(n_recyclers):
        c = rc[r]
        tech = rng.choice(["hydro", "pyro", "direct"], p=[0.6, 0.25, 0.15])
        chems = frozenset({"LFP", "NMC"}) if rng.random() < 0.7 else frozenset({"LFP"} if rng.random() < 0.5 else {"NMC"})
        classes = frozenset("ABC") if rng.random() < 0.5 else frozenset("AB")
        dests.append(Destination(f"R{r:03d}", "recycler", float(lat[c]), float(lon[c]),
                                 capacity_t=float(total / n_recyclers * rng.uniform(1.0, 3.0)),
                                 accepted_chemistries=chems, accepted_classes=classes,
                                 gate_fee_per_t={"LFP": float(rng.uniform(200, 1200)), "NMC": float(rng.uniform(-3000, -1000))},
                                 whitelisted=True, technology=str(tech), prefecture=cities[c]["name"]))
    sc = rng.choice(nC, size=n_second_life, p=w)
    for u in range(n_second_life):
        c = sc[u]
        dests.append(Destination(f"U{u:03d}", "second_life", float(lat[c]), float(lon[c]),
                                 capacity_t=float(total / n_second_life * rng.uniform(0.3, 0.8)),
                                 accepted_chemistries=frozenset({"LFP"}), accepted_classes=frozenset("A"),
                                 gate_fee_per_t={"LFP": float(rng.uniform(-800, -300))}, prefecture=cities[c]["name"]))
    hub_prefs = {h.prefecture for h in hubs}
    pref_fleet = {cities[c]["name"]: int(fleet[c]) for c in range(nC) if fleet[c] > 0 and cities[c]["name"] in hub_prefs}
    return NetworkProblem(sources, hubs, dests, NetworkSettings(), prefecture_fleet=pref_fleet,
                          max_hubs_per_group=max_hubs_per_group, max_destinations_per_hub=max_destinations_per_hub,
                          name=f"china-synthetic-{n_outlets}x{n_hubs}x{n_recyclers}")
