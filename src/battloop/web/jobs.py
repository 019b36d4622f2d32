"""Import jobs for the web app and API: store the upload safely, run the import in the
background, keep a report. The importer itself is the registry's (one path for CLI,
web and API)."""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone

from battloop.registry.importer import ImportFailed, import_models, import_packs, import_sites

from .models import ImportJob, record

ALLOWED_SUFFIXES = {".csv", ".xlsx", ".txt"}
MAX_UPLOAD_BYTES = 512 * 1024 * 1024


def import_bench_results(path, *, actor: str, progress=None, scope=None):
    """Bench results through the same job path: graded, stored, packs re-triaged (triage.bench)."""
    from battloop.triage.bench import import_bench

    return import_bench(path, actor=actor, progress=progress, scope=scope).report


IMPORTERS = {"packs": import_packs, "sites": import_sites, "models": import_models, "bench": import_bench_results}
#: kinds a role with the 'transition' right may upload without 'import' (bench technicians, recyclers)
FIELD_KINDS = {"bench"}


class UploadRejected(ValueError):
    pass


def safe_name(name: str) -> str:
    """Keep only a plain base name: no directories, no traversal, no control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\- ]+", "_", base, flags=re.UNICODE).strip(" .") or "upload"
    return base[:120]


def store_upload(uploaded, kind: str) -> tuple[str, Path]:
    if kind not in IMPORTERS:
        raise UploadRejected(f"unknown import kind {kind!r}; use packs, sites, models or bench")
    name = safe_name(uploaded.name)
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise UploadRejected(f"{name}: only CSV or XLSX files can be imported")
    if uploaded.size > MAX_UPLOAD_BYTES:
        raise UploadRejected(f"{name}: {uploaded.size:,} bytes is more than the {MAX_UPLOAD_BYTES:,}-byte limit")
    head = next(uploaded.chunks(8192), b"")
    if suffix == ".xlsx" and not head.startswith(b"PK"):
        raise UploadRejected(f"{name}: not an XLSX workbook (wrong content)")
    if suffix != ".xlsx" and b"\x00" in head[:4096] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UploadRejected(f"{name}: binary content; only CSV or XLSX files can be imported")
    folder = Path(settings.DATA_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{uuid.uuid4().hex}{suffix}"
    with open(dest, "wb") as out:
        for chunk in uploaded.chunks():
            out.write(chunk)
    return name, dest


def progress_key(job_id: int) -> str:
    return f"battloop:import-progress:{job_id}"


def report_dict(report) -> dict:
    d = dataclasses.asdict(report)
    d["first_errors"] = [dataclasses.asdict(e) if not isinstance(e, dict) else e for e in report.first_errors]
    d["rows_per_second"] = report.rows_per_second
    return d


def run_job(job_id: int) -> None:
    job = ImportJob.objects.get(pk=job_id)
    ImportJob.objects.filter(pk=job_id).update(status="running")
    func = IMPORTERS[job.kind]
    extra = {}
    if job.kind in ("packs", "sites"):
        extra["owner"] = job.options.get("owner") or job.organization.code
        extra["restrict_owner"] = job.organization.code
    if job.kind == "packs":
        extra["audit"] = bool(job.options.get("audit"))
    if job.kind == "bench":
        from .access import Actor, packs_for

        extra["scope"] = packs_for(Actor(job.user, job.organization, ""))  # only the uploader's organization's packs
    try:
        report = func(job.stored_path, actor=job.user.get_username() if job.user else "web",
                      progress=lambda done, total: cache.set(progress_key(job_id), done / max(total, 1), 3600), **extra)
        report.file = job.file_name  # never show the server-side path
        ImportJob.objects.filter(pk=job_id).update(status="done", report=report_dict(report), batch_id=report.batch_id,
                                                   finished_at=timezone.now())
    except ImportFailed as exc:
        ImportJob.objects.filter(pk=job_id).update(status="failed", error=str(exc).replace(job.stored_path, job.file_name),
                                                   finished_at=timezone.now())
    except Exception as exc:  # keep the job's record honest whatever happens
        ImportJob.objects.filter(pk=job_id).update(status="failed", error=f"internal error: {exc.__class__.__name__}",
                                                   finished_at=timezone.now())
        raise
    finally:
        cache.set(progress_key(job_id), 1.0, 3600)


def start_job(job: ImportJob) -> None:
    if getattr(settings, "BATTLOOP_IMPORTS_INLINE", False):
        run_job(job.pk)
        return

    def target():
        close_old_connections()
        try:
            run_job(job.pk)
        finally:
            close_old_connections()

    threading.Thread(target=target, name=f"import-{job.pk}", daemon=True).start()


class ImportNotAllowed(PermissionError):
    pass


def submit(actor, upload, kind: str, *, audit: bool = False, ip: str | None = None) -> ImportJob:
    """Store an upload, create its job, log it and start it — for pages and API alike.

    Raises :class:`ImportNotAllowed` (role) or :class:`UploadRejected` (the file)."""
    if not (actor.can("import") or (kind in FIELD_KINDS and actor.can("transition"))):
        raise ImportNotAllowed(f"role '{actor.role}' of {actor.organization.code} may not import {kind}")
    if kind == "models" and actor.role != "admin":
        raise ImportNotAllowed("only admins import pack models (shared reference data)")
    name, path = store_upload(upload, kind)
    job = ImportJob.objects.create(kind=kind, file_name=name, stored_path=str(path), user=actor.user,
                                   organization=actor.organization, options={"audit": bool(audit)})
    record("import", user=actor.user, organization=actor.organization, object_type="import", object_id=job.pk,
           detail={"file": name, "kind": kind}, ip=ip, via=actor.via)
    start_job(job)
    job.refresh_from_db()
    return job


def job_for(organization, job_id: int) -> ImportJob | None:
    """An import of this organization, or None (other organizations' jobs do not exist for it)."""
    return ImportJob.objects.filter(pk=job_id, organization=organization).first()


def progress(job: ImportJob) -> float:
    """Share of the file read so far, 0..1."""
    if job.status in ("done", "failed"):
        return 1.0
    return float(cache.get(progress_key(job.pk), 0.0))
