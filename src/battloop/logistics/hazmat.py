"""Dangerous-goods rules for moving retired lithium-ion packs by road.

Implements ADR 2025 (adopted in China as JT/T 617) for UN 3480, Class 9:
packaging instruction and special provision per pack from its safety class —
A intact → P909 (SP 377), B damaged/defective → P908 (SP 376), C liable to react
dangerously → P911 (SP 376) — marks and labels, vehicle suitability, and the
company's state-of-charge policy before long haul (not road law; the 30 % figure
comes from IATA PI 965 for air).  Safety classes come from the GB/T 38698.1-2020
safety judgement.  The rules live in ``rules/hazmat.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import yaml

RULES_PATH = Path(__file__).with_name("rules") / "hazmat.yaml"
SAFETY_CLASSES = ("A", "B", "C")


class HazmatRulesError(ValueError):
    """The rules file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class HazmatRules:
    version: str
    un_number: str
    proper_shipping_name: str
    hazard_class: str
    labels: tuple[str, ...]
    packaging: dict  # route -> class -> dict
    reuse_forbidden_classes: frozenset[str]
    require_dg_vehicle: bool
    soc_limit_long_haul_pct: float
    long_haul_km: float
    unknown_soc_is_violation: bool
    source_path: str = ""


@dataclass(frozen=True)
class PackForTransport:
    """One pack to be shipped. ``route`` is ``recycle`` or ``reuse``."""

    serial: str
    safety_class: str
    mass_kg: float
    energy_kwh: float | None = None
    soc_pct: float | None = None
    chemistry: str = "LFP"
    route: str = "recycle"


@dataclass(frozen=True)
class VehicleSpec:
    """A vehicle as the rules see it."""

    vehicle_id: str
    payload_kg: float
    dg_approved: bool = True
    p911_equipped: bool = False
    max_packs: int | None = None


@dataclass(frozen=True)
class Packaging:
    serial: str
    un_number: str
    proper_shipping_name: str
    hazard_class: str
    labels: tuple[str, ...]
    special_provision: str | None
    packing_instruction: str
    large_packaging: str | None
    marks: tuple[str, ...]
    requires_p911_vehicle: bool


@dataclass(frozen=True)
class Violation:
    subject: str  # pack serial or vehicle id
    rule: str  # short code
    message: str
    legal: bool  # True: road law (ADR/JT/T 617); False: company policy


@dataclass
class LoadCheck:
    packaging: list[Packaging]
    violations: list[Violation] = field(default_factory=list)
    total_mass_kg: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations


@lru_cache(maxsize=8)
def _load(path: str, soc_override: float | None) -> HazmatRules:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HazmatRulesError(f"{p}: rules file not found") from None
    except yaml.YAMLError as exc:
        raise HazmatRulesError(f"{p}: not valid YAML ({exc})") from None
    try:
        entry = raw["entry"]
        pol = raw.get("company_policy", {})
        veh = raw.get("vehicle", {})
        pk = raw["packaging"]
        for route, classes in pk.items():
            for cls, spec in classes.items():
                if "packing_instruction" not in spec:
                    raise HazmatRulesError(f"{p}: packaging.{route}.{cls} has no 'packing_instruction'")
        soc = float(pol.get("soc_limit_long_haul_pct", 30) if soc_override is None else soc_override)
        if not 0 <= soc <= 100:
            raise HazmatRulesError(f"{p}: company_policy.soc_limit_long_haul_pct is {soc}; expected 0..100")
        return HazmatRules(
            version=str(raw.get("version", "")),
            un_number=entry["un_number"],
            proper_shipping_name=entry["proper_shipping_name"],
            hazard_class=str(entry["hazard_class"]),
            labels=tuple(entry.get("hazard_labels", [])),
            packaging=pk,
            reuse_forbidden_classes=frozenset(raw.get("reuse_forbidden_classes", [])),
            require_dg_vehicle=bool(veh.get("require_dg_approved", True)),
            soc_limit_long_haul_pct=soc,
            long_haul_km=float(pol.get("long_haul_km", 300)),
            unknown_soc_is_violation=bool(pol.get("unknown_soc_is_violation", False)),
            source_path=str(p),
        )
    except (KeyError, TypeError) as exc:
        raise HazmatRulesError(f"{p}: missing or malformed key {exc}") from None


def load_rules(path: str | Path | None = None, *, soc_limit_long_haul_pct: float | None = None) -> HazmatRules:
    """Load the dangerous-goods rules (default: the packaged ``rules/hazmat.yaml``).

    ``soc_limit_long_haul_pct`` overrides the company SOC policy (a company setting).
    """
    return _load(str(path or RULES_PATH), soc_limit_long_haul_pct)


