"""Streaming reader for the messy tables users bring: CSV (any delimiter, BOM, UTF-8 /
GBK / mixed encodings, ragged rows, quoted newlines) and XLSX. Pure: no Django.

Memory stays bounded whatever the file size: rows are read in chunks, and a physical
line longer than ``max_line_bytes`` is skipped (reported as a row error) without being
held in memory.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Mapping

_OVERSIZE = "\x00__battloop_oversize_line__"
_HEADER_JUNK = re.compile(r"[\s_\-\.（）()\[\]:：/]+")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class TableError(ValueError):
    """A problem with the whole file (not one row): empty, unreadable, wrong mapping."""


@dataclass
class RowError:
    row: int
    field: str
    value: str
    reason: str


@dataclass
class Chunk:
    rows: list[int]
    records: list[dict[str, str]]
    errors: list[RowError] = field(default_factory=list)


def normalize_header(name: str) -> str:
    return _HEADER_JUNK.sub("", str(name).replace("\ufeff", "").strip().lower())


def safe_cell(value) -> str:
    """A value safe to write into CSV/XLSX that a spreadsheet will open: cells that
    begin like a formula are prefixed with an apostrophe (OWASP CSV-injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _cell_text(value) -> str:
    """Spreadsheet cell → text as the user typed it (dates as ISO, 12.0 as 12)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def sniff_csv(sample: bytes, name: str) -> tuple[str, str]:
    """Encoding and delimiter of a CSV from its first bytes: BOMs (UTF-8, UTF-16), UTF-8 or
    else GB18030 (the exports of Chinese NMS/FSU tools), and any of ``, ; TAB |`` as delimiter.
    ``name`` is the file's name for the error a binary file gets."""
    if sample.startswith(codecs.BOM_UTF16_LE) or sample.startswith(codecs.BOM_UTF16_BE):
        encoding = "utf-16"
    elif sample.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        try:
            sample.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            # A cut multi-byte character at the sample's end is not a GBK hint.
            encoding = "utf-8" if exc.start >= len(sample) - 3 else "gb18030"
    if b"\x00" in sample[:4096] and encoding != "utf-16":
        raise TableError(f"{name}: this looks like a binary file, not CSV or XLSX")
    text = sample.decode(encoding, errors="replace")
    first_lines = "\n".join(text.splitlines()[:20])
    try:
        delimiter = csv.Sniffer().sniff(first_lines, delimiters=",;\t|").delimiter
    except csv.Error:
        counts = {d: first_lines.count(d) for d in ",;\t|"}
        delimiter = max(counts, key=counts.get) if max(counts.values()) else ","
    return encoding, delimiter


class TableReader:
    """Read ``path`` (CSV or XLSX) as chunks of records keyed by canonical field names.

    ``synonyms`` maps each canonical field to header spellings it accepts (English and
    Chinese); ``mapping`` (from a mapping file) maps canonical field → the file's header
    and wins over synonyms.
    """

    def __init__(self, path: str | Path, synonyms: Mapping[str, list[str]], mapping: Mapping[str, str] | None = None,
                 sheet: str | None = None, chunk_rows: int = 20_000, max_line_bytes: int = 1 << 20):
        self.path = Path(path)
        self.synonyms = synonyms
        self.mapping = dict(mapping or {})
        self.sheet = sheet
        self.chunk_rows = chunk_rows
        self.max_line_bytes = max_line_bytes
        self.bytes_read = 0
        self.size = self.path.stat().st_size
        self.encoding = "utf-8"
        self.delimiter = ","
        self.headers: list[str] = []
        self.field_of_column: dict[int, str] = {}
        self.unknown_columns: list[str] = []
        if self.size == 0:
            raise TableError(f"{self.path.name}: the file is empty (expected a header row and data rows)")
        self.is_xlsx = self.path.suffix.lower() in (".xlsx", ".xlsm")

    # -- header -----------------------------------------------------------------
    def _bind_header(self, header: list[str]) -> None:
        self.headers = [str(h).replace("\ufeff", "").strip() for h in header]
        by_norm = {}
        for canon, names in self.synonyms.items():
            for n in [canon, *names]:
                by_norm.setdefault(normalize_header(n), canon)
        mapped_cols = {normalize_header(v): k for k, v in self.mapping.items()}
        for missing in [v for v in self.mapping.values() if normalize_header(v) not in {normalize_header(h) for h in self.headers}]:
            raise TableError(f"{self.path.name}: the mapping names column {missing!r}, which is not in the header {self.headers}")
        taken: set[str] = set()
        for i, h in enumerate(self.headers):
            norm = normalize_header(h)
            canon = mapped_cols.get(norm) or (by_norm.get(norm) if norm not in mapped_cols else None)
            if canon and canon not in taken:
                self.field_of_column[i] = canon
                taken.add(canon)
            elif h:
                self.unknown_columns.append(h)
        if not self.field_of_column:
            raise TableError(
                f"{self.path.name}: no known column in the header {self.headers[:12]}; "
                f"expected names such as {', '.join(list(self.synonyms)[:6])} or a mapping file"
            )

    # -- CSV ----------------------------------------------------------------------
    def _sniff(self, raw: IO[bytes]) -> None:
        sample = raw.read(64 * 1024)
        raw.seek(0)
        self.encoding, self.delimiter = sniff_csv(sample, self.path.name)

    def _decode(self, line: bytes) -> str:
        # Files assembled from several systems mix encodings line by line.
        try:
            return line.decode(self.encoding)
        except UnicodeDecodeError:
            alt = "gb18030" if self.encoding.startswith("utf-8") else "utf-8"
            try:
                return line.decode(alt)
            except UnicodeDecodeError:
                return line.decode(self.encoding, errors="replace")

    def _lines(self, raw: IO[bytes]) -> Iterator[str]:
        if self.encoding == "utf-16":
            for line in io.TextIOWrapper(raw, encoding="utf-16", newline=""):
                self.bytes_read += len(line) * 2
                yield line
            return
        limit = self.max_line_bytes
        while True:
            line = raw.readline(limit + 1)
            if not line:
                return
            self.bytes_read += len(line)
            if len(line) > limit and not line.endswith(b"\n"):
                while True:  # skip the rest of the oversize line without keeping it
                    rest = raw.readline(limit)
                    self.bytes_read += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield _OVERSIZE + "\n"
                continue
            text = self._decode(line)
            if text.endswith("\r\n"):
                text = text[:-2] + "\n"
            elif text.endswith("\r"):
                text = text[:-1] + "\n"
            yield text

    def _csv_records(self) -> Iterator[tuple[int, list[str] | None, str | None]]:
        csv.field_size_limit(self.max_line_bytes)
        with open(self.path, "rb") as raw:
            self._sniff(raw)
            reader = csv.reader(self._lines(raw), delimiter=self.delimiter)
            while True:
                try:
                    rec = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield reader.line_num, None, f"unreadable CSV: {exc}"
                    continue
                if rec and rec[0] == _OVERSIZE:
                    yield reader.line_num, None, f"line longer than {self.max_line_bytes} bytes; skipped"
                    continue
                yield reader.line_num, rec, None

    # -- XLSX ---------------------------------------------------------------------
    def _xlsx_records(self) -> Iterator[tuple[int, list[str] | None, str | None]]:
        import openpyxl

        try:
            wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for broken files
            raise TableError(f"{self.path.name}: not a readable XLSX workbook ({exc.__class__.__name__}: {exc})") from None
        try:
            if self.sheet and self.sheet not in wb.sheetnames:
                raise TableError(f"{self.path.name}: no sheet named {self.sheet!r}; sheets are {wb.sheetnames}")
            ws = wb[self.sheet] if self.sheet else wb.worksheets[0]
            for i, row in enumerate(ws.iter_rows(values_only=True), start=1):
                self.bytes_read = int(self.size * min(1.0, i / max(ws.max_row or 1, 1)))
                yield i, [_cell_text(v) for v in row], None
        finally:
            wb.close()

    # -- chunks -------------------------------------------------------------------
    def chunks(self) -> Iterator[Chunk]:
        records = self._xlsx_records() if self.is_xlsx else self._csv_records()
        header_seen = False
        chunk = Chunk([], [])
        for line_no, rec, problem in records:
            if not header_seen:
                if problem:
                    raise TableError(f"{self.path.name}: line {line_no}: the header is unreadable ({problem})")
                if not rec or not any(c.strip() for c in rec):
                    continue
                self._bind_header(rec)
                header_seen = True
                continue
            if problem:
                chunk.errors.append(RowError(line_no, "", "", problem))
            elif not any(c.strip() for c in rec):
                continue  # blank line
            elif len(rec) < len(self.headers) or any(c.strip() for c in rec[len(self.headers):]):
                # Trailing empty cells (spreadsheet exports) are fine; missing or extra values are not.
                chunk.errors.append(RowError(line_no, "", self.delimiter.join(rec)[:200],
                                             f"row has {len(rec)} fields, the header has {len(self.headers)}"))
            else:
                chunk.rows.append(line_no)
                chunk.records.append({canon: rec[i].strip() for i, canon in self.field_of_column.items() if i < len(rec)})
            if len(chunk.rows) + len(chunk.errors) >= self.chunk_rows:
                yield chunk
                chunk = Chunk([], [])
        if not header_seen:
            raise TableError(f"{self.path.name}: no header row found (the file has no non-blank line)")
        if chunk.rows or chunk.errors:
            yield chunk


def write_quarantine_csv(path: Path, errors: list[RowError], source_name: str, append: bool = False) -> None:
    """Write row errors as CSV (file, row, field, value, reason), formula-safe."""
    new = not append or not path.exists()
    with open(path, "a" if append else "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        if new:
            w.writerow(["file", "row", "field", "value", "reason"])
        for e in errors:
            w.writerow([safe_cell(source_name), e.row, safe_cell(e.field), safe_cell(e.value), safe_cell(e.reason)])
