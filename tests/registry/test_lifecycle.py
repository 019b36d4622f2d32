import pytest

from battloop.registry.lifecycle import (SYSTEM, OrgKind, State, TRANSITIONS, TransitionRefused, allowed_targets,
                                         check_transition)


def test_happy_path_to_recycling():
    path = [
        (State.MANUFACTURED, State.IN_STOCK, OrgKind.OEM, {}),
        (State.IN_STOCK, State.INSTALLED, OrgKind.OPERATOR, {"site_code": "GD001"}),
        (State.INSTALLED, State.FLAGGED, SYSTEM, {"reason": "SOH P50 below 80%"}),
        (State.FLAGGED, State.REMOVED, OrgKind.TOWER_COMPANY, {"reason": "end of life"}),
        (State.REMOVED, State.IN_STORAGE, OrgKind.TOWER_COMPANY, {"outlet": "GZ-OUTLET-1"}),
        (State.IN_STORAGE, State.TRIAGED, SYSTEM, {"route": "recycle", "policy_version": "abc"}),
        (State.TRIAGED, State.RECYCLING_READY, OrgKind.TOWER_COMPANY, {"packaging": "P909"}),
        (State.RECYCLING_READY, State.SHIPPED, OrgKind.LOGISTICS_PROVIDER, {"shipment_id": "S1"}),
        (State.SHIPPED, State.RECEIVED_BY_RECYCLER, OrgKind.RECYCLER, {"shipment_id": "S1", "mass_kg": 45}),
        (State.RECEIVED_BY_RECYCLER, State.RECYCLED, OrgKind.RECYCLER, {"certificate_id": "C1"}),
    ]
    for src, dst, who, ev in path:
        assert check_transition("P1", src, dst, who, ev).target == dst


def test_illegal_transition_names_pack_state_and_allowed():
    with pytest.raises(TransitionRefused) as exc:
        check_transition("SN-42", "installed", "recycled", OrgKind.OPERATOR, {})
    msg = str(exc.value)
    assert "SN-42" in msg and "'installed'" in msg and "'recycled'" in msg
    for allowed in ("flagged", "removed", "lost", "damaged", "quarantined"):
        assert allowed in msg
    assert "in_storage" not in msg


def test_wrong_performer_refused():
    with pytest.raises(TransitionRefused, match="may be performed by recycler"):
        check_transition("P1", "shipped", "received_by_recycler", OrgKind.OPERATOR, {"shipment_id": "S", "mass_kg": 1})


def test_missing_evidence_refused():
    with pytest.raises(TransitionRefused, match="needs evidence: site_code"):
        check_transition("P1", "in_stock", "installed", OrgKind.OPERATOR, {})
    with pytest.raises(TransitionRefused, match="mass_kg"):
        check_transition("P1", "shipped", "received_by_recycler", OrgKind.RECYCLER, {"shipment_id": "S"})


def test_safety_hold_from_every_physical_state_and_terminal():
    for s in State:
        if s in (State.RECYCLED, State.LOST, State.QUARANTINED):
            continue
        check_transition("P1", s, "quarantined", OrgKind.OPERATOR, {"reason": "swelling"})
    assert allowed_targets("recycled") == []
    with pytest.raises(TransitionRefused, match="none \\(terminal state\\)"):
        check_transition("P1", "recycled", "installed", OrgKind.OPERATOR, {"site_code": "X"})


def test_redeployed_returns_to_monitoring():
    assert State.FLAGGED in allowed_targets("redeployed")
    assert State.REMOVED in allowed_targets("redeployed")


def test_unknown_states():
    with pytest.raises(TransitionRefused, match="unknown target state"):
        check_transition("P1", "installed", "exploded", OrgKind.OPERATOR, {})


def test_every_state_reachable_from_manufactured():
    seen, todo = {State.MANUFACTURED}, [State.MANUFACTURED]
    while todo:
        s = todo.pop()
        for t in TRANSITIONS:
            if t.source == s and t.target not in seen:
                seen.add(t.target)
                todo.append(t.target)
    assert seen == set(State)
