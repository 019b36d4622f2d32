"""Bulk import of packs, sites and pack models from CSV/XLSX (DESIGN.md principle 7).

Every row is validated; bad rows go to a quarantine report (file, row, field, value,
reason) and good rows are applied in ONE transaction per file. The file's SHA-256 is
recorded, so importing the same file again changes nothing; importing a corrected file
applies only the rows that were fixed (the others are recognised as unchanged).

Concurrent imports serialize on a lock taken at the start of the transaction (SQLite:
BEGIN IMMEDIATE; PostgreSQL: a transaction-level advisory lock), so overlapping files
neither duplicate packs nor lose rows: the second import sees the first one's packs.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import chain
from .models import ImportBatch, Organization, Pack, PackEvent, PackModel, Site
from .tabular import RowError, TableError, TableReader, write_quarantine_csv
from .validation import (MODEL_SYNONYMS, PACK_SYNONYMS, SITE_FIELDS, SITE_SYNONYMS, PackContext, validate_model,
                         validate_pack, validate_site)

_IMPORT_LOCK_KEY = 0x62617474  # "batt": one advisory lock for all registry imports
_IN_CHUNK = 2000  # serials per IN (...) lookup; well under SQLite's variable limit


class ImportFailed(Exception):
    """The whole file could not be imported; nothing was applied."""


@dataclass
class ImportReport:
    kind: str
    file: str
    batch_id: int | None = None
    status: str = "running"
    file_sha256: str = ""
    rows_total: int = 0
    applied: int = 0
    unchanged: int = 0
    corrected: int = 0
    quarantined: int = 0
    quarantine_path: str = ""
    unknown_columns: list[str] = field(default_factory=list)
    errors_by_field: dict[str, int] = field(default_factory=dict)
    first_errors: list[RowError] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_total / self.seconds if self.seconds else 0.0


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_mapping(path: str | Path | None) -> tuple[dict[str, str], dict[str, str]]:
    """A mapping file (YAML): ``columns: {canonical_field: "Their Header"}`` and optional
    ``defaults: {owner: ORG}``."""
    if not path:
        return {}, {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ImportFailed(f"mapping file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("columns", {}), dict):
        raise ImportFailed(f"mapping file {path}: expected 'columns:' with canonical_field: header pairs")
    unknown = set(data) - {"columns", "defaults"}
    if unknown:
        raise ImportFailed(f"mapping file {path}: unknown keys {sorted(unknown)}; allowed: columns, defaults")
    return {str(k): str(v) for k, v in (data.get("columns") or {}).items()}, {str(k): str(v) for k, v in (data.get("defaults") or {}).items()}


def _lock_imports() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_IMPORT_LOCK_KEY])
    # SQLite: settings use transaction_mode=IMMEDIATE, so BEGIN already holds the write lock.


def _quarantine_path(batch_id: int, source: Path, requested: str | Path | None) -> Path:
    if requested:
        return Path(requested)
    qdir = Path(settings.DATA_DIR) / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True)
    return qdir / f"batch-{batch_id:06d}-{source.stem}.quarantine.csv"


class _Run:
    """Shared bookkeeping of one import: counts, quarantine file, progress."""

    def __init__(self, report: ImportReport, qpath: Path, source_name: str, actor: str):
        self.report = report
        self.actor = actor
        self.qpath = qpath
        self.source_name = source_name
        self.by_field: collections.Counter = collections.Counter()
        self.pending: list[RowError] = []
        write_quarantine_csv(qpath, [], source_name)  # header, so an empty report is still a valid CSV

    def quarantine(self, errors: Iterable[RowError]) -> None:
        """Collect row errors; :meth:`flush` writes them in row order."""
        self.pending.extend(errors)

    def flush(self) -> None:
        errors = sorted(self.pending, key=lambda e: e.row)
        self.pending = []
        if not errors:
            return
        rows = {e.row for e in errors}
        self.report.quarantined += len(rows)
        for e in errors:
            self.by_field[e.field or "(row)"] += 1
        room = 20 - len(self.report.first_errors)
        if room > 0:
            self.report.first_errors.extend(errors[:room])
        write_quarantine_csv(self.qpath, errors, self.source_name, append=True)


def _run_import(kind: str, path: str | Path, synonyms: dict, apply_chunk: Callable[[Any, list[int], list[dict], "_Run", ImportBatch], None],
                *, actor: str, mapping: str | Path | None, sheet: str | None, quarantine_path: str | Path | None,
                force: bool, options: dict, progress: Callable[[int, int], None] | None, prepare: Callable[[dict], Any]) -> ImportReport:
    started = time.perf_counter()
    path = Path(path)
    report = ImportReport(kind=kind, file=str(path))
    if not path.exists():
        raise ImportFailed(f"{path}: no such file")
    if path.is_dir():
        raise ImportFailed(f"{path}: is a directory, not a CSV or XLSX file")
    columns, defaults = load_mapping(mapping)
    options = {**defaults, **{k: v for k, v in options.items() if v not in (None, False)}}
    if mapping:
        # The same file read through another mapping means something else.
        options["mapping_sha256"] = file_sha256(Path(mapping))
    options = {k: str(v) for k, v in sorted(options.items())}
    report.file_sha256 = sha = file_sha256(path)
    try:
        reader = TableReader(path, synonyms, columns, sheet=sheet)
    except TableError as exc:
        _record_failure(kind, path, sha, actor, str(exc))
        raise ImportFailed(str(exc)) from None

    try:
        with transaction.atomic():
            _lock_imports()
            previous = (ImportBatch.objects.filter(kind=kind, file_sha256=sha, status="applied", options=options)
                        .order_by("started_at").first())
            if previous and not force:
                report.status = "unchanged"
                report.batch_id = previous.pk
                report.message = (f"{path.name} was already imported as batch {previous.pk} on "
                                  f"{timezone.localtime(previous.started_at):%Y-%m-%d %H:%M}; nothing to do (use --force to re-evaluate its rows)")
                report.seconds = time.perf_counter() - started
                return report
            batch = ImportBatch.objects.create(kind=kind, file_name=path.name, file_sha256=sha, actor=actor, options=options)
            report.batch_id = batch.pk
            qpath = _quarantine_path(batch.pk, path, quarantine_path)
            run = _Run(report, qpath, path.name, actor)
            context = prepare(options)
            for chunk in reader.chunks():
                report.rows_total += len(chunk.rows) + len({e.row for e in chunk.errors})
                run.quarantine(chunk.errors)
                if chunk.rows:
                    apply_chunk(context, chunk.rows, chunk.records, run, batch)
                run.flush()
                if progress:
                    progress(reader.bytes_read, reader.size)
            report.unknown_columns = reader.unknown_columns
            report.errors_by_field = dict(run.by_field.most_common())
            report.quarantine_path = str(qpath)
            report.status = "applied"
            report.seconds = time.perf_counter() - started
            ImportBatch.objects.filter(pk=batch.pk).update(
                status="applied", rows_total=report.rows_total, rows_applied=report.applied + report.corrected,
                rows_unchanged=report.unchanged, rows_quarantined=report.quarantined, quarantine_path=str(qpath),
                message=f"ignored columns: {', '.join(reader.unknown_columns)}" if reader.unknown_columns else "",
                finished_at=timezone.now(),
            )
    except TableError as exc:
        _record_failure(kind, path, sha, actor, str(exc))
        raise ImportFailed(str(exc)) from None
    if report.applied > 10_000:
        _refresh_statistics()
    return report


def _refresh_statistics() -> None:
    """After a large import the planner's statistics are stale; without them it scans the
    state index and sorts instead of walking the (owner, state, serial) index."""
    with connection.cursor() as cur:
        cur.execute("ANALYZE registry_pack")


def _record_failure(kind: str, path: Path, sha: str, actor: str, message: str) -> None:
    ImportBatch.objects.create(kind=kind, file_name=path.name, file_sha256=sha, actor=actor, status="failed",
                               message=message, finished_at=timezone.now())


# -- packs ----------------------------------------------------------------------------

def _pack_context(options: dict) -> PackContext:
    owner, audit, allowed = options.get("owner"), options.get("audit"), options.get("restrict_owner")
    orgs = dict(Organization.objects.values_list("code", "id"))
    if owner and owner not in orgs:
        raise ImportFailed(f"--owner {owner!r} is not a registered organization")
    models = {c: (i, a) for c, i, a in PackModel.objects.values_list("code", "id", "rated_capacity_ah")}
    return PackContext(
        models=models,
        model_codes={i: c for c, (i, _a) in models.items()},
        orgs=orgs,
        sites={c: (i, o) for c, i, o in Site.objects.values_list("code", "id", "owner_id")},
        org_codes={v: k for k, v in orgs.items()},
        default_owner=owner,
        allowed_owner=allowed,
        audit=bool(audit),
        today=timezone.localdate(),
    )


_PACK_COLUMNS = ("id", "serial", "code", "code_standard", "model_id", "nameplate_capacity_ah", "manufacture_date", "install_date",
                 "owner_id", "custodian_id", "site_id", "location", "state", "origin", "original_identity", "record_grade",
                 "row_hash", "import_batch_id", "source_row", "event_count", "last_event_hash", "created_at")
_EVENT_COLUMNS = ("pack_id", "seq", "kind", "actor", "organization_id", "occurred_at", "recorded_at", "place", "payload", "prev_hash", "hash")


def _reserve_ids(table: str, n: int) -> list[int]:
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", [n])
            return [r[0] for r in cur.fetchall()]
        # SQLite: the import holds the write lock, so nobody else can take these ids.
        cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
        start = cur.fetchone()[0] + 1
        return list(range(start, start + n))


def bulk_insert(table: str, columns: tuple[str, ...], rows: list[tuple], json_columns: tuple[str, ...] = ()) -> None:
    """Insert rows fast: PostgreSQL COPY, SQLite executemany."""
    if not rows:
        return
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            raw = cur.cursor  # the psycopg cursor under Django's wrapper
            with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _lookup(model_table: str, key: str, values: list[str], columns: str) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    with connection.cursor() as cur:
        for i in range(0, len(values), _IN_CHUNK):
            part = values[i : i + _IN_CHUNK]
            cur.execute(f"SELECT {key}, {columns} FROM {model_table} WHERE {key} IN ({', '.join(['%s'] * len(part))})", part)
            for row in cur.fetchall():
                found[row[0]] = row[1:]
    return found


def _apply_pack_chunk(ctx: PackContext, rows: list[int], records: list[dict], run: _Run, batch: ImportBatch) -> None:
    report = run.report
    valid: list[tuple[int, dict]] = []
    errors: list[RowError] = []
    seen_serial: dict[str, int] = {}
    seen_code: dict[str, int] = {}
    for row, rec in zip(rows, records):
        clean, errs = validate_pack(rec, row, ctx)
        if errs:
            errors.extend(errs)
            continue
        first = seen_serial.setdefault(clean["serial"], row)
        if first != row:
            errors.append(RowError(row, "serial", clean["serial"], f"duplicate serial in this file (first at row {first})"))
            continue
        if clean["code"]:
            first = seen_code.setdefault(clean["code"], row)
            if first != row:
                errors.append(RowError(row, "code", clean["code"], f"duplicate battery code in this file (first at row {first})"))
                continue
        valid.append((row, clean))

    existing = _lookup("registry_pack", "serial", [c["serial"] for _, c in valid],
                       "id, owner_id, row_hash, import_batch_id, source_row, state, code")
    codes = [c["code"] for _, c in valid if c["code"]]
    code_owner = _lookup("registry_pack", "code", codes, "serial") if codes else {}

    now = timezone.now()
    now_iso = now.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    new_rows: list[tuple[int, dict]] = []
    corrections: list[tuple[int, dict, tuple]] = []
    for row, clean in valid:
        serial = clean["serial"]
        hit = existing.get(serial)
        holder = code_owner.get(clean["code"]) if clean["code"] else None
        if holder and holder[0] != serial:
            errors.append(RowError(row, "code", clean["code"], f"battery code already registered to pack {holder[0]}"))
            continue
        if hit is None:
            new_rows.append((row, clean))
            continue
        pack_id, owner_id, row_hash, batch_id, source_row, state, _code = hit
        if batch_id == batch.pk:
            errors.append(RowError(row, "serial", serial, f"duplicate serial in this file (first at row {source_row})"))
        elif owner_id != clean["owner_id"]:
            errors.append(RowError(row, "serial", serial, f"serial collision: already registered to organization "
                                   f"{ctx.org_codes.get(owner_id, owner_id)}; a transfer of ownership is an event, not an import"))
        elif row_hash == clean["row_hash"]:
            report.unchanged += 1
        elif state != clean["state"]:
            errors.append(RowError(row, "state", clean["state"], f"pack is '{state}' in the registry; state changes are "
                                   f"recorded as transitions (battloop transition), not by import"))
        else:
            corrections.append((row, clean, hit))
    run.quarantine(errors)

    if new_rows:
        ids = _reserve_ids("registry_pack", len(new_rows))
        adapt_dt = connection.ops.adapt_datetimefield_value
        adapt_d = connection.ops.adapt_datefield_value
        now_db = adapt_dt(now)
        pack_tuples = []
        event_tuples = []
        org_codes = ctx.org_codes
        for pack_id, (row, c) in zip(ids, new_rows):
            owner, custodian = org_codes[c["owner_id"]], org_codes[c["custodian_id"]]
            payload = {
                "state": c["state"], "site_code": c["site_code"], "owner": owner, "custodian": custodian,
                "location": c["location"], "model": ctx.model_codes.get(c["model_id"]),
                "code": c["code"], "manufacture_date": c["manufacture_date"] and c["manufacture_date"].isoformat(),
                "install_date": c["install_date"] and c["install_date"].isoformat(), "origin": c["origin"],
                "original_identity": c["original_identity"], "record_grade": c["record_grade"],
                "import": {"batch": batch.pk, "file_sha256": report.file_sha256, "row": row},
            }
            payload_json = chain.canonical_json(payload)
            digest = chain.event_hash_json(c["serial"], 1, "registered", run.actor, owner, now_iso, payload_json, chain.GENESIS)
            pack_tuples.append((pack_id, c["serial"], c["code"], c["code_standard"], c["model_id"], c["nameplate_capacity_ah"],
                                adapt_d(c["manufacture_date"]), adapt_d(c["install_date"]), c["owner_id"], c["custodian_id"],
                                c["site_id"], c["location"], c["state"], c["origin"], c["original_identity"], c["record_grade"],
                                c["row_hash"], batch.pk, row, 1, digest, now_db))
            event_tuples.append((pack_id, 1, "registered", run.actor, c["owner_id"], now_db, now_db, c["site_code"] or "",
                                 payload_json, chain.GENESIS, digest))
        bulk_insert("registry_pack", _PACK_COLUMNS, pack_tuples)
        bulk_insert("registry_packevent", _EVENT_COLUMNS, event_tuples)
        report.applied += len(new_rows)

    for row, clean, hit in corrections:
        _apply_correction(ctx, row, clean, hit[0], batch, run)
        report.corrected += 1


def _apply_correction(ctx: PackContext, row: int, clean: dict, pack_id: int, batch: ImportBatch, run: _Run) -> None:
    """A re-imported row that differs from the registry: record what changed as a
    ``corrected`` event, then update the row (the projection follows the event)."""
    from .events import append_event

    pack = Pack.objects.select_related("site", "model", "custodian").get(pk=pack_id)
    changes: dict[str, Any] = {}
    simple = ("code", "code_standard", "nameplate_capacity_ah", "manufacture_date", "install_date", "origin",
              "original_identity", "record_grade", "model_id")
    for name in simple:
        old, new = getattr(pack, name), clean[name]
        if (old or None) != (new or None):
            changes[name] = {"from": old.isoformat() if isinstance(old, dt.date) else old,
                             "to": new.isoformat() if isinstance(new, dt.date) else new}
    payload: dict[str, Any] = {"changes": changes, "import": {"batch": batch.pk, "row": row}}
    if pack.site_id != clean["site_id"]:
        payload["site_code"] = clean["site_code"]
    if pack.custodian_id != clean["custodian_id"]:
        payload["custodian"] = ctx.org_codes[clean["custodian_id"]]
    if (pack.location or "") != clean["location"]:
        payload["location"] = clean["location"]
    for name in simple:
        setattr(pack, name, clean[name])
    pack.row_hash = clean["row_hash"]
    pack.import_batch_id = batch.pk
    pack.source_row = row
    pack.save(update_fields=[*simple, "row_hash", "import_batch", "source_row"])
    append_event(pack, PackEvent.Kind.CORRECTED, run.actor, pack.owner, payload, place=clean["site_code"] or "")


def import_packs(path: str | Path, *, actor: str = "cli", mapping=None, owner: str | None = None, audit: bool = False,
                 sheet: str | None = None, quarantine_path=None, force: bool = False, progress=None,
                 restrict_owner: str | None = None) -> ImportReport:
    """Import packs from ``path``; see the module docstring for the guarantees."""
    return _run_import("packs", path, PACK_SYNONYMS, _apply_pack_chunk, actor=actor, mapping=mapping, sheet=sheet,
                       quarantine_path=quarantine_path, force=force, options={"owner": owner, "audit": audit, "restrict_owner": restrict_owner},
                       progress=progress, prepare=_pack_context)


# -- sites and models (reference data: upserted, not chained) -------------------------

def _upsert(model, key: str, fields: tuple[str, ...], rows: list[int], cleans: list[dict], run: _Run, batch: ImportBatch) -> None:
    report = run.report
    by_key: dict[str, tuple[int, dict]] = {}
    dup_errors = []
    for row, c in zip(rows, cleans):
        if c[key] in by_key:
            dup_errors.append(RowError(row, key, c[key], f"duplicate {key} in this file (first at row {by_key[c[key]][0]})"))
        else:
            by_key[c[key]] = (row, c)
    first_rows = run.__dict__.setdefault("first_rows", {})
    for k in list(by_key):
        if k in first_rows:
            row, _ = by_key.pop(k)
            dup_errors.append(RowError(row, key, k, f"duplicate {key} in this file (first at row {first_rows[k]})"))
    run.quarantine(dup_errors)
    existing = {getattr(o, key): o for o in model.objects.filter(**{f"{key}__in": list(by_key)})}
    create, update = [], []
    for k, (row, c) in by_key.items():
        first_rows[k] = row
        obj = existing.get(k)
        if obj is None:
            create.append(model(**c))
        elif all(getattr(obj, f) == c[f] for f in fields):
            report.unchanged += 1
        else:
            for f in fields:
                setattr(obj, f, c[f])
            update.append(obj)
    model.objects.bulk_create(create, batch_size=2000)
    if update:
        model.objects.bulk_update(update, [f for f in fields if f != key], batch_size=2000)
    report.applied += len(create)
    report.corrected += len(update)


def _site_context(options: dict):
    owner = options.get("owner")
    orgs = dict(Organization.objects.values_list("code", "id"))
    if owner and owner not in orgs:
        raise ImportFailed(f"--owner {owner!r} is not a registered organization")
    return orgs, owner


def import_sites(path, *, actor: str = "cli", mapping=None, owner: str | None = None, sheet=None, quarantine_path=None,
                 force: bool = False, progress=None, restrict_owner: str | None = None) -> ImportReport:
    def apply(ctx, rows, records, run, batch):
        orgs, default_owner = ctx
        good_rows, cleans, errors = [], [], []
        for row, rec in zip(rows, records):
            clean, errs = validate_site(rec, row, orgs, default_owner, restrict_owner)
            if errs:
                errors.extend(errs)
            else:
                good_rows.append(row)
                cleans.append(clean)
        run.quarantine(errors)
        _upsert(Site, "code", SITE_FIELDS, good_rows, cleans, run, batch)

    return _run_import("sites", path, SITE_SYNONYMS, apply, actor=actor, mapping=mapping, sheet=sheet,
                       quarantine_path=quarantine_path, force=force, options={"owner": owner, "restrict_owner": restrict_owner},
                       progress=progress, prepare=_site_context)


def import_models(path, *, actor: str = "cli", mapping=None, sheet=None, quarantine_path=None, force: bool = False,
                  progress=None) -> ImportReport:
    from .validation import MODEL_FIELDS

    def apply(ctx, rows, records, run, batch):
        good_rows, cleans, errors = [], [], []
        for row, rec in zip(rows, records):
            clean, errs = validate_model(rec, row, ctx)
            if errs:
                errors.extend(errs)
            else:
                good_rows.append(row)
                cleans.append(clean)
        run.quarantine(errors)
        _upsert(PackModel, "code", MODEL_FIELDS, good_rows, cleans, run, batch)

    return _run_import("models", path, MODEL_SYNONYMS, apply, actor=actor, mapping=mapping, sheet=sheet,
                       quarantine_path=quarantine_path, force=force, options={}, progress=progress,
                       prepare=lambda options: dict(Organization.objects.values_list("code", "id")))
