"""Triage policies: versioned, content-hashed YAML rules over pack dossiers.

A policy decides, for every pack that is flagged or removed, one route:
``continue_first_life``, ``reuse_ess``, ``reuse_backup``, ``reuse_low_speed``,
``recycle`` or ``hold`` (needs a test or a safety action). The shipped default policy
(``policies/default.yaml``) encodes the field's rules of DOMAIN.md §4–5: safety gates
first (GB/T 38698.1 safety classes, thermal and fault history, insulation, cell spread,
anti-theft lock), no route without a measured SOH, chemistry first (LFP reused by
default, NMC/NCA recycled earlier and reused only with SOH > 80 % and resistance
< 1.5 × baseline), continue first life above the site's end-of-life threshold, and the
20–60–80 remaining-capacity routing.

Rules are compiled once into vectorized NumPy masks (see :mod:`battloop.triage.rules`),
so a million dossiers evaluate in seconds, and every decision carries its reasons: the
rules that fired and the dossier values that made them fire, plus the policy identity
``name@version#hash``.

Dossier columns (CSV header names; one row per pack)
----------------------------------------------------
Required columns (the value may be empty where noted):

==================  =========================================================================
``serial``          pack serial (non-empty, unique in the file)
``chemistry``       LFP, NMC, NCA, LMO or LTO (synonyms LiFePO4, NCM, … accepted); empty = unknown
``soh_pct``         state of health, % of rated capacity (point estimate ≈ P50); empty = not measured
``ir_ratio``        DC internal resistance ÷ its baseline (new-pack) value; empty = not measured
``safety_class``    A (intact), B (abnormal), C (damaged/dangerous), per DOMAIN §5; empty = not judged
==================  =========================================================================

Optional columns: ``soh_p10_pct`` / ``soh_p90_pct`` (10th/90th percentile of the SOH
estimate), ``age_years``, ``thermal_events`` (count of thermal events in BMS or site
history), ``fault_count`` (BMS fault and protection events), ``anti_theft_locked``
(true/false), ``origin`` (site or outlet the pack came from), ``model``, ``pretreated``
(a class C pack has been discharged/packed per GB/T 38698.1), ``insulation_ohm_per_v``,
``cell_spread_mv`` (max − min cell voltage at rest), ``cycle_count``, ``rul_years``
(forecast remaining first-life years) and ``eol_soh_pct`` (the site's end-of-life SOH
threshold; the default policy uses 80 when absent). A policy may declare further fields
under ``fields:``; dossier columns it does not use are carried along untouched.
Booleans accept true/false, yes/no, 1/0, y/n, 是/否.

Writing a policy
----------------
A policy is YAML: ``name``, ``version``, optional ``description``, ``decide_on``,
``defaults`` (values for optional fields a dossier leaves empty) and ``fields`` (extra
dossier fields), ordered ``stages`` of rules, and a ``default`` route::

    name: cautious
    version: "2026.12.1"
    decide_on: {soh_quantile: 0.1}
    stages:
      - stage: gates
        rules:
          - rule: not_class_a
            when: {safety_class: {in: [B, C]}}
            route: hold
            why: safety action first
      - stage: capacity
        rules:
          - rule: ess
            when: {chemistry: LFP, soh_pct: {ge: 60}}
            route: reuse_ess
    default: {route: hold, why: route by engineering review}

The operators and the static checks are described in :mod:`battloop.triage.rules`.
``battloop triage validate --policy FILE`` checks a file; ``battloop triage evaluate``
runs it on dossiers; ``battloop triage compare`` shows what would change.

The quantile a policy decides on
--------------------------------
``decide_on: {soh_quantile: Q}`` makes the field ``soh_pct`` that rules test the Q-th
quantile of the SOH estimate: 0.5 is the point estimate, 0.1 the ``soh_p10_pct``
column, 0.9 ``soh_p90_pct``; other Q are interpolated assuming a normal distribution
on each side of the median (z-scores scaled from the P10/P90 spread). When that quantile
is missing for a pack, ``when_quantile_missing: hold`` routes it to ``hold`` ("needs an
SOH estimate with uncertainty") and ``point`` (the default) decides on ``soh_pct``
and says so in the reasons.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.stats import norm

from .rules import Columns, FieldSpec, RuleSet, columns_from_frame, compile_rules, evaluate_rules
from .rules_yaml import RuleFileError, line_of, load_yaml_with_lines

ROUTES = ("continue_first_life", "reuse_ess", "reuse_backup", "reuse_low_speed", "recycle", "hold")
REUSE_ROUTES = ("reuse_ess", "reuse_backup", "reuse_low_speed")
CHEMISTRIES = ("LFP", "NMC", "NCA", "LMO", "LTO")
CHEMISTRY_SYNONYMS = {"LIFEPO4": "LFP", "LFP": "LFP", "LIFEPO": "LFP", "磷酸铁锂": "LFP", "NCM": "NMC", "NMC": "NMC",
                      "NMC811": "NMC", "NCM811": "NMC", "NMC622": "NMC", "NCM622": "NMC", "NMC532": "NMC",
                      "NCM523": "NMC", "NMC111": "NMC", "三元": "NMC", "三元锂": "NMC", "NCA": "NCA", "LMO": "LMO",
                      "锰酸锂": "LMO", "LTO": "LTO", "钛酸锂": "LTO"}
_BOOL_TEXT = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "1": 1.0, "0": 0.0, "y": 1.0, "n": 0.0,
              "t": 1.0, "f": 0.0, "是": 1.0, "否": 0.0, "locked": 1.0, "unlocked": 0.0, "1.0": 1.0, "0.0": 0.0}

DOSSIER_FIELDS: dict[str, FieldSpec] = {
    "serial": FieldSpec("text", "pack serial", required=True),
    "chemistry": FieldSpec("enum", "cell chemistry", values=CHEMISTRIES, required=True),
    "soh_pct": FieldSpec("number", "SOH the policy decides on (see decide_on)", 0, 120, required=True, unit="%"),
    "ir_ratio": FieldSpec("number", "DC internal resistance ÷ baseline", 0, 20, required=True, unit="×"),
    "safety_class": FieldSpec("enum", "safety class (DOMAIN §5)", values=("A", "B", "C"), required=True),
    "soh_p10_pct": FieldSpec("number", "10th percentile of SOH", 0, 120, unit="%"),
    "soh_p90_pct": FieldSpec("number", "90th percentile of SOH", 0, 120, unit="%"),
    "age_years": FieldSpec("number", "years since manufacture", 0, 60, unit="years"),
    "thermal_events": FieldSpec("integer", "thermal events in history", 0, 1e9),
    "fault_count": FieldSpec("integer", "BMS fault/protection events", 0, 1e9),
    "anti_theft_locked": FieldSpec("bool", "anti-theft lock engaged"),
    "origin": FieldSpec("text", "site or outlet of origin"),
    "model": FieldSpec("text", "pack model"),
    "pretreated": FieldSpec("bool", "class C pack pre-treated for transport"),
    "insulation_ohm_per_v": FieldSpec("number", "insulation resistance", 0, 1e9, unit="Ω/V"),
    "cell_spread_mv": FieldSpec("number", "max − min cell voltage at rest", 0, 5000, unit="mV"),
    "cycle_count": FieldSpec("integer", "equivalent full cycles", 0, 1e7),
    "rul_years": FieldSpec("number", "forecast remaining first-life years", 0, 60, unit="years"),
    "eol_soh_pct": FieldSpec("number", "site's end-of-life SOH threshold", 0, 100, unit="%"),
}
REQUIRED_COLUMNS = tuple(k for k, v in DOSSIER_FIELDS.items() if v.required)

# Pseudo-rule used when a policy holds packs whose decision quantile is missing.
QUANTILE_MISSING_RULE = "soh_quantile_missing"


class PolicyError(RuleFileError):
    """A policy file is invalid; ``problems`` name file and line."""


class DossierError(ValueError):
    """Dossiers are invalid; ``problems`` name file, line, column and serial."""

    def __init__(self, problems: list[str], total: int | None = None):
        self.problems = problems
        more = f"\n… and {total - len(problems)} more" if total and total > len(problems) else ""
        super().__init__("\n".join(problems) + more)


@dataclass
class Policy:
    """A compiled triage policy."""

    rules: RuleSet
    soh_quantile: float = 0.5
    when_quantile_missing: str = "point"

    @property
    def name(self) -> str:
        return self.rules.name

    @property
    def version(self) -> str:
        return self.rules.version

    @property
    def content_hash(self) -> str:
        return self.rules.content_hash

    @property
    def identity(self) -> str:
        return self.rules.identity

    @property
    def source(self) -> str:
        return self.rules.source

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "hash": self.content_hash, "identity": self.identity,
                "source": self.source, "soh_quantile": self.soh_quantile,
                "when_quantile_missing": self.when_quantile_missing,
                "stages": [{"stage": s, "rules": [{"rule": r.name, "route": r.outcome, "when": r.text, "why": r.why}
                                                  for r in self.rules.rules if r.stage == s]}
                           for s in self.rules.stages],
                "default": {"route": self.rules.default_outcome, "why": self.rules.default_why}}


def default_policy_path() -> Path:
    return Path(str(resources.files("battloop.triage") / "policies" / "default.yaml"))


def load_policy(source: str | Path, *, text: str | None = None) -> Policy:
    """Load and validate a policy: a path, the name ``default``, or YAML ``text``.

    Every problem is reported as ``file:line: message`` in one :class:`PolicyError`.
    """
    if text is None and str(source) in ("default", "current"):
        source = default_policy_path()
    try:
        data, lines, where, _raw = load_yaml_with_lines(source, text)
        rules, extra = compile_rules(data, lines, where, kind="policy", outcomes=ROUTES, base_fields=DOSSIER_FIELDS,
                                     extra_top_keys=("decide_on",), outcome_key="route")
    except PolicyError:
        raise
    except RuleFileError as exc:
        raise PolicyError(exc.problems) from None
    quantile, missing = 0.5, "point"
    decide = extra.get("decide_on")
    if decide is not None:
        problems = []
        if not isinstance(decide, dict):
            raise PolicyError([f"{where}:{line_of(lines, ('decide_on',))}: 'decide_on' must be a mapping "
                               f"such as {{soh_quantile: 0.1}}"])
        for key in decide:
            if key not in ("soh_quantile", "when_quantile_missing"):
                problems.append(f"{where}:{line_of(lines, ('decide_on', key))}: unknown key '{key}' in decide_on; "
                                f"allowed: soh_quantile, when_quantile_missing")
        q = decide.get("soh_quantile", 0.5)
        if isinstance(q, str) and q.lower() in ("p10", "p50", "p90"):
            q = int(q[1:]) / 100
        if not isinstance(q, (int, float)) or isinstance(q, bool) or not 0.01 <= float(q) <= 0.99:
            problems.append(f"{where}:{line_of(lines, ('decide_on', 'soh_quantile'))}: soh_quantile must be a "
                            f"number between 0.01 and 0.99 (or p10/p50/p90), got {q!r}")
        else:
            quantile = float(q)
        missing = decide.get("when_quantile_missing", "point")
        if missing not in ("point", "hold"):
            problems.append(f"{where}:{line_of(lines, ('decide_on', 'when_quantile_missing'))}: "
                            f"when_quantile_missing must be 'point' or 'hold', got {missing!r}")
        if problems:
            raise PolicyError(problems)
    return Policy(rules, quantile, missing)


# --------------------------------------------------------------------------- dossiers
def read_dossiers(path: str | Path, *, max_problems: int = 50, policies: Iterable[Policy] = ()) -> pd.DataFrame:
    """Read dossiers from CSV (UTF-8, optional BOM) → typed frame. See the module docstring for columns.

    Fields that ``policies`` declare under ``fields:`` are typed and checked like built-in ones.
    Raises :class:`DossierError` naming file, line, column and serial of every bad cell.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise DossierError([f"{where}: no such file; give a CSV of dossiers"])
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except UnicodeDecodeError as exc:
        raise DossierError([f"{where}: not UTF-8 ({exc.reason}); save the CSV as UTF-8"]) from None
    except pd.errors.EmptyDataError:
        raise DossierError([f"{where}: the file is empty; expected a header with {', '.join(REQUIRED_COLUMNS)}"]) from None
    except pd.errors.ParserError as exc:
        raise DossierError([f"{where}: not a readable CSV: {exc}"]) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    extra = {k: v for pol in policies for k, v in pol.rules.fields.items() if k not in DOSSIER_FIELDS}
    return validate_dossiers(raw, where=where, max_problems=max_problems, first_line=2, extra_fields=extra)


