"""A synthetic but realistic telecom battery fleet. Pure: no Django; deterministic
under a seed.

What it encodes, and why:
- Sites in real prefecture-level cities (:mod:`.geography`), provinces weighted by
  population (2020 census) and, within a province, the capital weighted 3× (tower
  density follows people and traffic).
- Site types in roughly the proportions of a tower company's estate: mostly macro BTS
  and outdoor cabinets, some indoor, rural and off-grid sites, few data centres. The
  battery compartment of an outdoor cabinet runs several °C above ambient; indoor and
  data-centre rooms are conditioned.
- Pack models: 48 V LFP packs of 50/100/150/200 Ah dominate; some NMC; and
  repurposed EV packs (China Tower has used retired EV batteries for backup since 2018),
  which carry the GB/T 34014 code of the EV pack they came from.
- Install dates 2014–2025, rising with the LFP roll-out after 2015; manufacture
  1–6 months before install. Older packs are more often flagged or already removed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .geography import PROVINCES, Prefecture, prefectures

ORGANIZATIONS = [
    # code, name, kind, province
    ("ctc", "China Tower Corporation", "tower_company", ""),
    ("cmcc", "China Mobile", "operator", ""),
    ("cucc", "China Unicom", "operator", ""),
    ("ctcc", "China Telecom", "operator", ""),
    ("shuangdeng", "Jiangsu Shuangdeng Group", "oem", "江苏省"),
    ("narada", "Narada Power Source", "oem", "浙江省"),
    ("zte-energy", "ZTE Energy", "oem", "广东省"),
    ("huawei-dp", "Huawei Digital Power", "oem", "广东省"),
    ("catl", "Contemporary Amperex Technology", "oem", "福建省"),
    ("byd", "BYD", "oem", "广东省"),
    ("brunp", "Guangdong Brunp Recycling", "recycler", "广东省"),
    ("gem", "GEM Co.", "recycler", "湖北省"),
    ("huayou-recycling", "Huayou Recycling", "recycler", "浙江省"),
    ("tower-energy", "Tower Energy Second Life", "second_life_integrator", "北京市"),
    ("sinotrans-dg", "Sinotrans Dangerous Goods Logistics", "logistics_provider", "北京市"),
    ("cqc-audit", "Battery Compliance Audit Ltd", "auditor", "北京市"),
]
WHITELISTED_RECYCLERS = {"brunp", "gem", "huayou-recycling"}

# code, oem, name, chemistry, V, Ah, mass kg, cells, configuration, design life y, BMS protocol, repurposed, weight
def dc_resistance_mohm(rated_ah: float, repurposed_ev: bool) -> float:
    """Datasheet-level DC resistance of a new 48 V pack: about 20 mΩ at 100 Ah (cells, busbars and
    the BMS's switches), inversely with capacity; modules from retired EVs start half as high again."""
    return round(2000.0 / rated_ah * (1.5 if repurposed_ev else 1.0), 1)


PACK_MODELS = [
    ("SD-48100-LFP", "shuangdeng", "6-GFM 48V100Ah LFP", "LFP", 48.0, 100, 45, 15, "15S1P", 10, "YD/T 1363.3", False, 18),
    ("SD-4850-LFP", "shuangdeng", "48V50Ah LFP", "LFP", 48.0, 50, 25, 15, "15S1P", 10, "YD/T 1363.3", False, 8),
    ("ND-48150-LFP", "narada", "48NPFC150 LFP", "LFP", 48.0, 150, 62, 15, "15S1P", 10, "Modbus RTU", False, 10),
    ("ND-48100-LFP", "narada", "48NPFC100 LFP", "LFP", 48.0, 100, 44, 15, "15S1P", 10, "Modbus RTU", False, 12),
    ("ZTE-48100-LFP", "zte-energy", "ZXDC48 100Ah LFP", "LFP", 48.0, 100, 46, 15, "15S1P", 10, "YD/T 1363.3", False, 10),
    ("HW-ESM48100", "huawei-dp", "ESM-48100B1 LFP", "LFP", 48.0, 100, 42, 15, "15S1P", 12, "Modbus RTU", False, 12),
    ("HW-ESM48150", "huawei-dp", "ESM-48150B1 LFP", "LFP", 48.0, 150, 58, 15, "15S1P", 12, "Modbus RTU", False, 6),
    ("CATL-48200-LFP", "catl", "48V200Ah LFP rack pack", "LFP", 51.2, 200, 90, 16, "16S1P", 12, "CAN/Modbus", False, 5),
    ("SD-48100-NMC", "shuangdeng", "48V100Ah NMC", "NMC", 48.1, 100, 32, 13, "13S1P", 8, "YD/T 1363.3", False, 4),
    ("ZTE-4850-NMC", "zte-energy", "48V50Ah NMC", "NMC", 48.1, 50, 17, 13, "13S1P", 8, "YD/T 1363.3", False, 3),
    ("CT-RE-48100-LFP", "byd", "Repurposed EV LFP 48V100Ah", "LFP", 48.0, 100, 50, 15, "15S1P", 6, "YD/T 1363.3", True, 10),
    ("CT-RE-48105-NMC", "catl", "Repurposed EV NMC 48V105Ah", "NMC", 47.0, 105, 38, 13, "13S1P", 5, "YD/T 1363.3", True, 2),
]

# site type: (share, cabinet offset °C, required backup h, load W, pack-count factor)
SITE_TYPES = {
    "macro_bts": (0.44, 3.0, 3.0, 2400.0, 1.0),
    "outdoor_cabinet": (0.30, 7.0, 3.0, 1500.0, 0.75),
    "indoor": (0.09, 1.0, 4.0, 3000.0, 1.25),
    "data_centre": (0.02, 0.0, 0.5, 20000.0, 4.0),
    "rural": (0.12, 5.0, 4.0, 900.0, 0.5),
    "off_grid": (0.03, 8.0, 8.0, 600.0, 1.0),
}
TOWER_TENANTS = ["ctc", "ctc", "ctc", "cmcc", "cucc", "ctcc"]  # most sites are the tower company's


@dataclass(frozen=True)
class Fleet:
    organizations: list[dict]
    models: list[dict]
    sites: list[dict]
    packs: list[dict]


def _ev_code(rng: np.random.Generator, manufacturer: str, chem_letter: str, year: int) -> str:
    """A syntactically valid GB/T 34014 pack code for the EV pack a repurposed pack came from."""
    alnum = list("ABCDEFGHJKLMNPRSTUVWXY0123456789")
    spec = "".join(rng.choice(alnum, 2))
    trace = "".join(rng.choice(alnum, 7))
    year_code = "123456789ABCDEFGHJKLMNPRSTUVWXY"[(year - 2010) % 30]
    month_code = "123456789ABC"[int(rng.integers(0, 12))]
    day_code = "0123456789ABCDEFGHJKLMNPRSTUVWXY"[int(rng.integers(1, 31))]
    serial = f"{int(rng.integers(1, 9_999_999)):07d}"
    return f"{manufacturer}P{chem_letter}{spec}{trace}{year_code}{month_code}{day_code}{serial}"


def generate(sites: int = 400, packs_per_site: float = 4.0, seed: int = 7, today: dt.date = dt.date(2026, 11, 1)) -> Fleet:
    """Build a fleet of about ``sites × packs_per_site`` packs."""
    if sites < 1 or packs_per_site <= 0:
        raise ValueError("sites must be ≥ 1 and packs_per_site > 0")
    rng = np.random.default_rng(seed)
    prefs: tuple[Prefecture, ...] = prefectures()
    per_prov: dict[str, list[Prefecture]] = {}
    for p in prefs:
        per_prov.setdefault(p.province_code, []).append(p)
    weights = []
    for p in prefs:
        pop = PROVINCES[p.province_code][1]
        units = per_prov[p.province_code]
        units_weight = sum(3.0 if u.is_capital else 1.0 for u in units)
        weights.append(pop * (3.0 if p.is_capital else 1.0) / units_weight)
    weights = np.asarray(weights) / np.sum(weights)
    chosen = rng.choice(len(prefs), size=sites, p=weights)

    type_names = list(SITE_TYPES)
    type_p = np.array([SITE_TYPES[t][0] for t in type_names])
    site_types = rng.choice(type_names, size=sites, p=type_p / type_p.sum())
    site_rows = []
    counters: dict[str, int] = {}
    for i in range(sites):
        pref = prefs[chosen[i]]
        stype = str(site_types[i])
        _share, offset, backup, load, _f = SITE_TYPES[stype]
        _n, _pop, mean_t, amp_t, zone = PROVINCES[pref.province_code]
        counters[pref.adcode] = counters.get(pref.adcode, 0) + 1
        # Rural and off-grid sites lie farther from the city centre.
        spread = 0.6 if stype in ("rural", "off_grid") else 0.15
        lat = pref.latitude + float(rng.normal(0, spread))
        lon = pref.longitude + float(rng.normal(0, spread))
        site_rows.append({
            "code": f"{pref.adcode}-{counters[pref.adcode]:05d}",
            "name": f"{pref.name}{stype.replace('_', ' ')} {counters[pref.adcode]}",
            "site_type": stype,
            "latitude": round(lat, 5), "longitude": round(lon, 5),
            "province": pref.province, "prefecture": pref.name, "adcode": pref.adcode,
            "climate_zone": zone,
            "annual_mean_temp_c": round(mean_t + float(rng.normal(0, 0.8)) - max(0.0, (lat - pref.latitude)) * 0.5, 1),
            "temp_amplitude_c": amp_t,
            "cabinet_offset_c": round(offset + float(rng.normal(0, 1.0)), 1) if stype not in ("data_centre", "indoor") else offset,
            "required_backup_hours": backup,
            "load_w": round(load * float(rng.lognormal(0, 0.25))),
            "owner": TOWER_TENANTS[int(rng.integers(0, len(TOWER_TENANTS)))],
        })

    model_w = np.array([m[-1] for m in PACK_MODELS], dtype=float)
    years = np.arange(2014, 2026)
    year_w = np.linspace(0.3, 1.6, len(years)) ** 1.5  # LFP roll-out accelerates after 2015
    pack_rows = []
    serial_no = 0
    for site in site_rows:
        factor = SITE_TYPES[site["site_type"]][4]
        n = max(1, int(rng.poisson(packs_per_site * factor)))
        # A site is usually built out with one model in one campaign, sometimes topped up later.
        base_model = int(rng.choice(len(PACK_MODELS), p=model_w / model_w.sum()))
        base_year = int(rng.choice(years, p=year_w / year_w.sum()))
        for slot in range(1, n + 1):
            serial_no += 1
            m = base_model if rng.random() < 0.8 else int(rng.choice(len(PACK_MODELS), p=model_w / model_w.sum()))
            model = PACK_MODELS[m]
            year = base_year if rng.random() < 0.85 else int(rng.choice(years, p=year_w / year_w.sum()))
            if model[11] and year < 2018:  # repurposed EV packs appear from 2018
                year = int(rng.integers(2018, 2026))
            install = dt.date(year, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
            install = min(install, today - dt.timedelta(days=30))
            manufacture = install - dt.timedelta(days=int(rng.integers(30, 180)))
            age_y = (today - install).days / 365.25
            oem = model[1]
            row = {
                "serial": f"{oem[:2].upper()}{year % 100:02d}{serial_no:08d}",
                "model": model[0],
                "manufacture_date": manufacture.isoformat(),
                "install_date": install.isoformat(),
                "owner": site["owner"],
                "site": site["code"],
                "location": f"slot {slot}",
                "state": "installed",
                "origin": "repurposed_ev" if model[11] else "new",
                "original_identity": _ev_code(rng, "C" + oem[:2].upper(), "B" if model[3] == "LFP" else "E", year - 6) if model[11] else "",
            }
            # Old packs are more often flagged by the operator or already taken out.
            r = rng.random()
            if age_y > 7 and r < 0.15:
                row["state"] = "flagged"
            elif age_y > 8 and r < 0.22:
                row["state"], row["site"], row["location"] = "in_storage", "", f"outlet {site['prefecture']} 1"
            pack_rows.append(row)

    orgs = [{"code": c, "name": n, "kind": k, "province": p, "recycler_whitelisted": c in WHITELISTED_RECYCLERS}
            for c, n, k, p in ORGANIZATIONS]
    models = [{"code": m[0], "oem": m[1], "name": m[2], "chemistry": m[3], "nominal_voltage_v": m[4], "rated_capacity_ah": m[5],
               "energy_kwh": round(m[4] * m[5] / 1000, 3), "mass_kg": m[6], "cell_count": m[7], "cell_configuration": m[8],
               "design_life_years": m[9], "dc_resistance_mohm": dc_resistance_mohm(m[5], m[11]), "bms_protocol": m[10],
               "repurposed_ev": "yes" if m[11] else "no"} for m in PACK_MODELS]
    return Fleet(orgs, models, site_rows, pack_rows)
