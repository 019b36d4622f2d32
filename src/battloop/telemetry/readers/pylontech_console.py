"""Reader for Pylontech-family console captures (RS232 "Console" port, ASCII text).

Commands understood: ``pwr`` (stack table), ``pwr N`` (module detail), ``bat N``
(cell table), ``stat N`` (counters incl. ``CYCLE Times``, ``SOH``), ``info N``
(device identity incl. ``Barcode``), ``soh N`` (per-cell SOH counters), ``log``
(event pages), ``time``, and the HV controller's ``unit``/``bat`` variants.
Field names follow the Pylontech console as documented in the ecosystem note
(reference/ecosystem.md §1.2); units are taken from the header or the value
("mV", "mA", "mC", "mAH", "%"), defaulting to the firmware's mV/mA/m°C.

Parsing is header-driven because columns differ by firmware and brand (Pytes adds
``Barcode``/``DevType``, newer Pylontech adds ``MosTempr``); absent slots (``-``),
values with embedded spaces (``2023-09-16 11:50:32``, ``44231 mAH``), mixed
``\\r``/``\\r\\n`` line endings, any prompt (``pylon>``, ``PYTES>``) and the ``log``
pager line are tolerated.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from ..schema import Quality, cells_from_rows, readings_from_rows
from ._common import (MAX_TEXT_BYTES, ReaderError, Source, capture_time, check_line_lengths, decode_text,
                      read_bounded, source_name, zone)

SOURCE = "pylontech-console"
COMMANDS = ("pwrsys", "pwr", "bat", "stat", "info", "soh", "log", "time", "unit", "sysinfo", "bmuinfo", "getpwr")
_PROMPT_RE = re.compile(r"^\s*([A-Za-z][\w\-]{0,23})>\s*(.*?)\s*$")
_CMD_RE = re.compile(r"^(%s)(?:\s+(\d{1,3}))?$" % "|".join(COMMANDS), re.IGNORECASE)
_DATETIME_RE = re.compile(r"^(\d{2}|\d{4})-\d{1,2}-\d{1,2}$")
_TIME_RE = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")
_UNIT_TOKENS = {"mv", "v", "ma", "a", "mc", "mah", "ah", "mwh", "wh", "s", "%"}
#: Header words that belong together although separated by one space.
_MULTIWORD = ("Base State", "Volt. State", "Curr. State", "Temp. State", "Err Code", "Bat Events")
_NORMAL_STATES = {"normal", "-", "", "charge", "dischg", "idle", "absent", "n", "off", "on", "balance"}


class _Block:
    def __init__(self, command: str, arg: int | None, lines: list[str], start_line: int):
        self.command, self.arg, self.lines, self.start_line = command, arg, lines, start_line


# --------------------------------------------------------------------------- splitting

def _split_blocks(text: str, name: str) -> list[_Block]:
    """Split a session into command blocks at prompt lines, or guess the command."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    blocks: list[_Block] = []
    cur: _Block | None = None
    for i, raw in enumerate(lines, start=1):
        line = raw.rstrip()
        m = _PROMPT_RE.match(line)
        bare = _CMD_RE.match(line.strip())
        if m or bare:
            # a prompt line, or a command echoed without its prompt (truncated capture start)
            cmd = _CMD_RE.match(m.group(2).strip()) if m else bare
            if cur is not None:
                blocks.append(cur)
                cur = None
            if cmd:
                cur = _Block(cmd.group(1).lower(), int(cmd.group(2)) if cmd.group(2) else None, [], i)
            elif m and m.group(2).strip():
                # a command we do not parse (help, getpwr, ...): kept verbatim in metadata
                cur = _Block("other:" + m.group(2).strip()[:40], None, [], i)
            continue
        if cur is None:
            if line.strip():
                cur = _Block("?", None, [], i)
            else:
                continue
        cur.lines.append(line)
    if cur is not None:
        blocks.append(cur)
    out = []
    for b in blocks:
        b.lines = [ln for ln in b.lines if ln.strip() and ln.strip() not in ("@", "$$")
                   and "Command completed" not in ln and not ln.strip().startswith("Press [Enter]")
                   and not set(ln.strip()) <= {"-"}]
        if b.command == "?":
            b.command, b.arg = _guess_command(b.lines)
        if b.command != "?" and (b.lines or b.command == "pwrsys"):
            out.append(b)
    if not out:
        raise ReaderError(f"{name}: no Pylontech console output found (expected the output of "
                          f"{', '.join(COMMANDS[:7])}, with or without the 'pylon>' prompt)")
    return out