def validate_dossiers(raw: pd.DataFrame, *, where: str = "dossiers", max_problems: int = 50, first_line: int = 2,
                      extra_fields: Mapping[str, FieldSpec] | None = None) -> pd.DataFrame:
    """Type and check a frame of dossier text (or values) → frame of typed columns.

    Numbers become float64 with NaN for empty, booleans 1.0/0.0/NaN, chemistry is
    normalized to its canonical name, categories stay text. Line numbers in messages
    count the header as line 1 (``first_line`` is the line of the first record).
    """
    fields = dict(DOSSIER_FIELDS)
    fields.update(extra_fields or {})
    return validate_table(raw, fields, REQUIRED_COLUMNS, where=where, max_problems=max_problems,
                          first_line=first_line, check=_check_quantiles)


def _check_quantiles(out: pd.DataFrame, report) -> None:
    # Quantiles must be ordered around the point estimate.
    for col, sign, word in (("soh_p10_pct", 1, "above"), ("soh_p90_pct", -1, "below")):
        if {col, "soh_pct"} <= set(out.columns):
            q, point = out[col].to_numpy(), out["soh_pct"].to_numpy()
            with np.errstate(invalid="ignore"):
                bad = sign * (q - point) > 0
            report(bad, col, lambda i, c=col, w=word, q=q, p=point: f"P{c[5:7]} {q[i]:g} is {w} soh_pct {p[i]:g}; "
                                                                   f"quantiles must satisfy P10 ≤ SOH ≤ P90")


