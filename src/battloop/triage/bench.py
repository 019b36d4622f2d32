"""Bench results into the registry: ``battloop triage grade --bench FILE --store``.

A bench sheet (CSV or XLSX, columns as in :mod:`battloop.triage.grading`, plus who/when/
where: ``tested_by``, ``test_date``, ``outlet``) is graded with the safety-class rules and
stored as :class:`~battloop.triage.models.BenchResult` rows, each also an ``inspection``
event on its pack, in ONE transaction per file, like the pack importer
(:mod:`battloop.registry.importer`): the file's SHA-256 makes a second import a no-op,
each row's hash makes the same row in another file a no-op, and bad rows go to a
quarantine CSV (file, row, field, value, reason) while the good ones are stored.

What the registry adds to the sheet: an empty ``chemistry``, ``rated_capacity_ah``,
``nominal_voltage_v`` or ``cells_in_series`` is taken from the pack's model (a sheet
that names another chemistry than the registry is a row error, not a guess). Pylontech
console captures (``--capture``) fill the BMS-history columns the sheet leaves empty.

Rows are refused (quarantined) when: the serial is not registered, or the pack is
recycled or lost; a cell is not a number / out of range; the inspection contradicts
itself (``visual_ok`` with a damage flag, min cell above max, a spread that is not
max − min — GB/T 38698.1 asks for a consistent judgement, so neither reading is
trusted); the capacity test is outside the valid temperature window or lacks the rating;
the test date is unreadable or in the future.

A row without any visual finding recorded is stored without a safety class: the bench
measured the pack but nobody judged it, and triage holds it for that judgement rather
than calling it intact (DOMAIN.md §5). After storing, the packs that already had a
triage decision are re-triaged (:func:`battloop.triage.registry_triage.retriage`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from django.utils import timezone

from battloop.registry.events import append_event
from battloop.registry.importer import ImportFailed, ImportReport, _run_import, file_sha256
from battloop.registry.lifecycle import State
from battloop.registry.models import Pack, PackEvent
from battloop.registry.tabular import RowError, TableError, TableReader

from .grading import (BENCH_FIELDS, VISUAL_FLAGS, SafetyRules, bench_from_pylontech_console, derive_rows, grade,
                      load_safety_rules, validate_bench)
from .models import BenchResult
from .policy import CHEMISTRY_SYNONYMS, plain_value

#: Who / when / where / notes columns of a bench sheet, with the header spellings accepted.
_META_SYNONYMS = {
    "tested_by": ["tested_by", "tester", "inspector", "operator", "technician", "测试人", "检测人"],
    "test_date": ["test_date", "tested_at", "date", "测试日期", "检测日期"],
    "outlet": ["outlet", "site", "place", "bench", "网点", "回收网点", "检测地点"],
    "notes": ["notes", "note", "comment", "comments", "remarks", "备注"],
    "model": ["model", "pack_model", "型号"],
}
BENCH_SYNONYMS: dict[str, list[str]] = {
    **{name: [] for name in BENCH_FIELDS},
    "serial": ["serial", "serial_number", "sn", "pack_serial", "barcode", "序列号", "电池序列号", "条码"],
    **_META_SYNONYMS,
}
_STATES_NOT_TESTABLE = {State.RECYCLED.value, State.LOST.value}
_CELLS_IN_SERIES = re.compile(r"(\d+)\s*S", re.I)


@dataclass
class BenchImport:
    """What one bench import did: the registry's import report plus the re-triage."""

    report: ImportReport
    stored: list[int] = field(default_factory=list)  # BenchResult ids
    retriage: list[dict] = field(default_factory=list)


def _capture_digest(captures: Iterable[str | Path]) -> str:
    h = hashlib.sha256()
    for c in captures:
        p = Path(c)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.name).encode())
            h.update(file_sha256(f).encode())
    return h.hexdigest()


def _check_header(path: Path) -> None:
    """A column the reader does not know is refused when it looks like a bench field (a
    misspelt ``leakage`` would otherwise grade a leaking pack as intact) and when it is
    anything else the sheet cannot mean (the CLI's ``grade`` refuses them the same way)."""
    try:
        reader = TableReader(path, BENCH_SYNONYMS, chunk_rows=1)
        next(reader.chunks(), None)
    except TableError as exc:
        raise ImportFailed(str(exc)) from None
    problems = []
    for col in reader.unknown_columns:
        close = difflib.get_close_matches(str(col).strip().lower(), list(BENCH_SYNONYMS), n=1, cutoff=0.8)
        hint = f" (did you mean '{close[0]}'?)" if close else f"; known columns: {', '.join(BENCH_SYNONYMS)}"
        problems.append(f"{path.name}:1: unknown column '{col}'{hint}; nothing was imported")
    if problems:
        raise ImportFailed("\n".join(problems))


