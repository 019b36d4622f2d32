"""A small rule language over tables, validated statically and compiled to NumPy masks.

Used by triage policies (outcomes = routes) and by bench grading (outcomes = safety
classes A/B/C). A rule set is a list of ordered *stages*; each stage holds rules
``when: {field: {op: value, ...}, ...}`` → outcome. The first stage in which any rule
matches decides the outcome; every rule of that stage that matched is a reason, with the
values that made it match. Inside a stage rules must agree: two rules that can match the
same record with different outcomes are an error (the author must order them into
separate stages), so a stage reads as a set, not as a program.

Static checks (each names file and line): unknown keys and fields, operators that do not
fit the field's type (a number compared to a string, an order on a category), thresholds
outside the field's range, contradictory conditions, overlapping rules with different
outcomes inside a stage, rules that can never fire because an earlier stage's rule
always matches first, and a missing ``default``.

Operators: ``eq ne lt le gt ge`` (numbers; ``eq``/``ne`` also categories and booleans),
``in``/``not_in`` (categories and text), ``missing: true|false``. A scalar instead of an
operator mapping means ``eq``. A numeric comparison may name another field,
``{gt: {field: eol_soh_pct}}``. Comparisons never match a missing value; use
``missing: true`` to route records whose evidence is absent.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from .rules_yaml import Lines, RuleFileError, line_of

NUMERIC = ("number", "integer")
OPS_ORDER = ("lt", "le", "gt", "ge")
ALL_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "missing")
MAX_RULES = 62  # fired-rule patterns are packed into one int64 per record


@dataclass(frozen=True)
class FieldSpec:
    """One column a rule may test. ``type``: number, integer, bool, enum, text."""

    type: str
    doc: str = ""
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    required: bool = False
    unit: str = ""

    def describe_range(self) -> str:
        return f"{self.min:g}–{self.max:g}{(' ' + self.unit) if self.unit else ''}"


# --------------------------------------------------------------------------- analysis boxes
@dataclass
class _Num:
    lo: float = -math.inf
    lo_open: bool = False
    hi: float = math.inf
    hi_open: bool = False
    excluded: frozenset = frozenset()
    symbolic: frozenset = frozenset()  # comparisons with other fields, kept as (op, field)
    present: bool | None = None  # True: must be present; False: must be missing; None: either

    def empty_values(self) -> bool:
        if self.lo > self.hi:
            return True
        if self.lo == self.hi and (self.lo_open or self.hi_open or self.lo in self.excluded):
            return True
        return False


@dataclass
class _Set:
    values: frozenset | None = None  # None = any value of an open domain
    excluded: frozenset = frozenset()
    present: bool | None = None

    def empty_values(self) -> bool:
        return self.values is not None and not (self.values - self.excluded)


def _intersect_num(a: _Num, b: _Num) -> _Num:
    lo, lo_open = max((a.lo, a.lo_open), (b.lo, b.lo_open), key=lambda t: (t[0], t[1]))
    hi, hi_open = min((a.hi, not a.hi_open), (b.hi, not b.hi_open), key=lambda t: (t[0], t[1]))
    return _Num(lo, lo_open, hi, not hi_open, a.excluded | b.excluded, a.symbolic | b.symbolic,
                _merge_presence(a.present, b.present))


def _merge_presence(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a if a == b else "conflict"


def _box_empty(box: Mapping[str, Any]) -> bool:
    for c in box.values():
        if c.present == "conflict":
            return True
        if c.present is False:
            continue  # only "missing" is allowed; values do not matter
        if c.present is True and c.empty_values():
            return True
    return False


def _intersect(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for name, cb in b.items():
        ca = out.get(name)
        if ca is None:
            out[name] = cb
        elif isinstance(ca, _Num):
            out[name] = _intersect_num(ca, cb)
        else:
            values = cb.values if ca.values is None else (ca.values if cb.values is None else ca.values & cb.values)
            out[name] = _Set(values, ca.excluded | cb.excluded, _merge_presence(ca.present, cb.present))
    return out


def _num_subset(a: _Num, b: _Num) -> bool:
    """Is every value allowed by ``a`` allowed by ``b``?"""
    if b.present is True and a.present is not True:
        return False
    if b.present is False:
        return a.present is False
    if a.present is False:
        return b.present is not True
    if not b.symbolic <= a.symbolic:
        return False
    lo_ok = a.lo > b.lo or (a.lo == b.lo and (a.lo_open or not b.lo_open))
    hi_ok = a.hi < b.hi or (a.hi == b.hi and (a.hi_open or not b.hi_open))
    excl_ok = all(not (a.lo <= x <= a.hi) or x in a.excluded for x in b.excluded)
    return lo_ok and hi_ok and excl_ok


def _set_subset(a: _Set, b: _Set, domain: frozenset | None) -> bool:
    if b.present is True and a.present is not True:
        return False
    if b.present is False:
        return a.present is False
    if a.present is False:
        return b.present is not True
    a_vals = (a.values if a.values is not None else domain)
    b_vals = (b.values if b.values is not None else domain)
    if a_vals is None:  # open text domain
        return b_vals is None and b.excluded <= a.excluded
    a_vals = a_vals - a.excluded
    if b_vals is None:
        return not (a_vals & b.excluded)
    return a_vals <= (b_vals - b.excluded)


# --------------------------------------------------------------------------- compiled rules
@dataclass
class Rule:
    name: str
    stage: str
    stage_index: int
    outcome: str
    why: str
    line: int
    conditions: list[tuple[str, str, Any]]  # (field, op, value or ('field', name))
    box: dict[str, Any]
    fields: tuple[str, ...]
    text: str
    evaluate: Callable[[Mapping[str, Any]], np.ndarray] = field(repr=False, default=None)


def _fmt_value(v: Any) -> str:
    if isinstance(v, tuple) and v and v[0] == "field":
        return v[1]
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, frozenset)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


_OP_ALIASES = {"gte": "ge", "lte": "le", ">=": "ge", "<=": "le", ">": "gt", "<": "lt", "==": "eq", "=": "eq",
               "!=": "ne", "not": "ne", "notin": "not_in", "is_missing": "missing", "null": "missing"}
_SYMBOL = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in", "not_in": "not in"}


def condition_text(conditions: Iterable[tuple[str, str, Any]]) -> str:
    parts = []
    for name, op, value in conditions:
        if op == "missing":
            parts.append(f"{name} is missing" if value else f"{name} is present")
        else:
            parts.append(f"{name} {_SYMBOL[op]} {_fmt_value(value)}")
    return " and ".join(parts) if parts else "always"


class RuleSet:
    """A validated, compiled rule set. Build with :func:`compile_rules`."""

    def __init__(self, *, name: str, version: str, description: str, outcomes: tuple[str, ...],
                 fields: dict[str, FieldSpec], stages: list[str], rules: list[Rule], default_outcome: str,
                 default_why: str, defaults: dict[str, Any], source: str, canonical: dict[str, Any]):
        self.name = name
        self.version = version
        self.description = description
        self.outcomes = outcomes
        self.fields = fields
        self.stages = stages
        self.rules = rules
        self.default_outcome = default_outcome
        self.default_why = default_why
        self.defaults = defaults
        self.source = source
        self.canonical = canonical
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        self.content_hash = hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def identity(self) -> str:
        """``name@version#hash12``: what a stored decision records as its policy version."""
        return f"{self.name}@{self.version}#{self.content_hash[:12]}"

    def used_fields(self) -> set[str]:
        out: set[str] = set()
        for r in self.rules:
            out.update(r.fields)
        return out