def validate_table(raw: pd.DataFrame, fields: Mapping[str, FieldSpec], required: Iterable[str], *, where: str,
                   max_problems: int = 50, first_line: int = 2, check=None,
                   passthrough: Iterable[str] | None = None,
                   row_problems: list[tuple[int, str, str]] | None = None) -> pd.DataFrame:
    """Type and check a table against field specs; every bad cell is named by file, line, column, serial.

    ``check(out, report)`` may add record-level checks on the typed frame. Columns that
    are not fields are carried along untouched when ``passthrough`` is None, else only
    those it names are; either way a column that looks like a misspelt field (e.g.
    ``thermal_event``) is an error, because a safety fact must never be silently dropped.
    Raises :class:`DossierError` listing the problems (at most ``max_problems`` shown).
    Given a list as ``row_problems``, problems of single rows are appended to it as
    (row index, column, message) instead, for an importer that quarantines bad rows and
    keeps the good ones; problems of the header still raise.
    """
    import difflib

    required = tuple(required)
    header_problems = []
    for col in raw.columns:
        if col in fields:
            continue
        close = difflib.get_close_matches(str(col), list(fields), n=1, cutoff=0.8)
        if close:
            header_problems.append(f"{where}:1: unknown column '{col}' (did you mean '{close[0]}'?); rename it so "
                                   f"its values are used")
        elif passthrough is not None and col not in passthrough:
            header_problems.append(f"{where}:1: unknown column '{col}'; known columns: {', '.join(fields)}")
    if header_problems:
        raise DossierError(header_problems)
    problems: list[str] = []
    total = 0
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise DossierError([f"{where}:1: missing required column(s) {', '.join(missing)}; the header must contain "
                            f"{', '.join(required)}"])
    dupes = [c for c, k in Counter(raw.columns).items() if k > 1]
    if dupes:
        raise DossierError([f"{where}:1: column(s) {', '.join(dupes)} appear more than once in the header"])
    out = pd.DataFrame(index=raw.index)
    serial = raw["serial"].astype(str).str.strip()
    line_no = np.arange(first_line, first_line + len(raw))

    def report(mask: np.ndarray, column: str, message_of) -> None:
        nonlocal total
        idx = np.flatnonzero(mask)
        if row_problems is not None:
            row_problems.extend((int(i), column, message_of(i)) for i in idx)
            return
        total += len(idx)
        for i in idx[: max(0, max_problems - len(problems))]:
            problems.append(f"{where}:{line_no[i]}: column {column}, serial {serial.iat[i] or '(empty)'}: "
                            f"{message_of(i)}")

    report((serial == "").to_numpy(), "serial", lambda i: "empty serial; every dossier needs its pack serial")
    dup = serial.duplicated(keep="first").to_numpy() & (serial != "").to_numpy()
    report(dup, "serial", lambda i: "serial appears more than once; keep one dossier per pack")
    out["serial"] = serial

    for col in raw.columns:
        if col == "serial":
            continue
        spec = fields.get(col)
        values = raw[col]
        if spec is None:
            out[col] = values  # carried along untouched for policies that declare it
            continue
        is_text = values.dtype == object or pd.api.types.is_string_dtype(values.dtype)
        if spec.type in ("number", "integer"):
            if is_text:
                text = values.where(values.notna(), "").str.strip()
            elif values.dtype == bool:
                text = values.astype("float64")
            else:
                text = values
            num = pd.to_numeric(text, errors="coerce") if is_text else text.astype("float64")
            arr = num.to_numpy(dtype="float64", na_value=np.nan)
            empty = (text == "").to_numpy(dtype=bool) if is_text else np.isnan(arr)
            bad = np.isnan(arr) & ~empty
            report(bad | np.isinf(arr), col, lambda i, c=col: f"{raw[c].iat[i]!r} is not a number")
            arr = np.where(np.isinf(arr), np.nan, arr)
            with np.errstate(invalid="ignore"):
                neg = arr < 0
                high = arr > spec.max
            what = ("resistance cannot be negative" if col in ("ir_ratio", "dcir_mohm", "baseline_dcir_mohm")
                    or "resist" in spec.doc else "cannot be negative")
            report(neg, col, lambda i, c=col, w=what: f"{arr[i]:g}: {w}; check the measurement and its sign")
            report(high & ~neg, col, lambda i, c=col, s=spec: f"{arr[i]:g} is above the plausible maximum "
                                                               f"{s.max:g} {s.unit}".rstrip())
            if spec.type == "integer":
                frac = ~np.isnan(arr) & (np.floor(arr) != arr)
                report(frac, col, lambda i: f"{arr[i]:g} is not a whole count")
            out[col] = arr
        elif spec.type == "bool" and values.dtype == bool:
            out[col] = values.to_numpy(dtype="float64")
        else:
            # Text is normalized once per distinct value, then broadcast by code: a million
            # rows with a handful of chemistries cost a handful of string operations.
            codes, uniq = pd.factorize(values, use_na_sentinel=True)
            u = pd.Series(np.asarray(uniq, dtype=object), dtype=object).map(
                lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else
                ("true" if v is True else "false" if v is False else
                 (format(v, "g") if isinstance(v, (float, np.floating)) else str(v)))).str.strip()
            u = pd.concat([u, pd.Series([""], dtype=object)], ignore_index=True)
            codes = np.where(codes < 0, len(u) - 1, codes)
            raw_u = u.to_numpy(dtype=object)
            if spec.type == "bool":
                mapped = u.str.lower().map(_BOOL_TEXT).to_numpy(dtype="float64", na_value=np.nan)
                bad_u = np.isnan(mapped) & (u != "").to_numpy() & (u.str.lower() != "nan").to_numpy()
                report(bad_u[codes], col, lambda i, c=col, r=raw_u, k=codes: f"{r[k[i]]!r} is not true/false "
                                                                             f"(use true, false, yes, no, 1, 0)")
                out[col] = mapped[codes]
            elif col == "chemistry":
                upper = u.str.upper().str.replace(" ", "", regex=False).str.replace("-", "", regex=False)
                norm_ = upper.map(CHEMISTRY_SYNONYMS)
                unknown_word = upper.isin(["", "UNKNOWN", "NA", "N/A", "未知", "NAN"]).to_numpy()
                bad_u = norm_.isna().to_numpy() & ~unknown_word
                report(bad_u[codes], col, lambda i, r=raw_u, k=codes: f"unknown chemistry {r[k[i]]!r}; use one of "
                                                                      f"{', '.join(CHEMISTRIES)} or leave it empty "
                                                                      f"if unknown")
                cat = np.array([CHEMISTRIES.index(v) if isinstance(v, str) and not w else -1
                                for v, w in zip(norm_.tolist(), unknown_word.tolist())], dtype=np.int64)
                out[col] = pd.Categorical.from_codes(cat[codes], categories=CHEMISTRIES)
            elif spec.type == "enum":
                upper = u.str.upper()
                known = upper.isin(spec.values).to_numpy()
                bad_u = ~known & (upper != "").to_numpy()
                report(bad_u[codes], col, lambda i, s=spec, r=raw_u, k=codes: f"{r[k[i]]!r} is not one of "
                                                                             f"{', '.join(s.values)} (empty = not "
                                                                             f"judged)")
                cat = np.array([spec.values.index(v) if k else -1 for v, k in zip(upper.tolist(), known.tolist())],
                               dtype=np.int64)
                out[col] = pd.Categorical.from_codes(cat[codes], categories=spec.values)
            else:
                obj = u.to_numpy(dtype=object, copy=True)  # pandas copy-on-write hands out read-only views
                obj[obj == ""] = None
                out[col] = obj[codes]

    if check is not None:
        check(out, report)
    if problems:
        raise DossierError(problems, total)
    out.attrs["source"] = where
    out.attrs["first_line"] = first_line
    return out


