"""Alarm decoding and threshold rules, as pure functions over canonical readings.

* BMS alarm/protection bitmaps → named alarms, with the bit tables kept as data in
  ``rules/alarm_bits.yaml`` (PACE BMS Modbus v1.3 description tables, Huawei ESM
  signal names).
* Threshold rules (over-temperature, cell imbalance, low SOH, anti-theft locked,
  identity conflict, no data for N hours) kept as data in ``rules/thresholds.yaml``.
* :func:`transitions` turns successive sets of active alarms into open/clear events,
  so the registry side only stores what this module decides.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

RULES_DIR = Path(__file__).resolve().parent / "rules"
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
        "!=": operator.ne}
_PC_OPS = {">": pc.greater, ">=": pc.greater_equal, "<": pc.less, "<=": pc.less_equal, "==": pc.equal,
           "!=": pc.not_equal}


class RuleError(ValueError):
    """A rules file that cannot be used; the message names file, rule and field."""


@lru_cache(maxsize=8)
def load_bit_sets(path: str | None = None) -> dict[str, dict]:
    p = Path(path) if path else RULES_DIR / "alarm_bits.yaml"
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{p}: cannot read alarm bit table: {exc}") from None
    for name, spec in data.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("bits"), dict):
            raise RuleError(f"{p}: set {name!r} needs a 'bits' mapping of bit number to alarm name")
    return data


def decode_bitmap(value: int, set_name: str, *, mask: int = 0xFFFF, shift: int = 0,
                  bit_sets: Mapping[str, dict] | None = None) -> list[str]:
    """Named alarms for the set bits of one register value.

    Codes are ``"<set>.<name>"`` (e.g. ``pace.protection.short_circuit``); an unnamed
    bit becomes ``"<set>.bit<N>"`` so that nothing a BMS reports is lost.
    """
    sets = bit_sets if bit_sets is not None else load_bit_sets()
    if set_name not in sets:
        raise RuleError(f"unknown alarm bit set {set_name!r}; known: {', '.join(sorted(sets))}")
    bits = sets[set_name]["bits"]
    v = (int(value) & mask) >> shift
    out = []
    b = 0
    while v:
        if v & 1:
            out.append(f"{set_name}.{bits.get(b, f'bit{b}')}")
        v >>= 1
        b += 1
    return out


def decode_bitmap_array(values: np.ndarray, set_name: str, **kw) -> list[list[str]]:
    """Vectorized over many readings: unique register values are decoded once."""
    values = np.asarray(values, dtype=np.int64)
    uniq, inv = np.unique(values, return_inverse=True)
    decoded = [decode_bitmap(int(u), set_name, **kw) for u in uniq]
    return [decoded[i] for i in inv]


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    column: str | None = None
    expr: str | None = None
    op: str | None = None
    value: float | None = None
    alarm_code: str | None = None
    for_hours: float | None = None
    why: str = ""


def load_rules(path: str | Path | None = None) -> list[Rule]:
    p = Path(path) if path else RULES_DIR / "thresholds.yaml"
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{p}: cannot read threshold rules: {exc}") from None
    rules = []
    for i, r in enumerate(data.get("rules", []), start=1):
        where = f"{p}: rule {i} ({r.get('code', '?')})"
        if "code" not in r:
            raise RuleError(f"{where}: missing 'code'")
        when = r.get("when") or {}
        if when and "op" in when and when["op"] not in _OPS:
            raise RuleError(f"{where}: operator {when['op']!r} is not one of {' '.join(_OPS)}")
        if not when and "for_hours" not in r:
            raise RuleError(f"{where}: needs 'when' or 'for_hours'")
        rules.append(Rule(code=r["code"], severity=r.get("severity", "warning"), column=when.get("column"),
                          expr=when.get("expr"), op=when.get("op"), value=when.get("value"),
                          alarm_code=when.get("alarm_code"), for_hours=r.get("for_hours"),
                          why=r.get("why", "")))
    return rules


ALARM_HITS_SCHEMA = pa.schema([
    pa.field("pack_serial", pa.string()), pa.field("ts", pa.timestamp("us", tz="UTC")),
    pa.field("code", pa.string()), pa.field("severity", pa.string()), pa.field("value", pa.float64()),
    pa.field("rule", pa.string()),
])


def evaluate_thresholds(readings: pa.Table, rules: Iterable[Rule] | None = None) -> pa.Table:
    """Rows of ``readings`` that trip a rule → alarm hits (vectorized per rule)."""
    rules = list(rules) if rules is not None else load_rules()
    parts = []
    for r in rules:
        if r.for_hours is not None:
            continue  # time-based; see no_data()
        if r.alarm_code:
            codes = readings.column("alarm_codes")
            flat_hit = pc.ends_with(pc.list_flatten(codes), r.alarm_code)
            parents = pc.list_parent_indices(codes)
            idx = np.unique(parents.to_numpy()[flat_hit.to_numpy(zero_copy_only=False)])
            vals = pa.nulls(len(idx), pa.float64())
        else:
            if r.expr == "cell_spread_v":
                values = pc.subtract(readings.column("cell_v_max"), readings.column("cell_v_min"))
            elif r.column in readings.column_names:
                values = readings.column(r.column)
            else:
                raise RuleError(f"rule {r.code}: column {r.column or r.expr!r} is not in the readings")
            mask = _PC_OPS[r.op](values, r.value).fill_null(False)
            idx = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            vals = pc.take(values, pa.array(idx)).cast(pa.float64()) if len(idx) else pa.array([], pa.float64())
        if len(idx) == 0:
            continue
        take = pa.array(idx)
        parts.append(pa.table({
            "pack_serial": pc.take(readings.column("pack_serial"), take),
            "ts": pc.take(readings.column("ts"), take),
            "code": pa.array([r.code] * len(idx)), "severity": pa.array([r.severity] * len(idx)),
            "value": vals, "rule": pa.array([r.why] * len(idx)),
        }, schema=ALARM_HITS_SCHEMA))
    return pa.concat_tables(parts) if parts else ALARM_HITS_SCHEMA.empty_table()


def no_data(last_seen: Mapping[str, dt.datetime], now: dt.datetime, rules: Iterable[Rule] | None = None
            ) -> list[dict]:
    """Packs whose latest reading is older than the ``no_data`` rule allows."""
    rules = list(rules) if rules is not None else load_rules()
    out = []
    for r in rules:
        if r.for_hours is None:
            continue
        limit = now - dt.timedelta(hours=r.for_hours)
        for serial, ts in last_seen.items():
            if ts is None or ts < limit:
                out.append({"pack_serial": serial, "code": r.code, "severity": r.severity,
                            "last_seen": ts, "hours": None if ts is None else (now - ts).total_seconds() / 3600})
    return out


def transitions(active_before: set[tuple[str, str]], active_now: set[tuple[str, str]],
                at: dt.datetime) -> list[dict]:
    """Open/clear events between two evaluations; keys are (pack_serial, code)."""
    events = [{"pack_serial": s, "code": c, "event": "open", "at": at} for s, c in sorted(active_now - active_before)]
    events += [{"pack_serial": s, "code": c, "event": "clear", "at": at} for s, c in sorted(active_before - active_now)]
    return events
