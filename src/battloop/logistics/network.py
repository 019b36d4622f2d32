"""Reverse-logistics network design for retired packs (multi-echelon, multi-commodity CFLP).

Sources (sites/outlets holding retired packs) → candidate consolidation hubs
(centralized-storage outlets) → destinations (white-listed recyclers, second-life
integrators).  A commodity is (safety class, chemistry, route); route ``recycle``
may only reach recyclers, ``reuse`` only second-life integrators.

Model — a capacitated facility-location MILP in the strong formulation
(Geoffrion & Graves 1974; Beasley 1988), the multi-echelon multi-commodity
structure of reverse-logistics network design for EV batteries (Wang, Wang &
Yang 2020, Applied Energy 275:115328):

    min  Σ_h F_h y_h + Σ_{g,h} C_gh x_gh + Σ_{h,r,k} (T_hrk + G_rk) z_hrk
    s.t. Σ_h x_gh = 1                           every supply group g is collected
         Σ_g S_g x_gh ≤ Q_h y_h                 hub capacity (t)
         Σ_g S_g,c x_gh ≤ Q_h,c y_h             hub capacity per safety class (optional)
         Σ_g E_g x_gh ≤ K_h y_h                 hub storage limit (kWh, optional)
         x_gh ≤ y_h                             strong linking (x is a share of S_g)
         Σ_g S_gk x_gh = Σ_r z_hrk              conservation per hub and commodity
         Σ_{h,k} z_hrk ≤ Q_r                    destination capacity (t)
         Σ_{h ∈ p} y_h ≥ 1                      a storage outlet in every prefecture whose
                                                fleet is ≥ 8,000 (MIIT 2019 outlet guideline)
         Σ_h Q_h y_h ≥ Σ_g S_g                  aggregate capacity cut (valid)

A supply group is one source's packs of one safety class by default (they travel
together in one packaging regime); ``grouping="commodity"`` splits further and
``grouping="source"`` keeps a source's packs together.  ``single_source`` makes
``x`` binary.  Transport cost and CO₂ are per tonne-km on road distance
(great-circle × circuity 1.3 unless a distance matrix is given), divided by a
payload factor per class because heavier P908/P911 packaging leaves less room
for batteries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .geo import DEFAULT_CIRCUITY, road_km_matrix
from .milp import INF, solve_milp

ROUTES = ("recycle", "reuse")
SAFETY_CLASSES = ("A", "B", "C")


class NetworkInputError(ValueError):
    """Input that cannot make a valid model; names the object and what would fix it."""


class NetworkInfeasible(ValueError):
    """No plan satisfies all constraints; names the constraint and the shortfall.

    ``constraint`` is the family that cannot be met (``hub_capacity``,
    ``hub_class_capacity``, ``destination_capacity``, ``storage_outlet_rule``,
    ``combination``); ``shortfall_t`` the missing tonnes when one total is short.
    """

    def __init__(self, message: str, *, constraint: str = "combination", shortfall_t: float | None = None,
                 detail: dict | None = None):
        super().__init__(message)
        self.constraint = constraint
        self.shortfall_t = shortfall_t
        self.detail = detail or {}


Commodity = tuple[str, str, str]  # (safety_class, chemistry, route)


@dataclass(frozen=True)
class Source:
    source_id: str
    lat: float
    lon: float
    prefecture: str
    supply_t: dict  # Commodity -> tonnes
    supply_kwh: dict | None = None  # Commodity -> kWh (for hub storage limits)


@dataclass(frozen=True)
class CandidateHub:
    hub_id: str
    lat: float
    lon: float
    prefecture: str
    fixed_cost: float
    capacity_t: float
    allowed_classes: frozenset = frozenset(SAFETY_CLASSES)
    handling_cost_per_t: float = 0.0
    class_capacity_t: dict | None = None  # safety class -> tonnes
    storage_limit_kwh: float | None = None
    must_open: bool = False


@dataclass(frozen=True)
class Destination:
    dest_id: str
    kind: str  # "recycler" | "second_life"
    lat: float
    lon: float
    capacity_t: float
    accepted_chemistries: frozenset
    accepted_classes: frozenset = frozenset(SAFETY_CLASSES)
    gate_fee_per_t: dict = field(default_factory=dict)  # chemistry -> cost per t (negative: we are paid)
    whitelisted: bool = True
    technology: str = ""
    prefecture: str = ""


@dataclass(frozen=True)
class DistanceMatrix:
    """User road distances in km between named places (sources, hubs, destinations).

    ``km[i, j]`` is the distance from ``ids[i]`` to ``ids[j]``; ``inf`` or ``nan``
    means no road connection.
    """

    ids: tuple
    km: np.ndarray


@dataclass(frozen=True)
class NetworkSettings:
    """Rates and factors; all are settings, none is law.

    ``cost_per_tkm`` includes the dangerous-goods surcharge of each class;
    ``payload_factor`` is the share of a truck's payload left for batteries in the
    class's packaging (P909/P908/P911); the default rates are planning
    placeholders to be replaced with contract rates.
    ``co2_kg_per_tkm`` default 0.073 kg CO₂e per tonne-km: GLEC Framework (2019)
    default intensity for road truck-load / dry van, tank-to-wheel.
    """

    circuity: float = DEFAULT_CIRCUITY
    cost_per_tkm: dict = field(default_factory=lambda: {"A": 0.60, "B": 0.90, "C": 1.50})
    packaging_cost_per_t: dict = field(default_factory=lambda: {"A": 200.0, "B": 600.0, "C": 2000.0})
    payload_factor: dict = field(default_factory=lambda: {"A": 1.0, "B": 0.8, "C": 0.5})
    co2_kg_per_tkm: float = 0.073
    co2_factor_source: str = "GLEC Framework 2019 default, road truck-load/dry van, tank-to-wheel"
    carbon_price_per_t_co2: float = 0.0
    allow_non_whitelisted: bool = False
    storage_outlet_fleet_threshold: int = 8000


@dataclass
class NetworkProblem:
    sources: list
    hubs: list
    destinations: list
    settings: NetworkSettings = field(default_factory=NetworkSettings)
    distance: DistanceMatrix | None = None
    prefecture_fleet: dict = field(default_factory=dict)  # prefecture -> vehicles/packs in use
    single_source: bool = False
    grouping: str = "source_class"  # "source" | "source_class" | "commodity"
    max_hubs_per_group: int | None = None  # keep only the nearest compatible hubs (None: all)
    max_destinations_per_hub: int | None = None  # per commodity, nearest (None: all)
    name: str = "network"


@dataclass
class NetworkPlan:
    name: str
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    opened_hubs: list
    inbound_flows: list  # dicts: source, hub, class, chemistry, route, tonnes, km
    outbound_flows: list  # dicts: hub, destination, class, chemistry, route, tonnes, km
    cost_breakdown: dict
    transport_co2_kg: float | None
    binding_constraints: list
    model_size: dict
    settings_used: dict
    message: str = ""

    def to_json(self) -> dict:
        return {
            "name": self.name, "status": self.status, "objective": self.objective, "bound": self.bound,
            "gap": self.gap, "seconds": round(self.seconds, 3), "opened_hubs": self.opened_hubs,
            "cost_breakdown": self.cost_breakdown, "transport_co2_kg": self.transport_co2_kg,
            "binding_constraints": self.binding_constraints, "model_size": self.model_size,
            "settings": self.settings_used, "inbound_flows": self.inbound_flows,
            "outbound_flows": self.outbound_flows, "message": self.message,
        }


# ----------------------------------------------------------------- validation


def _validate(p: NetworkProblem) -> None:
    st = p.settings
    if not p.sources:
        raise NetworkInputError("no sources: there are no packs to move")
    if not p.hubs:
        raise NetworkInputError("no candidate hubs: add at least one candidate storage outlet")
    if not p.destinations:
        raise NetworkInputError("no destinations: add at least one recycler or second-life integrator")
    if p.grouping not in ("source", "source_class", "commodity"):
        raise NetworkInputError(f"grouping '{p.grouping}' unknown; expected source, source_class or commodity")
    ids = set()
    for kind, objs, attr in (("source", p.sources, "source_id"), ("hub", p.hubs, "hub_id"), ("destination", p.destinations, "dest_id")):
        for o in objs:
            oid = getattr(o, attr)
            if oid in ids:
                raise NetworkInputError(f"{kind} id '{oid}' is used twice; ids must be unique across sources, hubs and destinations")
            ids.add(oid)
    for s in p.sources:
        for k, t in s.supply_t.items():
            if len(k) != 3 or k[0] not in SAFETY_CLASSES or k[2] not in ROUTES:
                raise NetworkInputError(f"source {s.source_id}: commodity {k!r} must be (class A/B/C, chemistry, route recycle/reuse)")
            if not (t >= 0 and math.isfinite(t)):
                raise NetworkInputError(f"source {s.source_id}: supply of {k} is {t}; it must be a non-negative number of tonnes")
            if k[2] == "reuse" and k[0] != "A":
                raise NetworkInputError(f"source {s.source_id}: class {k[0]} packs routed to reuse; only class A packs may go to second life")
    for h in p.hubs:
        if not h.capacity_t > 0:
            raise NetworkInputError(f"hub {h.hub_id}: capacity_t is {h.capacity_t}; it must be positive (remove the candidate instead)")
        if h.fixed_cost < 0 or h.handling_cost_per_t < 0:
            raise NetworkInputError(f"hub {h.hub_id}: negative fixed or handling cost")
        if h.storage_limit_kwh is not None and not h.storage_limit_kwh > 0:
            raise NetworkInputError(f"hub {h.hub_id}: storage_limit_kwh is {h.storage_limit_kwh}; it must be positive or None")
        for c, q in (h.class_capacity_t or {}).items():
            if not q > 0:
                raise NetworkInputError(f"hub {h.hub_id}: class {c} capacity is {q}; remove the class from allowed_classes instead")
    for r in p.destinations:
        if r.kind not in ("recycler", "second_life"):
            raise NetworkInputError(f"destination {r.dest_id}: kind '{r.kind}' unknown; expected recycler or second_life")
        if not r.capacity_t > 0:
            raise NetworkInputError(f"destination {r.dest_id}: capacity_t is {r.capacity_t}; it must be positive")
    for name in ("cost_per_tkm", "packaging_cost_per_t", "payload_factor"):
        d = getattr(st, name)
        missing = [c for c in SAFETY_CLASSES if c not in d]
        if missing:
            raise NetworkInputError(f"settings.{name} has no value for class(es) {missing}")
    if any(not 0 < st.payload_factor[c] <= 1 for c in SAFETY_CLASSES):
        raise NetworkInputError("settings.payload_factor must be in (0, 1] for every class")
    if st.circuity < 1:
        raise NetworkInputError(f"settings.circuity is {st.circuity}; it must be >= 1")


def _distances(p: NetworkProblem):
    st = p.settings
    S, H, R = p.sources, p.hubs, p.destinations
    if p.distance is None:
        d_sh = road_km_matrix([s.lat for s in S], [s.lon for s in S], [h.lat for h in H], [h.lon for h in H], st.circuity)
        d_hr = road_km_matrix([h.lat for h in H], [h.lon for h in H], [r.lat for r in R], [r.lon for r in R], st.circuity)
        return d_sh, d_hr
    dm = p.distance
    km = np.asarray(dm.km, float)
    if km.shape != (len(dm.ids), len(dm.ids)):
        raise NetworkInputError(f"distance matrix is {km.shape} but names {len(dm.ids)} places; it must be square")
    pos = {k: i for i, k in enumerate(dm.ids)}
    missing = [o for o in [s.source_id for s in S] + [h.hub_id for h in H] + [r.dest_id for r in R] if o not in pos]
    if missing:
        raise NetworkInputError(f"distance matrix has no row for {missing[:5]}{' …' if len(missing) > 5 else ''}")
    finite = km[np.isfinite(km)]
    if finite.size and finite.min() < 0:
        raise NetworkInputError("distance matrix has negative distances")
    km = np.where(np.isfinite(km), km, np.inf)
    si = [pos[s.source_id] for s in S]
    hi = [pos[h.hub_id] for h in H]
    ri = [pos[r.dest_id] for r in R]
    return km[np.ix_(si, hi)], km[np.ix_(hi, ri)]


# ----------------------------------------------------------------------- solve


def solve_network(
    p: NetworkProblem,
    *,
    time_limit_s: float | None = None,
    mip_rel_gap: float = 1e-4,
    threads: int | None = None,
    log: bool = False,
    highs_options: dict | None = None,
) -> NetworkPlan:
    """Build and solve the network-design MILP with HiGHS; return the plan and its evidence."""
    _validate(p)
    st = p.settings
    S, H, R = p.sources, p.hubs, p.destinations
    nH, nR = len(H), len(R)
    d_sh, d_hr = _distances(p)

    commodities = sorted({k for s in S for k, t in s.supply_t.items() if t > 0})
    if not commodities:
        raise NetworkInputError("all supplies are zero: there are no packs to move")
    kidx = {k: i for i, k in enumerate(commodities)}
    nK = len(commodities)
    cls_of = np.array([k[0] for k in commodities])
    rate_k = np.array([st.cost_per_tkm[c] / st.payload_factor[c] for c in cls_of])
    co2_k = np.array([st.co2_kg_per_tkm / st.payload_factor[c] for c in cls_of])

    # --- supply groups
    groups: list[tuple[int, np.ndarray]] = []  # (source index, supply vector over commodities)
    gkwh: list[float] = []
    for si, s in enumerate(S):
        vec = np.zeros(nK)
        kwh = np.zeros(nK)
        for k, t in s.supply_t.items():
            if t > 0:
                vec[kidx[k]] += t
                if s.supply_kwh and k in s.supply_kwh:
                    kwh[kidx[k]] += s.supply_kwh[k]
        if p.grouping == "source":
            parts = [vec > 0] if vec.any() else []
        elif p.grouping == "source_class":
            parts = [(cls_of == c) & (vec > 0) for c in SAFETY_CLASSES if ((cls_of == c) & (vec > 0)).any()]
        else:
            parts = [np.arange(nK) == i for i in np.flatnonzero(vec > 0)]
        for mask in parts:
            groups.append((si, np.where(mask, vec, 0.0)))
            gkwh.append(float(np.where(mask, kwh, 0.0).sum()))
    nG = len(groups)
    G_sup = np.array([g[1] for g in groups])  # (nG, nK)
    G_src = np.array([g[0] for g in groups])
    G_tot = G_sup.sum(axis=1)
    total_supply = float(G_tot.sum())

    # --- capacity pre-checks (exact shortfalls)
    hub_cap = np.array([h.capacity_t for h in H], float)
    if hub_cap.sum() < total_supply * (1 - 1e-9):
        raise NetworkInfeasible(
            f"hub capacity: total supply {total_supply:.3f} t exceeds the capacity of all candidate hubs "
            f"{hub_cap.sum():.3f} t by {total_supply - hub_cap.sum():.3f} t; add candidate hubs or capacity",
            constraint="hub_capacity", shortfall_t=float(total_supply - hub_cap.sum()),
            detail={"supply_t": total_supply, "capacity_t": float(hub_cap.sum())})
    for c in SAFETY_CLASSES:
        sup_c = float(G_sup[:, cls_of == c].sum())
        if sup_c <= 0:
            continue
        cap_c = sum(min(h.capacity_t, (h.class_capacity_t or {}).get(c, h.capacity_t)) for h in H if c in h.allowed_classes)
        if cap_c < sup_c * (1 - 1e-9):
            raise NetworkInfeasible(
                f"hub class-{c} capacity: class {c} supply {sup_c:.3f} t exceeds the capacity of hubs allowed to hold "
                f"class {c} ({cap_c:.3f} t) by {sup_c - cap_c:.3f} t",
                constraint="hub_class_capacity", shortfall_t=float(sup_c - cap_c),
                detail={"class": c, "supply_t": sup_c, "capacity_t": float(cap_c)})

    def dest_accepts(r: Destination, k: Commodity) -> bool:
        c, chem, route = k
        if route == "recycle" and r.kind != "recycler":
            return False
        if route == "reuse" and r.kind != "second_life":
            return False
        if r.kind == "recycler" and not r.whitelisted and not st.allow_non_whitelisted:
            return False
        return c in r.accepted_classes and chem in r.accepted_chemistries

    acc = np.array([[dest_accepts(r, k) for k in commodities] for r in R], bool)  # (nR, nK)
    dest_cap = np.array([r.capacity_t for r in R], float)
    for ki, k in enumerate(commodities):
        sup_k = float(G_sup[:, ki].sum())
        cap_k = float(dest_cap[acc[:, ki]].sum())
        if cap_k < sup_k * (1 - 1e-9):
            what = "recyclers (white-listed)" if k[2] == "recycle" else "second-life integrators"
            raise NetworkInfeasible(
                f"destination capacity for class {k[0]} {k[1]} ({k[2]}): supply {sup_k:.3f} t exceeds the capacity of "
                f"{what} accepting it ({cap_k:.3f} t) by {sup_k - cap_k:.3f} t",
                constraint="destination_capacity", shortfall_t=float(sup_k - cap_k),
                detail={"class": k[0], "chemistry": k[1], "route": k[2], "supply_t": sup_k, "capacity_t": cap_k})
    for route in ROUTES:
        m = np.array([k[2] == route for k in commodities])
        if not m.any():
            continue
        sup = float(G_sup[:, m].sum())
        cap = float(dest_cap[acc[:, m].any(axis=1)].sum())
        if cap < sup * (1 - 1e-9):
            raise NetworkInfeasible(
                f"destination capacity for route '{route}': supply {sup:.3f} t exceeds the capacity of all destinations "
                f"accepting it ({cap:.3f} t) by {sup - cap:.3f} t",
                constraint="destination_capacity", shortfall_t=float(sup - cap),
                detail={"route": route, "supply_t": sup, "capacity_t": cap})

    # --- arcs group -> hub
    hub_allowed = np.array([[c in h.allowed_classes for c in SAFETY_CLASSES] for h in H], bool)  # (nH, 3)
    cls_pos = {c: i for i, c in enumerate(SAFETY_CLASSES)}
    g_cls = np.array([[bool(G_sup[g, cls_of == c].sum() > 0) for c in SAFETY_CLASSES] for g in range(nG)], bool)
    # hub h compatible with group g if it allows every class of g
    compat = ~(g_cls[:, None, :] & ~hub_allowed[None, :, :]).any(axis=2)  # (nG, nH)
    dist_gh = d_sh[G_src]  # (nG, nH)
    # any hub->destination route for the group's commodities?
    d_hr_ok = np.isfinite(d_hr)
    reach = compat & np.isfinite(dist_gh)
    # a hub is useful for a commodity only if it reaches an accepting destination
    hub_k_ok = (d_hr_ok[:, :, None] & acc[None, :, :]).any(axis=1)  # (nH, nK)
    need = G_sup > 0
    reach &= ~(need[:, None, :] & ~hub_k_ok[None, :, :]).any(axis=2)
    bad = np.flatnonzero(~reach.any(axis=1))
    if bad.size:
        g = int(bad[0])
        s = S[G_src[g]]
        classes = [c for c in SAFETY_CLASSES if g_cls[g, cls_pos[c]]]
        raise NetworkInputError(
            f"source {s.source_id}: no candidate hub accepting class {'/'.join(classes)} is connected to it and onward "
            "to a destination that accepts its packs (distance matrix disconnected or no compatible hub/destination); "
            "add a road link or a compatible hub")
    if p.max_hubs_per_group is not None and p.max_hubs_per_group < nH:
        kk = int(p.max_hubs_per_group)
        masked = np.where(reach, dist_gh, np.inf)
        part = np.argpartition(masked, kk - 1, axis=1)[:, :kk]
        keep = np.zeros_like(reach)
        np.put_along_axis(keep, part, True, axis=1)
        reach &= keep
    gi, hi = np.nonzero(reach)
    nX = gi.size
    # --- arcs hub -> destination per commodity
    zh, zr, zk = np.nonzero(d_hr_ok[:, :, None] & acc[None, :, :])
    if p.max_destinations_per_hub is not None:
        mm = int(p.max_destinations_per_hub)
        keep_z = np.zeros(zh.size, bool)
        order = np.lexsort((d_hr[zh, zr], zk, zh))
        # rank within (h,k) blocks
        hk = zh[order] * nK + zk[order]
        starts = np.r_[0, np.flatnonzero(np.diff(hk)) + 1]
        rank = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
        keep_z[order[rank < mm]] = True
        zh, zr, zk = zh[keep_z], zr[keep_z], zk[keep_z]
    nZ = zh.size

    # --- prefecture rule
    rule_pref = sorted(pp for pp, n in p.prefecture_fleet.items() if n >= st.storage_outlet_fleet_threshold)
    hubs_in = {}
    for j, h in enumerate(H):
        hubs_in.setdefault(h.prefecture, []).append(j)
    for pp in rule_pref:
        if pp not in hubs_in:
            raise NetworkInfeasible(
                f"storage-outlet rule: prefecture {pp} has a fleet of {p.prefecture_fleet[pp]} (≥ "
                f"{st.storage_outlet_fleet_threshold}) but no candidate hub; add a candidate storage outlet there",
                constraint="storage_outlet_rule", detail={"prefecture": pp, "fleet": p.prefecture_fleet[pp]})

    # --- columns: y (nH) | x (nX) | z (nZ)
    oy, ox, oz = 0, nH, nH + nX
    ncol = nH + nX + nZ
    hub_handling = np.array([h.handling_cost_per_t for h in H])
    carbon = st.carbon_price_per_t_co2 / 1000.0  # per kg
    sup_x = G_sup[gi]  # (nX, nK)
    cost_x = (sup_x * (rate_k + carbon * co2_k)[None, :]).sum(axis=1) * dist_gh[gi, hi] + G_tot[gi] * hub_handling[hi]
    gate = np.array([[R[r].gate_fee_per_t.get(k[1], 0.0) for k in commodities] for r in range(nR)])
    cost_z = d_hr[zh, zr] * (rate_k[zk] + carbon * co2_k[zk]) + gate[zr, zk]
    c = np.concatenate([[h.fixed_cost for h in H], cost_x, cost_z])

    rows, cols, vals = [], [], []
    lo, hi_b = [], []
    r0 = 0
    # (1) assignment
    rows.append(r0 + gi); cols.append(ox + np.arange(nX)); vals.append(np.ones(nX))
    lo.append(np.ones(nG)); hi_b.append(np.ones(nG)); r0 += nG
    # (2) hub capacity
    cap_row = r0
    rows.append(r0 + hi); cols.append(ox + np.arange(nX)); vals.append(G_tot[gi])
    rows.append(r0 + np.arange(nH)); cols.append(oy + np.arange(nH)); vals.append(-hub_cap)
    lo.append(np.full(nH, -INF)); hi_b.append(np.zeros(nH)); r0 += nH
    # (3) strong linking
    strong_row = r0
    rows.append(r0 + np.arange(nX)); cols.append(ox + np.arange(nX)); vals.append(np.ones(nX))
    rows.append(r0 + np.arange(nX)); cols.append(oy + hi); vals.append(-np.ones(nX))
    lo.append(np.full(nX, -INF)); hi_b.append(np.zeros(nX)); r0 += nX
    # (4) class capacity
    class_rows = []
    for j, h in enumerate(H):
        for cc, q in (h.class_capacity_t or {}).items():
            m = hi == j
            coef = sup_x[m][:, cls_of == cc].sum(axis=1)
            rows.append(np.full(m.sum(), r0)); cols.append(ox + np.flatnonzero(m)); vals.append(coef)
            rows.append(np.array([r0])); cols.append(np.array([oy + j])); vals.append(np.array([-float(q)]))
            lo.append(np.array([-INF])); hi_b.append(np.array([0.0]))
            class_rows.append((r0, j, cc, float(q)))
            r0 += 1
    # (5) storage kWh
    kwh_rows = []
    g_kwh = np.array(gkwh)
    for j, h in enumerate(H):
        if h.storage_limit_kwh is not None:
            m = hi == j
            rows.append(np.full(m.sum(), r0)); cols.append(ox + np.flatnonzero(m)); vals.append(g_kwh[gi[m]])
            rows.append(np.array([r0])); cols.append(np.array([oy + j])); vals.append(np.array([-float(h.storage_limit_kwh)]))
            lo.append(np.array([-INF])); hi_b.append(np.array([0.0]))
            kwh_rows.append((r0, j))
            r0 += 1
    # (6) conservation per (hub, commodity)
    xk_r, xk_c = np.nonzero(sup_x > 0)  # x index, commodity
    cons_key = hi[xk_r] * nK + xk_c
    zkey = zh * nK + zk
    keys = np.unique(np.concatenate([cons_key, zkey]))
    krow = {int(k): r0 + i for i, k in enumerate(keys)}
    kr = np.searchsorted(keys, cons_key)
    rows.append(r0 + kr); cols.append(ox + xk_r); vals.append(sup_x[xk_r, xk_c])
    rows.append(r0 + np.searchsorted(keys, zkey)); cols.append(oz + np.arange(nZ)); vals.append(-np.ones(nZ))
    lo.append(np.zeros(keys.size)); hi_b.append(np.zeros(keys.size)); r0 += keys.size
    # (7) destination capacity
    dest_row = r0
    rows.append(r0 + zr); cols.append(oz + np.arange(nZ)); vals.append(np.ones(nZ))
    lo.append(np.full(nR, -INF)); hi_b.append(dest_cap); r0 += nR
    # (8) prefecture rule
    pref_rows = []
    for pp in rule_pref:
        js = np.array(hubs_in[pp])
        rows.append(np.full(js.size, r0)); cols.append(oy + js); vals.append(np.ones(js.size))
        lo.append(np.array([1.0])); hi_b.append(np.array([INF]))
        pref_rows.append((r0, pp))
        r0 += 1
    # (9) aggregate capacity cut
    rows.append(np.full(nH, r0)); cols.append(oy + np.arange(nH)); vals.append(hub_cap)
    lo.append(np.array([total_supply])); hi_b.append(np.array([INF])); r0 += 1

    A = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r0, ncol))
    col_lo = np.zeros(ncol)
    col_hi = np.concatenate([np.ones(nH), np.ones(nX), np.full(nZ, INF)])
    for j, h in enumerate(H):
        if h.must_open:
            col_lo[j] = 1.0
    integer = np.zeros(ncol, bool)
    integer[:nH] = True
    if p.single_source:
        integer[ox:ox + nX] = True
    packaging_const = float(sum(G_sup[:, cls_of == cc].sum() * st.packaging_cost_per_t[cc] for cc in SAFETY_CLASSES))
    out = solve_milp(c, A, np.concatenate(lo), np.concatenate(hi_b), col_lo, col_hi, integer,
                     time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, threads=threads,
                     offset=packaging_const, log=log, options=highs_options)
    size = {"columns": out.n_cols, "rows": out.n_rows, "nonzeros": out.n_nonzeros, "binaries": out.n_integer,
            "sources": len(S), "supply_groups": nG, "candidate_hubs": nH, "destinations": nR,
            "commodities": nK, "assignment_arcs": nX, "outbound_arcs": nZ}
    settings_used = {
        "circuity": st.circuity if p.distance is None else None,
        "distance": "great-circle x circuity" if p.distance is None else "user matrix",
        "co2_kg_per_tkm": st.co2_kg_per_tkm, "co2_factor_source": st.co2_factor_source,
        "cost_per_tkm": st.cost_per_tkm, "payload_factor": st.payload_factor,
        "packaging_cost_per_t": st.packaging_cost_per_t, "carbon_price_per_t_co2": st.carbon_price_per_t_co2,
        "single_source": p.single_source, "grouping": p.grouping,
        "max_hubs_per_group": p.max_hubs_per_group, "max_destinations_per_hub": p.max_destinations_per_hub,
        "storage_outlet_fleet_threshold": st.storage_outlet_fleet_threshold,
    }
    if out.status in ("infeasible", "infeasible_or_unbounded"):
        raise NetworkInfeasible(
            "no plan satisfies all constraints together although each capacity total suffices: the combination of "
            "hub/destination capacities, class restrictions, single sourcing and the prefecture storage-outlet rule "
            "cannot be met; relax single sourcing, add capacity or add compatible candidates", constraint="combination")
    if not out.has_solution:
        bt = f"{out.bound:.6g}" if out.bound is not None else "none"
        return NetworkPlan(p.name, f"{out.status}_no_incumbent" if out.status == "time_limit" else out.status,
                           None, out.bound, None, out.seconds, [], [], [], {}, None, [], size, settings_used,
                           message=f"no feasible plan found ({out.model_status}); proven lower bound on cost {bt}; "
                                   "raise the time limit")
    x = out.x
    act = out.row_activity
    y = x[:nH] > 0.5
    xv = x[ox:ox + nX]
    zv = x[oz:]
    opened = [H[j].hub_id for j in np.flatnonzero(y)]
    # flows
    inbound = []
    for a in np.flatnonzero(xv > 1e-9):
        g, j = gi[a], hi[a]
        for ki in np.flatnonzero(G_sup[g] > 0):
            k = commodities[ki]
            inbound.append({"source": S[G_src[g]].source_id, "hub": H[j].hub_id, "class": k[0], "chemistry": k[1],
                            "route": k[2], "tonnes": float(G_sup[g, ki] * xv[a]), "km": float(dist_gh[g, j])})
    outbound = []
    for b in np.flatnonzero(zv > 1e-9):
        k = commodities[zk[b]]
        outbound.append({"hub": H[zh[b]].hub_id, "destination": R[zr[b]].dest_id, "class": k[0], "chemistry": k[1],
                         "route": k[2], "tonnes": float(zv[b]), "km": float(d_hr[zh[b], zr[b]])})
    # cost breakdown
    tkm_in = (sup_x * xv[:, None]) * dist_gh[gi, hi][:, None]  # (nX, nK)
    tkm_out = zv * d_hr[zh, zr]
    breakdown = {
        "fixed": float(sum(H[j].fixed_cost for j in np.flatnonzero(y))),
        "handling": float((G_tot[gi] * xv * hub_handling[hi]).sum()),
        "transport_inbound": float((tkm_in * rate_k[None, :]).sum()),
        "transport_outbound": float((tkm_out * rate_k[zk]).sum()),
        "packaging": packaging_const,
        "gate_fees_net": float((zv * gate[zr, zk]).sum()),
    }
    co2 = float((tkm_in * co2_k[None, :]).sum() + (tkm_out * co2_k[zk]).sum())
    breakdown["carbon"] = float(co2 / 1000.0 * st.carbon_price_per_t_co2)
    breakdown["total"] = float(sum(breakdown.values()))
    # binding constraints (slack ≈ 0 at the incumbent)
    tol = 1e-6
    binding = []
    for j in np.flatnonzero(y):
        used = act[cap_row + j] + hub_cap[j]
        if hub_cap[j] - used <= tol * max(1.0, hub_cap[j]):
            binding.append({"constraint": "hub_capacity", "hub": H[j].hub_id, "capacity_t": float(hub_cap[j]),
                            "used_t": float(used)})
    for rr, j, cc, q in class_rows:
        if y[j] and -act[rr] <= tol * max(1.0, q):
            binding.append({"constraint": "hub_class_capacity", "hub": H[j].hub_id, "class": cc, "capacity_t": q})
    for rr, j in kwh_rows:
        if y[j] and -act[rr] <= tol * max(1.0, H[j].storage_limit_kwh):
            binding.append({"constraint": "hub_storage_kwh", "hub": H[j].hub_id, "limit_kwh": H[j].storage_limit_kwh})
    for r in range(nR):
        if dest_cap[r] - act[dest_row + r] <= tol * max(1.0, dest_cap[r]):
            binding.append({"constraint": "destination_capacity", "destination": R[r].dest_id,
                            "capacity_t": float(dest_cap[r])})
    for rr, pp in pref_rows:
        if act[rr] <= 1 + tol:
            js = [j for j in hubs_in[pp] if y[j]]
            # at its limit: exactly one storage outlet open in a prefecture the rule covers
            binding.append({"constraint": "prefecture_storage_outlet", "prefecture": pp,
                            "fleet": p.prefecture_fleet[pp], "open_hubs": [H[j].hub_id for j in js]})
    msg = "" if out.status == "optimal" else f"stopped at {out.model_status}; plan feasible, gap {out.gap:.4%}"
    return NetworkPlan(p.name, out.status, out.objective, out.bound, out.gap, out.seconds, opened, inbound, outbound,
                       breakdown, co2, binding, size, settings_used, message=msg)


def compare_plans(plans: dict) -> list[dict]:
    """Scenarios side by side: one row per metric, one column per scenario name."""
    keys = ["status", "objective", "gap", "opened_hubs", "transport_co2_kg", "binding_constraints"]
    cost_keys = sorted({k for p in plans.values() for k in p.cost_breakdown})
    rows = []
    for k in keys:
        row = {"metric": k}
        for name, p in plans.items():
            v = getattr(p, k)
            row[name] = len(v) if isinstance(v, list) else v
        rows.append(row)
    for k in cost_keys:
        rows.append({"metric": f"cost.{k}", **{name: p.cost_breakdown.get(k) for name, p in plans.items()}})
    return rows
