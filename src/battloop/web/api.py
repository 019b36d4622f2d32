"""The REST API, /api/v1 (django-ninja; OpenAPI at /api/v1/openapi.json).

Authentication: a Django session (pages; CSRF-checked on writes) or an API token
(``Authorization: Bearer blp_…``, scoped to one organization and role). Every query is
scoped by organization (:mod:`.access`); objects outside the scope answer 404.
Errors are RFC 9457 problem documents (:mod:`.problems`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.db.models import Q
from django.http import FileResponse, HttpRequest
from django.utils import timezone
from ninja import File, Form, NinjaAPI, Query, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.security import HttpBearer, SessionAuth
from pydantic import Field

from battloop.registry.events import transition as do_transition
from battloop.registry.lifecycle import TransitionRefused, allowed_targets
from battloop.registry.models import Organization, Pack, PackEvent, PackModel, Site

from . import access, jobs
from .models import ApiToken, ImportJob, hash_token, record
from .problems import ApiProblem, Problem, install, refuse_nul_query

# -- authentication ---------------------------------------------------------------


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        if not token or len(token) > 200:
            return None
        row = ApiToken.objects.select_related("user", "organization").filter(token_hash=hash_token(token)).first()
        if row is None or not row.active or not row.user.is_active:
            return None
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=5):
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)  # coarse, to keep reads cheap
        refuse_nul_query(request)
        return access.Actor(row.user, row.organization, row.role, via="api")


class SessionActorAuth(SessionAuth):
    def authenticate(self, request: HttpRequest, key):
        if not request.user.is_authenticated:
            return None
        refuse_nul_query(request)
        return access.actor_for_user(request.user, request.session.get("battloop_org"))


class BattloopAPI(NinjaAPI):
    def get_openapi_schema(self, *args, **kwargs):
        """Error responses are documented as application/problem+json (RFC 9457)."""
        schema = super().get_openapi_schema(*args, **kwargs)
        for item in schema.get("paths", {}).values():
            for op in item.values():
                for code, resp in op.get("responses", {}).items():
                    content = resp.get("content") or {}
                    if str(code).startswith(("4", "5")) and "application/json" in content:
                        content["application/problem+json"] = content.pop("application/json")
        return schema


api = BattloopAPI(title="battloop API", version="1", urls_namespace="api", auth=[TokenAuth(), SessionActorAuth()],
               openapi_url="/openapi.json", docs_url="/docs",
               description="Registry, lifecycle and imports of telecom lithium battery packs. Errors are RFC 9457 problem details.")
install(api)

ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem, 404: Problem, 422: Problem}


def _actor(request) -> access.Actor:
    return request.auth


def _require(actor: access.Actor, action: str) -> None:
    if not actor.can(action):
        raise ApiProblem(403, "Forbidden", f"role '{actor.role}' of {actor.organization.code} may not {action.replace('_', ' ')}")


# -- schemas ----------------------------------------------------------------------


COUNT_CAP = 10_000


class Page(Schema):
    count: int = Field(description=f"number of matching items, exact up to {COUNT_CAP:,}")
    count_exact: bool = Field(True, description="false when there are more than `count` matches (counting stops there)")
    limit: int
    offset: int


def capped_count(qs) -> dict:
    """Counting a million rows on every page costs more than the page itself; count up to
    COUNT_CAP + 1 and say whether the figure is exact."""
    n = qs[: COUNT_CAP + 1].count()
    return {"count": min(n, COUNT_CAP), "count_exact": n <= COUNT_CAP}


class OrganizationOut(Schema):
    code: str
    name: str
    kind: str
    province: str
    recycler_whitelisted: bool


class PackModelOut(Schema):
    code: str
    oem: str
    name: str
    chemistry: str
    nominal_voltage_v: float
    rated_capacity_ah: float
    energy_kwh: float
    mass_kg: float
    cell_count: int
    cell_configuration: str
    design_life_years: float
    dc_resistance_mohm: float | None = None
    bms_protocol: str
    repurposed_ev: bool


class SiteOut(Schema):
    code: str
    name: str
    site_type: str
    latitude: float | None
    longitude: float | None
    province: str
    prefecture: str
    adcode: str
    climate_zone: str
    annual_mean_temp_c: float | None
    cabinet_offset_c: float
    required_backup_hours: float
    owner: str


class PackOut(Schema):
    serial: str
    code: str | None
    model: str | None
    chemistry: str | None
    state: str
    site: str | None
    location: str
    owner: str
    custodian: str
    manufacture_date: dt.date | None
    install_date: dt.date | None
    origin: str
    original_identity: str
    record_grade: str
    event_count: int


class PackDetail(PackOut):
    allowed_next_states: list[str]
    last_event_hash: str


class EventOut(Schema):
    seq: int
    kind: str
    actor: str
    organization: str | None
    occurred_at: dt.datetime
    place: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class PackList(Page):
    items: list[PackOut]


class SiteList(Page):
    items: list[SiteOut]


class ModelList(Page):
    items: list[PackModelOut]


class TransitionIn(Schema):
    state: str = Field(max_length=32, description="target lifecycle state")
    evidence: dict[str, str | int | float | bool] = Field(default_factory=dict, description="evidence the transition needs, e.g. reason, site_code")


class ImportJobOut(Schema):
    id: int
    kind: str
    file_name: str
    status: str
    progress: float
    report: dict[str, Any]
    error: str
    created_at: dt.datetime


class MeOut(Schema):
    username: str
    organization: OrganizationOut
    role: str
    permissions: list[str]


class SeriesPoint(Schema):
    ts: dt.datetime
    values: dict[str, float | None]


class TelemetryOut(Schema):
    serial: str
    start: dt.datetime | None
    end: dt.datetime | None
    bucket_seconds: int
    columns: list[str]
    points: list[SeriesPoint]


def _pack_out(p: Pack) -> dict:
    return {
        "serial": p.serial, "code": p.code, "model": p.model.code if p.model_id else None,
        "chemistry": p.model.chemistry if p.model_id else None, "state": p.state, "site": p.site.code if p.site_id else None,
        "location": p.location, "owner": p.owner.code, "custodian": p.custodian.code, "manufacture_date": p.manufacture_date,
        "install_date": p.install_date, "origin": p.origin, "original_identity": p.original_identity,
        "record_grade": p.record_grade, "event_count": p.event_count,
    }


def _site_out(s: Site) -> dict:
    return {**{f: getattr(s, f) for f in ("code", "name", "site_type", "latitude", "longitude", "province", "prefecture", "adcode",
                                          "climate_zone", "annual_mean_temp_c", "cabinet_offset_c", "required_backup_hours")},
            "owner": s.owner.code}


def get_pack(actor: access.Actor, serial: str) -> Pack:
    pack = access.scoped_pack(actor, serial)
    if pack is None:
        raise ApiProblem(404, "Not found", f"no pack {serial!r} in the scope of {actor.organization.code}")
    return pack


# -- routes -----------------------------------------------------------------------

router = Router()

PackOrder = Literal["serial", "-serial", "install_date", "-install_date", "state", "-state"]


@router.get("/me", response={200: MeOut, **ERRORS}, tags=["people"])
def me(request):
    a = _actor(request)
    return {"username": a.name, "organization": a.organization, "role": a.role,
            "permissions": sorted(access.PERMISSIONS.get(a.role, frozenset()) if a.organization.kind != "auditor" else {"read"})}


@router.get("/organizations", response={200: list[OrganizationOut], **ERRORS}, tags=["registry"])
def organizations(request, kind: str | None = Query(None, max_length=32)):
    qs = Organization.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs[:1000])


@router.get("/pack-models", response={200: ModelList, **ERRORS}, tags=["registry"])
def pack_models(request, chemistry: str | None = Query(None, max_length=8), limit: int = Query(50, ge=1, le=500),
                offset: int = Query(0, ge=0, le=10_000_000)):
    qs = access.models_for(_actor(request)).select_related("oem")
    if chemistry:
        qs = qs.filter(chemistry=chemistry)
    items = [{**{f: getattr(m, f) for f in PackModelOut.model_fields if f != "oem"}, "oem": m.oem.code} for m in qs[offset:offset + limit]]
    return {**capped_count(qs), "limit": limit, "offset": offset, "items": items}


@router.get("/sites", response={200: SiteList, **ERRORS}, tags=["registry"])
def sites(request, province: str | None = Query(None, max_length=32), site_type: str | None = Query(None, max_length=24),
          q: str | None = Query(None, max_length=64, description="site code prefix"),
          order: Literal["code", "-code", "province", "-province"] = "code",
          limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000)):
    qs = access.sites_for(_actor(request)).select_related("owner")
    if province:
        qs = qs.filter(province=province)
    if site_type:
        qs = qs.filter(site_type=site_type)
    if q:
        qs = qs.filter(code__startswith=q)
    qs = qs.order_by(*((order,) if order.lstrip("-") == "code" else (order, "code")))
    return {**capped_count(qs), "limit": limit, "offset": offset, "items": [_site_out(s) for s in qs[offset:offset + limit]]}


@router.get("/sites/{code}", response={200: SiteOut, **ERRORS}, tags=["registry"])
def site(request, code: str):
    actor = _actor(request)
    s = access.sites_for(actor).select_related("owner").filter(code=code).first()
    if s is None:
        raise ApiProblem(404, "Not found", f"no site {code!r} in the scope of {actor.organization.code}")
    return _site_out(s)


@router.get("/packs", response={200: PackList, **ERRORS}, tags=["registry"])
def packs(request, state: str | None = Query(None, max_length=32), chemistry: str | None = Query(None, max_length=8),
          site: str | None = Query(None, max_length=64), model: str | None = Query(None, max_length=64),
          q: str | None = Query(None, max_length=64, description="serial prefix"), order: PackOrder = "serial",
          limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000)):
    qs = access.packs_for(_actor(request))
    if state:
        qs = qs.filter(state=state)
    if chemistry:
        qs = qs.filter(model__chemistry=chemistry)
    if site:
        qs = qs.filter(site__code=site)
    if model:
        qs = qs.filter(model__code=model)
    if q:
        qs = qs.filter(serial__startswith=q)
    # serial is unique, so it is the tie-breaker: (owner|custodian, state, serial) indexes can serve the order.
    keys = (order,) if order.lstrip("-") == "serial" else (order, "serial")
    page = qs.select_related("model", "site", "owner", "custodian").order_by(*keys)[offset:offset + limit]
    return {**capped_count(qs), "limit": limit, "offset": offset, "items": [_pack_out(p) for p in page]}


@router.get("/packs/{serial}", response={200: PackDetail, **ERRORS}, tags=["registry"])
def pack(request, serial: str):
    p = get_pack(_actor(request), serial)
    return {**_pack_out(p), "allowed_next_states": [s.value for s in allowed_targets(p.state)], "last_event_hash": p.last_event_hash}


@router.get("/packs/{serial}/events", response={200: list[EventOut], **ERRORS}, tags=["lifecycle"])
def pack_events(request, serial: str):
    p = get_pack(_actor(request), serial)
    return [{"seq": e.seq, "kind": e.kind, "actor": e.actor, "organization": e.organization.code if e.organization_id else None,
             "occurred_at": e.occurred_at, "place": e.place, "payload": e.payload, "prev_hash": e.prev_hash, "hash": e.hash}
            for e in p.events.select_related("organization").order_by("seq")]


@router.post("/packs/{serial}/transitions", response={201: EventOut, 409: Problem, **ERRORS}, tags=["lifecycle"])
def pack_transition(request, serial: str, body: TransitionIn):
    actor = _actor(request)
    p = get_pack(actor, serial)
    _require(actor, "transition")
    try:
        ev = do_transition(p, body.state, actor.name, actor.organization, {k: v for k, v in body.evidence.items()})
    except TransitionRefused as exc:
        raise ApiProblem(409, "Transition refused", str(exc), kind="transition-refused") from None
    record("transition", user=actor.user, organization=actor.organization, object_type="pack", object_id=serial,
           detail={"to": body.state, "evidence": body.evidence}, via=actor.via)
    return Status(201, {"seq": ev.seq, "kind": ev.kind, "actor": ev.actor, "organization": actor.organization.code,
                 "occurred_at": ev.occurred_at, "place": ev.place, "payload": ev.payload, "prev_hash": ev.prev_hash, "hash": ev.hash})


@router.get("/packs/{serial}/telemetry", response={200: TelemetryOut, **ERRORS}, tags=["telemetry"])
def pack_telemetry(request, serial: str, start: dt.datetime | None = None, end: dt.datetime | None = None,
                   points: int = Query(500, ge=10, le=5000)):
    from .telemetry_view import downsampled_series

    p = get_pack(_actor(request), serial)
    return downsampled_series(p.serial, start, end, points)


class HealthOut(Schema):
    assessed_at: dt.datetime
    method: str
    evidence_count: int
    soh_p10_pct: float
    soh_p50_pct: float
    soh_p90_pct: float
    resistance_ratio_p50: float
    rate_multiplier_p50: float
    eol80_p10: dt.date | None
    eol80_p50: dt.date | None
    eol80_p90: dt.date | None
    eol70_p50: dt.date | None
    eol60_p50: dt.date | None
    anomaly: str
    evidence_sources: dict[str, int] = Field(description="SOH evidence used, per source (bms, capacity_test, outage_discharge)")
    resistance_mohm_measured: float | None = Field(description="measured DC resistance (bench DCIR, current steps), each reading brought to 25 °C (Arrhenius), fused; mΩ")
    resistance_mohm_sd: float | None = Field(description="standard deviation of the measured resistance, mΩ")
    resistance_evidence_count: int
    resistance_measured_on: dt.date | None
    forecast: dict[str, Any] = Field(description="SOH % and resistance ratio P10/P50/P90 at `years_ahead` after `as_of`; `crossings`: P10/P50/P90 "
                                                 "dates of falling below 80, 70, 60 and 20 % SOH (null: beyond the 15-year horizon); "
                                                 "`initial_capacity_pct`: what the pack model's new packs delivered against rated, the start "
                                                 "SOH counts from (`initial_capacity_from_packs` packs tested at commissioning and later gave "
                                                 "it; 0: rated, assumed)")


class DecisionOut(Schema):
    decided_at: dt.datetime
    route: str
    policy: str
    reasons: list[dict[str, Any]]
    inputs: dict[str, Any]
    current: bool


@router.get("/packs/{serial}/health", response={200: HealthOut, **ERRORS}, tags=["health"])
def pack_health(request, serial: str):
    from battloop.health.records import HealthAssessment

    p = get_pack(_actor(request), serial)
    h = HealthAssessment.objects.filter(pack=p).first()
    if h is None:
        raise ApiProblem(404, "Not found", f"pack {serial} has not been assessed yet (battloop assess)")
    return h


@router.get("/packs/{serial}/decisions", response={200: list[DecisionOut], **ERRORS}, tags=["triage"])
def pack_decisions(request, serial: str):
    from battloop.triage.models import TriageDecision

    p = get_pack(_actor(request), serial)
    return [{"decided_at": d.decided_at, "route": d.route, "policy": d.policy.identity, "reasons": d.reasons, "inputs": d.inputs,
             "current": d.current} for d in TriageDecision.objects.filter(pack=p).select_related("policy")[:100]]


def _job_out(job: ImportJob) -> dict:
    report = dict(job.report)
    report.pop("quarantine_path", None)  # server-side path: download through the API instead
    return {"id": job.pk, "kind": job.kind, "file_name": job.file_name, "status": job.status, "progress": jobs.progress(job),
            "report": report, "error": job.error, "created_at": job.created_at}


@router.post("/imports", response={202: ImportJobOut, 413: Problem, 415: Problem, **ERRORS}, tags=["imports"])
def create_import(request, file: File[UploadedFile], kind: Form[Literal["packs", "sites", "models", "bench"]] = "packs",
                  audit: Form[bool] = False):
    try:
        job = jobs.submit(_actor(request), file, kind, audit=audit)
    except jobs.ImportNotAllowed as exc:
        raise ApiProblem(403, "Forbidden", str(exc)) from None
    except jobs.UploadRejected as exc:
        status = 413 if "limit" in str(exc) else 415
        raise ApiProblem(status, "Upload rejected", str(exc), [{"field": "file", "message": str(exc)}]) from None
    return Status(202, _job_out(job))


def _get_job(actor, job_id: int) -> ImportJob:
    job = jobs.job_for(actor.organization, job_id)
    if job is None:
        raise ApiProblem(404, "Not found", f"no import {job_id} for {actor.organization.code}")
    return job


@router.get("/imports/{job_id}", response={200: ImportJobOut, **ERRORS}, tags=["imports"])
def get_import(request, job_id: int):
    return _job_out(_get_job(_actor(request), job_id))


@router.get("/imports/{job_id}/quarantine", response={200: None, **ERRORS}, tags=["imports"],
            openapi_extra={"responses": {200: {"description": "quarantine report (CSV)", "content": {"text/csv": {}}}}})
def get_quarantine(request, job_id: int):
    job = _get_job(_actor(request), job_id)
    path = (job.report or {}).get("quarantine_path")
    if job.status != "done" or not path:
        raise ApiProblem(404, "Not found", f"import {job_id} has no quarantine report yet (status {job.status})")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{job.file_name}.quarantine.csv", content_type="text/csv")


api.add_router("/", router)


class SiteBackupOutlookOut(Schema):
    site: str
    packs: int
    load_w: float | None = Field(description="null: the site's load is unknown, so its backup time cannot be stated")
    required_hours: float
    hours_now_p10: float | None
    hours_now_p50: float | None
    hours_now_p90: float | None
    hours_1y_p50: float | None
    hours_3y_p50: float | None
    hours_5y_p50: float | None
    meets_now: bool | None
    short_p10: dt.date | None = Field(description="early date of falling below the required backup hours")
    short_p50: dt.date | None
    short_p90: dt.date | None
    earliest_failing_pack: str | None
    earliest_failing_eol80_p50: dt.date | None


class SiteOutlookList(Page):
    items: list[SiteBackupOutlookOut]


class RetirementOut(Schema):
    owner: str
    dimension: str
    group: str
    quarter: str
    count_p10: float
    count_p50: float
    count_p90: float
    kwh_p10: float
    kwh_p50: float
    kwh_p90: float
    cost_cny_p10: float
    cost_cny_p50: float
    cost_cny_p90: float
    cum_count_p10: float
    cum_count_p50: float
    cum_count_p90: float
    cum_cost_cny_p50: float


def _outlook_out(o) -> dict:
    return {"site": o.site.code, **{f: getattr(o, f) for f in (
        "packs", "load_w", "required_hours", "hours_now_p10", "hours_now_p50", "hours_now_p90", "hours_1y_p50", "hours_3y_p50",
        "hours_5y_p50", "meets_now", "short_p10", "short_p50", "short_p90", "earliest_failing_eol80_p50")},
        "earliest_failing_pack": o.earliest_failing_pack.serial if o.earliest_failing_pack else None}


@router.get("/outlook/sites", response={200: SiteOutlookList, **ERRORS}, tags=["health"])
def outlook_sites(request, short_before: dt.date | None = Query(None, description="only sites whose P50 backup falls short before this date"),
                  order: Literal["short_p10", "short_p50", "hours_now_p50", "site"] = "short_p10",
                  limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000)):
    """Sites' backup time now and forecast against their required hours (latest `battloop assess`)."""
    from django.db.models import F

    from battloop.health.records import SiteBackupOutlook

    qs = SiteBackupOutlook.objects.filter(site__in=access.sites_for(_actor(request))).select_related("site", "earliest_failing_pack")
    if short_before:
        qs = qs.filter(short_p50__lt=short_before)
    key = "site__code" if order == "site" else order
    qs = qs.order_by(F(key).asc(nulls_last=True), "site__code")
    return {**capped_count(qs), "limit": limit, "offset": offset, "items": [_outlook_out(o) for o in qs[offset:offset + limit]]}


