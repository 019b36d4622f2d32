"""Readers for real telemetry sources, pvlib's iotools pattern.

Every reader is ``read_<source>(path_or_bytes, **options) -> (table, metadata)``
where ``table`` already follows :data:`battloop.telemetry.schema.READING_SCHEMA`
(module-level rows where the source has modules) and ``metadata`` is a dict
describing the source (device info, firmware, cell table, assumptions made).
All readers raise :class:`ReaderError` with a message naming the input and the
place in it; none lets a traceback reach the user.
"""

from importlib import import_module

from ._common import ReaderError

#: CLI format name -> (module, function). Imported lazily so one reader's optional
#: dependency never stops the others from loading.
READERS = {
    "csv": ("csv_export", "read_csv_export"),
    "pylontech-console": ("pylontech_console", "read_pylontech_console"),
    "pylontech-rs485": ("pylontech_rs485", "read_pylontech_rs485"),
    "modbus-dump": ("modbus", "read_modbus_dump"),
}


def get_reader(fmt: str):
    """The ``read_<source>`` function for a CLI format name."""
    try:
        module, func = READERS[fmt]
    except KeyError:
        raise ReaderError(f"unknown format {fmt!r}; choose one of {', '.join(sorted(READERS))}") from None
    return getattr(import_module(f"{__name__}.{module}"), func)


__all__ = ["READERS", "ReaderError", "get_reader"]
