"""Modbus BMS register maps as data: decode register dumps and poll live packs.

A profile (``telemetry/profiles/*.yaml``, format in ``profiles/README.md``) maps
registers to canonical reading columns, cell values and alarm bitmaps. Decoding is
pure (:func:`decode_registers`); :func:`poll_modbus` reads the registers a profile
needs from a Modbus TCP device with pymodbus and decodes them the same way.

Register dump files (``read_modbus_dump``) are JSON::

    {"profile": "pace-bms-v1.3", "unit": 1, "ts": "2024-05-01T10:00:00Z",
     "registers": {"0": 65436, "1": 5321, ...}}          # or "start": 0, "values": [...]

or text lines ``REGISTER VALUE`` (decimal or 0x hex, separated by space, comma,
``=`` or ``:``) with optional ``# profile: NAME`` / ``# unit: N`` / ``# ts: ISO`` lines.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from .. import alarms
from ..schema import Quality, READING_COLUMNS, cells_from_rows, readings_from_rows
from ._common import ReaderError, Source, capture_time, read_bounded, source_name

SOURCE = "modbus"
PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"
_TYPES = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "ascii": None}


@lru_cache(maxsize=32)
def load_profile(name_or_path: str) -> dict[str, Any]:
    """Load and check a profile by name (``pace-bms-v1.3``) or path."""
    p = PROFILES_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        p = Path(name_or_path)
    if not p.is_file():
        known = ", ".join(sorted(x.stem for x in PROFILES_DIR.glob("*.yaml")))
        raise ReaderError(f"Modbus profile {name_or_path!r} not found; known profiles: {known} (or give a path)")
    try:
        prof = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReaderError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(prof, dict) or "reading" not in prof:
        raise ReaderError(f"{p}: a profile needs 'profile' and 'reading' sections (see profiles/README.md)")
    for section in ("reading", "extra", "cells"):
        for key, spec in (prof.get(section) or {}).items():
            where = f"{p}: {section}.{key}"
            if section == "reading" and key not in READING_COLUMNS:
                raise ReaderError(f"{where}: not a canonical column ({', '.join(READING_COLUMNS)})")
            if not isinstance(spec, dict) or "register" not in spec:
                raise ReaderError(f"{where}: needs a 'register'")
            if spec.get("type", "uint16") not in _TYPES:
                raise ReaderError(f"{where}: type {spec.get('type')!r} is not one of {', '.join(_TYPES)}")
            if spec.get("type") == "ascii" and "count" not in spec:
                raise ReaderError(f"{where}: ascii fields need 'count' (registers)")
    for key, spec in (prof.get("bitmaps") or {}).items():
        if spec.get("set") not in alarms.load_bit_sets():
            raise ReaderError(f"{p}: bitmaps.{key}: unknown bit set {spec.get('set')!r} (rules/alarm_bits.yaml)")
    prof.setdefault("profile", p.stem)
    prof["_path"] = str(p)
    return prof


def registers_needed(profile: Mapping[str, Any]) -> list[int]:
    regs: set[int] = set()
    for section in ("reading", "extra"):
        for spec in (profile.get(section) or {}).values():
            regs.update(range(spec["register"], spec["register"] + _width(spec)))
    for spec in (profile.get("cells") or {}).values():
        regs.update(range(spec["register"], spec["register"] + spec.get("count", 1) * _width(spec)))
    for spec in (profile.get("bitmaps") or {}).values():
        regs.add(spec["register"])
    return sorted(regs)


def _width(spec: Mapping[str, Any]) -> int:
    t = spec.get("type", "uint16")
    return spec["count"] if t == "ascii" else _TYPES[t]


def _value(regs: Mapping[int, int], spec: Mapping[str, Any], offset: int = 0):
    t = spec.get("type", "uint16")
    start = spec["register"] + offset
    words = [regs.get(start + i) for i in range(_width(spec))]
    if any(w is None for w in words):
        return None
    if t == "ascii":
        raw = b"".join(int(w).to_bytes(2, "big") for w in words)
        text = raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
        return text or None
    v = 0
    for w in words:
        v = (v << 16) | (int(w) & 0xFFFF)
    bits = 16 * len(words)
    if t.startswith("int") and v & (1 << (bits - 1)):
        v -= 1 << bits
    scale = spec.get("scale")
    return v * scale if scale is not None else v


def decode_registers(regs: Mapping[int, int], profile: Mapping[str, Any] | str, *, ts: dt.datetime,
                     site_code: str | None = None, unit: int | None = None, quality: int = 0,
                     ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Decode one register image → (reading row, cell rows, extra values)."""
    prof = load_profile(profile) if isinstance(profile, str) else profile
    for r, v in regs.items():
        if not 0 <= int(v) <= 0xFFFF:
            raise ReaderError(f"register {r}: value {v} is not a 16-bit register value (0-65535)")
    row: dict[str, Any] = {"ts": ts, "site_code": site_code, "source": f"{SOURCE}:{prof['profile']}",
                           "slot": unit, "quality": quality, "alarm_codes": []}
    for col, spec in prof["reading"].items():
        v = _value(regs, spec)
        row[col] = round(v, 6) if isinstance(v, float) else v
        if v is None:
            row["quality"] |= int(Quality.PARTIAL)
    cells: list[dict[str, Any]] = []
    cspec = prof.get("cells") or {}
    n = max((s.get("count", 1) for s in cspec.values()), default=0)
    for i in range(n):
        c = {"ts": ts, "pack_serial": row.get("pack_serial"), "site_code": site_code, "source": row["source"],
             "slot": unit, "cell_index": i}
        for name, s in cspec.items():
            if i < s.get("count", 1):
                v = _value(regs, s, offset=i * _width(s))
                c[name] = round(v, 6) if isinstance(v, float) else v
        if any(c.get(k) is not None for k in cspec):
            cells.append(c)
    volts = [c["cell_v"] for c in cells if c.get("cell_v")]
    temps = [c["temp_c"] for c in cells if c.get("temp_c") is not None]
    if volts and row.get("cell_v_min") is None:
        row["cell_v_min"], row["cell_v_max"] = min(volts), max(volts)
    if temps and row.get("temp_min_c") is None:
        row["temp_min_c"], row["temp_max_c"] = min(temps), max(temps)
    codes: list[str] = []
    for spec in (prof.get("bitmaps") or {}).values():
        if spec.get("alarm", True) and regs.get(spec["register"]) is not None:
            codes += alarms.decode_bitmap(regs[spec["register"]], spec["set"], mask=spec.get("mask", 0xFFFF),
                                          shift=spec.get("shift", 0))
    row["alarm_codes"] = codes
    extra = {k: _value(regs, s) for k, s in (prof.get("extra") or {}).items()}
    for spec in (prof.get("bitmaps") or {}).values():
        if not spec.get("alarm", True) and regs.get(spec["register"]) is not None:
            extra[spec["set"]] = alarms.decode_bitmap(regs[spec["register"]], spec["set"],
                                                      mask=spec.get("mask", 0xFFFF), shift=spec.get("shift", 0))
    return row, cells, extra


