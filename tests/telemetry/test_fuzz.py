"""Mutated real captures: every reader either reads them or raises ReaderError."""

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from battloop.telemetry.readers import ReaderError, get_reader
from telemetry_helpers import CONSOLE, RS485

SEEDS = [(CONSOLE / "US" / "pwr.txt").read_bytes(), (CONSOLE / "eb" / "pwr 1.txt").read_bytes(),
         (CONSOLE / "SC" / "unit.txt").read_bytes(), (CONSOLE / "US" / "bat 1.txt").read_bytes(),
         (CONSOLE / "eb" / "log.txt").read_bytes(), (RS485 / "us2000_3modules_1").read_bytes(),
         b"ts,serial,voltage\n1714557600,A,53\n1714557660000,B,x\n", b"# profile: pace-bms-v1.3\n0 1\n1 5300\n"]
FORMATS = {"pylontech-console": {}, "pylontech-rs485": {"ts": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)},
           "csv": {}, "modbus-dump": {"profile": "pace-bms-v1.3"}}

mutation = st.tuples(st.sampled_from(["set", "insert", "delete"]), st.floats(0, 1),
                     st.sampled_from([b" ", b"-", b"\r", b"\n", b":", b"%", b"~", b"0", b"\xff", b"pylon>", b"\x00"]))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), edits=st.lists(mutation, min_size=1, max_size=8))
def test_mutated_inputs_never_crash(fmt, seed, edits):
    data = bytearray(seed)
    for op, where, chunk in edits:
        pos = int(where * len(data))
        if op == "set" and data:
            data[min(pos, len(data) - 1):min(pos, len(data) - 1) + 1] = chunk[:1]
        elif op == "insert":
            data[pos:pos] = chunk
        else:
            del data[pos:pos + 20]
    try:
        table, meta = get_reader(fmt)(bytes(data), **FORMATS[fmt])
    except ReaderError as exc:
        assert str(exc)
    else:
        assert table.num_rows >= 0 and isinstance(meta, dict)
