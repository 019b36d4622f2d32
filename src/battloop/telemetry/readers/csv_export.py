"""Reader for FSU/NMS/vendor exports: CSV (streamed), XLSX and Parquet.

A column-mapping file (``telemetry/mappings/*.yaml``) names, for each canonical
column, the headers an export may use — English and Chinese — and the unit of the
values. Units are converted vectorized (mV→V, mA→A, m°C→°C, 0.1 K→°C, mAh→Ah,
fraction→%); timestamps may be epoch seconds, milliseconds or microseconds (decided
per value by magnitude, so a file mixing them still reads right) or ISO 8601 text,
with naive times taken in the mapping's time zone.

CSV is read in blocks with Arrow's multi-threaded parser (:func:`iter_csv_export`)
so memory stays bounded whatever the file size; a row longer than the block size
is refused with a clear message. Values that cannot be parsed (text where a number
belongs, undecodable bytes) become null and set the ``INVALID_VALUE`` quality bit;
:mod:`battloop.telemetry.quality` then quarantines those rows, and
``metadata['parse_errors']`` keeps the first offending cells (row, column, value).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml

from ..schema import READING_SCHEMA, Quality, TS_TYPE
from ._common import ReaderError, Source, source_name, zone

SOURCE = "csv"
MAPPINGS_DIR = Path(__file__).resolve().parents[1] / "mappings"
DEFAULT_BLOCK_BYTES = 32 * 1024 * 1024
MAX_PARSE_ERRORS_KEPT = 100
#: unit → (scale, offset): canonical = raw * scale + offset
UNITS = {
    "v": (1.0, 0.0), "mv": (1e-3, 0.0), "10mv": (1e-2, 0.0), "cv": (1e-2, 0.0),
    "a": (1.0, 0.0), "ma": (1e-3, 0.0), "10ma": (1e-2, 0.0), "da": (0.1, 0.0), "0.1a": (0.1, 0.0),
    "c": (1.0, 0.0), "°c": (1.0, 0.0), "℃": (1.0, 0.0), "mc": (1e-3, 0.0), "m°c": (1e-3, 0.0),
    "0.1c": (0.1, 0.0), "dc": (0.1, 0.0), "k": (1.0, -273.15), "dk": (0.1, -273.15), "0.1k": (0.1, -273.15),
    "ah": (1.0, 0.0), "mah": (1e-3, 0.0), "10mah": (1e-2, 0.0),
    "%": (1.0, 0.0), "pct": (1.0, 0.0), "fraction": (100.0, 0.0), "0.1%": (0.1, 0.0),
}
_NUMERIC_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_UNIT_IN_HEADER = re.compile(r"^(.*?)[\(\[]\s*([^\)\]]+?)\s*[\)\]]\s*$")


def _norm(header: str) -> str:
    h = unicodedata.normalize("NFKC", header).strip().lower()  # folds full-width （） to ()
    return re.sub(r"[\s_\-\.\u00a0/]+", "", h)


@lru_cache(maxsize=16)
def load_mapping(name_or_path: str | None = None) -> dict[str, Any]:
    """Load a column-mapping file by name (``default``) or path, and check it."""
    p = MAPPINGS_DIR / f"{name_or_path or 'default'}.yaml"
    if not p.is_file():
        p = Path(name_or_path)
    if not p.is_file():
        known = ", ".join(sorted(x.stem for x in MAPPINGS_DIR.glob("*.yaml")))
        raise ReaderError(f"column mapping {name_or_path!r} not found; known: {known} (or give a path)")
    try:
        m = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReaderError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(m, dict) or "columns" not in m or "timestamp" not in m:
        raise ReaderError(f"{p}: a mapping needs 'timestamp' and 'columns' sections (see mappings/default.yaml)")
    for col, alts in m["columns"].items():
        if col not in READING_SCHEMA.names:
            raise ReaderError(f"{p}: columns.{col} is not a canonical column ({', '.join(READING_SCHEMA.names)})")
        for alt in alts:
            unit = alt.get("unit")
            if unit is not None and str(unit).lower() not in UNITS:
                raise ReaderError(f"{p}: columns.{col}: unit {unit!r} unknown; use one of {', '.join(UNITS)}")
    m["_path"] = str(p)
    return m


def resolve_columns(headers: list[str], mapping: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """canonical column → (source header, unit) for the headers of one export."""
    index: dict[str, str] = {}
    for h in headers:
        index.setdefault(_norm(h), h)
        m = _UNIT_IN_HEADER.match(unicodedata.normalize("NFKC", h))
        if m:  # "电压(mV)" → "电压" with unit mV
            index.setdefault(_norm(m.group(1)) + "\x00" + m.group(2).strip().lower(), h)
    found: dict[str, tuple[str, str | None]] = {}
    ts_spec = mapping["timestamp"]
    for syn in ts_spec["headers"]:
        if _norm(syn) in index:
            found["ts"] = (index[_norm(syn)], None)
            break
    for col, alts in mapping["columns"].items():
        for alt in alts:
            for syn in alt["headers"]:
                key = _norm(syn)
                if key in index:
                    found[col] = (index[key], alt.get("unit"))
                    break
                hits = [k for k in index if k.startswith(key + "\x00") and k.split("\x00")[1] in UNITS]
                if hits:
                    found[col] = (index[hits[0]], hits[0].split("\x00")[1])
                    break
            if col in found:
                break
    return found


def _sniff(path: Path, name: str) -> tuple[str, list[str], tuple[list[str] | None, list[str]], str]:
    """(encoding, headers, (first data row, headers), delimiter) from the file head."""
    with open(path, "rb") as fh:
        head = fh.read(256 * 1024)
    if not head.strip():
        raise ReaderError(f"{name}: empty file")
    if head.count(b"\x00") > 8:
        raise ReaderError(f"{name}: binary data (NUL bytes); expected a CSV export")
    enc = "utf-8"
    if head.startswith(b"\xef\xbb\xbf"):
        enc = "utf-8-sig"
    else:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
                try:
                    head.decode("gb18030")
                    enc = "gb18030"  # Chinese FSU/NMS tools export GBK/GB18030
                except UnicodeDecodeError:
                    enc = "utf-8"  # stray bytes: the tolerant path nulls those cells
    text = head.decode(enc, errors="replace")
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if len(head) == 256 * 1024 and len(lines) <= 1:
        raise ReaderError(f"{name}: no line break in the first 256 KiB; not a CSV export (or one very long line)")
    delim = max([",", ";", "\t", "|"], key=first.count)
    headers = next(csv.reader([first], delimiter=delim))
    sample = next(csv.reader([lines[1]], delimiter=delim)) if len(lines) > 1 else None
    return enc, [h.strip() for h in headers], (sample, headers), delim


_EPOCH_FACTOR = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _ts_from_numbers(arr: pa.Array, unit: str = "auto") -> pa.Array:
    """Epoch numbers → UTC timestamps; unit given, or chosen per value by magnitude."""
    if unit in _EPOCH_FACTOR:
        return pc.multiply(arr.cast(pa.float64()), float(_EPOCH_FACTOR[unit])).cast(pa.int64()).cast(TS_TYPE)
    if pa.types.is_integer(arr.type) and len(arr):
        mm = pc.min_max(pc.abs(arr)).as_py()
        if mm["min"] is not None:
            # common case: the whole block in one unit → one vectorized multiply
            for lo, hi, factor in ((0, 1e11, 1_000_000), (1e11, 1e14, 1_000), (1e14, 1e17, 1)):
                if lo <= mm["min"] and mm["max"] < hi:
                    return pc.multiply(arr.cast(pa.int64()), factor).cast(TS_TYPE)
    x = arr.to_numpy(zero_copy_only=False).astype("float64")
    a = np.abs(x)
    # s: < 1e11 (year 5138); ms: < 1e14; us: < 1e17; else ns
    us = np.where(a < 1e11, x * 1e6, np.where(a < 1e14, x * 1e3, np.where(a < 1e17, x, x / 1e3)))
    valid = np.isfinite(us)
    out = pa.array(np.where(valid, us, 0).astype("int64"), type=pa.int64(), mask=~valid)
    return out.cast(TS_TYPE)


class _Plan:
    def __init__(self, cols: dict[str, tuple[str, str | None]], mapping: dict, ts_kind: str, tz, enc: str,
                 delim: str, name: str):
        self.cols, self.mapping, self.ts_kind, self.tz, self.enc, self.delim, self.name = (
            cols, mapping, ts_kind, tz, enc, delim, name)
        self.ts_zoned = self.ts_int = False
        self.headers: list[str] = []
        self.ts_unit = "auto"
        self.tz_explicit = False
        self.negate = mapping.get("current_sign", "charge_positive") == "discharge_positive"


def _plan(path: Path, mapping: dict, tz: str | None) -> _Plan:
    name = str(path)
    enc, headers, (sample, _), delim = _sniff(path, name)
    cols = resolve_columns(headers, mapping)
    if "ts" not in cols:
        raise ReaderError(f"{name}: no timestamp column; headers are {headers[:20]}; add the header to "
                          f"'timestamp.headers' in the mapping ({mapping['_path']})")
    if "pack_serial" not in cols:
        raise ReaderError(f"{name}: no pack serial column; headers are {headers[:20]}; add the header to "
                          f"'columns.pack_serial' in the mapping ({mapping['_path']})")
    ts_unit = str(mapping["timestamp"].get("unit", "auto")).lower()
    ts_kind = "text"
    ts_zoned = ts_int = False
    if ts_unit in ("s", "ms", "us", "auto") and sample is not None:
        idx = headers.index(cols["ts"][0])
        val = sample[idx].strip() if idx < len(sample) else ""
        if re.match(_NUMERIC_RE, val):
            ts_kind = "number"
        ts_int = bool(re.match(r"^\s*[-+]?\d+\s*$", val))
        ts_zoned = bool(re.search(r"(Z|[+-]\d\d:?\d\d)$", val))
    zone_name = tz or mapping["timestamp"].get("timezone") or "UTC"
    plan = _Plan(cols, mapping, ts_kind, zone(zone_name), enc, delim, name)
    plan.ts_zoned, plan.ts_int = ts_zoned, ts_int
    plan.headers = headers
    plan.ts_unit = ts_unit if ts_unit in _EPOCH_FACTOR else "auto"
    plan.tz_explicit = tz is not None
    return plan


def _convert(batch: pa.RecordBatch | pa.Table, plan: _Plan, row_offset: int, errors: list, tolerant: bool
             ) -> pa.Table:
    """A batch of source columns → canonical table (vectorized)."""
    n = batch.num_rows
    bad = np.zeros(n, dtype=bool)
    out: dict[str, pa.Array] = {}
    src = {c: batch.column(batch.schema.get_field_index(h)) for c, (h, _) in plan.cols.items()}
    if isinstance(batch, pa.Table) and tolerant:
        src = {c: a.combine_chunks() for c, a in src.items()}
    for f in READING_SCHEMA:
        c = f.name
        if c in ("quality", "source"):
            continue
        if c not in src:
            out[c] = pa.nulls(n, f.type)
            continue
        arr = src[c]
        if tolerant:
            arr, bad_here = _coerce_text(arr, f.type if c != "ts" else (pa.float64() if plan.ts_kind == "number" else TS_TYPE),
                                         plan.tz)
            if bad_here is not None and bad_here.any():
                bad |= bad_here
                for i in np.flatnonzero(bad_here)[:max(0, MAX_PARSE_ERRORS_KEPT - len(errors))]:
                    errors.append({"row": row_offset + int(i) + 1, "column": plan.cols[c][0],
                                   "value": _raw(src[c], int(i))})
        if c == "ts":
            if plan.ts_kind == "number":
                arr = _ts_from_numbers(arr, plan.ts_unit)
            elif arr.type != TS_TYPE:
                if pa.types.is_timestamp(arr.type) and arr.type.tz is None:
                    arr = pc.assume_timezone(arr, timezone=str(plan.tz), ambiguous="earliest",
                                             nonexistent="earliest")
                arr = arr.cast(TS_TYPE)
            missing = pc.is_null(arr).to_numpy(zero_copy_only=False)
            if missing.any():
                bad |= missing
                arr = arr.fill_null(pa.scalar(0, TS_TYPE))
            out[c] = arr
            continue
        if c == "alarm_codes":
            s = arr.cast(pa.string())
            out[c] = pc.split_pattern_regex(pc.utf8_trim_whitespace(s.fill_null("")), r"\s*[;|,]\s*")
            out[c] = pc.if_else(pc.equal(s.fill_null(""), ""), pa.scalar([], pa.list_(pa.string())), out[c])
            continue
        unit = plan.cols[c][1]
        if unit is not None and pa.types.is_floating(f.type):
            scale, offset = UNITS[unit.lower()]
            arr = arr.cast(pa.float64())
            if scale != 1.0:
                arr = pc.multiply(arr, scale)
            if offset:
                arr = pc.add(arr, offset)
        if c == "current_a" and plan.negate:
            arr = pc.negate(arr)
        if arr.type != f.type:
            try:
                arr = arr.cast(f.type)
            except pa.ArrowInvalid:
                arr = pc.cast(arr, f.type, safe=False)
        out[c] = arr
    flags = np.where(bad, np.uint32(Quality.INVALID_VALUE), np.uint32(0)).astype(np.uint32)
    if plan.ts_kind == "text" and not plan.ts_zoned and not plan.tz_explicit:
        # naive local times read in the mapping's default zone, not one the user named
        flags |= np.uint32(Quality.TZ_ASSUMED)
    out["source"] = _source_labels(src.get("source"), n)
    out["quality"] = pa.array(flags, pa.uint32())
    return pa.Table.from_pydict({f.name: out[f.name] for f in READING_SCHEMA}, schema=READING_SCHEMA)


def _source_labels(given, n: int) -> pa.Array:
    """``csv``, or ``csv:<label>`` where the export names each row's own source (e.g. an FSU's
    daily summary and a BMS's 1-minute log in one hand-over): a reading is keyed by pack,
    time and source, so two instruments sampling at the same instant stay two readings
    instead of one being taken for a duplicate of the other."""
    if given is None:
        return pa.repeat(pa.scalar(SOURCE, pa.string()), n)
    label = pc.utf8_trim_whitespace(pc.cast(given.combine_chunks() if isinstance(given, pa.ChunkedArray) else given, pa.string()))
    named = pc.and_kleene(pc.is_valid(label), pc.not_equal(label, ""))
    return pc.if_else(pc.fill_null(named, False), pc.binary_join_element_wise(SOURCE, label, ":"), SOURCE)


def _raw(arr: pa.Array, i: int) -> str:
    v = arr[i].as_py()
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")[:80]
    return str(v)[:80]


def _parse_ts_text(s: pa.Array, empty, tz) -> tuple[pa.Array, np.ndarray]:
    """ISO 8601 text → UTC; whole-array casts first, value by value only if mixed."""
    for typ in (TS_TYPE, pa.timestamp("us")):
        try:
            arr = s.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        if typ.tz is None:
            arr = pc.assume_timezone(arr, timezone=str(tz), ambiguous="earliest", nonexistent="earliest")
        return arr.cast(TS_TYPE), np.zeros(len(s), dtype=bool)
    import datetime as dt
    out, bad = [], []
    for v in s.to_pylist():
        t = None
        if v:
            try:
                t = dt.datetime.fromisoformat(v.replace("/", "-"))
                t = t if t.tzinfo else t.replace(tzinfo=tz)
            except ValueError:
                t = None
        out.append(t)
        bad.append(bool(v) and t is None)
    return pa.array(out, TS_TYPE), np.array(bad, dtype=bool)


def _coerce_text(arr: pa.Array, target: pa.DataType, tz=None) -> tuple[pa.Array, np.ndarray | None]:
    """Tolerant conversion of raw text/binary cells; returns (values, unparsable mask)."""
    if pa.types.is_binary(arr.type):
        try:
            arr = arr.cast(pa.string())
        except pa.ArrowInvalid:
            # undecodable bytes: decode cell by cell, marking those that needed replacement
            py = [None if v is None else v for v in arr.to_pylist()]
            dec = [None if v is None else v.decode("utf-8", errors="replace") for v in py]
            badbytes = np.array([d is not None and "\ufffd" in d for d in dec])
            arr = pa.array([None if b else d for d, b in zip(dec, badbytes)], pa.string())
            val, bad = _coerce_text(arr, target, tz)
            return val, badbytes | (bad if bad is not None else False)
    if pa.types.is_string(target) or pa.types.is_list(target):
        return arr, None
    s = pc.utf8_trim_whitespace(arr)
    empty = pc.or_(pc.is_null(s), pc.equal(s, "")).fill_null(True)
    if pa.types.is_timestamp(target):
        return _parse_ts_text(s, empty, tz)
    ok = pc.match_substring_regex(s, _NUMERIC_RE).fill_null(False)
    clean = pc.if_else(ok, s, pa.scalar(None, pa.string()))
    vals = clean.cast(pa.float64())
    bad = pc.and_(pc.invert(ok), pc.invert(empty)).to_numpy(zero_copy_only=False)
    return vals, bad


def iter_csv_export(src: Source, *, mapping: str | None = None, tz: str | None = None,
                    block_bytes: int = DEFAULT_BLOCK_BYTES, metadata: dict | None = None) -> Iterator[pa.Table]:
    """Stream a CSV export as canonical tables of about ``block_bytes`` of input each.

    ``metadata`` (if given) is filled with the column resolution and parse errors.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        import tempfile
        tmp = tempfile.NamedTemporaryFile(suffix=".csv", delete=False)
        tmp.write(bytes(src))
        tmp.close()
        try:
            yield from iter_csv_export(tmp.name, mapping=mapping, tz=tz, block_bytes=block_bytes, metadata=metadata)
        finally:
            Path(tmp.name).unlink(missing_ok=True)
        return
    path = Path(src)
    name = str(path)
    if not path.is_file():
        raise ReaderError(f"{name}: no such file")
    mp = load_mapping(mapping)
    plan = _plan(path, mp, tz)
    meta = metadata if metadata is not None else {}
    meta.update({"source": SOURCE, "input": name, "mapping": mp["_path"], "encoding": plan.enc,
                 "columns": {c: {"header": h, "unit": u} for c, (h, u) in plan.cols.items()},
                 "timestamp_kind": plan.ts_kind, "timezone": str(plan.tz), "rows": 0, "parse_errors": [],
                 "invalid_rows": 0})
    headers_used = [h for h, _ in plan.cols.values()]
    errors = meta["parse_errors"]
    rows_done = 0
    typed, text = _options(plan, headers_used, tolerant=False), _options(plan, headers_used, tolerant=True)
    for data, parsed in _prefetch(_slices(path, block_bytes, name), lambda d: _parse(d, plan, typed)):
        try:
            if isinstance(parsed, BaseException):
                raise parsed
            t = _convert(parsed, plan, rows_done, errors, tolerant=False)
        except pa.ArrowInvalid as exc:
            # Text in a numeric column, bad bytes or odd timestamps somewhere in this
            # slice: parse just this slice as raw text and coerce cell by cell (vectorized).
            meta.setdefault("fallback", str(exc).splitlines()[0][:200])
            try:
                t = _convert(_parse(data, plan, text), plan, rows_done, errors, tolerant=True)
            except pa.ArrowInvalid as exc2:
                raise ReaderError(f"{name}: cannot parse as CSV after data row {rows_done}: "
                                  f"{str(exc2).splitlines()[0]}") from None
            meta["invalid_rows"] += int(pc.sum(pc.not_equal(
                pc.bit_wise_and(t.column("quality"), int(Quality.INVALID_VALUE)), 0)).as_py() or 0)
        rows_done += t.num_rows
        meta["rows"] = rows_done
        yield t


