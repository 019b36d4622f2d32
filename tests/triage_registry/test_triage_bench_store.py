"""Bench results stored in the registry: one transaction, bad rows quarantined with file,
row, field and reason, re-import a no-op, each result an inspection event, dossiers using
the latest bench result, and re-triage on the new evidence without ``triage run``."""

from __future__ import annotations

import csv
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from battloop.registry.audit import verify_chains
from battloop.registry.models import Pack, PackEvent
from battloop.triage.bench import import_bench
from battloop.triage.models import BenchResult, TriageDecision
from battloop.triage.registry_triage import BENCH_SOH_BAND_PP, build_dossiers

from triage_world import bench_row, build, write_bench


@pytest.fixture
def world(db, tmp_path):
    return build(tmp_path)


def current(serial):
    return TriageDecision.objects.get(pack__serial=serial, current=True)


def test_store_quarantine_events_and_retriage(world, tmp_path, capsys):
    call_command("triage", "run")
    capsys.readouterr()
    # Nothing measured yet: every retired pack waits for a capacity test.
    assert {d.route for d in TriageDecision.objects.filter(current=True)} == {"hold"}
    assert current("B1").reasons[0]["why"] == "needs capacity test"
    first = write_bench(tmp_path / "bench-1.csv",
                        bench_row("B1", capacity_ah=72),                                   # 72 % → energy storage
                        bench_row("B2", capacity_ah=45, dcir_mohm=24),                     # 45 %, 1.2 × → low-speed
                        bench_row("B3", visual_ok="true", leakage="true"),                 # contradictory inspection
                        bench_row("ZZ9"),                                                  # not in the registry
                        bench_row("B4", dcir_mohm=-3))                                     # negative resistance
    qfile = tmp_path / "q.csv"
    call_command("triage", "grade", "--bench", str(first), "--store", "--quarantine", str(qfile), "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "applied" and out["rows"] == 5 and out["stored"] == 2 and out["quarantined"] == 3
    rows = list(csv.DictReader(qfile.open(encoding="utf-8")))
    by_row = {int(r["row"]): r for r in rows}
    assert set(by_row) == {4, 5, 6} and all(r["file"] == "bench-1.csv" for r in rows)
    assert by_row[4]["field"] == "leakage" and "contradictory inspection" in by_row[4]["reason"]
    assert by_row[5]["field"] == "serial" and "no pack with this serial" in by_row[5]["reason"]
    assert by_row[6]["field"] == "dcir_mohm" and "cannot be negative" in by_row[6]["reason"]

    b1 = BenchResult.objects.get(pack__serial="B1")
    # registry filled rated capacity (100 Ah), 16 cells and 48 V from the pack's model
    assert b1.soh_pct == pytest.approx(72.0) and b1.ocv_cell_v == pytest.approx(52.8 / 16)
    assert b1.insulation_ohm_per_v == pytest.approx(50e6 / 48) and b1.cell_spread_mv == pytest.approx(12.0)
    assert b1.safety_class == "A" and b1.tested_by == "Li Wei" and b1.place == "OUT-GZ-01"
    assert b1.source_file == "bench-1.csv" and b1.source_row == 2 and timezone.localdate(b1.tested_at).isoformat() == "2026-11-20"
    ev = b1.event
    assert ev.kind == PackEvent.Kind.INSPECTION and ev.payload["bench_result"] == b1.pk
    assert ev.payload["safety_class"] == "A" and ev.payload["source"] == {"file": "bench-1.csv", "row": 2,
                                                                          "sha256": b1.source_sha256}
    # Re-triage happened on storing: the measured SOH replaced the missing estimate.
    assert current("B1").route == "reuse_ess" and current("B2").route == "reuse_low_speed"
    assert current("B1").trigger["evidence"] == "bench_result" and current("B1").trigger["bench_result"] == b1.pk
    moved = Pack.objects.get(serial="B1").events.filter(kind="decision").last()
    assert moved.payload["decision"] == "reuse_ess" and moved.payload["previous"] == "hold"
    assert moved.payload["trigger"]["reason"] == "bench result stored"
    assert moved.payload["trigger"]["source"] == "bench-1.csv:2"
    # Quarantined and unknown rows left their packs untouched.
    assert current("B3").route == "hold" and not BenchResult.objects.filter(pack__serial__in=["B3", "B4"]).exists()

    # The same file again changes nothing.
    n_events = PackEvent.objects.count()
    call_command("triage", "grade", "--bench", str(first), "--store", "--json")
    again = json.loads(capsys.readouterr().out)
    assert again["status"] == "unchanged" and BenchResult.objects.count() == 2 and PackEvent.objects.count() == n_events
    # The same rows in another file: recognised row by row.
    copy = tmp_path / "bench-copy.csv"
    kept = [line for line in first.read_text().splitlines() if not line.startswith("B4,")]
    copy.write_text("\n".join(kept + [bench_row("B4", capacity_ah=30)]) + "\n")
    call_command("triage", "grade", "--bench", str(copy), "--store", "--json")
    third = json.loads(capsys.readouterr().out)
    assert third["unchanged"] == 2 and third["stored"] == 1 and third["quarantined"] == 2
    assert BenchResult.objects.count() == 3 and current("B4").route == "reuse_backup"  # 30 % remaining

    # A later inspection finds leakage: the pack leaves reuse for a safety hold, no 'triage run'.
    later = write_bench(tmp_path / "bench-2.csv", bench_row("B1", date="2026-11-22", visual_ok="false", leakage="true"))
    done = import_bench(later)
    assert done.report.applied == 1
    b1_new = BenchResult.objects.filter(pack__serial="B1").first()
    assert b1_new.safety_class == "B" and b1_new.findings == ["leakage"]
    d = current("B1")
    assert d.route == "hold" and [r["rule"] for r in d.reasons] == ["class_b"]
    assert d.inputs["safety_class"] == "B" and d.trigger["bench_result"] == b1_new.pk
    last = Pack.objects.get(serial="B1").events.order_by("seq").last()
    assert last.kind == "decision" and last.payload["previous"] == "reuse_ess" and last.payload["decision"] == "hold"
    assert last.payload["trigger"]["safety_class"] == "B"
    assert not verify_chains().breaks


def test_dossier_uses_latest_bench_result(world, tmp_path):
    write_bench(tmp_path / "a.csv", bench_row("B1", date="2026-11-10", capacity_ah=64, thermal=0, locked="true"),
                bench_row("B2", capacity_ah=50, temp_c=15, thermal=2))
    import_bench(tmp_path / "a.csv")
    write_bench(tmp_path / "b.csv", bench_row("B1", date="2026-11-01", capacity_ah=90))  # older test, stored later
    import_bench(tmp_path / "b.csv")
    d = build_dossiers(Pack.objects.filter(serial__in=["B1", "B2", "B3"])).set_index("serial")
    assert d.loc["B1", "soh_pct"] == pytest.approx(64.0) and d.loc["B1", "soh_source"] == "bench"
    assert d.loc["B1", "soh_p10_pct"] == pytest.approx(64.0 - BENCH_SOH_BAND_PP)
    assert d.loc["B1", "soh_p90_pct"] == pytest.approx(64.0 + BENCH_SOH_BAND_PP)
    assert d.loc["B1", "ir_ratio"] == pytest.approx(1.2) and d.loc["B1", "anti_theft_locked"] == 1.0
    assert d.loc["B1", "cell_spread_mv"] == pytest.approx(12.0)
    # 15 °C test corrected to 25 °C; two thermal events in the BMS history → class C
    assert d.loc["B2", "soh_pct"] == pytest.approx(round(100 * 50 / (1 - 0.06) / 100, 2))
    assert d.loc["B2", "safety_class"] == "C" and d.loc["B2", "thermal_events"] == 2
    assert d.loc["B3", "soh_source"] == "" and d.loc["B3", "safety_class"] == "A"  # no bench: state-based


def test_bench_without_visual_inspection_is_not_class_a(world, tmp_path):
    p = tmp_path / "no-visual.csv"
    p.write_text("serial,capacity_ah,dcir_mohm,baseline_dcir_mohm\nB1,75,22,20\n")
    import_bench(p)
    r = BenchResult.objects.get(pack__serial="B1")
    assert r.safety_class == "" and r.class_rules == "not_judged"
    call_command("triage", "run")
    d = current("B1")
    assert d.route == "hold" and d.reasons[0]["rule"] == "safety_class_missing"


def test_registry_checks_and_whole_file_errors(world, tmp_path):
    p = tmp_path / "chem.csv"
    p.write_text("serial,chemistry,capacity_ah,visual_ok\nB1,NMC,70,true\nN1,,40,true\nB2,LFP,70,true\nB2,LFP,71,true\n")
    done = import_bench(p)
    assert done.report.applied == 2 and done.report.quarantined == 2
    errs = {(e.row, e.field): e.reason for e in done.report.first_errors}
    assert "registry's model LFP100 is LFP" in errs[(2, "chemistry")]
    assert "more than once" in errs[(5, "serial")]
    n1 = BenchResult.objects.get(pack__serial="N1")
    assert n1.soh_pct == pytest.approx(80.0)  # NMC50: 40 Ah of 50 Ah rated, chemistry from the registry
    bad = tmp_path / "typo.csv"
    bad.write_text("serial,leakge\nB3,true\n")
    with pytest.raises(CommandError, match=r"unknown column 'leakge' \(did you mean 'leakage'\?\)"):
        call_command("triage", "grade", "--bench", str(bad), "--store")
    assert not BenchResult.objects.filter(pack__serial="B3").exists()


def test_bench_capture_fills_bms_history(db, tmp_path):
    import os
    from pathlib import Path

    shared = Path(os.environ.get("BATTLOOP_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    capture = shared / "telemetry" / "pylontech_console" / "US"
    build(tmp_path, serials=("Pxxxxxxxxxxxxxx8", "Pxxxxxxxxxxxxxx7"), nmc=())
    p = tmp_path / "bench-us.csv"
    p.write_text("serial,capacity_ah,visual_ok,fault_count\nPxxxxxxxxxxxxxx8,70,true,\nPxxxxxxxxxxxxxx7,68,true,5\n")
    done = import_bench(p, captures=[capture])
    assert done.report.applied == 2
    r8 = BenchResult.objects.get(pack__serial="Pxxxxxxxxxxxxxx8")
    r7 = BenchResult.objects.get(pack__serial="Pxxxxxxxxxxxxxx7")
    # the console's stat counters (module 3: 685 cycles, 81 protections, no faults)
    assert r8.cycle_count == 685 and r8.protection_count == 81 and r8.fault_count == 0 and r8.safety_class == "A"
    # the sheet wins where it has a value: 5 faults recorded at the bench → class B
    assert r7.cycle_count == 656 and r7.fault_count == 5 and r7.safety_class == "B"
    # the same sheet without the capture is another reading of the pack: not a no-op
    again = import_bench(p)
    assert again.report.status == "applied" and again.report.applied == 2
    assert BenchResult.objects.filter(pack__serial="Pxxxxxxxxxxxxxx8").first().cycle_count is None