# --------------------------------------------------------------------------- compilation
def _check_keys(obj: Any, allowed: Iterable[str], path: tuple, lines: Lines, where: str, what: str,
                problems: list[str]) -> bool:
    if not isinstance(obj, dict):
        problems.append(f"{where}:{line_of(lines, path)}: {what} must be a mapping")
        return False
    allowed = tuple(allowed)
    for key in obj:
        if key not in allowed:
            hint = _closest(str(key), allowed)
            problems.append(f"{where}:{line_of(lines, path + (key,))}: unknown key '{key}' in {what}"
                            f"{f' (did you mean {hint!r}?)' if hint else ''}; allowed: {', '.join(allowed)}")
    return True


def _closest(word: str, choices: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def compile_rules(data: Any, lines: Lines, where: str, *, kind: str, outcomes: tuple[str, ...],
                  base_fields: Mapping[str, FieldSpec], extra_top_keys: tuple[str, ...] = (),
                  outcome_key: str = "route") -> tuple[RuleSet, dict[str, Any]]:
    """Validate and compile rule-file data. Returns the rule set and the extra top-level keys.

    Raises :class:`RuleFileError` with every problem found, each as ``file:line: message``.
    """
    problems: list[str] = []
    top_keys = ("name", "version", "description", "fields", "defaults", "stages", "default", *extra_top_keys)
    if not _check_keys(data, top_keys, (), lines, where, f"the {kind}", problems):
        raise RuleFileError(problems)
    for key in ("name", "version", "stages"):
        if key not in data:
            problems.append(f"{where}:1: the {kind} has no '{key}'; add it at the top level")
    if "default" not in data:
        problems.append(f"{where}:{max(lines.values(), default=1)}: the {kind} has no 'default' {outcome_key}; add "
                        f"'default: {{{outcome_key}: ..., why: ...}}' so that every record gets an outcome")
    name = str(data.get("name", ""))
    version = data.get("version")
    if version is not None and not isinstance(version, (str, int, float)):
        problems.append(f"{where}:{line_of(lines, ('version',))}: 'version' must be a string such as \"2026.1\"")

    # Fields: the built-in schema plus fields this file declares.
    fields: dict[str, FieldSpec] = dict(base_fields)
    for fname, spec in (data.get("fields") or {}).items() if isinstance(data.get("fields"), dict) else []:
        path = ("fields", fname)
        if fname in base_fields:
            problems.append(f"{where}:{line_of(lines, path)}: field '{fname}' is built in; do not redeclare it")
            continue
        if not _check_keys(spec, ("type", "doc", "min", "max", "values", "unit"), path, lines, where,
                           f"field '{fname}'", problems):
            continue
        ftype = spec.get("type")
        if ftype not in ("number", "integer", "bool", "enum", "text"):
            problems.append(f"{where}:{line_of(lines, path + ('type',))}: field '{fname}' type must be one of "
                            f"number, integer, bool, enum, text (got {ftype!r})")
            continue
        lo, hi = spec.get("min", -math.inf if ftype in NUMERIC else None), spec.get("max", math.inf if ftype in NUMERIC else None)
        if ftype in NUMERIC and not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lo, hi)):
            problems.append(f"{where}:{line_of(lines, path)}: field '{fname}' min/max must be numbers")
            continue
        values = tuple(str(v) for v in spec.get("values", ()) or ())
        if ftype == "enum" and not values:
            problems.append(f"{where}:{line_of(lines, path)}: enum field '{fname}' needs 'values: [...]'")
            continue
        fields[fname] = FieldSpec(ftype, str(spec.get("doc", "")), lo, hi, values, False, str(spec.get("unit", "")))

    defaults: dict[str, Any] = {}
    if "defaults" in data:
        if not isinstance(data["defaults"], dict):
            problems.append(f"{where}:{line_of(lines, ('defaults',))}: 'defaults' must map field → value")
        else:
            for fname, value in data["defaults"].items():
                spec = fields.get(fname)
                ln = line_of(lines, ("defaults", fname))
                if spec is None:
                    problems.append(f"{where}:{ln}: default for unknown field '{fname}'")
                elif spec.required:
                    problems.append(f"{where}:{ln}: '{fname}' is a required column; it cannot have a default")
                else:
                    msg = _check_value(fname, spec, "eq", value)
                    if msg:
                        problems.append(f"{where}:{ln}: default {msg}")
                    else:
                        defaults[fname] = value

    # Stages and rules.
    rules: list[Rule] = []
    stage_names: list[str] = []
    seen_rules: dict[str, int] = {}
    stages = data.get("stages")
    if "stages" in data and (not isinstance(stages, list) or not stages):
        problems.append(f"{where}:{line_of(lines, ('stages',))}: 'stages' must be a non-empty list")
        stages = []
    for si, stage in enumerate(stages or []):
        spath = ("stages", si)
        if not _check_keys(stage, ("stage", "doc", "rules"), spath, lines, where, "a stage", problems):
            continue
        sname = str(stage.get("stage", f"stage {si + 1}"))
        if sname in stage_names:
            problems.append(f"{where}:{line_of(lines, spath)}: duplicate stage name '{sname}'")
        stage_names.append(sname)
        srules = stage.get("rules")
        if not isinstance(srules, list) or not srules:
            problems.append(f"{where}:{line_of(lines, spath)}: stage '{sname}' needs a non-empty 'rules' list")
            continue
        for ri, raw in enumerate(srules):
            rpath = spath + ("rules", ri)
            rule = _compile_rule(raw, rpath, sname, len(stage_names) - 1, fields, outcomes, outcome_key, lines,
                                 where, problems)
            if rule is None:
                continue
            if rule.name in seen_rules:
                problems.append(f"{where}:{rule.line}: duplicate rule name '{rule.name}' "
                                f"(first at line {seen_rules[rule.name]}); rule names must be unique")
            seen_rules[rule.name] = rule.line
            rules.append(rule)

    default_outcome, default_why = "", ""
    dflt = data.get("default")
    if "default" in data:
        if _check_keys(dflt, (outcome_key, "why"), ("default",), lines, where, "'default'", problems):
            default_outcome = dflt.get(outcome_key)
            default_why = str(dflt.get("why", ""))
            if default_outcome not in outcomes:
                problems.append(f"{where}:{line_of(lines, ('default', outcome_key))}: default {outcome_key} "
                                f"{default_outcome!r} is not one of {', '.join(outcomes)}")
    if len(rules) > MAX_RULES:
        problems.append(f"{where}: {len(rules)} rules; at most {MAX_RULES} are supported")
    problems.extend(_analyse(rules, fields, where))
    if problems:
        raise RuleFileError(problems)

    # The hash covers every value of the file (comments and layout are not data).
    canonical = dict(data)
    ruleset = RuleSet(name=name, version=str(version), description=str(data.get("description", "")).strip(),
                      outcomes=outcomes, fields=fields, stages=stage_names, rules=rules,
                      default_outcome=default_outcome, default_why=default_why, defaults=defaults, source=where,
                      canonical=canonical)
    return ruleset, {k: data.get(k) for k in extra_top_keys}