def _slices(path: Path, slice_bytes: int, name: str) -> Iterator[bytes]:
    """Header-less slices of about ``slice_bytes`` that end on a line break.

    Memory stays bounded by one slice whatever the file size; a line longer than a
    slice is refused instead of being read whole.
    """
    with open(path, "rb") as fh:
        header = fh.readline(slice_bytes + 1)
        if len(header) > slice_bytes:
            raise ReaderError(f"{name}: the header line is longer than {slice_bytes} bytes; not a CSV export")
        carry = b""
        offset = len(header)
        while True:
            block = fh.read(slice_bytes)
            if not block:
                if carry.strip():
                    yield carry
                return
            cut = block.rfind(b"\n")
            if cut < 0:
                if len(carry) + len(block) >= slice_bytes:
                    raise ReaderError(f"{name}: the row starting at byte {offset} is longer than {slice_bytes} "
                                      "bytes; that is not a telemetry export (check the delimiter and quoting)")
                carry += block
                continue
            data = carry + block[:cut + 1] if carry else block[:cut + 1]
            offset += len(data)
            carry = block[cut + 1:]
            yield data


def _prefetch(slices: Iterator[bytes], parse) -> Iterator[tuple[bytes, Any]]:
    """Parse slice k+1 on a worker thread while the caller converts and checks slice k.

    Arrow's parser releases the GIL, so both cores stay busy; at most two slices are
    held at once. A parse error is handed over as the value, not raised in the worker.
    """
    from concurrent.futures import ThreadPoolExecutor

    def safe(d):
        try:
            return parse(d)
        except pa.ArrowInvalid as exc:
            return exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-parse") as pool:
        it = iter(slices)
        first = next(it, None)
        if first is None:
            return
        cur = (first, pool.submit(safe, first))
        for nxt in it:
            fut = pool.submit(safe, nxt)
            yield cur[0], cur[1].result()
            cur = (nxt, fut)
        yield cur[0], cur[1].result()


