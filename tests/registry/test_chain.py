from battloop.registry import chain


def _events(n=3):
    out, prev = [], chain.GENESIS
    for seq in range(1, n + 1):
        payload = {"state": ["installed", "flagged", "removed"][seq - 1], "site_code": "GD1" if seq < 3 else None}
        h = chain.event_hash("P1", seq, "transition", "u", "ctc", f"2024-01-0{seq}T00:00:00.000000+00:00", payload, prev)
        out.append(chain.ChainEvent(seq, "P1", seq, "transition", "u", "ctc", f"2024-01-0{seq}T00:00:00.000000+00:00", payload, prev, h))
        prev = h
    return out


def test_intact_chain_and_projection():
    ev = _events()
    assert chain.project(ev) == {"state": "removed", "site_code": None, "custodian": None, "owner": None, "location": None}
    assert chain.verify("P1", ev, {"state": "removed", "site_code": None}, ev[-1].hash) is None


def test_altered_payload_is_first_break():
    ev = _events()
    bad = ev[1].__class__(**{**ev[1].__dict__, "payload": {"state": "installed", "site_code": "GD1"}})
    brk = chain.verify("P1", [ev[0], bad, ev[2]])
    assert brk.event_id == 2 and "content altered" in brk.problem


def test_removed_event_is_detected():
    ev = _events()
    brk = chain.verify("P1", [ev[0], ev[2]])
    assert brk.seq == 3 and "sequence gap" in brk.problem


def test_projection_mismatch_detected():
    ev = _events()
    brk = chain.verify("P1", ev, {"state": "installed"}, ev[-1].hash)
    assert brk is not None and "projection mismatch on state" in brk.problem


def test_hash_is_order_independent_for_payload_keys():
    a = chain.event_hash("P", 1, "k", "a", "o", "t", {"x": 1, "y": 2}, chain.GENESIS)
    b = chain.event_hash("P", 1, "k", "a", "o", "t", {"y": 2, "x": 1}, chain.GENESIS)
    assert a == b


def test_spliced_hash_equals_canonical_form():
    import hashlib

    payload = {"state": "installed", "site_code": "广州-1", "n": 1.5, "nested": {"b": [1, None], "a": "\"q\""}}
    body = chain.canonical_json({"serial": "P/1", "seq": 7, "kind": "registered", "actor": "张三", "org": "ctc",
                                 "at": "2024-01-01T00:00:00.000000+00:00", "payload": payload, "prev": chain.GENESIS})
    expected = hashlib.sha256(body.encode()).hexdigest()
    assert chain.event_hash("P/1", 7, "registered", "张三", "ctc", "2024-01-01T00:00:00.000000+00:00", payload, chain.GENESIS) == expected
