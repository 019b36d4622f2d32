"""Pages: server-rendered, with HTMX for the interactive parts."""

from __future__ import annotations

import datetime as dt
import functools
import json

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db.models import Count, F, Sum
from django.http import FileResponse, Http404, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from battloop.registry.audit import verify_chains
from battloop.registry.events import transition as do_transition
from battloop.registry.lifecycle import State, TransitionRefused, allowed_targets

from . import access, jobs
from .forms import ThrottledAuthenticationForm
from .models import ApiToken, AuditEntry, ImportJob, Role, record

STATE_SEVERITY = {s.value: i for i, s in enumerate([State.INSTALLED, State.REDEPLOYED, State.IN_STOCK, State.MANUFACTURED, State.TRIAGED,
                                                     State.SECOND_LIFE_READY, State.IN_STORAGE, State.REMOVED, State.RECYCLING_READY,
                                                     State.SHIPPED, State.RECEIVED_BY_RECYCLER, State.RECYCLED, State.FLAGGED,
                                                     State.LOST, State.QUARANTINED, State.DAMAGED])}
WORST_STATES = (State.FLAGGED, State.QUARANTINED, State.DAMAGED, State.LOST)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def member_required(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(f"/login/?next={request.path}")
        actor = access.actor_for_user(request.user, request.session.get("battloop_org"))
        if actor is None:
            return render(request, "web/no_membership.html", status=403)
        request.actor = actor
        return view(request, *args, **kwargs)
    return wrapper


class LoginView(auth_views.LoginView):
    template_name = "web/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        record("login", user=self.request.user, ip=client_ip(self.request))
        return response


@member_required
def dashboard(request):
    actor = request.actor
    packs = access.packs_for(actor)
    by_state = dict(packs.values_list("state").annotate(n=Count("id")))
    by_chem = dict(packs.values_list("model__chemistry").annotate(n=Count("id")))
    total = sum(by_state.values())
    installed = by_state.get("installed", 0) + by_state.get("redeployed", 0)
    # Summed in the database: a fleet of a million packs must not travel to Python for one KPI.
    energy_kwh = packs.filter(state__in=["installed", "redeployed"]).aggregate(e=Sum("model__energy_kwh"))["e"] or 0.0
    kpis = {
        "packs": total,
        "installed": installed,
        "flagged": by_state.get("flagged", 0),
        "sites": access.sites_for(actor).count(),
        "energy_mwh": round(energy_kwh / 1000, 1),
        "audit_grade": packs.filter(record_grade="audit").count(),
    }
    soh_hist = _soh_histogram(packs)
    alarms = _recent_alarms(packs)
    return render(request, "web/dashboard.html", {
        "kpis": kpis,
        "state_chart": json.dumps([{"name": _(k.replace("_", " ")), "value": v} for k, v in sorted(by_state.items(), key=lambda kv: -kv[1])], ensure_ascii=False),
        "chem_chart": json.dumps([{"name": k or _("unknown"), "value": v} for k, v in by_chem.items()], ensure_ascii=False),
        "soh_chart": json.dumps(soh_hist),
        "soh_counts": soh_hist["counts"],
        "alarms": alarms,
    })


def _soh_histogram(packs) -> dict:
    """Packs per 5-point band of assessed SOH (P50), from `battloop assess`, counted in the database."""
    from django.db.models.functions import Floor

    from battloop.health.records import HealthAssessment

    edges = list(range(50, 105, 5))
    bands = dict(HealthAssessment.objects.filter(pack__in=packs.values("id"))
                 .annotate(band=Floor(F("soh_p50_pct") / 5)).values_list("band").annotate(n=Count("id")).order_by())
    if not bands:
        return {"edges": edges, "counts": []}
    counts = [0] * (len(edges) - 1)
    below = 0
    for band, n in bands.items():
        lo = int(band) * 5
        if lo < edges[0]:
            below += n
        else:
            counts[min((lo - edges[0]) // 5, len(counts) - 1)] += n
    labels = [f"<{edges[0]}"] + [f"{a}–{b}" for a, b in zip(edges, edges[1:])]
    return {"edges": edges, "labels": labels, "counts": [below] + counts}


def _recent_alarms(packs, limit: int = 10):
    from battloop.registry.models import PackEvent

    return list(PackEvent.objects.filter(kind="alarm", pack__in=packs.values("id")).select_related("pack").order_by("-occurred_at")[:limit])


@member_required
def pack_list(request):
    qs = access.packs_for(request.actor).select_related("model", "site", "owner")
    state = request.GET.get("state") or ""
    q = (request.GET.get("q") or "").strip()[:64]
    if state:
        qs = qs.filter(state=state)
    if q:
        qs = qs.filter(serial__startswith=q)
    page = Paginator(qs.order_by("serial"), 50).get_page(request.GET.get("page"))
    return render(request, "web/packs.html", {"page": page, "state": state, "q": q, "states": [s.value for s in State]})


def _pack_or_404(actor, serial):
    pack = access.scoped_pack(actor, serial)
    if pack is None:
        raise Http404(_("No such pack."))
    return pack


@member_required
def pack_detail(request, serial):
    pack = _pack_or_404(request.actor, serial)
    return render(request, "web/pack.html", _pack_context(request, pack))


def _pack_context(request, pack, error: str = ""):
    from battloop.health.records import HealthAssessment
    from battloop.telemetry.models import ActiveAlarm
    from battloop.triage.models import TriageDecision

    events = list(pack.events.select_related("organization").order_by("seq"))
    chain = verify_chains(pack.serial)
    health = HealthAssessment.objects.filter(pack=pack).first()
    return {"pack": pack, "events": events, "chain_ok": not chain.breaks, "chain_breaks": chain.breaks,
            "health": health, **_forecast_rows(health),
            "decision": TriageDecision.objects.filter(pack=pack, current=True).select_related("policy").first(),
            "alarms": ActiveAlarm.objects.filter(pack=pack).order_by("code"),
            "next_states": [s.value for s in allowed_targets(pack.state)], "error": error,
            "can_transition": request.actor.can("transition")}


def _forecast_rows(health) -> dict:
    """The stored per-pack forecast as table rows: one per year ahead, one per SOH threshold."""
    from battloop.health.assess import date_ahead

    fc = (health.forecast if health else None) or {}
    if not fc:
        return {"forecast_rows": [], "crossing_rows": [], "forecast_chart": None}
    soh, res = fc["soh_pct"], fc["resistance_ratio"]
    rows = [{"years": y, "soh_p10": soh["p10"][j], "soh_p50": soh["p50"][j], "soh_p90": soh["p90"][j], "res_p50": res["p50"][j]}
            for j, y in enumerate(fc["years_ahead"])]
    # highest threshold first (a JSON object's key order is not kept by PostgreSQL's jsonb)
    crossings = [{"threshold": thr, **dates} for thr, dates in sorted(fc["crossings"].items(), key=lambda kv: -float(kv[0]))]
    # the fan chart: today's SOH band, then the band at each stored year ahead (dates, not offsets)
    today = dt.date.fromisoformat(fc["as_of"]) if fc.get("as_of") else timezone.localdate(health.assessed_at)
    dates = [today] + [date_ahead(today, 12 * y) for y in fc["years_ahead"]]  # the months the forecast was read at
    chart = {"dates": [d.isoformat() for d in dates],
             "p10": [health.soh_p10_pct] + list(soh["p10"]), "p50": [health.soh_p50_pct] + list(soh["p50"]),
             "p90": [health.soh_p90_pct] + list(soh["p90"]),
             "thresholds": sorted((float(t) for t in fc["crossings"]), reverse=True)}
    return {"forecast_rows": rows, "crossing_rows": crossings, "forecast_chart": chart}



@member_required
@require_POST
def pack_transition(request, serial):
    pack = _pack_or_404(request.actor, serial)
    actor = request.actor
    if not actor.can("transition"):
        return HttpResponseForbidden(_("Your role may not change pack states."))
    target = request.POST.get("state", "")
    evidence = {}
    for key, value in request.POST.items():
        if key.startswith("ev_") and value.strip():
            evidence[key[3:]] = value.strip()[:200]
    error = ""
    try:
        do_transition(pack, target, actor.name, actor.organization, evidence)
        record("transition", user=actor.user, organization=actor.organization, object_type="pack", object_id=pack.serial,
               detail={"to": target, "evidence": evidence}, ip=client_ip(request))
    except TransitionRefused as exc:
        error = str(exc)
    pack = _pack_or_404(actor, serial)
    template = "web/_pack_lifecycle.html" if request.headers.get("HX-Request") else "web/pack.html"
    return render(request, template, _pack_context(request, pack, error), status=200 if not error else 409 if not request.headers.get("HX-Request") else 200)


@member_required
def site_detail(request, code):
    site = access.sites_for(request.actor).select_related("owner").filter(code=code).first()
    if site is None:
        raise Http404(_("No such site."))
    packs = access.packs_for(request.actor).filter(site=site).select_related("model").order_by("serial")
    return render(request, "web/site.html", {"site": site, "packs": packs})


@member_required
def map_page(request):
    return render(request, "web/map.html", {})


@member_required
def map_data(request):
    """Sites aggregated in the database into grid cells sized for the view, each coloured
    by the worst pack state in it: the browser gets a few hundred cells, not 100,000 markers."""
    from django.db.models import Avg, Case, IntegerField, Max, Value, When
    from django.db.models.functions import Floor

    try:
        cell = min(max(float(request.GET.get("cell", "1.0")), 0.05), 5.0)
    except ValueError:
        cell = 1.0
    severity = Case(*[When(state=s, then=Value(v)) for s, v in STATE_SEVERITY.items()], default=Value(0), output_field=IntegerField())
    rows = (access.packs_for(request.actor).exclude(site=None).exclude(site__latitude=None)
            .annotate(gy=Floor(F("site__latitude") / cell), gx=Floor(F("site__longitude") / cell))
            .values("gy", "gx")
            .annotate(lat=Avg("site__latitude"), lon=Avg("site__longitude"), packs=Count("id"), worst=Max(severity))
            .order_by())
    worst_names = {v: k for k, v in STATE_SEVERITY.items()}
    cells = [{"lat": round(r["lat"], 4), "lon": round(r["lon"], 4), "packs": r["packs"], "worst": worst_names.get(r["worst"], "installed")}
             for r in rows]
    return JsonResponse({"cell_degrees": cell, "cells": cells})


@member_required
def imports_page(request):
    actor = request.actor
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None and (actor.can("import") or actor.can("transition")):
            messages.error(request, _("Choose a file to import."))
            return redirect("web:imports")
        if upload is None:
            return HttpResponseForbidden(_("Your role may not import."))
        try:
            job = jobs.submit(actor, upload, request.POST.get("kind", "packs"), audit=bool(request.POST.get("audit")),
                              ip=client_ip(request))
        except jobs.ImportNotAllowed as exc:
            return HttpResponseForbidden(str(exc))
        except jobs.UploadRejected as exc:
            messages.error(request, str(exc))
            return redirect("web:imports")
        return redirect("web:import_detail", job_id=job.pk)
    recent = ImportJob.objects.filter(organization=actor.organization)[:20]
    return render(request, "web/imports.html", {"jobs": recent, "can_import": actor.can("import"),
                                                "can_bench": actor.can("import") or actor.can("transition")})


def _job_or_404(actor, job_id):
    job = jobs.job_for(actor.organization, job_id)
    if job is None:
        raise Http404(_("No such import."))
    return job


@member_required
def import_detail(request, job_id):
    job = _job_or_404(request.actor, job_id)
    progress = int(100 * jobs.progress(job))
    template = "web/_import_status.html" if request.headers.get("HX-Request") else "web/import_detail.html"
    return render(request, template, {"job": job, "progress": progress, "report": job.report})


@member_required
def import_quarantine(request, job_id):
    job = _job_or_404(request.actor, job_id)
    path = (job.report or {}).get("quarantine_path")
    if not path:
        raise Http404(_("No quarantine report."))
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{job.file_name}.quarantine.csv", content_type="text/csv")


@member_required
def audit_log(request):
    if not request.actor.can("read_audit_log"):
        return HttpResponseForbidden(_("Only admins read the audit log."))
    qs = AuditEntry.objects.filter(organization=request.actor.organization) | AuditEntry.objects.filter(
        user__memberships__organization=request.actor.organization)
    action = request.GET.get("action", "")
    user = request.GET.get("user", "")[:150]
    if action:
        qs = qs.filter(action=action)
    if user:
        qs = qs.filter(username=user)
    page = Paginator(qs.distinct().order_by("-at"), 50).get_page(request.GET.get("page"))
    actions = AuditEntry.objects.values_list("action", flat=True).distinct()
    return render(request, "web/audit.html", {"page": page, "action": action, "user": user, "actions": sorted(set(actions))})


@member_required
def tokens(request):
    actor = request.actor
    if not actor.can("manage_tokens"):
        return HttpResponseForbidden(_("Only admins manage API tokens."))
    new_token = None
    if request.method == "POST":
        if "revoke" in request.POST:
            t = ApiToken.objects.filter(pk=request.POST.get("revoke"), organization=actor.organization).first()
            if t and t.revoked_at is None:
                t.revoked_at = timezone.now()
                t.save(update_fields=["revoked_at"])
                record("token_revoked", user=request.user, organization=actor.organization, object_type="token", object_id=t.pk)
        else:
            role = request.POST.get("role", Role.AUDITOR)
            if role not in Role.values:
                role = Role.AUDITOR
            days = min(max(int(request.POST.get("days", "90") or 90), 1), 365)
            name = (request.POST.get("name") or "token")[:100]
            token, new_token = ApiToken.issue(request.user, actor.organization, role, name, days)
            record("token_issued", user=request.user, organization=actor.organization, object_type="token", object_id=token.pk,
                   detail={"role": role, "days": days})
    rows = ApiToken.objects.filter(organization=actor.organization).order_by("-created_at")
    return render(request, "web/tokens.html", {"tokens": rows, "new_token": new_token, "roles": Role.choices})
