"""Shared input handling for readers: bounded reads, text decoding, timestamps."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]

#: Text captures (console sessions, frame logs) are small; anything bigger is not one.
MAX_TEXT_BYTES = 32 * 1024 * 1024
#: No console line or RS485 frame is anywhere near this long.
MAX_LINE_BYTES = 64 * 1024


class ReaderError(ValueError):
    """Bad input for a reader. The message names the input and what would fix it."""


def source_name(src: Source) -> str:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return str(src)


def read_bounded(src: Source, *, max_bytes: int = MAX_TEXT_BYTES, what: str = "capture") -> bytes:
    """Return the bytes of ``src``, refusing inputs larger than ``max_bytes``.

    The size is checked before reading so a multi-gigabyte file never enters memory.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        if len(data) > max_bytes:
            raise ReaderError(f"{what} is {len(data)} bytes, more than the {max_bytes} bytes a {what} can be; "
                              "split it or check that the right file was given")
        return data
    path = Path(src)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ReaderError(f"{path}: {size} bytes is more than the {max_bytes} bytes a {what} can be; "
                              "split it or check that the right file was given")
        with open(path, "rb") as fh:
            return fh.read(max_bytes + 1)[:max_bytes]
    except FileNotFoundError:
        raise ReaderError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReaderError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise ReaderError(f"{path}: permission denied") from None


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """Decode a text capture: UTF-8, else GB18030 (Chinese tools), else reject binary.

    Returns (text, encoding). Undecodable bytes in an otherwise textual capture are
    replaced (U+FFFD) rather than failing the whole capture; the reader's metadata
    records the encoding used.
    """
    if b"\x00" in data[:65536] and data[:65536].count(b"\x00") > 8:
        raise ReaderError(f"{name}: looks like binary data (NUL bytes), not a text capture")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if bad > max(16, len(text) // 20):
        raise ReaderError(f"{name}: {bad} undecodable bytes; this is not a text capture (expected ASCII/UTF-8)")
    return text, "utf-8-replace"


def check_line_lengths(text: str, name: str, limit: int = MAX_LINE_BYTES) -> None:
    start = 0
    n = len(text)
    lineno = 1
    while start < n:
        nl = _next_break(text, start)
        if nl - start > limit:
            raise ReaderError(f"{name}: line {lineno} is longer than {limit} characters; "
                              "not a console capture or frame log")
        start = nl + 1
        lineno += 1


def _next_break(text: str, start: int) -> int:
    a = text.find("\n", start)
    b = text.find("\r", start)
    cands = [x for x in (a, b) if x >= 0]
    return min(cands) if cands else len(text)


def zone(tz: str | dt.tzinfo | None) -> dt.tzinfo:
    if tz is None:
        return dt.timezone.utc
    if isinstance(tz, dt.tzinfo):
        return tz
    if tz.upper() == "UTC":
        return dt.timezone.utc
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReaderError(f"unknown time zone {tz!r}; use an IANA name such as 'Asia/Shanghai' or 'UTC'") from None


def capture_time(src: Source, ts: dt.datetime | None) -> dt.datetime:
    """Time for sources that carry none: the given ``ts``, else the file's mtime."""
    if ts is not None:
        return ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc)
    if not isinstance(src, (bytes, bytearray, memoryview)):
        try:
            return dt.datetime.fromtimestamp(Path(src).stat().st_mtime, tz=dt.timezone.utc)
        except OSError:
            pass
    return dt.datetime.now(dt.timezone.utc)
