"""Reader for Pylontech / YD/T 1363.3 ("电总协议") RS485 ASCII-hex frames.

Frame layout (YD/T 1363.3-2005 §6; Pylontech RS485 protocol v3.3)::

    '~' VER ADR CID1 CID2|RTN LENGTH INFO CHKSUM '\\r'

every field after ``~`` is ASCII hex. ``LENGTH`` is 4 hex digits: a 4-bit
``LCHKSUM`` over the three digits of the 12-bit ``LENID`` (the number of ASCII
characters in ``INFO``). ``CHKSUM`` is the two's complement (mod 65536) of the sum
of all ASCII codes between ``~`` and ``CHKSUM``. Both are verified.

Decoded: CID1 0x46 (lithium battery) responses to CID2 0x42 "get analog values"
for one module or a multi-module stack, and to CID2 0x44 "get alarm info"
(per-cell, temperature, current and voltage alarm states → named alarm codes). Per module: cell count and cell mV,
temperature count and temperatures (0.1 K, offset 2731; the first probe is the BMS
board), current (10 mA, signed, + = charging), module mV, remaining and total
capacity (mAh, 16-bit), user-defined item count, cycle count and — when that count
is 4 — remaining/total capacity as 3-byte mAh fields. Packs above 65 Ah saturate the
16-bit fields at 0xFFFF and the 3-byte fields carry the value (DOMAIN.md §10).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from ..schema import Quality, cells_from_rows, readings_from_rows
from ._common import ReaderError, Source, capture_time, read_bounded, source_name

SOURCE = "pylontech-rs485"
CID1_LITHIUM = 0x46
CID2_ANALOG = 0x42
CID2_ALARM = 0x44
#: 12-bit LENID → at most 4095 INFO characters; a frame can never be longer than this.
MAX_FRAME_CHARS = 1 + 12 + 4095 + 4 + 1
MAX_LOG_BYTES = 16 * 1024 * 1024
RTN_MEANING = {0x00: "normal", 0x01: "VER error", 0x02: "CHKSUM error", 0x03: "LCHKSUM error",
               0x04: "CID2 invalid", 0x05: "command format error", 0x06: "invalid data",
               0x90: "ADR error", 0x91: "internal communication error"}
_HEX = re.compile(r"^[0-9A-Fa-f]*$")
_SATURATED = 0xFFFF


class FrameError(ValueError):
    """A frame that fails YD/T 1363.3 structure, length or checksum checks."""


@dataclass
class Frame:
    ver: int
    adr: int
    cid1: int
    cid2: int  # command in requests, RTN in responses
    info: bytes
    raw: str = field(repr=False, default="")


def length_field(info_chars: int) -> str:
    """LENGTH field (LCHKSUM + LENID) for an INFO of ``info_chars`` ASCII characters."""
    if not 0 <= info_chars <= 0xFFF:
        raise FrameError(f"INFO of {info_chars} characters does not fit the 12-bit LENID")
    digits = (info_chars >> 8) + ((info_chars >> 4) & 0xF) + (info_chars & 0xF)
    lchk = (~digits + 1) & 0xF
    return f"{(lchk << 12) | info_chars:04X}"


def checksum(body: str) -> str:
    """CHKSUM of the characters between '~' and CHKSUM."""
    return f"{(~sum(body.encode('ascii')) + 1) & 0xFFFF:04X}"


def build_frame(adr: int, cid2: int, info: bytes = b"", *, ver: int = 0x20, cid1: int = CID1_LITHIUM) -> str:
    """Encode a frame (used to query a BMS and to build test fixtures)."""
    info_hex = info.hex().upper()
    body = f"{ver:02X}{adr:02X}{cid1:02X}{cid2:02X}{length_field(len(info_hex))}{info_hex}"
    return f"~{body}{checksum(body)}\r"


def decode_frame(text: str) -> Frame:
    """Parse and verify one frame (with or without the trailing CR)."""
    s = text.strip()
    if not s.startswith("~"):
        raise FrameError("does not start with '~' (SOI)")
    body = s[1:]
    if not _HEX.match(body):
        bad = next(i for i, ch in enumerate(body) if ch not in "0123456789ABCDEFabcdef")
        raise FrameError(f"non-hex character {body[bad]!r} at offset {bad + 1}")
    if len(body) < 12:
        raise FrameError(f"truncated: {len(body)} characters after '~', a frame has at least 16")
    length = int(body[8:12], 16)
    lenid = length & 0x0FFF
    if length_field(lenid) != body[8:12].upper():
        raise FrameError(f"LCHKSUM mismatch in LENGTH {body[8:12]} (expected {length_field(lenid)})")
    expected_len = 12 + lenid + 4
    if len(body) < expected_len:
        raise FrameError(f"truncated: LENGTH says {lenid} INFO characters, only {max(0, len(body) - 16)} present")
    if len(body) % 2:
        raise FrameError(f"odd number of hex characters ({len(body)}); a character was lost on the line")
    if len(body) > expected_len:
        raise FrameError(f"{len(body) - expected_len} characters beyond what LENGTH announces")
    chk = body[-4:].upper()
    if checksum(body[:-4]) != chk:
        raise FrameError(f"CHKSUM mismatch: frame says {chk}, computed {checksum(body[:-4])}")
    return Frame(ver=int(body[0:2], 16), adr=int(body[2:4], 16), cid1=int(body[4:6], 16),
                 cid2=int(body[6:8], 16), info=bytes.fromhex(body[12:12 + lenid]), raw=s)


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> int:
        if self.pos + n > len(self.data):
            raise FrameError(f"INFO ends inside {what} (byte {self.pos} of {len(self.data)})")
        v = int.from_bytes(self.data[self.pos:self.pos + n], "big")
        self.pos += n
        return v

    def s16(self, what: str) -> int:
        v = self.take(2, what)
        return v - 0x10000 if v & 0x8000 else v


def decode_analog(info: bytes) -> list[dict[str, Any]]:
    """Decode a CID2 0x42 response INFO (DATAFLAG, module count, modules)."""
    cur = _Cursor(info)
    cur.take(1, "DATAFLAG")
    n_modules = cur.take(1, "module count")
    if not 1 <= n_modules <= 32:
        raise FrameError(f"module count {n_modules} is not a stack size (1-32)")
    modules = []
    for m in range(n_modules):
        n_cells = cur.take(1, f"module {m + 1} cell count")
        if not 1 <= n_cells <= 32:
            raise FrameError(f"module {m + 1}: cell count {n_cells} is implausible")
        cells_mv = [cur.take(2, f"module {m + 1} cell {c + 1} voltage") for c in range(n_cells)]
        n_temps = cur.take(1, f"module {m + 1} temperature count")
        temps_c = [round((cur.s16(f"module {m + 1} temperature {t + 1}") - 2731) / 10.0, 1) for t in range(n_temps)]
        current_10ma = cur.s16(f"module {m + 1} current")
        voltage_mv = cur.take(2, f"module {m + 1} voltage")
        remaining_mah = cur.take(2, f"module {m + 1} remaining capacity")
        user_items = cur.take(1, f"module {m + 1} user-defined item count")
        total_mah = cur.take(2, f"module {m + 1} total capacity")
        cycles = cur.take(2, f"module {m + 1} cycle count")
        rem3 = tot3 = None
        if user_items >= 4:
            rem3 = cur.take(3, f"module {m + 1} 3-byte remaining capacity")
            tot3 = cur.take(3, f"module {m + 1} 3-byte total capacity")
        modules.append({"cells_mv": cells_mv, "temps_c": temps_c, "current_a": current_10ma / 100.0,
                        "voltage_v": voltage_mv / 1000.0, "remaining_mah16": remaining_mah,
                        "total_mah16": total_mah, "user_items": user_items, "cycle_count": cycles,
                        "remaining_mah24": rem3, "total_mah24": tot3})
    if cur.pos != len(info):
        raise FrameError(f"{len(info) - cur.pos} bytes left after {n_modules} modules; not a 0x42 layout")
    return modules


_LEVEL = {0x01: "low", 0x02: "high", 0xF0: "error"}


def decode_alarm_info(info: bytes) -> list[list[str]]:
    """Decode a CID2 0x44 response INFO → alarm codes per module.

    Layout (Pylontech RS485 v3.3 "get alarm info"): DATAFLAG, module count, then per
    module: cell count + one state byte per cell, temperature count + one state byte
    per probe, charge current, module voltage and discharge current states (0 normal,
    1 below the lower limit, 2 above the upper limit, 0xF0 other fault), then five
    status bitmaps. Set status bits are kept as ``pylontech.statusK.bitN``.
    """
    cur = _Cursor(info)
    cur.take(1, "DATAFLAG")
    n_modules = cur.take(1, "module count")
    if not 1 <= n_modules <= 32:
        raise FrameError(f"module count {n_modules} is not a stack size (1-32)")
    out = []
    for m in range(n_modules):
        codes: list[str] = []
        n_cells = cur.take(1, f"module {m + 1} cell count")
        for c in range(n_cells):
            v = cur.take(1, f"module {m + 1} cell {c + 1} state")
            if v:
                codes.append(f"pylontech.cell{c + 1}_voltage.{_LEVEL.get(v, f'0x{v:02x}')}")
        n_temps = cur.take(1, f"module {m + 1} temperature count")
        for t in range(n_temps):
            v = cur.take(1, f"module {m + 1} temperature {t + 1} state")
            if v:
                codes.append(f"pylontech.temperature{t + 1}.{_LEVEL.get(v, f'0x{v:02x}')}")
        for what in ("charge_current", "module_voltage", "discharge_current"):
            v = cur.take(1, f"module {m + 1} {what} state")
            if v:
                codes.append(f"pylontech.{what}.{_LEVEL.get(v, f'0x{v:02x}')}")
        for k in range(1, 6):
            v = cur.take(1, f"module {m + 1} status {k}") if cur.pos < len(cur.data) else 0
            codes += [f"pylontech.status{k}.bit{b}" for b in range(8) if v >> b & 1]
        out.append(codes)
    return out


def _split_frames(text: str) -> list[tuple[int, str]]:
    """(line number, frame text) for every '~' in a log; CR, LF or CRLF separate frames."""
    # Logs written from Python often hold the terminator escaped ("\\r" as two characters).
    text = text.replace("\\r", "\r").replace("\\n", "\n")
    out, ignored = [], 0
    for lineno, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        for part in re.split(r"(?=~)", line):
            if part.strip().startswith("~"):
                out.append((lineno, part.strip()))
            elif part.strip():
                ignored += 1  # prompts, comments or noise between frames
    return out, ignored


def read_pylontech_rs485(src: Source, *, ts: dt.datetime | None = None, site_code: str | None = None,
                         pack_serials: dict[int, str] | None = None, command: int = CID2_ANALOG,
                         ) -> tuple[Any, dict[str, Any]]:
    """Read RS485 frames (a capture file or bytes) → (module readings, metadata).

    Frames carry no time; ``ts`` is used, else the file's modification time (flag
    ``TS_ASSUMED``). A response is decoded as the command of the request frame before
    it when the log has one, else as ``command`` (0x42). Frames failing checks are
    listed in ``metadata['rejected_frames']`` with line and reason; if no frame is
    usable a :class:`ReaderError` explains why.
    """
    name = source_name(src)
    data = read_bounded(src, max_bytes=MAX_LOG_BYTES, what="RS485 frame log")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ReaderError(f"{name}: byte 0x{data[exc.start]:02X} at offset {exc.start} is not ASCII; "
                          "YD/T 1363.3 frames are ASCII hex — was a binary or raw serial dump given?") from None
    frames, ignored = _split_frames(text)
    if not frames:
        raise ReaderError(f"{name}: no YD/T 1363.3 frame found (frames start with '~', e.g. '~20024600...')")
    when = capture_time(src, ts)
    flags = int(Quality.TS_ASSUMED) if ts is None else 0
    readings, cells, rejected, decoded = [], [], [], []
    alarm_by_slot: dict[int, list[str]] = {}
    pending_cmd = command
    for lineno, raw in frames:
        if len(raw) > MAX_FRAME_CHARS:
            rejected.append({"line": lineno, "reason": f"{len(raw)} characters, longer than any valid frame"})
            continue
        try:
            fr = decode_frame(raw)
        except FrameError as exc:
            rejected.append({"line": lineno, "reason": str(exc)})
            continue
        if fr.cid1 != CID1_LITHIUM:
            rejected.append({"line": lineno, "reason": f"CID1 0x{fr.cid1:02X} is not a lithium battery (0x46)"})
            continue
        if fr.cid2 >= 0x40:  # a request: remember which command the next response answers
            pending_cmd = fr.cid2
            continue
        if fr.cid2 != 0x00:
            rejected.append({"line": lineno, "reason": f"BMS answered RTN 0x{fr.cid2:02X} "
                                                       f"({RTN_MEANING.get(fr.cid2, 'unknown error')})"})
            continue
        if pending_cmd == CID2_ALARM:
            try:
                per_module = decode_alarm_info(fr.info)
            except FrameError as exc:
                rejected.append({"line": lineno, "reason": f"CID2 0x44 payload: {exc}"})
                continue
            for i, codes in enumerate(per_module):
                alarm_by_slot.setdefault(i + 1 if len(per_module) > 1 else fr.adr, []).extend(codes)
            decoded.append({"line": lineno, "command": "0x44", "adr": fr.adr, "modules": len(per_module)})
            pending_cmd = command
            continue
        if pending_cmd != CID2_ANALOG:
            decoded.append({"line": lineno, "command": f"0x{pending_cmd:02X}", "info": fr.info.hex().upper()})
            pending_cmd = command
            continue
        try:
            modules = decode_analog(fr.info)
        except FrameError as exc:
            rejected.append({"line": lineno, "reason": f"CID2 0x42 payload: {exc}"})
            continue
        pending_cmd = command
        for i, mod in enumerate(modules):
            slot = i + 1 if len(modules) > 1 else fr.adr
            q = flags
            full_mah, rem_mah = mod["total_mah16"], mod["remaining_mah16"]
            if mod["total_mah24"] is not None:
                if full_mah == _SATURATED or rem_mah == _SATURATED:
                    q |= int(Quality.CAPACITY_3BYTE)
                full_mah, rem_mah = mod["total_mah24"], mod["remaining_mah24"]
            soc = round(100.0 * rem_mah / full_mah, 2) if full_mah else None
            cell_temps = mod["temps_c"][1:] or mod["temps_c"]
            cv = [c / 1000.0 for c in mod["cells_mv"]]
            serial = None
            if pack_serials and slot in pack_serials:
                serial = pack_serials[slot]
                q |= int(Quality.SERIAL_FROM_SLOT)
            readings.append({
                "ts": when, "pack_serial": serial, "site_code": site_code, "source": SOURCE, "slot": slot,
                "voltage_v": mod["voltage_v"], "current_a": mod["current_a"], "soc_pct": soc,
                "remaining_ah": rem_mah / 1000.0, "full_ah": full_mah / 1000.0,
                "cycle_count": mod["cycle_count"],
                "temp_min_c": min(cell_temps) if cell_temps else None,
                "temp_max_c": max(cell_temps) if cell_temps else None,
                "cell_v_min": min(cv), "cell_v_max": max(cv), "alarm_codes": [],
                "quality": q | int(Quality.DERIVED if soc is not None else 0),
            })
            for ci, v in enumerate(cv):
                cells.append({"ts": when, "pack_serial": serial, "site_code": site_code, "source": SOURCE,
                              "slot": slot, "cell_index": ci, "cell_v": v})
            decoded.append({"line": lineno, "command": "0x42", "adr": fr.adr, "slot": slot,
                            "bms_temp_c": mod["temps_c"][0] if mod["temps_c"] else None,
                            "temps_c": mod["temps_c"], "user_items": mod["user_items"]})
    # alarm info (0x44) joins the analog reading of the same module; alone it still
    # makes a reading, flagged PARTIAL, so that no alarm is lost
    by_slot = {r["slot"]: r for r in readings}
    for slot, codes in alarm_by_slot.items():
        if slot in by_slot:
            by_slot[slot]["alarm_codes"] = sorted(set(by_slot[slot]["alarm_codes"]) | set(codes))
        else:
            serial = (pack_serials or {}).get(slot)
            readings.append({"ts": when, "pack_serial": serial, "site_code": site_code, "source": SOURCE,
                             "slot": slot, "alarm_codes": sorted(set(codes)),
                             "quality": flags | int(Quality.PARTIAL)
                             | (int(Quality.SERIAL_FROM_SLOT) if serial else 0)})
    if not readings and rejected:
        first = rejected[0]
        raise ReaderError(f"{name}: line {first['line']}: {first['reason']}"
                          + (f" (and {len(rejected) - 1} more bad frames)" if len(rejected) > 1 else ""))
    meta = {"source": SOURCE, "input": name, "frames": len(frames), "ignored_text": ignored, "modules": decoded,
            "rejected_frames": rejected, "ts_assumed": ts is None, "cells": cells_from_rows(cells)}
    try:
        return readings_from_rows(readings), meta
    except ValueError as exc:
        raise ReaderError(f"{name}: {exc}") from None