def _int(text: str, where: str) -> int:
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise ReaderError(f"{where}: {text!r} is not an integer (decimal or 0x hex)") from None


def _parse_dump(data: bytes, name: str) -> tuple[dict[int, int], dict[str, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReaderError(f"{name}: byte offset {exc.start} is not UTF-8 text; "
                          "a register dump is JSON or 'REGISTER VALUE' lines") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReaderError(f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise ReaderError(f"{name}: JSON nested too deeply; a register dump is a flat object") from None
        if not isinstance(doc, dict):
            raise ReaderError(f"{name}: JSON dump must be an object with 'registers'")
        regs: dict[int, int] = {}
        if isinstance(doc.get("registers"), dict):
            for k, v in doc["registers"].items():
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ReaderError(f"{name}: registers[{k!r}] = {v!r} is not an integer")
                regs[_int(str(k), f"{name}: register key")] = v
        elif isinstance(doc.get("values"), list):
            start = doc.get("start", 0)
            for i, v in enumerate(doc["values"]):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ReaderError(f"{name}: values[{i}] = {v!r} is not an integer")
                regs[int(start) + i] = v
        else:
            raise ReaderError(f"{name}: JSON dump needs 'registers' {{REG: VALUE}} or 'start' + 'values' [..]")
        head = {k: str(doc[k]) for k in ("profile", "unit", "ts", "site_code") if doc.get(k) is not None}
        return regs, head
    regs, head = {}, {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*(profile|unit|ts|site_code)\s*[:=]\s*(\S+)", line)
            if m:
                head[m.group(1)] = m.group(2)
            continue
        parts = [p for p in re.split(r"[\s,;:=]+", line) if p]
        if len(parts) != 2:
            raise ReaderError(f"{name}: line {lineno}: expected 'REGISTER VALUE', got {line[:60]!r}")
        regs[_int(parts[0], f"{name}: line {lineno}")] = _int(parts[1], f"{name}: line {lineno}")
    if not regs:
        raise ReaderError(f"{name}: no registers found")
    return regs, head


def read_modbus_dump(src: Source, *, profile: str | None = None, ts: dt.datetime | None = None,
                     site_code: str | None = None, unit: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Read a register dump → (one reading, metadata with cells, extras, alarms)."""
    name = source_name(src)
    regs, head = _parse_dump(read_bounded(src, max_bytes=4 * 1024 * 1024, what="register dump"), name)
    prof_name = profile or head.get("profile")
    if not prof_name:
        raise ReaderError(f"{name}: no profile given; pass --profile NAME or add '# profile: NAME' to the dump")
    prof = load_profile(prof_name)
    q = 0
    when = ts
    if when is None and head.get("ts"):
        try:
            when = dt.datetime.fromisoformat(head["ts"].replace("Z", "+00:00"))
        except ValueError:
            raise ReaderError(f"{name}: ts {head['ts']!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise ReaderError(f"{name}: ts {head['ts']!r} has no time zone; add 'Z' or an offset")
    if when is None:
        when = capture_time(src, None)
        q |= int(Quality.TS_ASSUMED)
    unit_id = unit if unit is not None else (_int(head["unit"], f"{name}: unit") if "unit" in head else None)
    row, cells, extra = decode_registers(regs, prof, ts=when, site_code=site_code or head.get("site_code"),
                                         unit=unit_id, quality=q)
    meta = {"source": SOURCE, "input": name, "profile": prof["profile"], "registers": len(regs), "extra": extra,
            "ts_assumed": bool(q & Quality.TS_ASSUMED)}
    try:
        meta["cells"] = cells_from_rows(cells)
        return readings_from_rows([row]), meta
    except ValueError as exc:
        raise ReaderError(f"{name}: {exc}; check the profile's types and scales") from None


def _blocks(regs: list[int], max_block: int, gap: int = 8) -> list[tuple[int, int]]:
    """Contiguous (start, count) request blocks covering ``regs``; gaps up to ``gap`` are read through."""
    blocks: list[tuple[int, int]] = []
    for r in regs:
        if blocks and r - blocks[-1][0] < max_block and r - (blocks[-1][0] + blocks[-1][1]) <= gap:
            blocks[-1] = (blocks[-1][0], r - blocks[-1][0] + 1)
        else:
            blocks.append((r, 1))
    return blocks


def poll_modbus(host: str, port: int, unit: int | None, profile: str, *, timeout_s: float = 3.0,
                site_code: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Read a live pack over Modbus TCP (pymodbus) and decode it with ``profile``."""
    from pymodbus.client import ModbusTcpClient
    from pymodbus.exceptions import ModbusException

    prof = load_profile(profile)
    unit_id = unit if unit is not None else prof.get("default_unit_id", 1)
    fc = prof.get("function", "holding")
    client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=1)
    if not client.connect():
        raise ReaderError(f"cannot connect to Modbus TCP {host}:{port}; check host, port and that the gateway is up")
    regs: dict[int, int] = {}
    failed: list[str] = []
    try:
        for start, count in _blocks(registers_needed(prof), prof.get("max_block", 60)):
            read = client.read_holding_registers if fc == "holding" else client.read_input_registers
            try:
                rr = read(start, count=count, device_id=unit_id)
            except ModbusException as exc:
                failed.append(f"{start}+{count}: {exc}")
                continue
            if rr.isError():
                # a gap in the block may be unmapped on this firmware: retry the
                # registers we need one contiguous run at a time
                needed = [r for r in registers_needed(prof) if start <= r < start + count]
                for s2, c2 in _blocks(needed, prof.get("max_block", 60), gap=0):
                    try:
                        r2 = read(s2, count=c2, device_id=unit_id)
                    except ModbusException as exc:
                        failed.append(f"{s2}+{c2}: {exc}")
                        continue
                    if r2.isError():
                        failed.append(f"{s2}+{c2}: device answered {r2}")
                        continue
                    regs.update({s2 + i: v for i, v in enumerate(r2.registers)})
                continue
            regs.update({start + i: v for i, v in enumerate(rr.registers)})
    finally:
        client.close()
    if not regs:
        raise ReaderError(f"{host}:{port} unit {unit_id}: no register block could be read ({'; '.join(failed)})")
    now = dt.datetime.now(dt.timezone.utc)
    row, cells, extra = decode_registers(regs, prof, ts=now, site_code=site_code, unit=unit_id)
    meta = {"source": SOURCE, "input": f"modbus-tcp://{host}:{port}/{unit_id}", "profile": prof["profile"],
            "registers": len(regs), "failed_blocks": failed, "extra": extra, "cells": cells_from_rows(cells)}
    return readings_from_rows([row]), meta