def decision_soh(frame: pd.DataFrame, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """The SOH a policy decides on → (values, available). Quantiles 0.1/0.5/0.9 are the columns.

    Other quantiles: normal approximation per side of the median, z(q)/z(0.1) times the
    P10 spread below and z(q)/z(0.9) times the P90 spread above (a two-piece normal).
    """
    point = frame["soh_pct"].to_numpy(dtype="float64")
    if abs(quantile - 0.5) < 1e-9:
        return point, ~np.isnan(point)
    side = "soh_p10_pct" if quantile < 0.5 else "soh_p90_pct"
    if side not in frame.columns:
        return np.full(len(frame), np.nan), np.zeros(len(frame), dtype=bool)
    edge = frame[side].to_numpy(dtype="float64")
    z_edge = norm.ppf(0.1 if quantile < 0.5 else 0.9)
    scale = norm.ppf(quantile) / z_edge
    value = edge if abs(scale - 1) < 1e-12 else point + (edge - point) * scale
    value = np.clip(value, 0.0, 120.0)
    return value, ~np.isnan(value)


# --------------------------------------------------------------------------- decisions
class Decisions:
    """Routes and reasons for a table of dossiers, kept columnar; records are built on demand."""

    def __init__(self, policy: Policy, frame: pd.DataFrame, cols: Columns, route_idx: np.ndarray,
                 stage: np.ndarray, bits: np.ndarray, basis: np.ndarray, quantile_hold: np.ndarray):
        self.policy = policy
        self.frame = frame
        self.cols = cols
        self.route_idx = route_idx
        self.stage = stage
        self.bits = bits
        self.basis = basis  # per record: 0 = decided on the policy's quantile, 1 = point fallback
        self.quantile_hold = quantile_hold

    def __len__(self) -> int:
        return len(self.route_idx)

    @property
    def routes(self) -> np.ndarray:
        return np.asarray(ROUTES, dtype=object)[self.route_idx]

    @property
    def serials(self) -> np.ndarray:
        return self.frame["serial"].to_numpy()

    def route_counts(self) -> dict[str, int]:
        counts = np.bincount(self.route_idx, minlength=len(ROUTES))
        return {r: int(c) for r, c in zip(ROUTES, counts)}

    def rule_names(self) -> np.ndarray:
        """Per record, the names of the rules that decided it joined by '+' (vectorized)."""
        codes = np.where(self.quantile_hold, -1, self.bits)
        uniq, inverse = np.unique(codes, return_inverse=True)
        names = np.empty(len(uniq), dtype=object)
        for k, code in enumerate(uniq):
            names[k] = self._pattern_name(int(code))
        return names[inverse]

    def _pattern_name(self, code: int) -> str:
        if code == -1:
            return QUANTILE_MISSING_RULE
        if code == 0:
            return "default"
        return "+".join(r.name for i, r in enumerate(self.policy.rules.rules) if code >> i & 1)

    def _value(self, fname: str, i: int) -> Any:
        spec = self.policy.rules.fields[fname]
        col = self.cols[fname]
        if spec.type in ("number", "integer", "bool"):
            v = col[i]
            if np.isnan(v):
                return None
            if spec.type == "bool":
                return bool(v)
            if spec.type == "integer":
                return int(v)
            return round(float(v), 4)
        v = col[i]
        return None if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v)

    def reasons(self, i: int) -> list[dict[str, Any]]:
        """The reasons for record ``i``: each rule that fired, its route, test and the values that fired it."""
        q = self.policy.soh_quantile
        basis = "point" if abs(q - 0.5) < 1e-9 else f"P{round(q * 100):g}"
        if self.basis[i]:
            basis = f"point (P{round(q * 100):g} missing)"
        if self.quantile_hold[i]:
            return [{"rule": QUANTILE_MISSING_RULE, "stage": "decide_on", "route": "hold",
                     "when": f"P{round(q * 100):g} of soh is missing",
                     "values": {"soh_pct": self._value("soh_pct", i), "soh_p10_pct": self._raw(i, "soh_p10_pct"),
                                "soh_p90_pct": self._raw(i, "soh_p90_pct")},
                     "why": "needs an SOH estimate with uncertainty (the policy decides on a quantile)"}]
        code = int(self.bits[i])
        if code == 0:
            return [{"rule": "default", "stage": "default", "route": self.policy.rules.default_outcome,
                     "when": "no rule matched", "values": {}, "why": self.policy.rules.default_why}]
        out = []
        for k, r in enumerate(self.policy.rules.rules):
            if code >> k & 1:
                values = {f: self._value(f, i) for f in r.fields}
                if "soh_pct" in values:
                    values["soh_basis"] = basis
                out.append({"rule": r.name, "stage": r.stage, "route": r.outcome, "when": r.text, "values": values,
                            "why": r.why})
        return out

    def _raw(self, i: int, col: str):
        if col not in self.frame.columns:
            return None
        v = self.frame[col].iat[i]
        return None if pd.isna(v) else float(v)

    def _column_list(self, fname: str, start: int = 0, stop: int | None = None) -> list:
        """A column as Python values (None for missing), built once for bulk record output."""
        spec = self.policy.rules.fields[fname]
        col = self.cols[fname][start:stop]
        if spec.type in ("number", "integer", "bool"):
            arr = np.round(col, 4) if spec.type == "number" else col
            obj = arr.astype(object)
            obj[np.isnan(arr)] = None
            if spec.type == "integer":
                return [None if v is None else int(v) for v in obj.tolist()]
            if spec.type == "bool":
                return [None if v is None else bool(v) for v in obj.tolist()]
            return obj.tolist()
        obj = np.asarray(col, dtype=object)
        return [None if (v is None or v != v) else str(v) for v in obj.tolist()]

    def iter_records(self, chunk: int = 100_000):
        """``to_records`` in chunks of ``chunk`` records, for streaming large outputs."""
        for start in range(0, len(self), chunk):
            yield self.to_records(start, min(start + chunk, len(self)))

    def to_records(self, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """``[{serial, route, reasons}]`` for records ``start:stop`` (default all), in input order.

        Built per pattern of fired rules from column lists, so a million records take
        seconds, not a Python call per value.
        """
        stop = len(self) if stop is None else stop
        n = stop - start
        routes = self.routes[start:stop].tolist()
        serials = self.serials[start:stop].tolist()
        codes = np.where(self.quantile_hold[start:stop], -1, self.bits[start:stop])
        uniq, inverse = np.unique(codes, return_inverse=True)
        rules = self.policy.rules.rules
        lists: dict[str, list] = {}
        out: list[dict[str, Any] | None] = [None] * n
        q = self.policy.soh_quantile
        basis_main = "point" if abs(q - 0.5) < 1e-9 else f"P{round(q * 100):g}"
        basis_fallback = f"point (P{round(q * 100):g} missing)"
        for k, code in enumerate(uniq.tolist()):
            idx = np.flatnonzero(inverse == k)
            if code <= 0:
                for i in idx.tolist():
                    out[i] = {"serial": serials[i], "route": routes[i], "reasons": self.reasons(start + i)}
                continue
            fired = [r for j, r in enumerate(rules) if code >> j & 1]
            for r in fired:
                for f in r.fields:
                    if f not in lists:
                        lists[f] = self._column_list(f, start, stop)
            fallback = self.basis[start:stop].tolist()
            for i in idx.tolist():
                reasons = []
                for r in fired:
                    values = {f: lists[f][i] for f in r.fields}
                    if "soh_pct" in values:
                        values["soh_basis"] = basis_fallback if fallback[i] else basis_main
                    reasons.append({"rule": r.name, "stage": r.stage, "route": r.outcome, "when": r.text,
                                    "values": values, "why": r.why})
                out[i] = {"serial": serials[i], "route": routes[i], "reasons": reasons}
        return out  # type: ignore[return-value]

    def explanations(self) -> np.ndarray:
        """Per record, a one-line explanation ``rule(field=value, ...); rule2(...)`` — vectorized.

        Values are formatted per column with NumPy string ufuncs, so explaining a million
        decisions costs about as much as deciding them.
        """
        n = len(self)
        out = np.empty(n, dtype=object)
        codes = np.where(self.quantile_hold, -1, self.bits)
        uniq, inverse = np.unique(codes, return_inverse=True)
        rules = self.policy.rules.rules
        for k, code in enumerate(uniq.tolist()):
            idx = np.flatnonzero(inverse == k)
            if code == -1:
                out[idx] = f"{QUANTILE_MISSING_RULE}(soh_pct quantile missing)"
                continue
            if code == 0:
                out[idx] = f"default({self.policy.rules.default_why})"
                continue
            text = None
            for j, r in enumerate(rules):
                if not code >> j & 1:
                    continue
                part = np.full(len(idx), f"{r.name}(", dtype=object)
                for m, f in enumerate(r.fields):
                    vals = self._strings(f, idx)
                    part = part + (f"{', ' if m else ''}{f}=") + vals
                part = part + ")"
                text = part if text is None else text + "; " + part
            out[idx] = text
        return out

    def _strings(self, fname: str, idx: np.ndarray) -> np.ndarray:
        spec = self.policy.rules.fields[fname]
        col = self.cols[fname]
        if spec.type in ("number", "integer", "bool"):
            v = col[idx]
            if spec.type == "bool":
                s = np.where(v == 1.0, "true", "false").astype(object)
            elif spec.type == "integer":
                s = np.where(np.isnan(v), 0, v).astype(np.int64).astype(str).astype(object)
            else:
                s = np.round(v, 4).astype(str).astype(object)
            s[np.isnan(v)] = "missing"
            return s
        s = np.asarray(col, dtype=object)[idx]
        return np.where(pd.isna(s), "missing", s).astype(object)


def plain_value(v):
    """A dossier or reason value as plain Python for JSON and the database: NumPy scalars
    unwrapped, NaN as None (a missing value, never a number)."""
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def evaluate(policy: Policy, dossiers: pd.DataFrame) -> Decisions:
    """Evaluate ``policy`` on validated dossiers (see :func:`validate_dossiers`), vectorized.

    Fields the policy uses but the dossiers lack are missing for every pack (or take the
    policy's ``defaults``); a missing value never satisfies a comparison.
    """
    rs = policy.rules
    used = rs.used_fields() | {"soh_pct"}
    frame = dossiers
    soh, available = decision_soh(frame, policy.soh_quantile)
    point = frame["soh_pct"].to_numpy(dtype="float64") if "soh_pct" in frame.columns else np.full(len(frame), np.nan)
    fallback = ~available & ~np.isnan(point) & (abs(policy.soh_quantile - 0.5) > 1e-9)
    quantile_hold = np.zeros(len(frame), dtype=bool)
    if policy.when_quantile_missing == "hold":
        quantile_hold = fallback.copy()
        fallback[:] = False
    decide = np.where(fallback, point, soh)
    cols = columns_from_frame(frame, rs.fields, sorted(used - {"soh_pct"}), rs.defaults)
    cols.data["soh_pct"] = decide
    route_idx, stage, bits = evaluate_rules(rs, cols)
    if quantile_hold.any():
        route_idx = route_idx.copy()
        route_idx[quantile_hold] = ROUTES.index("hold")
    return Decisions(policy, frame, cols, route_idx, stage, bits, fallback, quantile_hold)


def evaluate_csv(policy: Policy | str | Path, path: str | Path) -> Decisions:
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    return evaluate(pol, read_dossiers(path, policies=[pol]))


def evaluate_one(policy: Policy, dossier: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Reference evaluation of one dossier, rule by rule in plain Python → (route, fired rule names).

    Same semantics as :func:`evaluate` (stages in order, all matching rules of the deciding
    stage are reasons, a missing value never satisfies a comparison). Used for a single
    pack and to check the vectorized evaluation.
    """
    rs = policy.rules

    def present(v):
        return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA

    row = dict(dossier)
    for k, v in rs.defaults.items():
        if not present(row.get(k)):
            row[k] = v
    if abs(policy.soh_quantile - 0.5) > 1e-9:
        frame = pd.DataFrame([{k: row.get(k) for k in ("soh_pct", "soh_p10_pct", "soh_p90_pct") if k in row}])
        frame = frame.astype("float64") if len(frame.columns) else frame
        if "soh_pct" in frame:
            value, ok = decision_soh(frame, policy.soh_quantile)
            if ok[0]:
                row["soh_pct"] = float(value[0])
            elif present(row.get("soh_pct")) and policy.when_quantile_missing == "hold":
                return "hold", [QUANTILE_MISSING_RULE]
    compare_ = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
                "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}
    for si in range(len(rs.stages)):
        fired = []
        for r in rs.rules:
            if r.stage_index != si:
                continue
            ok = True
            for f, op, val in r.conditions:
                v = row.get(f)
                if op == "missing":
                    ok = (not present(v)) if val else present(v)
                elif not present(v):
                    ok = False
                elif op in ("in", "not_in"):
                    ok = (str(v) in val) == (op == "in")
                else:
                    ref = row.get(val[1]) if isinstance(val, tuple) else val
                    if not present(ref):
                        ok = False
                    else:
                        if rs.fields[f].type == "bool":
                            v, ref = float(bool(v)), float(bool(ref))
                        ok = bool(compare_[op](v, ref))
                if not ok:
                    break
            if ok:
                fired.append(r)
        if fired:
            return fired[-1].outcome, [r.name for r in fired]
    return rs.default_outcome, ["default"]


# --------------------------------------------------------------------------- comparison
def compare(new: Policy, old: Policy, dossiers: pd.DataFrame, *, examples: int = 3) -> dict[str, Any]:
    """What changes if ``new`` replaces ``old`` on the same dossiers.

    Returns the route counts under each policy, the moves (old route → new route) with
    counts, and for each move the rule patterns that explain it with example serials.
    """
    a = evaluate(old, dossiers)
    b = evaluate(new, dossiers)
    moved = a.route_idx != b.route_idx
    old_names = a.rule_names()
    new_names = b.rule_names()
    serials = a.serials
    moves: dict[tuple[str, str], dict[str, Any]] = {}
    idx = np.flatnonzero(moved)
    if len(idx):
        key_frame = pd.DataFrame({"from": a.routes[idx], "to": b.routes[idx], "old_rules": old_names[idx],
                                  "new_rules": new_names[idx], "serial": serials[idx]})
        for (frm, to), grp in key_frame.groupby(["from", "to"], sort=True):
            why = (grp.groupby(["old_rules", "new_rules"]).agg(packs=("serial", "size"),
                                                               examples=("serial", lambda s: list(s[:examples])))
                   .reset_index().sort_values("packs", ascending=False))
            moves[(frm, to)] = {"from": frm, "to": to, "packs": int(len(grp)),
                                "why": [{"old_rules": r.old_rules, "new_rules": r.new_rules, "packs": int(r.packs),
                                         "examples": list(r.examples)} for r in why.itertuples()]}
    before, after = a.route_counts(), b.route_counts()
    return {"old": old.identity, "new": new.identity, "packs": len(a), "changed": int(moved.sum()),
            "routes_before": before, "routes_after": after,
            "net_change": {r: after[r] - before[r] for r in ROUTES if after[r] != before[r]},
            "moves": sorted(moves.values(), key=lambda m: -m["packs"])}


# --------------------------------------------------------------------------- KPIs
@dataclass(frozen=True)
class TriageTargets:
    """Policy targets the field proposes (DOMAIN §4): ≥ 20 % of retired packs evaluated
    for second life; ≥ 80 % of recycling through certified (white-listed) partners."""

    evaluated_for_second_life_share: float = 0.20
    certified_recycling_share: float = 0.80


def triage_kpis(retired_packs: int, routes: Iterable[str], *, evaluated: Iterable[bool] | None = None,
                certified_recycler: Iterable[bool] | None = None,
                targets: TriageTargets = TriageTargets()) -> dict[str, Any]:
    """The field's triage KPIs for a period.

    ``retired_packs``: packs retired (removed from first life) in the period, the
    denominator. ``routes``: the triage route of each of them that was triaged.
    ``evaluated``: per triaged pack, whether it was evaluated for second life (default:
    every pack whose route is not ``hold`` and not ``continue_first_life``, i.e. whose
    evidence was complete enough to decide between reuse and recycling).
    ``certified_recycler``: per triaged pack, whether its recycler is white-listed
    (only recycle routes count). Shares of reuse and recycling are of retired packs;
    the certified share is of packs routed to recycling.
    """
    if not isinstance(retired_packs, (int, np.integer)) or retired_packs < 0:
        raise ValueError(f"retired_packs must be a non-negative whole number, got {retired_packs!r}")
    r = np.asarray(list(routes), dtype=object)
    unknown = set(r) - set(ROUTES)
    if unknown:
        raise ValueError(f"unknown route(s) {', '.join(sorted(map(str, unknown)))}; routes are {', '.join(ROUTES)}")
    if len(r) > retired_packs:
        raise ValueError(f"{len(r)} triaged packs but only {retired_packs} retired; the denominator must include "
                         f"every triaged pack")
    if evaluated is None:
        ev = ~np.isin(r, ["hold", "continue_first_life"])
    else:
        ev = np.asarray(list(evaluated), dtype=bool)
        if len(ev) != len(r):
            raise ValueError(f"'evaluated' has {len(ev)} values for {len(r)} routes")
    recycle = r == "recycle"
    if certified_recycler is None:
        cert = np.zeros(len(r), dtype=bool)
    else:
        cert = np.asarray(list(certified_recycler), dtype=bool)
        if len(cert) != len(r):
            raise ValueError(f"'certified_recycler' has {len(cert)} values for {len(r)} routes")
    denom = retired_packs or 1
    reuse = np.isin(r, REUSE_ROUTES)
    evaluated_share = float(ev.sum()) / denom if retired_packs else 0.0
    cert_share = float((cert & recycle).sum()) / float(recycle.sum()) if recycle.any() else None
    return {
        "retired_packs": int(retired_packs), "triaged_packs": int(len(r)),
        "evaluated_for_second_life": int(ev.sum()), "evaluated_for_second_life_share": evaluated_share,
        "evaluated_target": targets.evaluated_for_second_life_share,
        "evaluated_target_met": bool(evaluated_share >= targets.evaluated_for_second_life_share),
        "routed_to_reuse": int(reuse.sum()), "routed_to_reuse_share": float(reuse.sum()) / denom if retired_packs else 0.0,
        "routed_to_recycling": int(recycle.sum()),
        "routed_to_recycling_share": float(recycle.sum()) / denom if retired_packs else 0.0,
        "certified_recycling": int((cert & recycle).sum()), "certified_recycling_share": cert_share,
        "certified_target": targets.certified_recycling_share,
        "certified_target_met": None if cert_share is None else bool(cert_share >= targets.certified_recycling_share),
        "routes": {k: int((r == k).sum()) for k in ROUTES},
    }
