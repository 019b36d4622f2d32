"""The pack lifecycle state machine (DOMAIN.md §2). Pure: no Django.

manufactured → in_stock → installed → flagged → removed → in_storage → triaged →
{ second_life_ready → redeployed | recycling_ready → shipped → received_by_recycler
→ recycled }, plus lost, damaged and quarantined (safety hold) from any physical
state. A redeployed pack returns to monitoring (flagged → removed → …) and later to
triage again.

Each transition names the organization kinds that may perform it and the evidence it
needs (keys of the event payload). Custody and ownership are separate facts, changed
by their own events, not by these transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    MANUFACTURED = "manufactured"
    IN_STOCK = "in_stock"
    INSTALLED = "installed"
    FLAGGED = "flagged"
    REMOVED = "removed"
    IN_STORAGE = "in_storage"
    TRIAGED = "triaged"
    SECOND_LIFE_READY = "second_life_ready"
    REDEPLOYED = "redeployed"
    RECYCLING_READY = "recycling_ready"
    SHIPPED = "shipped"
    RECEIVED_BY_RECYCLER = "received_by_recycler"
    RECYCLED = "recycled"
    LOST = "lost"
    DAMAGED = "damaged"
    QUARANTINED = "quarantined"


class OrgKind(StrEnum):
    OPERATOR = "operator"
    TOWER_COMPANY = "tower_company"
    OEM = "oem"
    RECYCLER = "recycler"
    SECOND_LIFE_INTEGRATOR = "second_life_integrator"
    LOGISTICS_PROVIDER = "logistics_provider"
    AUDITOR = "auditor"


#: The platform itself (health monitoring, triage engine) may flag packs and record
#: triage decisions; it never moves them physically.
SYSTEM = "system"

S = State
_ASSET_HOLDERS = frozenset({OrgKind.OPERATOR, OrgKind.TOWER_COMPANY})
_HANDLERS = _ASSET_HOLDERS | {OrgKind.SECOND_LIFE_INTEGRATOR, OrgKind.LOGISTICS_PROVIDER, OrgKind.RECYCLER}

#: States in which a pack physically exists and can be lost, damaged or put on hold.
PHYSICAL_STATES = frozenset(State) - {S.RECYCLED, S.LOST}
TERMINAL_STATES = frozenset({S.RECYCLED})


@dataclass(frozen=True)
class Transition:
    source: State
    target: State
    performers: frozenset[str]
    evidence: tuple[str, ...] = ()
    description: str = ""


def _t(source, target, performers, evidence=(), description=""):
    return Transition(State(source), State(target), frozenset(performers), tuple(evidence), description)


_OEM_OR_HOLDER = _ASSET_HOLDERS | {OrgKind.OEM, OrgKind.LOGISTICS_PROVIDER}

TRANSITIONS: tuple[Transition, ...] = (
    _t(S.MANUFACTURED, S.IN_STOCK, _OEM_OR_HOLDER, (), "delivered to the operator's stock"),
    _t(S.IN_STOCK, S.INSTALLED, _ASSET_HOLDERS | {OrgKind.SECOND_LIFE_INTEGRATOR}, ("site_code",), "installed at a site"),
    _t(S.INSTALLED, S.FLAGGED, _ASSET_HOLDERS | {SYSTEM}, ("reason",), "approaching end of life or abnormal"),
    _t(S.FLAGGED, S.INSTALLED, _ASSET_HOLDERS, ("reason",), "flag cleared after review"),
    _t(S.INSTALLED, S.REMOVED, _ASSET_HOLDERS, ("reason",), "taken out of service"),
    _t(S.FLAGGED, S.REMOVED, _ASSET_HOLDERS, ("reason",), "taken out of service"),
    _t(S.REMOVED, S.IN_STORAGE, _HANDLERS, ("outlet",), "stored at an outlet"),
    _t(S.IN_STORAGE, S.TRIAGED, _ASSET_HOLDERS | {SYSTEM, OrgKind.SECOND_LIFE_INTEGRATOR}, ("route", "policy_version"), "routed by a triage decision"),
    _t(S.TRIAGED, S.TRIAGED, _ASSET_HOLDERS | {SYSTEM, OrgKind.SECOND_LIFE_INTEGRATOR}, ("route", "policy_version"), "re-triaged on new evidence"),
    _t(S.TRIAGED, S.IN_STOCK, _ASSET_HOLDERS, ("reason",), "returned to stock to continue first life"),
    _t(S.TRIAGED, S.SECOND_LIFE_READY, _ASSET_HOLDERS | {OrgKind.SECOND_LIFE_INTEGRATOR}, ("safety_class",), "cleared for second life"),
    _t(S.TRIAGED, S.RECYCLING_READY, _ASSET_HOLDERS | {OrgKind.RECYCLER}, ("packaging",), "packed for recycling"),
    _t(S.SECOND_LIFE_READY, S.REDEPLOYED, _ASSET_HOLDERS | {OrgKind.SECOND_LIFE_INTEGRATOR}, ("site_code",), "installed in a second-life application"),
    _t(S.REDEPLOYED, S.FLAGGED, _ASSET_HOLDERS | {SYSTEM, OrgKind.SECOND_LIFE_INTEGRATOR}, ("reason",), "second-life pack approaching end of life"),
    _t(S.REDEPLOYED, S.REMOVED, _ASSET_HOLDERS | {OrgKind.SECOND_LIFE_INTEGRATOR}, ("reason",), "taken out of second-life service"),
    _t(S.RECYCLING_READY, S.SHIPPED, _HANDLERS, ("shipment_id",), "dispatched to a recycler"),
    _t(S.SHIPPED, S.RECEIVED_BY_RECYCLER, {OrgKind.RECYCLER}, ("shipment_id", "mass_kg"), "received and weighed by the recycler"),
    _t(S.RECEIVED_BY_RECYCLER, S.RECYCLED, {OrgKind.RECYCLER}, ("certificate_id",), "processed; recovery certified"),
    # Safety holds and losses can happen wherever the pack physically is.
    *(_t(s, S.LOST, _HANDLERS | {OrgKind.OEM}, ("report",), "reported lost or stolen") for s in sorted(PHYSICAL_STATES) if s != S.LOST),
    *(_t(s, S.DAMAGED, _HANDLERS | {OrgKind.OEM}, ("description",), "physically damaged") for s in sorted(PHYSICAL_STATES) if s != S.DAMAGED),
    *(_t(s, S.QUARANTINED, _HANDLERS | {OrgKind.OEM, SYSTEM}, ("reason",), "put on safety hold") for s in sorted(PHYSICAL_STATES) if s != S.QUARANTINED),
    _t(S.LOST, S.IN_STORAGE, _HANDLERS, ("outlet", "report"), "found and brought to an outlet"),
    _t(S.DAMAGED, S.QUARANTINED, _HANDLERS, ("reason",), "damaged pack put on safety hold"),
    _t(S.DAMAGED, S.RECYCLING_READY, _HANDLERS, ("packaging",), "damaged pack packed for recycling"),
    _t(S.QUARANTINED, S.IN_STORAGE, _HANDLERS, ("outlet", "safety_action"), "released from hold into storage"),
    _t(S.QUARANTINED, S.RECYCLING_READY, _HANDLERS, ("packaging",), "packed for recycling after safety action"),
)

_BY_PAIR: dict[tuple[State, State], Transition] = {(t.source, t.target): t for t in TRANSITIONS}


class TransitionRefused(ValueError):
    """A transition the state machine does not allow; the message says why and what is allowed."""


def allowed_targets(current: str | State) -> list[State]:
    current = State(current)
    return sorted({t.target for t in TRANSITIONS if t.source == current}, key=lambda s: list(State).index(s))


def check_transition(
    serial: str,
    current: str | State,
    target: str | State,
    performer: str,
    evidence: dict | None = None,
) -> Transition:
    """Return the transition if ``performer`` may move pack ``serial`` from ``current``
    to ``target`` with this ``evidence``; raise :class:`TransitionRefused` otherwise.

    ``performer`` is an organization kind (:class:`OrgKind`) or :data:`SYSTEM`.
    """
    try:
        current = State(current)
    except ValueError:
        raise TransitionRefused(f"pack {serial}: unknown current state {current!r}") from None
    try:
        target = State(target)
    except ValueError:
        valid = ", ".join(s.value for s in State)
        raise TransitionRefused(f"pack {serial}: unknown target state {target!r}; states are: {valid}") from None
    transition = _BY_PAIR.get((current, target))
    if transition is None:
        nxt = allowed_targets(current)
        allowed = ", ".join(s.value for s in nxt) if nxt else "none (terminal state)"
        raise TransitionRefused(
            f"pack {serial}: cannot go from '{current.value}' to '{target.value}'. "
            f"Allowed next states from '{current.value}': {allowed}."
        )
    if performer not in transition.performers:
        who = ", ".join(sorted(str(p) for p in transition.performers))
        raise TransitionRefused(
            f"pack {serial}: '{current.value}' → '{target.value}' may be performed by {who}, not by {performer}."
        )
    evidence = evidence or {}
    missing = [k for k in transition.evidence if evidence.get(k) in (None, "")]
    if missing:
        raise TransitionRefused(
            f"pack {serial}: '{current.value}' → '{target.value}' needs evidence: {', '.join(missing)} (missing)."
        )
    return transition
