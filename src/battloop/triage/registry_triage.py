"""Triage on the registry: dossiers built from what battloop knows about each pack (model,
health assessment with its uncertainty, alarm history, latest reading), the policy
evaluated on all of them at once, decisions stored and recorded as events on the packs.
Packs sitting in storage move to ``triaged`` through the state machine."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from battloop.registry.events import append_event, transition
from battloop.registry.lifecycle import State
from battloop.registry.models import Pack, PackEvent

from .models import PolicyVersion, TriageDecision
from .policy import Policy, compare, evaluate, load_policy, validate_dossiers

#: Packs triage looks at by default: those flagged in service and those out of service.
DEFAULT_STATES = (State.FLAGGED, State.REMOVED, State.IN_STORAGE, State.TRIAGED, State.REDEPLOYED)
SITE_EOL_SOH_PCT = 80.0  # telecom end of life, DOMAIN.md §3; a per-site setting where sites state one


def build_dossiers(packs) -> pd.DataFrame:
    """One dossier row per pack, in the policy's columns (see triage.policy.DOSSIER_FIELDS)."""
    packs = list(packs.select_related("model", "health", "latest_reading"))
    ids = [p.id for p in packs]
    alarm_counts = dict(PackEvent.objects.filter(pack_id__in=ids, kind="alarm", payload__status="open")
                        .values_list("pack_id").annotate(n=Count("id")))
    thermal = dict(PackEvent.objects.filter(pack_id__in=ids, kind="alarm", payload__status="open",
                                            payload__alarm="over_temperature").values_list("pack_id").annotate(n=Count("id")))
    from battloop.telemetry.models import ActiveAlarm

    locked = set(ActiveAlarm.objects.filter(pack_id__in=ids, code="anti_theft_locked").values_list("pack_id", flat=True))
    today = timezone.localdate()
    rows = []
    for p in packs:
        h = getattr(p, "health", None)
        lr = getattr(p, "latest_reading", None)
        born = p.manufacture_date or p.install_date
        rows.append({
            "serial": p.serial,
            "chemistry": p.model.chemistry if p.model_id else None,
            "soh_pct": h.soh_p50_pct if h else None,
            "soh_p10_pct": h.soh_p10_pct if h else None,
            "soh_p90_pct": h.soh_p90_pct if h else None,
            "ir_ratio": h.resistance_ratio_p50 if h else None,
            # No bench judgement on record: a pack in service without damage findings is intact.
            "safety_class": "C" if p.state == State.DAMAGED else "B" if p.state == State.QUARANTINED else "A",
            "age_years": round((today - born).days / 365.25, 2) if born else None,
            "thermal_events": thermal.get(p.id, 0),
            "fault_count": alarm_counts.get(p.id, 0),
            "anti_theft_locked": p.id in locked,
            "model": p.model.code if p.model_id else None,
            "cell_spread_mv": round(1000 * (lr.cell_v_max - lr.cell_v_min), 1) if lr and lr.cell_v_max is not None and lr.cell_v_min is not None else None,
            "cycle_count": lr.cycle_count if lr else None,
            "rul_years": round((h.eol80_p50 - today).days / 365.25, 2) if h and h.eol80_p50 else None,
            "eol_soh_pct": SITE_EOL_SOH_PCT,
        })
    if not rows:
        return pd.DataFrame(columns=["serial"])

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


def _clean(v):
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def run(policy: Policy, packs=None, actor: str = "triage") -> dict:
    packs = packs if packs is not None else Pack.objects.filter(state__in=[s.value for s in DEFAULT_STATES])
    dossiers = build_dossiers(packs)
    if len(dossiers) == 0:
        return {"packs": 0, "routes": {}, "changed": 0, "policy": policy.identity}
    decisions = evaluate(policy, dossiers)
    pv = _policy_version(policy)
    now = timezone.now()
    by_serial = {p.serial: p for p in Pack.objects.filter(serial__in=list(dossiers["serial"]))}
    previous = dict(TriageDecision.objects.filter(pack__in=by_serial.values(), current=True).values_list("pack__serial", "route"))
    routes = decisions.routes
    changed = 0
    with transaction.atomic():
        TriageDecision.objects.filter(pack__in=by_serial.values(), current=True).update(current=False)
        stored = []
        for i, serial in enumerate(decisions.serials):
            pack = by_serial[serial]
            route = str(routes[i])
            reasons = [{k: _clean(v) for k, v in r.items()} for r in decisions.reasons(i)]
            inputs = {k: _clean(v) for k, v in dossiers.iloc[i].to_dict().items()}
            stored.append(TriageDecision(pack=pack, policy=pv, decided_at=now, route=route, reasons=reasons, inputs=inputs))
            if previous.get(serial) != route:
                changed += 1
                payload = {"decision": route, "policy": policy.identity, "rules": [r.get("rule") for r in reasons]}
                if pack.state == State.IN_STORAGE:
                    transition(pack, State.TRIAGED, actor, None, {"route": route, "policy_version": policy.identity, **{"rules": payload["rules"]}})
                else:
                    append_event(pack, PackEvent.Kind.DECISION, actor, None, payload, occurred_at=now)
        TriageDecision.objects.bulk_create(stored, batch_size=2000)
    return {"packs": len(decisions), "routes": decisions.route_counts(), "changed": changed, "policy": policy.identity}


def compare_with_current(new: Policy, packs=None) -> dict:
    packs = packs if packs is not None else Pack.objects.filter(state__in=[s.value for s in DEFAULT_STATES])
    return compare(new, current_policy(), build_dossiers(packs))