def packaging_for(pack: PackForTransport, rules: HazmatRules | None = None) -> Packaging:
    """UN number, packaging instruction, special provision, marks and labels for one pack."""
    rules = rules or load_rules()
    cls = str(pack.safety_class).upper()
    if cls not in SAFETY_CLASSES:
        raise ValueError(f"pack {pack.serial}: safety class '{pack.safety_class}' unknown; expected A, B or C "
                         "(GB/T 38698.1 safety judgement)")
    route = pack.route
    if route not in rules.packaging:
        raise ValueError(f"pack {pack.serial}: route '{route}' unknown; expected one of {sorted(rules.packaging)}")
    spec = rules.packaging[route].get(cls)
    if spec is None:
        raise ValueError(f"pack {pack.serial}: class {cls} packs may not be shipped for '{route}'; "
                         "route them to recycling")
    return Packaging(
        serial=pack.serial, un_number=rules.un_number, proper_shipping_name=rules.proper_shipping_name,
        hazard_class=rules.hazard_class, labels=rules.labels,
        special_provision=spec.get("special_provision"), packing_instruction=spec["packing_instruction"],
        large_packaging=spec.get("large_packaging"), marks=tuple(spec.get("marks", [])),
        requires_p911_vehicle=bool(spec.get("requires_p911_vehicle", False)),
    )


def check_load(
    packs: Iterable[PackForTransport],
    vehicle: VehicleSpec,
    *,
    distance_km: float = 0.0,
    rules: HazmatRules | None = None,
) -> LoadCheck:
    """Packaging per pack and every rule the planned load breaks.

    Legal checks (ADR/JT/T 617): known safety class, class B/C not routed to reuse,
    DG-approved vehicle, P911 packs only on P911-equipped vehicles, payload.
    Company policy: SOC at most ``soc_limit_long_haul_pct`` when ``distance_km`` is
    at least ``long_haul_km``; vehicle pack-count limit.
    """
    rules = rules or load_rules()
    packs = list(packs)
    out = LoadCheck(packaging=[])
    for p in packs:
        cls = str(p.safety_class).upper()
        if cls not in SAFETY_CLASSES:
            out.violations.append(Violation(p.serial, "unknown_class",
                                            f"safety class '{p.safety_class}' unknown; run the GB/T 38698.1 safety judgement (A/B/C)", True))
            continue
        if p.route == "reuse" and cls in rules.reuse_forbidden_classes:
            out.violations.append(Violation(p.serial, "reuse_forbidden",
                                            f"class {cls} pack routed to second life; damaged packs go to recycling", True))
            continue
        try:
            pkg = packaging_for(p, rules)
        except ValueError as exc:
            out.violations.append(Violation(p.serial, "no_packaging", str(exc), True))
            continue
        out.packaging.append(pkg)
        if pkg.requires_p911_vehicle and not vehicle.p911_equipped:
            out.violations.append(Violation(p.serial, "p911_vehicle",
                                            f"class {cls} pack needs {pkg.packing_instruction} packaging and a vehicle equipped for it; "
                                            f"vehicle {vehicle.vehicle_id} is not", True))
        if distance_km >= rules.long_haul_km:
            if p.soc_pct is None:
                if rules.unknown_soc_is_violation:
                    out.violations.append(Violation(p.serial, "soc_unknown",
                                                    f"SOC unknown before a {distance_km:.0f} km haul; measure it (company policy)", False))
            elif p.soc_pct > rules.soc_limit_long_haul_pct:
                out.violations.append(Violation(p.serial, "soc_limit",
                                                f"SOC {p.soc_pct:.0f}% above the company limit of {rules.soc_limit_long_haul_pct:.0f}% "
                                                f"for hauls of {rules.long_haul_km:.0f} km or more; discharge before dispatch (company policy, not road law)",
                                                False))
    out.total_mass_kg = float(sum(p.mass_kg for p in packs))
    if rules.require_dg_vehicle and packs and not vehicle.dg_approved:
        out.violations.append(Violation(vehicle.vehicle_id, "dg_vehicle",
                                        f"vehicle {vehicle.vehicle_id} is not approved for dangerous goods (UN 3480, class 9)", True))
    if out.total_mass_kg > vehicle.payload_kg:
        out.violations.append(Violation(vehicle.vehicle_id, "payload",
                                        f"load {out.total_mass_kg:.0f} kg exceeds payload {vehicle.payload_kg:.0f} kg "
                                        f"by {out.total_mass_kg - vehicle.payload_kg:.0f} kg", True))
    if vehicle.max_packs is not None and len(packs) > vehicle.max_packs:
        out.violations.append(Violation(vehicle.vehicle_id, "pack_count",
                                        f"{len(packs)} packs exceed the vehicle limit of {vehicle.max_packs}", False))
    return out