def _guess_command(lines: list[str]) -> tuple[str, int | None]:
    """Identify a block captured without its prompt line from its shape."""
    joined = "\n".join(lines[:60])
    first = lines[0].split() if lines else []
    if first[:2] == ["Power", "Volt"] or (first and first[0] == "Power" and "Base.St" in first):
        return "pwr", None
    m = re.search(r"^\s*Power\s+(\d+)\s*$", joined, re.M)
    if m and re.search(r"^\s*Voltage\s*:", joined, re.M):
        return "pwr", int(m.group(1))
    if first[:1] == ["Battery"] and "SOHCount" in first:
        return "soh", None
    if first[:1] in (["Battery"], ["Bat"]):
        return "bat", None
    if re.search(r"^\s*Manufacturer\s*:", joined, re.M):
        return "info", _device_address(lines)
    if re.search(r"^\s*CYCLE Times\s*:", "\n".join(lines), re.M) or re.search(r"Charge Cnt\.", joined):
        return "stat", _device_address(lines)
    if re.search(r"^\s*Index\s*:", joined, re.M):
        return "log", None
    return "?", None


def _device_address(lines: list[str]) -> int | None:
    for ln in lines[:3]:
        m = re.match(r"\s*Device address\s*:?\s*(\d+)", ln)
        if m:
            return int(m.group(1))
    return None


# --------------------------------------------------------------------------- primitives

def _kv(lines: list[str]) -> dict[str, str]:
    """``Key : value`` lines (also ``Key   value`` for 'Device address')."""
    out: dict[str, str] = {}
    for ln in lines:
        if ":" in ln:
            k, _, v = ln.partition(":")
            k = k.strip().rstrip(":").strip()
            v = v.strip().lstrip(":").strip()
            if k and k not in out:
                out[k] = v
        else:
            m = re.match(r"\s*(Device address)\s+(\d+)", ln)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def _tokens(line: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group()) for m in re.finditer(r"\S+", line)]


def _header_columns(line: str) -> list[tuple[int, str]]:
    toks = _tokens(line)
    cols: list[tuple[int, str]] = []
    i = 0
    while i < len(toks):
        pos, tok = toks[i]
        if i + 1 < len(toks) and f"{tok} {toks[i + 1][1]}" in _MULTIWORD:
            cols.append((pos, f"{tok} {toks[i + 1][1]}"))
            i += 2
            continue
        cols.append((pos, tok))
        i += 1
    return cols


def _value_tokens(line: str) -> list[tuple[int, str]]:
    """Tokens of a data row with date+time and number+unit pairs merged."""
    toks = _tokens(line)
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(toks):
        pos, tok = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if nxt is not None and _DATETIME_RE.match(tok) and _TIME_RE.match(nxt):
            out.append((pos, f"{tok} {nxt}"))
            i += 2
            continue
        if nxt is not None and re.fullmatch(r"-?\d+(\.\d+)?", tok) and nxt.lower() in _UNIT_TOKENS - {"%"}:
            out.append((pos, f"{tok} {nxt}"))
            i += 2
            continue
        out.append((pos, tok))
        i += 1
    return out


def _table(lines: list[str]) -> list[dict[str, str]]:
    """Header-driven table: by count when tokens match columns, else by position."""
    if not lines:
        return []
    header = _header_columns(lines[0])
    names = [h for _, h in header]
    rows = []
    for ln in lines[1:]:
        vals = _value_tokens(ln)
        if not vals:
            continue
        if len(vals) == len(header):
            rows.append({n: v for n, (_, v) in zip(names, vals)})
            continue
        row: dict[str, str] = {}
        for pos, v in vals:
            # a value belongs to the last column starting at or before it (2 chars slack:
            # some firmware prints values one or two columns left of their header)
            idx = max([k for k, (hpos, _) in enumerate(header) if hpos <= pos + 2] or [0])
            name = names[idx]
            row[name] = f"{row[name]} {v}" if name in row else v
        rows.append(row)
    return rows