def _parse_when(text: str, now: dt.datetime) -> dt.datetime | None:
    """ISO date or date-time; a naive time is local time. None when empty; ValueError when unreadable."""
    text = (text or "").strip()
    if not text:
        return None
    moment = dt.datetime.fromisoformat(text.replace("/", "-"))
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class _Context:
    def __init__(self, rules: SafetyRules, history: pd.DataFrame | None, source: Path, sha: str, actor: str, scope=None):
        self.rules = rules
        self.scope = scope  # a Pack queryset the importer may write to (web and API uploads), or None (CLI)
        self.history = history
        self.source = source
        self.sha = sha
        self.actor = actor
        self.first_row: dict[str, int] = {}
        self.stored: list[int] = []
        self.retriage: list[dict] = []
        self.history_rows = {}
        if history is not None and len(history):
            for rec in history.drop_duplicates("serial", keep="last").to_dict(orient="records"):
                if rec.get("serial"):
                    self.history_rows[str(rec["serial"])] = {k: plain_value(v) for k, v in rec.items()}



def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(f) else f


def _int(v) -> int | None:
    f = _num(v)
    return None if f is None else int(round(f))


def _bool(v) -> bool | None:
    f = _num(v)
    return None if f is None else bool(f)


def _apply_chunk(ctx: _Context, rows: list[int], records: list[dict], run, batch) -> None:
    report = run.report
    errors: list[RowError] = []
    raw = pd.DataFrame.from_records(records).fillna("").astype(str)
    for col in ("tested_by", "test_date", "outlet", "notes", "model"):
        if col not in raw.columns:
            raw[col] = ""
    original = raw.copy()
    for col in ("chemistry", "rated_capacity_ah", "nominal_voltage_v", "cells_in_series"):
        if col not in raw.columns:  # filled from the registry below
            raw[col] = ""
    serials = raw["serial"].str.strip().tolist()
    wanted = [s for s in serials if s]
    found = Pack.objects.filter(serial__in=wanted)
    if ctx.scope is not None:  # another organization's pack is as absent as an unknown one
        found = found.filter(pk__in=ctx.scope.filter(serial__in=wanted).values("pk"))
    packs = {p.serial: p for p in found.select_related("model")}
    bad: dict[int, tuple[str, str, str]] = {}

    def refuse(i: int, column: str, reason: str) -> None:
        if i not in bad:
            value = str(records[i].get(column, "")) if column in records[i] else ""
            bad[i] = (column, value, reason)
        else:  # a row is quarantined once, with every reason
            c, v, r = bad[i]
            bad[i] = (c, v, r + f"; {column}: {reason}")

    # What the registry knows fills the empty cells and checks the given ones.
    for i, s in enumerate(serials):
        pack = packs.get(s)
        if not s:
            continue
        if pack is None:
            refuse(i, "serial", "no pack with this serial in the registry" + (" in your organization's scope" if ctx.scope is not None else
                                "; register it (battloop import-packs) first"))
            continue
        if pack.state in _STATES_NOT_TESTABLE:
            refuse(i, "serial", f"pack is '{pack.state}' in the registry; a bench result cannot belong to it")
            continue
        if s in ctx.first_row:
            refuse(i, "serial", f"serial appears more than once in this file (first at row {ctx.first_row[s]})")
            continue
        m = pack.model
        if m is None:
            continue
        reg_chem = CHEMISTRY_SYNONYMS.get(m.chemistry.upper())
        given = raw.at[i, "chemistry"].strip()
        if not given and reg_chem:
            raw.at[i, "chemistry"] = reg_chem
        elif given and reg_chem and CHEMISTRY_SYNONYMS.get(given.upper().replace(" ", "").replace("-", "")) not in (None, reg_chem):
            refuse(i, "chemistry", f"the sheet says {given} but the registry's model {m.code} is {reg_chem}; "
                                   f"correct the sheet or the pack's model")
        fills = {"rated_capacity_ah": pack.nameplate_capacity_ah or m.rated_capacity_ah,
                 "nominal_voltage_v": m.nominal_voltage_v}
        cfg = _CELLS_IN_SERIES.search(m.cell_configuration or "")
        if cfg:
            fills["cells_in_series"] = int(cfg.group(1))
        for col, value in fills.items():
            if value is not None and not raw.at[i, col].strip():
                raw.at[i, col] = format(value, "g") if isinstance(value, float) else str(value)

    found: list[tuple[int, str, str]] = []
    typed = validate_bench(raw.drop(columns=[c for c in ("tested_by", "test_date", "outlet", "notes", "model")]),
                           where=ctx.source.name, row_problems=found)
    for i, column, message in found:
        refuse(i, column, message)
    now = timezone.now()
    tested_at: dict[int, dt.datetime] = {}
    for i in range(len(raw)):
        try:
            when = _parse_when(raw.at[i, "test_date"], now)
        except ValueError:
            refuse(i, "test_date", f"{raw.at[i, 'test_date']!r} is not a date (use YYYY-MM-DD or YYYY-MM-DD HH:MM)")
            continue
        if when is not None and when > now + dt.timedelta(hours=1):
            refuse(i, "test_date", f"{raw.at[i, 'test_date']} is in the future")
        tested_at[i] = when or now
    # BMS history from captures fills the columns the sheet leaves empty.
    if ctx.history_rows:
        for col in ("thermal_events", "fault_count", "short_circuit_count", "protection_count", "overtemp_count",
                    "cycle_count", "bms_soh_pct"):
            filler = typed["serial"].map(lambda s, c=col: ctx.history_rows.get(s, {}).get(c)).astype("float64")
            cur = typed[col].to_numpy(dtype="float64", na_value=np.nan) if col in typed.columns else np.full(len(typed), np.nan)
            typed[col] = np.where(np.isnan(cur), filler.to_numpy(), cur)
    _, derive_problems = derive_rows(typed, ctx.rules)
    for i, column, message in derive_problems:
        refuse(i, column, message)

    good = [i for i in range(len(raw)) if i not in bad and serials[i]]
    for i, (column, value, reason) in bad.items():
        errors.append(RowError(rows[i], column, value, reason))
    run.quarantine(errors)
    if not good:
        return
    subset = typed.iloc[good].reset_index(drop=True)
    subset.attrs = dict(typed.attrs)
    graded = grade(subset, ctx.rules)
    existing = set(BenchResult.objects.filter(pack__in=[packs[serials[i]] for i in good])
                   .values_list("pack__serial", "row_hash"))
    triggers: dict[str, dict] = {}
    for k, i in enumerate(good):
        serial = serials[i]
        ctx.first_row[serial] = rows[i]
        g = graded.iloc[k]
        row_hash = hashlib.sha256(json.dumps(
            {"row": {c: original.at[i, c] for c in original.columns}, "capture": ctx.history_rows.get(serial),
             "rules": ctx.rules.identity}, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        if (serial, row_hash) in existing:
            report.unchanged += 1
            continue
        visual = {f: _bool(g.get(f)) for f in VISUAL_FLAGS if _bool(g.get(f)) is not None}
        judged = bool(visual) or _bool(g.get("visual_ok")) is not None
        cls = str(g["safety_class"]) if judged else ""
        class_rules = str(g["class_rules"]) if judged else "not_judged"
        class_reasons = list(g["class_reasons"]) if judged else [
            "not_judged: no visual inspection recorded; a safety judgement (class A/B/C) is still needed"]
        pack = packs[serial]
        result = BenchResult.objects.create(
            pack=pack, tested_at=tested_at[i], tested_by=raw.at[i, "tested_by"][:150], place=raw.at[i, "outlet"][:100],
            rated_capacity_ah=_num(g.get("rated_capacity_ah")), capacity_ah=_num(g.get("capacity_ah")),
            test_rate_c=_num(g.get("test_rate_c")), test_temp_c=_num(g.get("test_temp_c")),
            capacity_25c_ah=_num(g.get("capacity_25c_ah")), soh_pct=_num(g.get("soh_pct")),
            dcir_mohm=_num(g.get("dcir_mohm")), baseline_dcir_mohm=_num(g.get("baseline_dcir_mohm")),
            ir_ratio=_num(g.get("ir_ratio")), ocv_v=_num(g.get("ocv_v")), ocv_cell_v=_num(g.get("ocv_cell_v")),
            insulation_ohm_per_v=_num(g.get("insulation_ohm_per_v")), cell_v_max_mv=_num(g.get("cell_v_max_mv")),
            cell_v_min_mv=_num(g.get("cell_v_min_mv")), cell_spread_mv=_num(g.get("cell_spread_mv")),
            visual_ok=_bool(g.get("visual_ok")), visual=visual,
            thermal_events=_int(g.get("thermal_events")), fault_count=_int(g.get("fault_count")),
            short_circuit_count=_int(g.get("short_circuit_count")), protection_count=_int(g.get("protection_count")),
            overtemp_count=_int(g.get("overtemp_count")), cycle_count=_int(g.get("cycle_count")),
            bms_soh_pct=_num(g.get("bms_soh_pct")), anti_theft_locked=_bool(g.get("anti_theft_locked")),
            safety_class=cls, class_rules=class_rules[:300], class_reasons=class_reasons,
            safety_rules=ctx.rules.identity, notes=raw.at[i, "notes"], source_file=ctx.source.name,
            source_sha256=ctx.sha, source_row=rows[i], import_batch=batch, row_hash=row_hash)
        # No projected fact (state, site, custody, owner, location) in the payload: an
        # inspection is evidence about the pack, it moves nothing.
        payload = {"bench_result": result.pk, "safety_class": cls or None, "class_rules": class_rules.split("+"),
                   "soh_pct": result.soh_pct, "ir_ratio": result.ir_ratio, "findings": result.findings,
                   "anti_theft_locked": result.anti_theft_locked,
                   "source": {"file": ctx.source.name, "row": rows[i], "sha256": ctx.sha}}
        event = append_event(pack, PackEvent.Kind.INSPECTION, ctx.actor, None, _json_safe(payload),
                             occurred_at=tested_at[i], place=result.place)
        BenchResult.objects.filter(pk=result.pk).update(event=event)
        ctx.stored.append(result.pk)
        report.applied += 1
        triggers[serial] = {"evidence": "bench_result", "bench_result": result.pk, "safety_class": cls or None,
                            "source": f"{ctx.source.name}:{rows[i]}"}
    if triggers:
        from .registry_triage import retriage

        ctx.retriage.append(retriage(Pack.objects.filter(serial__in=list(triggers)), "bench result stored",
                                     evidence=triggers, actor=ctx.actor))


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def import_bench(path: str | Path, *, captures: Iterable[str | Path] = (), rules: str | Path = "default",
                 actor: str = "bench", quarantine_path: str | Path | None = None, force: bool = False,
                 sheet: str | None = None, scope=None, progress=None) -> BenchImport:
    """Grade and store the bench results of ``path``; see the module docstring.

    ``scope`` (a Pack queryset) limits the packs the file may write to: uploads from the web
    app and API pass the uploader's organization's packs.
    """
    path = Path(path)
    if not path.exists():
        raise ImportFailed(f"{path}: no such file")
    if path.is_dir():
        raise ImportFailed(f"{path}: is a directory, not a CSV or XLSX file of bench results")
    _check_header(path)
    safety = load_safety_rules(rules)
    captures = list(captures)
    history = None
    if captures:
        try:
            history = pd.concat([bench_from_pylontech_console(c) for c in captures], ignore_index=True)
        except (OSError, ValueError) as exc:
            raise ImportFailed(f"capture: {exc}") from None
    sha = file_sha256(path)
    holder: dict[str, _Context] = {}

    def prepare(options):
        holder["ctx"] = _Context(safety, history, path, sha, actor, scope)
        return holder["ctx"]

    options = {"rules": safety.identity, "captures": _capture_digest(captures) if captures else None}
    report = _run_import("bench", path, BENCH_SYNONYMS, _apply_chunk, actor=actor, mapping=None, sheet=sheet,
                         quarantine_path=quarantine_path, force=force, options=options, progress=progress,
                         prepare=prepare)
    ctx = holder.get("ctx")
    return BenchImport(report=report, stored=ctx.stored if ctx else [], retriage=ctx.retriage if ctx else [])


def latest_bench_results(pack_ids) -> dict[int, BenchResult]:
    """The latest bench result of each pack (by test time, then by order of storing);
    ``pack_ids`` is a subquery (``packs.values("id")``) or a list of ids."""
    latest: dict[int, BenchResult] = {}
    for r in BenchResult.objects.filter(pack_id__in=pack_ids).order_by("pack_id", "-tested_at", "-id").iterator(chunk_size=5000):
        latest.setdefault(r.pack_id, r)
    return latest
