"""Telemetry ↔ registry: ingest files into the lake with the registry's knowledge
(known serials, who sits in which slot, what was already stored), then refresh the
latest-reading projection and open/clear alarms as events on the packs."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Iterable

import pyarrow as pa
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from battloop.registry.events import append_event
from battloop.registry.models import Pack, PackEvent

from . import alarms
from .ingest import ingest_path
from .lake import IngestResult, Lake
from .models import ActiveAlarm, LatestReading

PROJECTED = ("voltage_v", "current_a", "soc_pct", "soh_pct", "cycle_count", "temp_max_c", "cell_v_min", "cell_v_max")


def lake() -> Lake:
    return Lake(Path(os.environ.get("BATTLOOP_LAKE_DIR") or Path(settings.DATA_DIR) / "lake"))


_SLOT = re.compile(r"(?:slot|槽位|位置|#)\s*(\d+)\s*$", re.IGNORECASE)


def expected_serials() -> dict[tuple[str, int], str]:
    """{(site_code, slot): serial} for installed packs whose location names a slot
    ("slot 3", "槽位3"); a position claimed by two packs is left out rather than guessed."""
    seen: dict[tuple[str, int], str | None] = {}
    for serial, site, location in Pack.objects.filter(state__in=["installed", "flagged", "redeployed"]).exclude(site=None) \
            .values_list("serial", "site__code", "location"):
        m = _SLOT.search(location or "")
        if m:
            key = (site, int(m.group(1)))
            seen[key] = None if key in seen else serial
    return {k: v for k, v in seen.items() if v}


def registry_checks() -> dict:
    """What the quality checks need from the registry: its serials, who sits in which
    slot (identity conflicts), and the latest reading per pack (out-of-order data)."""
    known = set(Pack.objects.values_list("serial", flat=True))
    last_ts = dict(LatestReading.objects.values_list("pack__serial", "ts"))
    return {"known_serials": known, "expected_serial": expected_serials() or None, "last_ts": last_ts or None}


def _options_for(fmt: str, reader_options: dict | None) -> dict:
    """Keep the options the format's reader understands (e.g. a site code means nothing to
    a CSV export that carries its own)."""
    import inspect

    from .readers import get_reader
    from .readers.csv_export import iter_csv_export

    func = iter_csv_export if fmt == "csv" else get_reader(fmt)
    accepted = set(inspect.signature(func).parameters)
    return {k: v for k, v in (reader_options or {}).items() if k in accepted}


def ingest_files(paths: Iterable[str | Path], fmt: str, reader_options: dict | None = None) -> list[IngestResult]:
    the_lake = lake()
    reader_options = _options_for(fmt, reader_options)
    results = []
    files: list[Path] = []
    for path in map(Path, paths):
        # A directory of captures is ingested file by file, so each file's content hash
        # makes its own re-ingest a no-op.
        files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path])
    checks = registry_checks()
    for path in files:
        res = ingest_path(the_lake, path, fmt, reader_options=reader_options, checks=checks)
        results.append(res)
        # The registry's latest readings are refreshed once at the end; until then each file's
        # watermark carries to the next, so a row an earlier file of this call stored is seen
        # (and quarantined as a duplicate) instead of slipping in as new.
        if res.watermark is not None:
            checks = {**checks, "last_ts": res.watermark}
    if any(not r.skipped and r.accepted for r in results):
        refresh_projection(the_lake)
    return results


def refresh_projection(the_lake: Lake | None = None, now: dt.datetime | None = None) -> dict:
    """Latest reading per pack → registry; alarms evaluated on it open or clear."""
    the_lake = the_lake or lake()
    latest = the_lake.latest()
    if latest.num_rows == 0:
        return {"updated": 0, "opened": 0, "cleared": 0}
    rows = latest.to_pylist()
    ids = dict(Pack.objects.filter(serial__in=[r["pack_serial"] for r in rows]).values_list("serial", "id"))
    current = {r.pack_id: r for r in LatestReading.objects.filter(pack_id__in=ids.values())}
    create, update = [], []
    for r in rows:
        pid = ids.get(r["pack_serial"])
        if pid is None:
            continue
        values = {k: r.get(k) for k in PROJECTED}
        values.update(ts=r["ts"], source=r.get("source") or "", site_code=r.get("site_code") or "")
        obj = current.get(pid)
        if obj is None:
            create.append(LatestReading(pack_id=pid, **values))
        elif obj.ts < r["ts"]:
            for k, v in values.items():
                setattr(obj, k, v)
            update.append(obj)
    with transaction.atomic():
        LatestReading.objects.bulk_create(create, batch_size=2000)
        LatestReading.objects.bulk_update(update, ["ts", "source", "site_code", *PROJECTED], batch_size=2000)
    opened, cleared = evaluate_alarms(latest, ids, now=now)
    return {"updated": len(create) + len(update), "opened": opened, "cleared": cleared}


def evaluate_alarms(latest: pa.Table, ids: dict[str, int], now: dt.datetime | None = None) -> tuple[int, int]:
    """An alarm is open while a pack's latest reading trips its rule (rules are data:
    telemetry/rules/thresholds.yaml); each opening and clearing is an event on the pack."""
    now = now or timezone.now()
    hits = alarms.evaluate_thresholds(latest).to_pylist()
    last_seen = {r["pack_serial"]: r["ts"] for r in latest.to_pylist()}
    for nd in alarms.no_data(last_seen, now):
        hits.append({"pack_serial": nd["pack_serial"], "code": nd["code"], "severity": nd["severity"], "value": nd["hours"],
                     "rule": f"no reading for {nd['hours']:.0f} h" if nd["hours"] is not None else "no reading", "ts": now})
    active_now = {(h["pack_serial"], h["code"]): h for h in hits if h["pack_serial"] in ids}
    serial_of = {v: k for k, v in ids.items()}
    before = {(serial_of[a.pack_id], a.code): a for a in ActiveAlarm.objects.filter(pack_id__in=ids.values())}
    changes = alarms.transitions(set(before), set(active_now), now)
    packs = {p.serial: p for p in Pack.objects.filter(serial__in={c["pack_serial"] for c in changes}).select_related("owner")}
    opened = cleared = 0
    for ch in changes:
        pack = packs[ch["pack_serial"]]
        key = (ch["pack_serial"], ch["code"])
        if ch["event"] == "open":
            h = active_now[key]
            ActiveAlarm.objects.create(pack=pack, code=h["code"], severity=h["severity"], opened_at=h["ts"] or now,
                                       value=h.get("value"), rule=(h.get("rule") or "")[:300])
            # No 'state' key: alarms are facts about a pack, not lifecycle transitions.
            append_event(pack, PackEvent.Kind.ALARM, "telemetry", None,
                         {"alarm": h["code"], "status": "open", "severity": h["severity"], "value": h.get("value"),
                          "rule": h.get("rule") or ""}, occurred_at=now)
            opened += 1
        else:
            before[key].delete()
            append_event(pack, PackEvent.Kind.ALARM, "telemetry", None, {"alarm": ch["code"], "status": "cleared"}, occurred_at=now)
            cleared += 1
    if changes:  # packs already triaged are re-evaluated on their new alarm history
        from battloop.triage.registry_triage import retriage_after_alarms

        retriage_after_alarms(changes)
    return opened, cleared
