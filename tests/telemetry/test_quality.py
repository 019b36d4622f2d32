import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from battloop.telemetry import quality
from battloop.telemetry.schema import QUARANTINE_SCHEMA, READING_SCHEMA, Quality, readings_from_rows

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 6, 1, tzinfo=UTC)


def T(minute):
    return dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC) + dt.timedelta(minutes=minute)


def row(**kw):
    base = dict(ts=T(0), pack_serial="A", site_code="S1", source="csv", voltage_v=53.0)
    base.update(kw)
    return base


def check(rows, **kw):
    return quality.check(readings_from_rows(rows), now=NOW, origin="f.csv", **kw)


@pytest.mark.parametrize("bad,reason,field", [
    (dict(quality=int(Quality.INVALID_VALUE)), "unparsable value", None),
    (dict(pack_serial=None), "missing pack serial", "pack_serial"),
    (dict(pack_serial="  "), "missing pack serial", "pack_serial"),
    (dict(ts=dt.datetime(1970, 1, 1, tzinfo=UTC)), "timestamp at epoch zero (clock not set)", "ts"),
    (dict(ts=dt.datetime(2031, 1, 1, tzinfo=UTC)), "timestamp in the future", "ts"),
    (dict(soc_pct=float("nan")), "not a finite number", "soc_pct"),
    (dict(current_a=float("inf")), "not a finite number", "current_a"),
    (dict(voltage_v=53200.0), "out of range [0, 1000]", "voltage_v"),  # mV in a V column
    (dict(cell_v_max=3320.0), "out of range [0.5, 5]", "cell_v_max"),
    (dict(temp_max_c=301.5), "out of range [-50, 120]", "temp_max_c"),  # K in a °C column
    (dict(cycle_count=-1), "out of range [0, 100000]", "cycle_count"),
])
def test_each_rejection_reason(bad, reason, field):
    acc, quar, rep = check([row(ts=T(1)), row(**{"ts": T(2), **bad})])
    assert acc.num_rows == 1 and quar.num_rows == 1
    q = quar.to_pylist()[0]
    assert (q["reason"], q["field"], q["row_index"], q["origin"]) == (reason, field, 2, "f.csv")
    assert rep.by_reason == {reason: 1}
    assert quar.schema == QUARANTINE_SCHEMA and acc.schema == READING_SCHEMA


def test_unknown_serials_are_quarantined_and_offered_for_registration():
    acc, quar, rep = check([row(pack_serial="A"), row(pack_serial="NEW1"), row(pack_serial="NEW2", ts=T(1))],
                           known_serials={"A"})
    assert acc.column("pack_serial").to_pylist() == ["A"]
    assert rep.unknown_serials == ["NEW1", "NEW2"]
    assert "2 unknown serials could be registered" == rep.as_dict()["offer"]


def test_identity_conflict_against_registry_slot_map():
    rows = [row(pack_serial="A", slot=1), row(pack_serial="SWAPPED", slot=2), row(pack_serial="B", slot=3)]
    acc, quar, _ = check(rows, expected_serial={("S1", 1): "A", ("S1", 2): "B"})
    assert quar.to_pylist()[0]["reason"] == "identity conflict"
    assert quar.to_pylist()[0]["pack_serial"] == "SWAPPED"
    assert sorted(acc.column("pack_serial").to_pylist()) == ["A", "B"]


def test_duplicates_in_batch_and_against_stored_keys():
    rows = [row(ts=T(0)), row(ts=T(1)), row(ts=T(0), voltage_v=53.5), row(ts=T(0), source="mqtt")]
    acc, quar, _ = check(rows)
    assert quar.column("reason").to_pylist() == ["duplicate (pack_serial, ts, source)"]
    assert quar.column("row_index").to_pylist() == [3]  # the first copy is kept
    stored = pa.table({"pack_serial": ["A"], "ts": pa.array([T(1)], READING_SCHEMA.field("ts").type),
                       "source": ["csv"]})
    acc2, quar2, _ = check([row(ts=T(1)), row(ts=T(2))], seen_keys=stored)
    assert quar2.column("reason").to_pylist() == ["duplicate of a stored reading"]
    assert acc2.num_rows == 1


def test_out_of_order_is_accepted_with_flag():
    rows = [row(ts=T(0)), row(ts=T(5)), row(ts=T(3)), row(pack_serial="B", ts=T(1))]
    acc, quar, rep = check(rows, last_ts={"B": T(2)})
    assert quar.num_rows == 0
    flagged = {(r["pack_serial"], r["ts"]) for r in acc.to_pylist() if r["quality"] & Quality.OUT_OF_ORDER}
    assert flagged == {("A", T(3)), ("B", T(1))}
    assert rep.out_of_order == 2
    # accepted rows come sorted by pack then time, ready for the lake
    assert [(r["pack_serial"], r["ts"]) for r in acc.to_pylist()] == [("A", T(0)), ("A", T(3)), ("A", T(5)),
                                                                      ("B", T(1))]


def test_nothing_is_lost_on_a_large_random_batch():
    rng = np.random.default_rng(3)
    n = 200_000
    ts = pa.array(1_714_557_600_000_000 + rng.integers(0, 10_000, n) * 60_000_000, pa.int64()).cast(
        READING_SCHEMA.field("ts").type)
    volts = rng.normal(53, 1, n)
    volts[rng.integers(0, n, 500)] = np.nan
    volts[rng.integers(0, n, 500)] = 53000.0
    t = pa.table({"ts": ts, "pack_serial": pa.array([f"P{i}" for i in rng.integers(0, 2000, n)]),
                  "source": pa.array(["csv"] * n), "voltage_v": volts})
    from battloop.telemetry.schema import conform
    acc, quar, rep = quality.check(conform(t), now=NOW)
    assert acc.num_rows + quar.num_rows == n
    assert rep.by_reason["out of range [0, 1000]"] <= 500
    assert 400 < rep.by_reason["not a finite number"] <= 500
    # no duplicate key survives
    keys = acc.select(["pack_serial", "ts"]).group_by(["pack_serial", "ts"]).aggregate([([], "count_all")])
    assert keys.num_rows == acc.num_rows
