"""Triage on the registry: dossiers built from what battloop knows about each pack (model,
health assessment with its uncertainty, alarm history, latest reading), the policy
evaluated on all of them at once, decisions stored and recorded as events on the packs.
Packs sitting in storage move to ``triaged`` through the state machine."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from battloop.registry.events import append_event, transition
from battloop.registry.lifecycle import State
from battloop.registry.models import Pack, PackEvent

from .models import PolicyVersion, TriageDecision
from .policy import Policy, compare, evaluate, load_policy, plain_value, validate_dossiers

#: Packs triage looks at by default: those flagged in service and those out of service.
DEFAULT_STATES = (State.FLAGGED, State.REMOVED, State.IN_STORAGE, State.TRIAGED, State.REDEPLOYED)
SITE_EOL_SOH_PCT = 80.0  # telecom end of life, DOMAIN.md §3; a per-site setting where sites state one
#: Half-width of the SOH band a bench capacity test gives (P10/P90 = measured ∓ this). A
#: full discharge test at the bench reads capacity to about ±1 % of rated (current shunt
#: and timing, plus the 25 °C correction of YD/T 799); an assumption stated as a setting.
BENCH_SOH_BAND_PP = 1.0
_CLASS_ORDER = {"A": 0, "B": 1, "C": 2}
_DOSSIER_COLUMNS = ("serial", "chemistry", "soh_pct", "soh_p10_pct", "soh_p90_pct", "ir_ratio", "safety_class", "age_years",
                    "thermal_events", "fault_count", "anti_theft_locked", "model", "insulation_ohm_per_v", "cell_spread_mv",
                    "cycle_count", "rul_years", "eol_soh_pct", "soh_source", "bench_result")


def _worse_class(*classes: str | None) -> str | None:
    known = [c for c in classes if c]
    return max(known, key=_CLASS_ORDER.__getitem__) if known else None


def build_dossiers(packs) -> pd.DataFrame:
    """One dossier row per pack, in the policy's columns (see triage.policy.DOSSIER_FIELDS).

    Evidence, strongest first: the pack's latest bench result (:class:`BenchResult`), then
    its health assessment, alarms and latest reading.

    * SOH: a bench capacity test replaces the estimate, with a ±``BENCH_SOH_BAND_PP`` band
      as P10/P90 (column ``soh_source`` says which one was used); resistance ratio,
      insulation and the cell-voltage spread at rest likewise come from the bench.
    * Safety class: the bench's judgement, never better than what the pack's state says
      (a quarantined pack is at least B, a damaged one C). A bench result without a visual
      inspection leaves the class missing, so the policy holds the pack for a judgement.
      Without a bench result, a pack in service with no damage on record is taken as A.
    * Thermal events and faults: the larger of the bench's BMS history and the alarms
      opened in service (they may count the same event, so they are not added).
    * Anti-theft lock: the bench's reading when it is newer than the lock alarm.
    """
    from battloop.telemetry.models import ActiveAlarm

    from .bench import latest_bench_results

    # The pack set goes into the other queries as a subquery, not as a list of ids: a list
    # of a million ids exceeds what SQLite and PostgreSQL accept as query parameters.
    chosen = packs.values("id")
    packs = list(packs.select_related("model", "health", "latest_reading"))
    alarm_counts = dict(PackEvent.objects.filter(pack_id__in=chosen, kind="alarm", payload__status="open")
                        .values_list("pack_id").annotate(n=Count("id")))
    thermal = dict(PackEvent.objects.filter(pack_id__in=chosen, kind="alarm", payload__status="open",
                                            payload__alarm="over_temperature").values_list("pack_id").annotate(n=Count("id")))
    locked = dict(ActiveAlarm.objects.filter(pack_id__in=chosen, code="anti_theft_locked").values_list("pack_id", "opened_at"))
    bench = latest_bench_results(chosen)
    today = timezone.localdate()
    rows = []
    for p in packs:
        h = getattr(p, "health", None)
        lr = getattr(p, "latest_reading", None)
        b = bench.get(p.id)
        born = p.manufacture_date or p.install_date
        state_class = "C" if p.state == State.DAMAGED else "B" if p.state == State.QUARANTINED else None
        soh, p10, p90, source = (h.soh_p50_pct, h.soh_p10_pct, h.soh_p90_pct, "health") if h else (None, None, None, "")
        if b is not None and b.soh_pct is not None:
            soh, source = round(b.soh_pct, 2), "bench"
            p10, p90 = max(0.0, soh - BENCH_SOH_BAND_PP), min(120.0, soh + BENCH_SOH_BAND_PP)
        ir = b.ir_ratio if b is not None and b.ir_ratio is not None else (h.resistance_ratio_p50 if h else None)
        spread = round(1000 * (lr.cell_v_max - lr.cell_v_min), 1) if lr and lr.cell_v_max is not None and lr.cell_v_min is not None else None
        if b is not None and b.cell_spread_mv is not None:
            spread = b.cell_spread_mv
        if b is None:
            safety = state_class or "A"
        else:
            safety = _worse_class(b.safety_class, state_class) if b.safety_class else None
        lock_alarm = locked.get(p.id)
        if b is not None and b.anti_theft_locked is not None and (lock_alarm is None or b.tested_at >= lock_alarm):
            lock = b.anti_theft_locked
        else:
            lock = lock_alarm is not None
        rows.append({
            "serial": p.serial,
            "chemistry": p.model.chemistry if p.model_id else None,
            "soh_pct": soh,
            "soh_p10_pct": p10,
            "soh_p90_pct": p90,
            "ir_ratio": ir,
            "safety_class": safety,
            "age_years": round((today - born).days / 365.25, 2) if born else None,
            "thermal_events": max(thermal.get(p.id, 0), (b.thermal_events or 0) if b else 0),
            "fault_count": max(alarm_counts.get(p.id, 0), (b.fault_count or 0) if b else 0),
            "anti_theft_locked": lock,
            "model": p.model.code if p.model_id else None,
            "insulation_ohm_per_v": b.insulation_ohm_per_v if b is not None else None,
            "cell_spread_mv": spread,
            "cycle_count": b.cycle_count if b is not None and b.cycle_count is not None else (lr.cycle_count if lr else None),
            "rul_years": round((h.eol80_p50 - today).days / 365.25, 2) if h and h.eol80_p50 else None,
            "eol_soh_pct": SITE_EOL_SOH_PCT,
            "soh_source": source,
            "bench_result": b.pk if b is not None else None,
        })
    if not rows:  # no packs: an empty table with the dossier columns, so comparisons report 0 of 0
        return validate_dossiers(pd.DataFrame(columns=_DOSSIER_COLUMNS, dtype=object), where="registry dossiers")

    def text(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return ("1" if v else "0") if isinstance(v, bool) else str(v)

    # validate_dossiers types the columns and refuses impossible values, exactly as for a user's CSV
    raw = pd.DataFrame([{k: text(v) for k, v in r.items()} for r in rows])
    return validate_dossiers(raw, where="registry dossiers")


def _policy_version(policy: Policy) -> PolicyVersion:
    text = Path(policy.source).read_text(encoding="utf-8") if policy.source and Path(policy.source).exists() else ""
    pv, _ = PolicyVersion.objects.get_or_create(identity=policy.identity, defaults={
        "name": policy.name, "version": policy.version, "content_hash": policy.content_hash, "text": text,
        "first_used_at": timezone.now()})
    return pv


def current_policy() -> Policy:
    """The policy of the latest stored decisions (else the shipped default)."""
    latest = TriageDecision.objects.filter(current=True).select_related("policy").first()
    if latest and latest.policy.text:
        return load_policy(latest.policy.identity, text=latest.policy.text)
    return load_policy("default")


def run(policy: Policy, packs=None, actor: str = "triage", *, trigger: dict | None = None,
        evidence: dict[str, dict] | None = None) -> dict:
    """Evaluate ``policy`` on ``packs`` (default: every pack in :data:`DEFAULT_STATES`), store a
    decision per pack (the previous one stops being current) and record each new or changed
    route as an event: packs in storage move to ``triaged``, the others get a ``decision``.

    ``trigger`` (what caused this evaluation) and ``evidence`` (per serial, the new
    evidence about that pack) are stored with the decisions and put in the events' payload
    under ``trigger``, so a re-triage says why it happened."""
    packs = packs if packs is not None else Pack.objects.filter(state__in=[s.value for s in DEFAULT_STATES])
    dossiers = build_dossiers(packs)
    if len(dossiers) == 0:
        return {"packs": 0, "routes": {}, "changed": 0, "policy": policy.identity, "moves": []}
    decisions = evaluate(policy, dossiers)
    pv = _policy_version(policy)
    now = timezone.now()
    by_serial = {p.serial: p for p in packs}
    chosen = packs.values("id")  # a subquery, whatever the number of packs
    previous = dict(TriageDecision.objects.filter(pack_id__in=chosen, current=True).values_list("pack__serial", "route"))
    routes = decisions.routes
    changed = 0
    moves = []
    with transaction.atomic():
        TriageDecision.objects.filter(pack_id__in=chosen, current=True).update(current=False)
        stored = []
        for i, serial in enumerate(decisions.serials):
            pack = by_serial[serial]
            route = str(routes[i])
            reasons = [{k: plain_value(v) for k, v in r.items()} for r in decisions.reasons(i)]
            inputs = {k: plain_value(v) for k, v in dossiers.iloc[i].to_dict().items()}
            why = {**(trigger or {}), **((evidence or {}).get(serial) or {})}
            stored.append(TriageDecision(pack=pack, policy=pv, decided_at=now, route=route, reasons=reasons, inputs=inputs,
                                         trigger=why))
            if previous.get(serial) != route:
                changed += 1
                moves.append({"serial": serial, "from": previous.get(serial), "to": route})
                payload = {"decision": route, "policy": policy.identity, "rules": [r.get("rule") for r in reasons]}
                if previous.get(serial) is not None:
                    payload["previous"] = previous[serial]
                if why:
                    payload["trigger"] = why
                if pack.state == State.IN_STORAGE:
                    evidence_ = {"route": route, "policy_version": policy.identity, "rules": payload["rules"]}
                    if why:
                        evidence_["trigger"] = why
                    transition(pack, State.TRIAGED, actor, None, evidence_)
                else:
                    append_event(pack, PackEvent.Kind.DECISION, actor, None, payload, occurred_at=now)
        TriageDecision.objects.bulk_create(stored, batch_size=2000)
    return {"packs": len(decisions), "routes": decisions.route_counts(), "changed": changed, "policy": policy.identity,
            "moves": moves}


def retriage(packs, reason: str, *, evidence: dict[str, dict] | None = None, actor: str = "triage") -> dict:
    """Re-evaluate the current policy (:func:`current_policy`) for these packs only, after new
    evidence about them (a bench result, a health assessment, an alarm opening or clearing),
    and record what changed (:func:`run`).

    Only packs that triage has already decided on and that are still in a triage state
    (:data:`DEFAULT_STATES`) are re-triaged: a pack in service that was never triaged
    is triaged by ``battloop triage run``, not by every new reading. ``reason`` names the
    evidence; ``evidence`` may add, per serial, what exactly arrived (e.g. the bench
    result's id and source row). Both go into each decision's ``trigger`` and into the
    events' payload."""
    if isinstance(packs, (list, tuple, set)):
        ids = [p.pk if isinstance(p, Pack) else p for p in packs]
        packs = Pack.objects.filter(pk__in=ids)
    decided = TriageDecision.objects.filter(current=True).values("pack_id")
    selected = packs.filter(state__in=[s.value for s in DEFAULT_STATES], pk__in=decided)
    if not selected.exists():
        return {"packs": 0, "routes": {}, "changed": 0, "policy": None, "moves": [], "reason": reason}
    out = run(current_policy(), selected, actor=actor, trigger={"reason": reason}, evidence=evidence)
    out["reason"] = reason
    return out


def compare_with_current(new: Policy, packs=None, against: str = "current") -> dict:
    """What would change in the registry if ``new`` replaced the policy in force
    (``against``: 'current' = the policy of the stored decisions, 'default', or a path)."""
    packs = packs if packs is not None else Pack.objects.filter(state__in=[s.value for s in DEFAULT_STATES])
    old = current_policy() if against == "current" else load_policy(against)
    return compare(new, old, build_dossiers(packs))


def retriage_after_assessment(packs) -> dict:
    """Hook at the end of ``battloop assess``: packs already triaged (a flagged pack, a
    redeployed one back under monitoring) are re-evaluated on their new health assessment.
    Each decision's trigger carries the SOH band it was assessed at.

    ``packs`` are the packs just assessed. An assessment run replaces the assessment of
    every pack in service, so the packs concerned are found in the database (flagged or
    redeployed, assessed, with a current decision) rather than by a list of ids that a
    large fleet would overflow."""
    from battloop.health.records import HealthAssessment

    if not packs:
        return {"packs": 0, "routes": {}, "changed": 0, "policy": None, "moves": [], "reason": "health assessment"}
    assessed_states = [State.FLAGGED.value, State.REDEPLOYED.value]  # the triage states assess covers
    concerned = Pack.objects.filter(state__in=assessed_states, health__isnull=False,
                                    pk__in=TriageDecision.objects.filter(current=True).values("pack_id"))
    evidence = {serial: {"evidence": "health_assessment", "soh_p10_pct": p10, "soh_p50_pct": p50, "soh_p90_pct": p90,
                         "assessed_at": at.isoformat()}
                for serial, p10, p50, p90, at in HealthAssessment.objects.filter(pack__in=concerned).values_list(
                    "pack__serial", "soh_p10_pct", "soh_p50_pct", "soh_p90_pct", "assessed_at")}
    if not evidence:
        return {"packs": 0, "routes": {}, "changed": 0, "policy": None, "moves": [], "reason": "health assessment"}
    return retriage(concerned, "health assessment", evidence=evidence, actor="health")


def retriage_after_alarms(changes: list[dict]) -> dict:
    """Hook at the end of the telemetry's alarm evaluation: packs already triaged whose
    alarms opened or cleared are re-evaluated (alarm history and the anti-theft lock are
    dossier fields). ``changes`` are the alarm transitions: {pack_serial, code, event}."""
    evidence: dict[str, dict] = {}
    for ch in changes:
        e = evidence.setdefault(ch["pack_serial"], {"evidence": "alarm", "alarms": []})
        e["alarms"].append({"alarm": ch["code"], "status": "open" if ch["event"] == "open" else "cleared"})
    if not evidence:
        return {"packs": 0, "routes": {}, "changed": 0, "policy": None, "moves": [], "reason": "alarms"}
    return retriage(Pack.objects.filter(serial__in=list(evidence)), "alarm opened or cleared", evidence=evidence,
                    actor="telemetry")
