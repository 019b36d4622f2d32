"""Shared fixtures of the health tests: the public aging data in long form (cell_id, t, capacity)."""

import os
from pathlib import Path

import pandas as pd
import pytest

SHARED_DATA = Path(os.environ.get("BATTLOOP_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
AGING = SHARED_DATA / "aging"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"public aging data not found at {path} (set BATTLOOP_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def naumann_long() -> pd.DataFrame:
    d = pd.read_csv(_need(AGING / "naumann_lfp_calendar" / "naumann_calendar_observations.csv"))
    return pd.DataFrame({"cell_id": d.condition_id, "t": d.elapsed_days, "capacity": d.capacity_ah,
                         "temperature_c": d.temperature_c, "soc": d.storage_soc_fraction})


@pytest.fixture(scope="session")
def nasa_long() -> pd.DataFrame:
    d = pd.read_csv(_need(AGING / "nasa_pcoe" / "nasa_pcoe_capacity_b5_b6_b7_b18.csv"))
    return pd.DataFrame({"cell_id": d.battery_id, "t": d.discharge_cycle, "capacity": d.capacity_ah})


@pytest.fixture(scope="session")
def hust_long() -> pd.DataFrame:
    d = pd.read_csv(_need(AGING / "hust_lfp" / "hust_77cells_capacity_per_cycle.csv"))
    return pd.DataFrame({"cell_id": d.cell_id, "t": d.cycle, "capacity": d.discharge_capacity_ah})


@pytest.fixture(scope="session")
def oxford_long() -> pd.DataFrame:
    d = pd.read_csv(_need(AGING / "oxford" / "oxford_8cells_capacity_per_100cycles.csv"))
    return pd.DataFrame({"cell_id": d.cell_id, "t": d.cycle, "capacity": d.capacity_mAh / 1000.0})


@pytest.fixture(scope="session")
def naumann_raw() -> pd.DataFrame:
    return pd.read_csv(_need(AGING / "naumann_lfp_calendar" / "naumann_calendar_observations.csv"))


@pytest.fixture(scope="session")
def telecom_profile() -> pd.DataFrame:
    return pd.read_csv(_need(AGING / "blast_telecom_profile" / "Telecom backup power and peak shaving.csv"))