def _parse(data: bytes, plan: _Plan, options) -> pa.Table:
    ro, po, co = options
    return pacsv.read_csv(pa.BufferReader(data), read_options=ro, parse_options=po, convert_options=co)


def _options(plan: _Plan, headers_used: list[str], tolerant: bool):
    types: dict[str, pa.DataType] = {}
    if tolerant:
        types = {h: pa.binary() for h in headers_used}
    else:
        for c, (h, _) in plan.cols.items():
            if c == "ts":
                types[h] = ((pa.int64() if plan.ts_int else pa.float64()) if plan.ts_kind == "number"
                            else TS_TYPE if plan.ts_zoned else pa.timestamp("us"))
            elif c in ("pack_serial", "site_code", "alarm_codes", "source"):
                types[h] = pa.string()
            elif c == "slot":
                types[h] = pa.int16()
            elif c == "cycle_count":
                types[h] = pa.int32()
            else:
                types[h] = pa.float64()
    # the slice is in memory: parse it in parallel blocks across the cores
    enc = "utf8" if plan.enc in ("utf-8", "utf-8-sig") else plan.enc
    ro = pacsv.ReadOptions(block_size=4 * 1024 * 1024, use_threads=True, column_names=plan.headers, encoding=enc)
    po = pacsv.ParseOptions(delimiter=plan.delim, newlines_in_values=False)
    if tolerant:
        co = pacsv.ConvertOptions(column_types=types, include_columns=headers_used, strings_can_be_null=False)
    else:
        co = pacsv.ConvertOptions(column_types=types, include_columns=headers_used, strings_can_be_null=True,
                                  null_values=["", "-", "--", "NA", "N/A", "NULL", "null", "NaN", "nan"],
                                  timestamp_parsers=[pacsv.ISO8601, "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S"])
    return ro, po, co