def _num(value: str | None, default_unit: str = "") -> tuple[float | None, str]:
    """Parse ``'49905'``, ``'44231 mAH'``, ``'39%'``, ``'-100000mA'`` → (number, unit)."""
    if value is None:
        return None, ""
    v = value.strip()
    if v in ("", "-", "--", "N/A", "NA"):
        return None, ""
    m = re.match(r"^(-?\d+(?:\.\d+)?)\s*([A-Za-z%°]*)", v)
    if not m:
        raise ValueError(f"not a number: {value!r}")
    return float(m.group(1)), (m.group(2) or default_unit).lower()


_SCALE = {"mv": 1e-3, "v": 1.0, "ma": 1e-3, "a": 1.0, "mc": 1e-3, "c": 1.0, "mah": 1e-3, "ah": 1.0, "%": 1.0}


def _si(value: str | None, default_unit: str) -> float | None:
    x, unit = _num(value, default_unit)
    if x is None:
        return None
    return x * _SCALE.get(unit, _SCALE.get(default_unit, 1.0))


def _parse_time(value: str | None, tz: dt.tzinfo) -> dt.datetime | None:
    if not value or value.strip() in ("-", ""):
        return None
    v = value.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return dt.datetime.strptime(v, fmt).replace(tzinfo=tz).astimezone(dt.timezone.utc)
        except ValueError:
            continue
    return None


def _alarms_from_states(row: dict[str, str]) -> list[str]:
    codes = []
    for k, v in row.items():
        if (k.endswith(".St") or k.endswith("State")) and k not in ("Base.St", "Base State"):
            if v.strip().lower() not in _NORMAL_STATES:
                codes.append(f"pylontech.{k.lower().replace(' ', '').replace('.', '_')}.{v.strip().lower()}")
    for k in ("Err Code", "SysAlarm.St"):
        if k in row and row[k].strip() not in ("0x0", "0", "-", "Normal"):
            codes.append(f"pylontech.{k.lower().replace(' ', '_').replace('.', '_')}.{row[k].strip().lower()}")
    return codes


# --------------------------------------------------------------------------- reader

