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