def read_csv_export(src: Source, *, mapping: str | None = None, tz: str | None = None,
                    ) -> tuple[pa.Table, dict[str, Any]]:
    """Read a whole export (CSV, XLSX, Parquet) → (readings, metadata)."""
    name = source_name(src)
    suffix = "" if isinstance(src, (bytes, bytearray, memoryview)) else Path(src).suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".parquet", ".pq"):
        return _read_tabular(Path(src), mapping=mapping, tz=tz)
    meta: dict[str, Any] = {}
    tables = list(iter_csv_export(src, mapping=mapping, tz=tz, metadata=meta))
    table = pa.concat_tables(tables) if tables else READING_SCHEMA.empty_table()
    meta["input"] = name
    return table, meta


def _read_tabular(path: Path, *, mapping: str | None, tz: str | None) -> tuple[pa.Table, dict[str, Any]]:
    """XLSX (openpyxl via pandas) and Parquet: same mapping, then the tolerant path."""
    name = str(path)
    if not path.is_file():
        raise ReaderError(f"{name}: no such file")
    mp = load_mapping(mapping)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq
            raw = pq.read_table(path)
        else:
            import pandas as pd
            raw = pa.Table.from_pandas(pd.read_excel(path, dtype=str), preserve_index=False)
    except Exception as exc:  # openpyxl/pyarrow raise many types for corrupt files
        raise ReaderError(f"{name}: cannot read as {path.suffix[1:].upper()}: {exc}") from None
    cols = resolve_columns([str(c) for c in raw.column_names], mp)
    for need in ("ts", "pack_serial"):
        if need not in cols:
            raise ReaderError(f"{name}: no {need} column among {raw.column_names[:20]}; extend the mapping "
                              f"({mp['_path']})")
    first = raw.column(cols["ts"][0])
    ts_kind = "number" if pa.types.is_integer(first.type) or pa.types.is_floating(first.type) else "text"
    if ts_kind == "text" and raw.num_rows and pa.types.is_string(first.type):
        v = first[0].as_py()
        ts_kind = "number" if v and re.match(_NUMERIC_RE, v) else "text"
    plan = _Plan(cols, mp, ts_kind, zone(tz or mp["timestamp"].get("timezone") or "UTC"), "utf-8", ",", name)
    plan.tz_explicit = tz is not None
    plan.ts_unit = str(mp["timestamp"].get("unit", "auto")).lower()
    as_text = pa.table({h: raw.column(h).cast(pa.string()) if not pa.types.is_timestamp(raw.column(h).type)
                        else raw.column(h) for h, _ in cols.values()})
    errors: list = []
    t = _convert(as_text, plan, 0, errors, tolerant=True)
    return t, {"source": SOURCE, "input": name, "mapping": mp["_path"], "rows": t.num_rows,
               "columns": {c: {"header": h, "unit": u} for c, (h, u) in cols.items()}, "parse_errors": errors}
