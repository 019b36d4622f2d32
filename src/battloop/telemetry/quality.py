"""Data-quality checks on canonical readings, vectorized; nothing is dropped silently.

``check`` splits a readings table into *accepted* rows (sorted by pack, then time,
ready for the lake) and a *quarantine* table holding every rejected row with its
``reason``, the ``field`` at fault, its ``row_index`` in the input and its ``origin``
(file or stream). Checks, in order (a row gets the first reason that applies):

1. ``unparsable value`` — a reader could not parse a field (``INVALID_VALUE`` bit)
2. ``missing pack serial``
3. ``timestamp at epoch zero`` (before 2000-01-01: an unset BMS/FSU clock) and
   ``timestamp in the future`` (beyond ``now + max_clock_skew``)
4. ``not a finite number`` (NaN/inf) per numeric column
5. ``out of range`` per column (:data:`RANGES`; catches unit mix-ups such as mV in a
   V column)
6. ``unknown serial`` (given the registry's known serials; the report offers them
   for registration)
7. ``identity conflict`` — the BMS reports a serial other than the pack the registry
   has at that (site, slot)
8. ``duplicate`` of (pack_serial, ts, source) in the batch or in ``seen_keys``

Rows not newer than data already seen for the pack (``last_ts``) or arriving out of
time order within the batch are *accepted* with the ``OUT_OF_ORDER`` quality bit;
:meth:`battloop.telemetry.lake.Lake.ingest` then looks exactly those rows up among the
stored keys, so a repeated row is quarantined as a duplicate while the in-order bulk
of a file costs no lookup.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schema import QUARANTINE_SCHEMA, READING_SCHEMA, Quality

#: Plausible ranges for a 48 V telecom pack or an HV stack reported as one unit.
RANGES: dict[str, tuple[float, float]] = {
    "voltage_v": (0.0, 1000.0),
    "current_a": (-2000.0, 2000.0),
    "soc_pct": (0.0, 100.0),
    "soh_pct": (0.0, 120.0),
    "remaining_ah": (0.0, 5000.0),
    "full_ah": (0.0, 5000.0),
    "cycle_count": (0, 100000),
    "temp_min_c": (-50.0, 120.0),
    "temp_max_c": (-50.0, 120.0),
    "cell_v_min": (0.5, 5.0),
    "cell_v_max": (0.5, 5.0),
}
EPOCH_FLOOR = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
_FLOATS = [f.name for f in READING_SCHEMA if pa.types.is_floating(f.type)]


@dataclass
class QualityReport:
    accepted: int = 0
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    unknown_serials: list[str] = field(default_factory=list)
    out_of_order: int = 0
    #: (pack_serial, ts): the latest accepted reading time per pack in this batch
    latest: pa.Table | None = None

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "quarantined": self.quarantined, "by_reason": self.by_reason,
                "unknown_serials": self.unknown_serials, "out_of_order": self.out_of_order,
                "offer": (f"{len(self.unknown_serials)} unknown serials could be registered"
                          if self.unknown_serials else None)}


def check(readings: pa.Table, *, now: dt.datetime | None = None, known_serials=None,
          expected_serial: Mapping[tuple[str | None, int], str] | pa.Table | None = None,
          last_ts: Mapping[str, dt.datetime] | pa.Table | None = None, seen_keys: pa.Table | None = None,
          ranges: Mapping[str, tuple[float, float]] = RANGES, origin: str | None = None, row_offset: int = 0,
          max_clock_skew: dt.timedelta = dt.timedelta(minutes=10),
          ) -> tuple[pa.Table, pa.Table, QualityReport]:
    """Split ``readings`` → (accepted sorted by pack+time, quarantine, report).

    ``known_serials``: the registry's serials (None: not checked). ``expected_serial``:
    {(site_code, slot): serial} or a table (site_code, slot, expected).
    ``last_ts``: {serial: latest stored ts} or a table (pack_serial, ts), e.g. from
    :func:`advance_watermark`. ``seen_keys``: stored (pack_serial, ts, source) keys.
    """
    if readings.schema != READING_SCHEMA:
        from .schema import conform
        readings = conform(readings)
    # one chunk per column: takes and numpy views over many small chunks are slower
    readings = readings.combine_chunks()
    n = readings.num_rows
    # reason as a small integer code per row (0 = accepted): object arrays would be slow
    reason = np.zeros(n, dtype=np.int16)
    reasons: list[tuple[str, str | None]] = [("", None)]
    report = QualityReport()

    def flag(mask: np.ndarray, why: str, column: str | None) -> None:
        hit = mask & (reason == 0)
        if hit.any():
            reasons.append((why, column))
            reason[hit] = len(reasons) - 1

    def np_bool(arr) -> np.ndarray:
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)

    quality = readings.column("quality").to_numpy()
    flag((quality & int(Quality.INVALID_VALUE)) != 0, "unparsable value", None)
    serial = readings.column("pack_serial")
    flag(np_bool(pc.or_(pc.is_null(serial), pc.equal(pc.utf8_trim_whitespace(serial), "")).fill_null(True)),
         "missing pack serial", "pack_serial")
    ts_us = readings.column("ts").cast(pa.int64()).to_numpy()
    now = now or dt.datetime.now(dt.timezone.utc)
    floor_us = int(EPOCH_FLOOR.timestamp() * 1e6)
    ceil_us = int((now + max_clock_skew).timestamp() * 1e6)
    flag(ts_us < floor_us, "timestamp at epoch zero (clock not set)", "ts")
    flag(ts_us > ceil_us, "timestamp in the future", "ts")
    for c in _FLOATS:
        col = readings.column(c)
        if col.null_count == n:
            continue
        x = col.to_numpy(zero_copy_only=False)
        x = np.asarray(x, dtype=np.float64)
        valid = np_bool(pc.is_valid(col))
        nan_or_inf = valid & ~np.isfinite(np.where(valid, x, 0.0))
        # NaN in a valid slot is a real NaN the source sent (nulls are absent values)
        nan_or_inf |= valid & np.isnan(np.where(valid, x, 0.0))
        flag(nan_or_inf, "not a finite number", c)
        if c in ranges:
            lo, hi = ranges[c]
            with np.errstate(invalid="ignore"):
                flag(valid & ((x < lo) | (x > hi)), f"out of range [{lo:g}, {hi:g}]", c)
    if "cycle_count" in ranges and readings.column("cycle_count").null_count < n:
        lo, hi = ranges["cycle_count"]
        cyc = readings.column("cycle_count")
        flag(np_bool(pc.or_(pc.less(cyc, lo), pc.greater(cyc, hi)).fill_null(False)),
             f"out of range [{lo:g}, {hi:g}]", "cycle_count")
    if known_serials is not None:
        known = pa.array(sorted(known_serials), pa.string())
        unknown = np_bool(pc.invert(pc.is_in(serial, value_set=known)).fill_null(False))
        unknown &= reason == 0
        if unknown.any():
            report.unknown_serials = sorted(set(pc.filter(serial, pa.array(unknown)).to_pylist()))
        flag(unknown, "unknown serial", "pack_serial")
    if expected_serial:
        exp = (expected_serial if isinstance(expected_serial, pa.Table) else pa.table({
            "site_code": pa.array([k[0] for k in expected_serial], pa.string()),
            "slot": pa.array([k[1] for k in expected_serial], pa.int16()),
            "expected": pa.array(list(expected_serial.values()), pa.string())}))
        keys = pa.table({"site_code": readings.column("site_code"), "slot": readings.column("slot"),
                         "pack_serial": serial, "_i": pa.array(np.arange(n))})
        j = keys.join(exp, ["site_code", "slot"], join_type="inner")
        conflict = np.zeros(n, dtype=bool)
        if j.num_rows:
            differs = pc.invert(pc.equal(j.column("pack_serial"), j.column("expected")).fill_null(False))
            conflict[pc.filter(j.column("_i"), differs).to_numpy()] = True
        flag(conflict, "identity conflict", "pack_serial")

    # sort by (pack, ts, source) once: duplicates are then neighbours, and the lake
    # wants this order anyway
    rank = serial_rank(serial) if n else np.zeros(0, np.int64)
    src_col = readings.column("source")
    src_rank = (serial_rank(src_col) if n and src_col.null_count < n and pc.count_distinct(src_col).as_py() > 1
                else np.zeros(n, np.int64))
    order = np.lexsort((src_rank, ts_us, rank)) if n else np.zeros(0, np.int64)
    s_ser = rank[order]
    s_ts = ts_us[order]
    s_src = src_rank[order]
    same = np.zeros(n, dtype=bool)
    if n > 1:
        same[1:] = (s_ser[1:] == s_ser[:-1]) & (s_ts[1:] == s_ts[:-1]) & (s_src[1:] == s_src[:-1])
    dup = np.zeros(n, dtype=bool)
    dup[order] = same
    flag(dup, "duplicate (pack_serial, ts, source)", None)
    if seen_keys is not None and seen_keys.num_rows:
        keys = pa.table({"pack_serial": serial, "ts": readings.column("ts"),
                         "source": readings.column("source"), "_i": pa.array(np.arange(n))})
        hit = keys.join(seen_keys.select(["pack_serial", "ts", "source"]).group_by(
            ["pack_serial", "ts", "source"]).aggregate([]), ["pack_serial", "ts", "source"], join_type="inner")
        m = np.zeros(n, dtype=bool)
        m[hit.column("_i").to_numpy()] = True
        flag(m, "duplicate of a stored reading", None)

    # out of order: arrived after a row of the same pack with a later timestamp
    late = np.zeros(n, dtype=bool)
    if n > 1:
        grp = np.zeros(n, dtype=np.int64)
        grp[1:] = np.cumsum(s_ser[1:] != s_ser[:-1])
        key = grp * (n + 1) + order
        suffix_min = np.minimum.accumulate(key[::-1])[::-1]
        after = np.empty(n, dtype=np.int64)
        after[:-1] = suffix_min[1:]
        after[-1] = np.iinfo(np.int64).max
        late[order] = key > after
    # per-pack first/last positions in sorted order (the ranks are sorted there)
    starts = np.flatnonzero(np.r_[True, s_ser[1:] != s_ser[:-1]]) if n else np.zeros(0, np.int64)
    if last_ts is not None and len(last_ts) and n:
        wm = _as_watermark(last_ts)
        # per-pack minimum first: in an in-order stream no pack starts at or before its
        # watermark, and the row-level join below is skipped entirely
        mins = pa.table({"pack_serial": serial.take(pa.array(order[starts])),
                         "_ts_min": pa.array(s_ts[starts], pa.int64()).cast(READING_SCHEMA.field("ts").type)})
        sus = mins.join(wm, "pack_serial", join_type="inner")
        sus = sus.filter(pc.less_equal(sus.column("_ts_min"), sus.column("ts")))
        if sus.num_rows:
            rows = pa.table({"pack_serial": serial, "_ts": readings.column("ts"), "_i": pa.array(np.arange(n))})
            cand = rows.filter(pc.is_in(rows.column("pack_serial"), value_set=sus.column("pack_serial")))
            j = cand.join(wm, "pack_serial", join_type="inner")
            older = pc.less_equal(j.column("_ts"), j.column("ts")).fill_null(False)  # not newer
            late[pc.filter(j.column("_i"), older).to_numpy()] = True
    bad = reason != 0
    good_sorted = order[~bad[order]]
    new_q = quality.astype(np.uint32) | np.where(late, np.uint32(Quality.OUT_OF_ORDER), np.uint32(0))
    cols = [readings.column(c) if c != "quality" else pa.chunked_array([pa.array(new_q, pa.uint32())])
            for c in READING_SCHEMA.names]
    accepted = pa.Table.from_arrays(cols, schema=READING_SCHEMA).take(pa.array(good_sorted))
    report.out_of_order = int(late[~bad].sum())
    bad_idx = np.flatnonzero(bad)
    q = readings.take(pa.array(bad_idx, pa.int64()))
    codes = reason[bad_idx]
    quarantine = pa.Table.from_arrays(
        q.columns + [pa.array([reasons[c][0] for c in codes], pa.string()),
                     pa.array([reasons[c][1] for c in codes], pa.string()),
                     pa.array(bad_idx + row_offset + 1, pa.int64()), pa.array([origin] * len(bad_idx), pa.string())],
        schema=QUARANTINE_SCHEMA)
    report.accepted = accepted.num_rows
    if accepted.num_rows:
        g_ser = rank[good_sorted]
        ends = np.flatnonzero(np.r_[g_ser[1:] != g_ser[:-1], True])
        report.latest = pa.table({"pack_serial": accepted.column("pack_serial").take(pa.array(ends)),
                                  "ts": accepted.column("ts").take(pa.array(ends))})
    report.quarantined = quarantine.num_rows
    if len(bad_idx):
        for code, count in zip(*np.unique(codes, return_counts=True)):
            why = reasons[code][0]
            report.by_reason[why] = report.by_reason.get(why, 0) + int(count)
    return accepted, quarantine, report


def watermark_table(last_ts: Mapping[str, dt.datetime]) -> pa.Table:
    """{pack_serial: latest ts} → the Arrow table form ``check(last_ts=...)`` also accepts."""
    return pa.table({"pack_serial": pa.array(list(last_ts), pa.string()),
                     "ts": pa.array(list(last_ts.values()), READING_SCHEMA.field("ts").type)})


def _as_watermark(last_ts) -> pa.Table:
    if not isinstance(last_ts, pa.Table):
        return watermark_table(last_ts)
    return pa.table({"pack_serial": last_ts.column("pack_serial").cast(pa.string()),
                     "ts": last_ts.column("ts").cast(READING_SCHEMA.field("ts").type)})


def advance_watermark(watermark: pa.Table | None, accepted: pa.Table, latest: pa.Table | None = None) -> pa.Table:
    """Latest ts per pack after ``accepted`` is stored (``latest``: from the report)."""
    if latest is None:
        latest = accepted.group_by("pack_serial").aggregate([("ts", "max")]).rename_columns(["pack_serial", "ts"])
    if watermark is None or watermark.num_rows == 0:
        return latest
    both = pa.concat_tables([_as_watermark(watermark), latest.cast(_as_watermark(watermark).schema)])
    return both.group_by("pack_serial").aggregate([("ts", "max")]).rename_columns(["pack_serial", "ts"])


def _sort_order(readings: pa.Table) -> np.ndarray:
    """Indices ordering rows by (pack_serial, ts, source); nulls last. Stable."""
    n = readings.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rank = serial_rank(readings.column("pack_serial"))
    src = readings.column("source")
    if src.null_count == n or pc.count_distinct(src).as_py() <= 1:
        keys = (readings.column("ts").cast(pa.int64()).to_numpy(), rank)
    else:
        keys = (serial_rank(src), readings.column("ts").cast(pa.int64()).to_numpy(), rank)
    return np.lexsort(keys)


def serial_rank(col) -> np.ndarray:
    """Integer rank of each string in sort order (nulls last): integer keys sort much
    faster than strings, and equal strings get equal ranks."""
    enc = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
    order = pc.array_sort_indices(enc.dictionary).to_numpy()
    dict_rank = np.empty(len(order) + 1, dtype=np.int64)
    dict_rank[order] = np.arange(len(order))
    dict_rank[-1] = len(order)
    return dict_rank[enc.indices.fill_null(len(order)).to_numpy()]
