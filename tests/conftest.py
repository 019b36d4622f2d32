"""Test configuration shared by all packages.

The suite runs against SQLite by default and against PostgreSQL when
BATTLOOP_DATABASE_URL=postgresql://… is set (``make test`` runs both).
Real public data is read from ../shared/data (BATTLOOP_SHARED_DATA overrides).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Each test session gets its own data directory so tests never touch a user's instance.
os.environ.setdefault("BATTLOOP_DATA_DIR", tempfile.mkdtemp(prefix="battloop-test-"))

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BATTLOOP_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set BATTLOOP_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing strength is Django's default in production; tests only need speed.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def demo_instance(db, tmp_path, monkeypatch):
    """Build a small demo fleet with its simulated telemetry in this test's database and
    lake: ``demo_instance(sites, seed)`` returns the fleet."""
    import datetime as dt

    from battloop.demo.build import load_fleet, load_telemetry
    from battloop.demo.fleet import generate

    monkeypatch.setenv("BATTLOOP_LAKE_DIR", str(tmp_path / "lake"))
    today = dt.date(2026, 11, 1)

    def build(sites: int, seed: int):
        fleet = generate(sites, 3, seed=seed, today=today)
        load_fleet(fleet, tmp_path)
        load_telemetry(fleet, tmp_path, today, seed=seed)
        return fleet

    return build