def _check_value(fname: str, spec: FieldSpec, op: str, value: Any) -> str | None:
    """A message if ``value`` cannot be compared with field ``fname`` by ``op``."""
    t = spec.type
    if op == "missing":
        return None if isinstance(value, bool) else f"'missing' takes true or false, not {value!r}"
    if isinstance(value, dict):
        return "a field reference must be written {field: NAME}"
    if op in ("in", "not_in"):
        if t not in ("enum", "text"):
            return (f"'{op}' is for categories; {fname} is a {t}: use lt/le/gt/ge" if t in NUMERIC
                    else f"'{op}' is for categories; {fname} is a {t}: use eq")
        if not isinstance(value, list) or not value:
            return f"'{op}' needs a non-empty list, got {value!r}"
        for v in value:
            msg = _check_value(fname, spec, "eq", v)
            if msg:
                return msg
        return None
    if t in NUMERIC:
        if not _is_number(value):
            return f"{fname} is a {t} ({spec.describe_range()}) but is compared with {value!r} ({type(value).__name__})"
        if spec.min is not None and not (spec.min <= float(value) <= spec.max):
            return f"threshold {value:g} for {fname} is outside its range {spec.describe_range()}"
        if t == "integer" and float(value) != int(value):
            return f"{fname} counts whole numbers; threshold {value!r} is not one"
        return None
    if op in OPS_ORDER:
        return f"{fname} is a {'category' if t == 'enum' else t}; it has no order, so '{op}' does not apply (use eq/in)"
    if t == "bool":
        return None if isinstance(value, bool) else f"{fname} is true/false but is compared with {value!r}"
    if not isinstance(value, str):
        return f"{fname} is a {t} (text) but is compared with {value!r} ({type(value).__name__})"
    if t == "enum" and value not in spec.values:
        return f"{fname} has no value {value!r}; allowed: {', '.join(spec.values)}"
    return None


