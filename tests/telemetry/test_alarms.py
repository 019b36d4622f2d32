import datetime as dt

import numpy as np
import pytest

from battloop.telemetry import alarms
from battloop.telemetry.schema import readings_from_rows

UTC = dt.timezone.utc
T = dt.datetime(2024, 5, 1, tzinfo=UTC)


def test_decode_bitmaps_named_and_unnamed_bits():
    assert alarms.decode_bitmap(0b1000001, "pace.protection") == ["pace.protection.cell_overvoltage",
                                                                 "pace.protection.short_circuit"]
    assert alarms.decode_bitmap(0x8000, "pace.protection") == ["pace.protection.bit15"]  # reserved, kept
    assert alarms.decode_bitmap(0x0C00, "pace.status", shift=8) == ["pace.status.charge_mosfet_on",
                                                                   "pace.status.discharge_mosfet_on"]
    with pytest.raises(alarms.RuleError, match="unknown alarm bit set"):
        alarms.decode_bitmap(1, "nope")


def test_decode_bitmap_array_matches_scalar():
    vals = np.array([0, 1, 0x41, 1, 0])
    assert alarms.decode_bitmap_array(vals, "pace.warning") == [alarms.decode_bitmap(int(v), "pace.warning")
                                                                for v in vals]


def test_threshold_rules_from_data():
    t = readings_from_rows([
        dict(ts=T, pack_serial="HOT", temp_max_c=52.0, soh_pct=95.0, cell_v_min=3.30, cell_v_max=3.31),
        dict(ts=T, pack_serial="IMB", temp_max_c=30.0, soh_pct=95.0, cell_v_min=3.10, cell_v_max=3.35),
        dict(ts=T, pack_serial="OLD", temp_max_c=30.0, soh_pct=72.0),
        dict(ts=T, pack_serial="LOCK", alarm_codes=["huawei_esm.alarm.anti_theft_locked"]),
        dict(ts=T, pack_serial="OK", temp_max_c=30.0, soh_pct=99.0, cell_v_min=3.30, cell_v_max=3.31),
    ])
    hits = alarms.evaluate_thresholds(t)
    got = sorted(zip(hits.column("pack_serial").to_pylist(), hits.column("code").to_pylist()))
    assert got == [("HOT", "over_temperature"), ("IMB", "cell_imbalance"), ("LOCK", "anti_theft_locked"),
                   ("OLD", "low_soh")]
    imb = [r for r in hits.to_pylist() if r["code"] == "cell_imbalance"][0]
    assert imb["value"] == pytest.approx(0.25)


def test_no_data_and_transitions():
    now = T + dt.timedelta(hours=30)
    stale = alarms.no_data({"A": T, "B": now - dt.timedelta(hours=1)}, now)
    assert [(s["pack_serial"], s["code"], round(s["hours"])) for s in stale] == [("A", "no_data", 30)]
    ev = alarms.transitions({("A", "no_data"), ("B", "low_soh")}, {("A", "no_data"), ("C", "over_temperature")}, now)
    assert [(e["pack_serial"], e["event"]) for e in ev] == [("C", "open"), ("B", "clear")]


def test_bad_rules_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("rules:\n  - code: x\n    when: {column: soh_pct, op: '=~', value: 1}\n")
    with pytest.raises(alarms.RuleError, match="rule 1 \\(x\\): operator"):
        alarms.load_rules(p)