@router.get("/sites/{code}/backup-outlook", response={200: SiteBackupOutlookOut, **ERRORS}, tags=["health"])
def site_backup_outlook(request, code: str):
    from battloop.health.records import SiteBackupOutlook

    actor = _actor(request)
    o = (SiteBackupOutlook.objects.filter(site__in=access.sites_for(actor), site__code=code)
         .select_related("site", "earliest_failing_pack").first())
    if o is None:
        raise ApiProblem(404, "Not found", f"no backup outlook for site {code!r} in the scope of {actor.organization.code} "
                                           "(unknown site, or not assessed yet: battloop assess)")
    return _outlook_out(o)


@router.get("/outlook/retirements", response={200: list[RetirementOut], **ERRORS}, tags=["health"])
def outlook_retirements(request, dimension: Literal["owner", "province", "model"] = "owner",
                        group: str | None = Query(None, max_length=100, description="one province or pack model")):
    """Packs retiring per quarter (P10/P50/P90 over joint fleet scenarios), energy and replacement
    cost, for the owners the caller may read; `cum_*` are the totals from the start to the quarter's end."""
    from battloop.health.records import OutlookRun, RetirementForecast

    run = OutlookRun.objects.order_by("-computed_at").first()
    if run is None:
        return []
    qs = RetirementForecast.objects.filter(run=run, owner_id__in=access.portfolio_owner_ids(_actor(request)), dimension=dimension)
    if group:
        qs = qs.filter(group=group)
    return [{"owner": r.owner.code, **{f: getattr(r, f) for f in RetirementOut.model_fields if f != "owner"}}
            for r in qs.select_related("owner").order_by("owner__code", "group", "quarter")]