def _compile_rule(raw: Any, rpath: tuple, stage: str, stage_index: int, fields: Mapping[str, FieldSpec],
                  outcomes: tuple[str, ...], outcome_key: str, lines: Lines, where: str,
                  problems: list[str]) -> Rule | None:
    if not _check_keys(raw, ("rule", "when", outcome_key, "why"), rpath, lines, where, "a rule", problems):
        return None
    line = line_of(lines, rpath)
    name = raw.get("rule")
    n0 = len(problems)
    if not isinstance(name, str) or not name:
        problems.append(f"{where}:{line}: a rule needs 'rule: NAME'")
        name = f"#{line}"
    outcome = raw.get(outcome_key)
    if outcome not in outcomes:
        problems.append(f"{where}:{line_of(lines, rpath + (outcome_key,))}: rule '{name}': {outcome_key} {outcome!r} "
                        f"is not one of {', '.join(outcomes)}")
    when = raw.get("when", {})
    if when is None:
        when = {}
    if not isinstance(when, dict):
        problems.append(f"{where}:{line_of(lines, rpath + ('when',))}: rule '{name}': 'when' must map field → test")
        return None
    conditions: list[tuple[str, str, Any]] = []
    for fname, test in when.items():
        fpath = rpath + ("when", fname)
        spec = fields.get(fname)
        if spec is None:
            hint = _closest(str(fname), fields)
            problems.append(f"{where}:{line_of(lines, fpath)}: rule '{name}': unknown field '{fname}'"
                            f"{f' (did you mean {hint!r}?)' if hint else ''}; declare it under 'fields:' if "
                            f"dossiers carry it")
            continue
        if not isinstance(test, dict) or (set(test) == {"field"}):
            test = {"eq": test}
        for op, value in test.items():
            opath = fpath + (op,)
            if op not in ALL_OPS:
                hint = _OP_ALIASES.get(str(op).lower()) or _closest(str(op), ALL_OPS)
                problems.append(f"{where}:{line_of(lines, opath)}: rule '{name}': unknown operator '{op}' on {fname}"
                                f"{f' (did you mean {hint!r}?)' if hint else ''}; allowed: {', '.join(ALL_OPS)}")
                continue
            if isinstance(value, dict) and op not in ("in", "not_in", "missing"):
                ref = value.get("field") if set(value) == {"field"} else None
                ref_spec = fields.get(ref) if isinstance(ref, str) else None
                if ref_spec is None:
                    problems.append(f"{where}:{line_of(lines, opath)}: rule '{name}': {fname} {op} {value!r}: "
                                    f"a field reference is written {{field: NAME}} with a known field")
                elif spec.type not in NUMERIC or ref_spec.type not in NUMERIC:
                    problems.append(f"{where}:{line_of(lines, opath)}: rule '{name}': {fname} can only be compared "
                                    f"with another numeric field; {ref} is a {ref_spec.type}")
                else:
                    conditions.append((fname, op, ("field", ref)))
                continue
            msg = _check_value(fname, spec, op, value)
            if msg:
                problems.append(f"{where}:{line_of(lines, opath)}: rule '{name}': {msg}")
                continue
            if op in ("in", "not_in"):
                value = tuple(str(v) for v in value)
            elif spec.type in NUMERIC and op != "missing":
                value = float(value)
            conditions.append((fname, op, value))
    if len(problems) > n0:
        return None
    box = _box(conditions, fields)
    used = []
    for fname, _op, value in conditions:
        if fname not in used:
            used.append(fname)
        if isinstance(value, tuple) and value and value[0] == "field" and value[1] not in used:
            used.append(value[1])
    rule = Rule(name=name, stage=stage, stage_index=stage_index, outcome=outcome, why=str(raw.get("why", "")).strip(),
                line=line, conditions=conditions, box=box, fields=tuple(used), text=condition_text(conditions))
    if _box_empty(box):
        problems.append(f"{where}:{line}: rule '{name}' can never fire: its conditions contradict each other "
                        f"({rule.text})")
        return None
    return rule


