import os
import subprocess
import sys
from pathlib import Path

import pytest

from battloop.demo.build import load_fleet, summary
from battloop.demo.fleet import generate
from battloop.registry.audit import verify_chains
from battloop.registry.models import Pack, Site


@pytest.mark.django_db
def test_fleet_loads_through_import_path(tmp_path):
    fleet = generate(60, 3, seed=11)
    reports = load_fleet(fleet, tmp_path)
    assert [r.quarantined for r in reports] == [0, 0, 0]
    assert Pack.objects.count() == len(fleet.packs) and Site.objects.count() == 60
    s = summary()
    assert sum(n for _, n in s["state"]) == len(fleet.packs)
    assert not verify_chains().breaks
    assert (tmp_path / "packs.csv").exists()


def test_battloop_cli_help_and_demo_no_serve(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("BATTLOOP_DATABASE_URL", "BATTLOOP_DATA_DIR")}
    exe = Path(sys.executable).with_name("battloop")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0
    for verb in ("import-packs", "import-sites", "verify-chain", "demo", "serve", "transition"):
        assert f"  {verb} " in out.stdout
    data = tmp_path / "demo"
    out = subprocess.run([exe, "demo", "--no-serve", "--sites", "40", "--packs-per-site", "2", "--data-dir", str(data)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "packs by state" in out.stdout and "demo login: demo / " in out.stdout
    assert (data / "battloop.sqlite3").exists()
    # Rebuilding is fresh, not additive.
    again = subprocess.run([exe, "demo", "--no-serve", "--sites", "40", "--packs-per-site", "2", "--data-dir", str(data)],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    head = again.stdout.split("packs by state")[0]
    assert again.returncode == 0 and "import packs: 80" not in head and head.count(" 0 quarantined") == 3  # fresh, not additive
    assert "telemetry:" in head and "readings in the lake" in head
    verify = subprocess.run([exe, "verify-chain"], capture_output=True, text=True, env={**env, "BATTLOOP_DATA_DIR": str(data)}, cwd=tmp_path, timeout=120)
    assert verify.returncode == 0 and " 0 broken" in verify.stdout