def read_pylontech_console(src: Source, *, tz: str | dt.tzinfo | None = None, ts: dt.datetime | None = None,
                           site_code: str | None = None, pack_serials: dict[int, str] | None = None,
                           ) -> tuple[Any, dict[str, Any]]:
    """Read a console capture (file, directory of captures, or bytes) → (readings, metadata).

    One reading per present module (stack slot). ``tz`` is the zone of the BMS clock
    (Pylontech prints local time without zone); when not given, UTC is assumed and
    the ``TZ_ASSUMED`` quality bit is set. ``pack_serials`` maps slot → serial for
    firmware that prints no ``Barcode``. ``metadata['cells']`` holds the cell table.
    """
    name = source_name(src)
    texts: list[tuple[str, str]] = []
    if not isinstance(src, (bytes, bytearray, memoryview)) and Path(src).is_dir():
        files = sorted(p for p in Path(src).iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.name != "LICENSE")
        if not files:
            raise ReaderError(f"{name}: directory holds no capture files")
        for p in files:
            texts.append((str(p), decode_text(read_bounded(p, what="console capture"), str(p))[0]))
    else:
        data = read_bounded(src, max_bytes=MAX_TEXT_BYTES, what="console capture")
        if not data.strip():
            raise ReaderError(f"{name}: empty capture")
        texts.append((name, decode_text(data, name)[0]))

    zone_info = zone(tz)
    base_flags = Quality.TZ_ASSUMED if tz is None else Quality.OK
    modules: dict[int | None, dict[str, Any]] = {}
    cells: list[dict[str, Any]] = []
    meta: dict[str, Any] = {"source": SOURCE, "input": name, "commands": [], "devices": {}, "stat": {},
                            "events": [], "timezone": str(zone_info) if tz is not None else "UTC (assumed)",
                            "warnings": []}
    clock: dt.datetime | None = None

    def mod(slot: int | None) -> dict[str, Any]:
        return modules.setdefault(slot, {"slot": slot, "alarm_codes": [], "quality": int(base_flags)})

    for fname, text in texts:
        check_line_lengths(text, fname)
        for b in _split_blocks(text, fname):
            where = f"{fname}: '{b.command}{'' if b.arg is None else ' %d' % b.arg}' at line {b.start_line}"
            meta["commands"].append(f"{b.command}{'' if b.arg is None else ' %d' % b.arg}")
            try:
                clock = _apply_block(b, mod, cells, meta, zone_info, clock) or clock
            except (ValueError, IndexError) as exc:
                raise ReaderError(f"{where}: {exc}; the capture may be truncated or from an unknown firmware") from None

    fallback = clock or capture_time(src if not isinstance(src, str) or not Path(src).is_dir() else b"", ts)
    rows = []
    for slot, m in sorted(modules.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        if m.pop("_absent", False) or len(m) <= 3:
            continue
        if m.get("ts") is None:
            m["ts"] = ts or fallback
            if ts is None and clock is None:
                m["quality"] |= int(Quality.TS_ASSUMED)
        serial = m.get("pack_serial") or meta["devices"].get(slot, {}).get("Barcode")
        if not serial and pack_serials and slot in pack_serials:
            serial = pack_serials[slot]
            m["quality"] |= int(Quality.SERIAL_FROM_SLOT)
        m["pack_serial"] = serial
        m["site_code"] = site_code
        m["source"] = SOURCE
        rows.append(m)
    for c in cells:
        c.setdefault("ts", modules.get(c["slot"], {}).get("ts") or ts or fallback)
        c["pack_serial"] = modules.get(c["slot"], {}).get("pack_serial")
        c["site_code"], c["source"] = site_code, SOURCE
    try:
        meta["cells"] = cells_from_rows(cells)
        return readings_from_rows(rows), meta
    except ValueError as exc:
        raise ReaderError(f"{name}: {exc}; the capture looks corrupted") from None


def _apply_block(b: _Block, mod, cells, meta, zone_info, clock):
    cmd = b.command
    if cmd == "time":
        for ln in b.lines:
            m = re.search(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})", ln)
            if m:
                return _parse_time(m.group(1), zone_info)
        return None
    if cmd == "pwr" and b.arg is None:
        table_start = next((i for i, ln in enumerate(b.lines) if re.match(r"\s*(Power|Volt)\s+", ln)
                            and len(ln.split()) > 4), None)
        if table_start is None:
            raise ValueError("no table header (expected a line starting with 'Power Volt Curr ...')")
        for row in _table(b.lines[table_start:]):
            # HV controllers print one system row without a slot column; the system
            # answers as device address 0 in 'info'/'stat', so file it there.
            slot = int(row["Power"]) if row.get("Power", "").isdigit() else (None if "Power" in row else 0)
            base = row.get("Base.St", "")
            if base.lower() == "absent":
                continue
            m = mod(slot)
            m["voltage_v"] = _si(row.get("Volt"), "mv")
            m["current_a"] = _si(row.get("Curr"), "ma")
            t_lo = _si(row.get("Tlow", row.get("BTlow")), "mc")
            t_hi = _si(row.get("Thigh", row.get("BThigh")), "mc")
            t_board = _si(row.get("Tempr"), "mc")
            m["temp_min_c"] = t_lo if t_lo is not None else t_board
            m["temp_max_c"] = t_hi if t_hi is not None else t_board
            m["cell_v_min"] = _si(row.get("Vlow", row.get("BVlow")), "mv")
            m["cell_v_max"] = _si(row.get("Vhigh", row.get("BVhigh")), "mv")
            soc_raw = row.get("Coulomb", row.get("CoulombAH"))
            if soc_raw:
                soc = re.match(r"\s*(\d+(?:\.\d+)?)%", soc_raw)
                m["soc_pct"] = float(soc.group(1)) if soc else None
                ah = re.search(r"(\d+)\s*mAH", soc_raw, re.I)
                if ah:
                    m["remaining_ah"] = int(ah.group(1)) / 1000.0
            t = _parse_time(row.get("Time"), zone_info)
            if t is not None:
                m["ts"] = t
            if row.get("Barcode") and row["Barcode"] != "-":
                m["pack_serial"] = row["Barcode"]
            m["alarm_codes"] = sorted(set(m["alarm_codes"]) | set(_alarms_from_states(row)))
        return None
    if cmd == "pwr":
        kv = _kv(b.lines)
        slot = b.arg
        m = mod(slot)
        m["voltage_v"] = _si(kv.get("Voltage"), "mv")
        m["current_a"] = _si(kv.get("Current"), "ma")
        temp = _si(kv.get("Temperature"), "mc")
        m.setdefault("temp_min_c", temp)
        m.setdefault("temp_max_c", temp)
        soc, _ = _num(kv.get("Coulomb"), "%")
        m["soc_pct"] = soc
        full = _si(kv.get("Real Coulomb") or kv.get("Total Coulomb"), "mah")
        if full is not None:
            m["full_ah"] = full
            if soc is not None and m.get("remaining_ah") is None:
                m["remaining_ah"] = round(full * soc / 100.0, 3)
                m["quality"] |= int(Quality.DERIVED)
        codes = set(m["alarm_codes"])
        for k in ("Volt Status", "Current Status", "Tmpr. Status", "Coul. Status", "Soh. Status"):
            v = kv.get(k, "").strip().lower()
            if v and v not in _NORMAL_STATES:
                codes.add(f"pylontech.{k.lower().replace('. ', '_').replace(' ', '_').replace('.', '')}.{v}")
        for k in ("Bat Events", "Power Events", "System Fault"):
            v = kv.get(k, "").strip()
            if re.fullmatch(r"0x[0-9a-fA-F]+", v) and int(v, 16):
                codes.add(f"pylontech.{k.lower().replace(' ', '_')}.{v.lower()}")
        m["alarm_codes"] = sorted(codes)
        return None
    if cmd == "info":
        kv = _kv(b.lines)
        slot = b.arg if b.arg is not None else (int(kv["Device address"]) if kv.get("Device address", "").isdigit() else None)
        meta["devices"][slot] = kv
        if kv.get("Barcode"):
            mod(slot)["pack_serial"] = kv["Barcode"].split()[0]
        return None
    if cmd == "stat":
        kv = _kv(b.lines)
        slot = b.arg if b.arg is not None else (int(kv["Device address"]) if kv.get("Device address", "").isdigit() else None)
        meta["stat"][slot] = kv
        m = mod(slot)
        cyc, _ = _num(kv.get("CYCLE Times"))
        if cyc is not None:
            m["cycle_count"] = int(cyc)
        soh, _ = _num(kv.get("SOH Percent") or kv.get("SOH"))
        if soh is not None and soh > 0:
            # 'SOH : 0' on some firmware means "not computed yet", not a dead pack
            m["soh_pct"] = soh
        return None
    if cmd in ("bat", "soh"):
        start = next((i for i, ln in enumerate(b.lines) if re.match(r"\s*(Battery|Bat)\s+\S", ln)), None)
        if start is None:
            raise ValueError("no cell table header (expected 'Battery Volt ...')")
        slot = b.arg if b.arg is not None else 0  # HV controller: the system is device 0
        for row in _table(b.lines[start:]):
            idx = row.get("Battery", row.get("Bat", ""))
            if not idx.isdigit() or int(idx) > 999:
                continue  # not a cell row (garbled line)
            if cmd == "soh":
                for c in cells:
                    if c["slot"] == slot and c["cell_index"] == int(idx):
                        c["status"] = f"SOHCount={row.get('SOHCount')} {row.get('SOHStatus', '')}".strip()
                        break
                else:
                    cells.append({"slot": slot, "cell_index": int(idx), "cell_v": _si(row.get("Voltage"), "mv"),
                                  "status": f"SOHCount={row.get('SOHCount')} {row.get('SOHStatus', '')}".strip()})
                continue
            soc = re.match(r"\s*(\d+)%", row.get("SOC", "") or row.get("AH(mAH)", "") or "")
            cells.append({
                "slot": slot, "cell_index": int(idx),
                "cell_v": _si(row.get("Volt"), "mv"),
                "temp_c": _si(row.get("Tempr"), "mc"),
                "soc_pct": float(soc.group(1)) if soc else None,
                "balancing": {"Y": True, "N": False}.get(row.get("BAL", row.get("Bal", "")).strip()),
                "status": row.get("Base State", row.get("V.State")),
            })
        if cmd == "bat":
            own = [c for c in cells if c["slot"] == slot and c.get("cell_v") is not None]
            m = mod(slot)
            if own and m.get("voltage_v") is None:
                # a bat-only capture still says a lot about the module
                m["voltage_v"] = round(sum(c["cell_v"] for c in own), 3)
                m["quality"] |= int(Quality.DERIVED)
            if own:
                m.setdefault("cell_v_min", min(c["cell_v"] for c in own))
                m.setdefault("cell_v_max", max(c["cell_v"] for c in own))
                temps = [c["temp_c"] for c in own if c.get("temp_c") is not None]
                if temps and m.get("temp_min_c") is None:
                    m["temp_min_c"], m["temp_max_c"] = min(temps), max(temps)
        return None
    if cmd == "log":
        ev: dict[str, str] = {}
        for ln in b.lines:
            k, sep, v = ln.partition(":")
            if not sep:
                continue
            k = k.strip()
            if k == "Index" and ev:
                meta["events"].append(ev)
                ev = {}
            ev[k] = v.strip()
        if ev:
            meta["events"].append(ev)
        return None
    if cmd == "pwrsys":
        # stack summary (US-series firmware): not a pack, so metadata, in SI units
        kv = _kv(b.lines)
        state = next((ln.strip() for ln in b.lines if ln.strip().lower().startswith("system is")), None)
        units = {"System Volt": "mv", "System Curr": "ma", "System RC": "mah", "System FCC": "mah",
                 "Highest voltage": "mv", "Lowest voltage": "mv", "Average voltage": "mv",
                 "Highest temperature": "mc", "Lowest temperature": "mc", "Lowest  temperature": "mc",
                 "Average temperature": "mc"}
        system: dict[str, Any] = {"state": state}
        for k, v in kv.items():
            try:
                system[k] = _si(v, units.get(k, "")) if k in units or k.startswith("System") else v
            except ValueError:
                system[k] = v
        meta["system"] = system
        return None
    if cmd == "unit":
        # HV controllers: one row per battery module (BMU); module barcodes come from
        # the 'BMU N Barcode' lines of 'info'
        start = next((i for i, ln in enumerate(b.lines) if re.match(r"\s*Index\s+Volt", ln)), None)
        if start is None:
            meta.setdefault("other", {})["unit"] = b.lines
            return None
        units = meta.setdefault("units", [])
        for row in _table(b.lines[start:]):
            if not row.get("Index", "").isdigit():
                continue
            soc = re.match(r"\s*(\d+)%", row.get("CoulombAH", "") or "")
            ah = re.search(r"(\d+)\s*mAH", row.get("CoulombAH", "") or "", re.I)
            units.append({"index": int(row["Index"]), "voltage_v": _si(row.get("Volt"), "mv"),
                          "current_a": _si(row.get("Curr"), "ma"), "temp_min_c": _si(row.get("BTlow"), "mc"),
                          "temp_max_c": _si(row.get("BThigh"), "mc"), "cell_v_min": _si(row.get("BVlow"), "mv"),
                          "cell_v_max": _si(row.get("BVhigh"), "mv"),
                          "soc_pct": float(soc.group(1)) if soc else None,
                          "remaining_ah": int(ah.group(1)) / 1000 if ah else None,
                          "ts": _parse_time(row.get("Time"), zone_info)})
        return None
    # sysinfo / bmuinfo / getpwr / unknown commands: kept as metadata only
    meta.setdefault("other", {})[cmd + ("" if b.arg is None else f" {b.arg}")] = b.lines
    return None
