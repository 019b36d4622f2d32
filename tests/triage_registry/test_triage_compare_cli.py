"""The issue's short form ``battloop triage --policy new.yaml --compare current``: what
would change on the registry's packs, how many packs per route move, and why."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from battloop.triage.bench import import_bench
from battloop.triage.models import TriageDecision
from battloop.triage.policy import default_policy_path

from triage_world import bench_row, build, write_bench


@pytest.fixture
def strict(tmp_path) -> Path:
    original = default_policy_path().read_text()
    text = original.replace("when: {chemistry: LFP, soh_pct: {ge: 60}}", "when: {chemistry: LFP, soh_pct: {ge: 78}}")
    text = text.replace('version: "2026.11.1"', 'version: "2026.11.1-strict"')
    assert text != original
    (tmp_path / "strict.yaml").write_text(text)
    return tmp_path / "strict.yaml"


def test_short_form_compares_on_the_registry(db, tmp_path, strict):
    build(tmp_path)
    import_bench(write_bench(tmp_path / "b.csv", bench_row("B1", capacity_ah=72), bench_row("B2", capacity_ah=79),
                             bench_row("B3", capacity_ah=45, dcir_mohm=24)))
    call_command("triage", "run", stdout=io.StringIO())
    before = TriageDecision.objects.count()
    out = io.StringIO()
    call_command("triage", "--policy", str(strict), "--compare", "current", "--json", stdout=out)
    res = json.loads(out.getvalue())
    assert res["old"].startswith("battloop-default@2026.11.1#") and "strict" in res["new"]
    assert res["packs"] == 5 and res["changed"] == 1  # B1 at 72 % leaves energy storage; B2 at 79 % stays
    [move] = res["moves"]
    assert move["from"] == "reuse_ess" and move["packs"] == 1 and move["why"][0]["examples"] == ["B1"]
    assert move["why"][0]["old_rules"] == "lfp_reuse_ess"
    assert res["routes_before"]["reuse_ess"] - res["routes_after"]["reuse_ess"] == 1
    # the same as the long form, and nothing stored
    long = io.StringIO()
    call_command("triage", "registry-compare", "--policy", str(strict), "--against", "current", "--json", stdout=long)
    assert json.loads(long.getvalue()) == res and TriageDecision.objects.count() == before
    text = io.StringIO()
    call_command("triage", "--policy", str(strict), "--compare", "current", stdout=text)
    t = text.getvalue()
    assert "1 of 5 packs change route" in t and "reuse_ess" in t and "(-1)" in t and "was lfp_reuse_ess" in t
    with pytest.raises(CommandError, match="--compare current"):
        call_command("triage", "--policy", str(strict))
    with pytest.raises(CommandError, match="put them after 'run'"):
        call_command("triage", "--policy", str(strict), "--compare", "current", "run")


def test_short_form_through_the_battloop_command(tmp_path, strict):
    """The exact command line of the issue, through the installed ``battloop`` entry point."""
    exe = Path(sys.executable).with_name("battloop")
    env = {**os.environ, "BATTLOOP_DATA_DIR": str(tmp_path / "data")}
    env.pop("BATTLOOP_DATABASE_URL", None)  # a fresh SQLite instance of its own
    r = subprocess.run([str(exe), "triage", "--policy", str(strict), "--compare", "current"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "battloop-default@2026.11.1#" in r.stdout and "0 of 0 packs change route" in r.stdout
    r = subprocess.run([str(exe), "triage", "--policy", str(tmp_path / "missing.yaml"), "--compare", "current"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "missing.yaml" in r.stderr
