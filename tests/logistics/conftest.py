from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def netopt(shared_data) -> Path:
    folder = shared_data / "netopt"
    if not folder.is_dir():
        pytest.fail(f"benchmark data not found at {folder} (set BATTLOOP_SHARED_DATA)")
    return folder
