"""File → reader → quality → lake, for any supported format (pure; no Django).

This is what ``battloop ingest`` calls. CSV exports stream block by block; captures
(console, RS485, Modbus dumps) are small and read whole, their cell tables going to
the lake's ``cells`` dataset. A file whose content was ingested before is skipped
before it is even parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .lake import IngestResult, Lake
from .readers import get_reader
from .readers.csv_export import iter_csv_export


def ingest_path(lake: Lake, path: str | Path, fmt: str, *, reader_options: dict[str, Any] | None = None,
                checks: dict[str, Any] | None = None) -> IngestResult:
    """Ingest one file. ``checks`` go to :func:`battloop.telemetry.quality.check`
    (``known_serials``, ``expected_serial``, ``last_ts``, ``now``...)."""
    opts = dict(reader_options or {})
    path = Path(path)
    if fmt == "csv" and path.suffix.lower() not in (".xlsx", ".xlsm", ".parquet", ".pq"):
        return lake.ingest(path, lambda: iter_csv_export(path, **opts), fmt=fmt, checks=checks)
    reader = get_reader(fmt)
    state: dict[str, Any] = {}

    def tables():
        table, meta = reader(path, **opts)
        state["cells"] = meta.get("cells")
        yield table

    return lake.ingest(path, tables, cells_fn=lambda: state.get("cells"), fmt=fmt, checks=checks)