def _box(conditions: list[tuple[str, str, Any]], fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
    box: dict[str, Any] = {}
    for fname, op, value in conditions:
        spec = fields[fname]
        if spec.type in NUMERIC:
            c = _Num(present=None)
            if op == "missing":
                c.present = not value
            elif isinstance(value, tuple):
                c.present, c.symbolic = True, frozenset({(op, value[1])})
            else:
                c.present = True
                if op == "eq":
                    c.lo = c.hi = value
                elif op == "ne":
                    c.excluded = frozenset({value})
                elif op == "lt":
                    c.hi, c.hi_open = value, True
                elif op == "le":
                    c.hi = value
                elif op == "gt":
                    c.lo, c.lo_open = value, True
                elif op == "ge":
                    c.lo = value
            # The field's own range bounds every value it can take.
            if spec.min is not None and c.present is not False:
                c = _intersect_num(c, _Num(spec.min, False, spec.max, False))
            box[fname] = _intersect_num(box[fname], c) if fname in box else c
        else:
            domain = frozenset(spec.values) if spec.type == "enum" else (
                frozenset({True, False}) if spec.type == "bool" else None)
            c = _Set(domain)
            if op == "missing":
                c.present = not value
            else:
                c.present = True
                if op == "eq":
                    c.values = frozenset({value})
                elif op == "ne":
                    c.excluded = frozenset({value})
                elif op == "in":
                    c.values = frozenset(value)
                elif op == "not_in":
                    c.excluded = frozenset(value)
            box.update(_intersect(box, {fname: c}))
    return box


def _subset(a: Mapping[str, Any], b: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> bool:
    """Does every record matched by box ``a`` also match box ``b``?"""
    for fname, cb in b.items():
        ca = a.get(fname)
        spec = fields[fname]
        if isinstance(cb, _Num):
            ca = ca if ca is not None else _Num(spec.min if spec.min is not None else -math.inf, False,
                                               spec.max if spec.max is not None else math.inf, False)
            if not _num_subset(ca, cb):
                return False
        else:
            domain = frozenset(spec.values) if spec.type == "enum" else (
                frozenset({True, False}) if spec.type == "bool" else None)
            ca = ca if ca is not None else _Set(domain)
            if not _set_subset(ca, cb, domain):
                return False
    return True


def _analyse(rules: list[Rule], fields: Mapping[str, FieldSpec], where: str) -> list[str]:
    problems = []
    for i, r in enumerate(rules):
        for earlier in rules[:i]:
            if earlier.stage_index == r.stage_index:
                if earlier.outcome != r.outcome and not _box_empty(_intersect(earlier.box, r.box)) and \
                        not _symbolic_disjoint(earlier.box, r.box):
                    problems.append(
                        f"{where}:{r.line}: rule '{r.name}' ({r.outcome}) overlaps rule '{earlier.name}' "
                        f"({earlier.outcome}, line {earlier.line}) in stage '{r.stage}': a record with "
                        f"{_witness(earlier.box, r.box)} matches both; make the conditions exclusive or move one "
                        f"rule to its own stage")
            elif _subset(r.box, earlier.box, fields):
                problems.append(
                    f"{where}:{r.line}: rule '{r.name}' is unreachable: every record it matches ({r.text}) is "
                    f"already decided by rule '{earlier.name}' (line {earlier.line}, stage '{earlier.stage}')")
                break
    return problems


_NEG = {"lt": "ge", "ge": "lt", "le": "gt", "gt": "le", "eq": "ne", "ne": "eq"}


def _symbolic_disjoint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two field-to-field comparisons that are each other's negation cannot both hold."""
    for fname, ca in a.items():
        cb = b.get(fname)
        if isinstance(ca, _Num) and isinstance(cb, _Num):
            for op, ref in ca.symbolic:
                if (_NEG[op], ref) in cb.symbolic:
                    return True
    return False


def _witness(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    box = _intersect(a, b)
    parts = []
    for fname, c in sorted(box.items()):
        if c.present is False:
            parts.append(f"{fname} missing")
        elif isinstance(c, _Num):
            if c.symbolic:
                parts.append(" and ".join(f"{fname} {_SYMBOL[op]} {ref}" for op, ref in sorted(c.symbolic)))
            else:
                lo = c.lo if math.isfinite(c.lo) else None
                hi = c.hi if math.isfinite(c.hi) else None
                v = lo if lo is not None and not c.lo_open else (hi if hi is not None and not c.hi_open else (
                    ((lo or 0) + (hi if hi is not None else (lo or 0) + 2)) / 2))
                parts.append(f"{fname}={v:g}")
        else:
            vals = (c.values or frozenset()) - c.excluded
            if vals:
                parts.append(f"{fname}={sorted(vals, key=str)[0]}")
    return ", ".join(parts) or "any values"


# --------------------------------------------------------------------------- evaluation
class Columns:
    """Typed columns of a table, as the compiled rules read them.

    numbers/integers/bools → float64 (NaN = missing; bools as 0/1); enums/text →
    pandas Categorical (NaN = missing).
    """

    def __init__(self, data: Mapping[str, Any], n: int):
        self.data = dict(data)
        self.n = n

    def __getitem__(self, name: str):
        return self.data[name]

    def __contains__(self, name: str) -> bool:
        return name in self.data


def _mask(cols: Columns, fname: str, op: str, value: Any, spec: FieldSpec) -> np.ndarray:
    col = cols[fname]
    if spec.type in NUMERIC or spec.type == "bool":
        x = col
        present = ~np.isnan(x)
        if op == "missing":
            return ~present if value else present
        if isinstance(value, tuple):
            v = cols[value[1]]
        else:
            v = (1.0 if value else 0.0) if spec.type == "bool" else value
        with np.errstate(invalid="ignore"):
            if op == "eq":
                return x == v
            if op == "ne":
                return present & (x != v) & ~np.isnan(v) if isinstance(v, np.ndarray) else present & (x != v)
            if op == "lt":
                return x < v
            if op == "le":
                return x <= v
            if op == "gt":
                return x > v
            if op == "ge":
                return x >= v
        raise AssertionError(op)
    codes = col.codes
    cats = col.categories
    if op == "missing":
        return codes < 0 if value else codes >= 0
    wanted = [value] if op in ("eq", "ne") else list(value)
    idx = [cats.get_loc(w) for w in wanted if w in cats]
    hit = np.isin(codes, np.asarray(idx, dtype=codes.dtype)) if idx else np.zeros(len(codes), dtype=bool)
    if op in ("eq", "in"):
        return hit
    return (codes >= 0) & ~hit


def evaluate_rules(ruleset: RuleSet, cols: Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate every rule as a vectorized mask.

    Returns (outcome index per record into ``ruleset.outcomes``, deciding stage per record
    (-1 = default), fired-rule bits per record restricted to the deciding stage).
    """
    n = cols.n
    outcome_of = {o: i for i, o in enumerate(ruleset.outcomes)}
    outcome = np.full(n, outcome_of[ruleset.default_outcome], dtype=np.int8)
    stage_of = np.full(n, -1, dtype=np.int16)
    bits = np.zeros(n, dtype=np.int64)
    undecided = np.ones(n, dtype=bool)
    for si in range(len(ruleset.stages)):
        stage_rules = [(ri, r) for ri, r in enumerate(ruleset.rules) if r.stage_index == si]
        any_fired = np.zeros(n, dtype=bool)
        for ri, r in stage_rules:
            m = undecided.copy()
            for fname, op, value in r.conditions:
                m &= _mask(cols, fname, op, value, ruleset.fields[fname])
            if not m.any():
                continue
            bits[m] |= np.int64(1) << np.int64(ri)
            outcome[m] = outcome_of[r.outcome]
            any_fired |= m
        stage_of[any_fired] = si
        undecided &= ~any_fired
    return outcome, stage_of, bits


def columns_from_frame(frame: pd.DataFrame, fields: Mapping[str, FieldSpec], needed: Iterable[str],
                       defaults: Mapping[str, Any]) -> Columns:
    """Typed columns from an already-validated frame; absent optional fields take defaults or missing."""
    n = len(frame)
    data: dict[str, Any] = {}
    for fname in needed:
        spec = fields[fname]
        if fname in frame.columns:
            s = frame[fname]
        else:
            s = pd.Series([defaults.get(fname)] * n if fname in defaults else [None] * n, index=frame.index)
        if spec.type in NUMERIC or spec.type == "bool":
            arr = pd.to_numeric(s.astype("float64") if s.dtype == bool else s, errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan)
            if fname in defaults:
                arr = np.where(np.isnan(arr), float(defaults[fname]), arr)
            data[fname] = arr
        else:
            if fname in defaults:
                s = s.where(s.notna(), defaults[fname])
            data[fname] = s.astype("category").array if not isinstance(s.dtype, pd.CategoricalDtype) else s.array
    return Columns(data, n)
