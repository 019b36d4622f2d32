"""Vehicle routing with the OR-Tools routing library (Google OR-Tools, Perron & Furnon).

Two uses:

* :func:`solve_cvrp` — the classical capacitated VRP on TSPLIB/CVRPLIB instances
  (Augerat et al. 1998), EUC_2D rounded distances, guided local search
  (Voudouris & Tsang 1999) under a time limit.  Used to verify and benchmark the
  routing engine against published optima.
* :func:`plan_collection_routes` — a storage hub's pickups for one day: vehicle
  capacity in kg *and* pack count, class segregation (class C packs only on
  vehicles equipped for P911 packaging), time windows and a maximum route
  duration.  Pickups that cannot be served are reported with their reason, never
  silently dropped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from .instances import CvrpInstance


class RoutingInputError(ValueError):
    """Routing input is inconsistent; the message names the pickup/vehicle and the fix."""


# --------------------------------------------------------------------------- CVRP


@dataclass
class CvrpResult:
    name: str
    cost: int | None
    routes: list[list[int]]  # TSPLIB customer ids, depot excluded
    seconds: float
    status: str
    vehicles_used: int
    vehicles_available: int
    best_known: float | None = None

    @property
    def gap(self) -> float | None:
        if self.cost is None or not self.best_known:
            return None
        return (self.cost - self.best_known) / self.best_known

    def to_json(self) -> dict:
        return {
            "instance": self.name,
            "cost": self.cost,
            "routes": self.routes,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "vehicles_used": self.vehicles_used,
            "best_known": self.best_known,
            "gap": self.gap,
        }


def clock_hhmm(minutes: int) -> str:
    """Minutes after midnight as HH:MM (route start and end times)."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def route_cost(distance: np.ndarray, routes_idx: Sequence[Sequence[int]]) -> int:
    """Total length of closed routes (index space, depot = 0, depot excluded from routes)."""
    total = 0
    for r in routes_idx:
        prev = 0
        for k in r:
            total += int(distance[prev, k])
            prev = k
        total += int(distance[prev, 0])
    return total


def _search_params(time_limit_s: float, first: str = "SAVINGS") -> pywrapcp.DefaultRoutingSearchParameters:
    p = pywrapcp.DefaultRoutingSearchParameters()
    p.first_solution_strategy = getattr(routing_enums_pb2.FirstSolutionStrategy, first)
    p.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    p.time_limit.FromMilliseconds(max(1, int(time_limit_s * 1000)))
    return p


def solve_cvrp(
    inst: CvrpInstance,
    *,
    time_limit_s: float = 10.0,
    vehicles: int | None = None,
    spare_vehicles: int | None = None,
) -> CvrpResult:
    """Solve a CVRP instance with OR-Tools routing (savings start, guided local search).

    The fleet size is free unless ``vehicles`` is given, in which case exactly that
    many non-empty routes are built (the CVRPLIB ``-kN`` convention).  With a free
    fleet the model offers a few more vehicles than ``ceil(demand / capacity)`` and
    unused ones cost nothing (``spare_vehicles`` overrides how many more).
    Returns the cost as the sum of rounded EUC_2D arc lengths (CVRPLIB convention).
    """
    t0 = time.perf_counter()
    n = len(inst.node_ids)
    dem = inst.demand.astype(int)
    total = int(dem.sum())
    k_min = max(1, math.ceil(total / inst.capacity))
    if vehicles is not None:
        if vehicles < k_min:
            raise RoutingInputError(
                f"{inst.name}: {vehicles} vehicles of capacity {inst.capacity} cannot carry the total demand "
                f"{total} (at least {k_min} needed); raise --vehicles"
            )
        k = vehicles
    else:
        # Free fleet: a few more than the bin-packing bound, since optimal plans
        # sometimes use one or two more routes than ceil(demand / capacity).
        spare = max(3, k_min // 2) if spare_vehicles is None else spare_vehicles
        k = min(n - 1, k_min + spare)
    dist = inst.distance.astype(np.int64)
    manager = pywrapcp.RoutingIndexManager(n, k, 0)
    routing = pywrapcp.RoutingModel(manager)
    # Matrix/vector transits are evaluated in C++; Python callbacks would make each
    # local-search move cross the interpreter and cut the search depth several-fold.
    cb = routing.RegisterTransitMatrix(dist.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(cb)
    dcb = routing.RegisterUnaryTransitVector(dem.tolist())
    routing.AddDimensionWithVehicleCapacity(dcb, 0, [int(inst.capacity)] * k, True, "load")
    if vehicles is not None:
        if vehicles > n - 1:
            raise RoutingInputError(
                f"{inst.name}: {vehicles} routes requested but there are only {n - 1} customers; lower --vehicles")
        # A fixed fleet means exactly K non-empty routes (CVRPLIB "-kN" convention):
        # count the customers on each route and require at least one.
        ones = [0] + [1] * (n - 1)
        routing.AddDimension(routing.RegisterUnaryTransitVector(ones), 0, n, True, "customers")
        cnt = routing.GetDimensionOrDie("customers")
        for v in range(k):
            cnt.CumulVar(routing.End(v)).SetMin(1)
    # Savings builds good free-fleet starts; with a forced route count it can fail to
    # produce a first solution, where path-cheapest-arc always does.
    first = "SAVINGS" if vehicles is None else "PATH_CHEAPEST_ARC"
    params = _search_params(max(0.05, time_limit_s - (time.perf_counter() - t0)), first)
    sol = routing.SolveWithParameters(params)
    if sol is None:
        return CvrpResult(inst.name, None, [], time.perf_counter() - t0, "no_solution", 0, k, inst.best_known)
    routes_idx: list[list[int]] = []
    for v in range(k):
        idx = routing.Start(v)
        r = []
        idx = sol.Value(routing.NextVar(idx))
        while not routing.IsEnd(idx):
            r.append(manager.IndexToNode(idx))
            idx = sol.Value(routing.NextVar(idx))
        if r:
            routes_idx.append(r)
    cost = route_cost(dist, routes_idx)
    routes = [[inst.node_ids[i] for i in r] for r in routes_idx]
    return CvrpResult(
        inst.name, cost, routes, time.perf_counter() - t0, "feasible",
        sum(1 for r in routes if r), k, inst.best_known,
    )


# ------------------------------------------------------------ collection routes


@dataclass(frozen=True)
class Pickup:
    """Packs waiting at one site/outlet for collection today.

    Times are minutes after midnight (local); ``safety_class`` is the worst class
    among the packs (a class C pack makes the whole pickup class C).
    """

    pickup_id: str
    lat: float
    lon: float
    mass_kg: float
    packs: int
    safety_class: str = "A"
    window_start_min: int = 0
    window_end_min: int = 24 * 60
    service_min: int = 15


@dataclass(frozen=True)
class CollectionVehicle:
    """A truck based at the hub. ``class_c_allowed``: equipped and approved for P911 packs."""

    vehicle_id: str
    capacity_kg: float
    capacity_packs: int
    class_c_allowed: bool = False
    max_route_min: int = 10 * 60
    shift_start_min: int = 7 * 60
    shift_end_min: int = 19 * 60
    cost_per_km: float = 1.0
    fixed_cost: float = 0.0


@dataclass(frozen=True)
class Hub:
    hub_id: str
    lat: float
    lon: float


@dataclass
class Stop:
    pickup_id: str
    arrival_min: int
    load_kg: float  # on board after the pickup
    packs_on_board: int


@dataclass
class VehicleRoute:
    vehicle_id: str
    stops: list[Stop]
    distance_km: float
    start_min: int
    end_min: int
    load_kg: float
    packs: int
    cost: float

    @property
    def duration_min(self) -> int:
        return self.end_min - self.start_min


@dataclass
class CollectionPlan:
    routes: list[VehicleRoute]
    unserved: list[tuple[str, str]]  # (pickup_id, reason)
    total_distance_km: float
    total_cost: float
    seconds: float
    status: str

    def to_json(self) -> dict:
        return {
            "status": self.status,
            "total_distance_km": round(self.total_distance_km, 3),
            "total_cost": round(self.total_cost, 2),
            "seconds": round(self.seconds, 3),
            "routes": [
                {
                    "vehicle_id": r.vehicle_id, "distance_km": round(r.distance_km, 3),
                    "start_min": r.start_min, "end_min": r.end_min, "load_kg": r.load_kg, "packs": r.packs,
                    "stops": [s.__dict__ for s in r.stops],
                }
                for r in self.routes
            ],
            "unserved": [{"pickup_id": p, "reason": why} for p, why in self.unserved],
        }


def _single_visit_fits(v: CollectionVehicle, p: Pickup, out_min: float, back_min: float) -> bool:
    """Could vehicle ``v`` serve pickup ``p`` alone (hub → pickup → hub)?"""
    if p.safety_class.upper() == "C" and not v.class_c_allowed:
        return False
    if p.mass_kg > v.capacity_kg or p.packs > v.capacity_packs:
        return False
    arrive = max(v.shift_start_min + out_min, p.window_start_min)
    return (
        arrive <= p.window_end_min
        and out_min + p.service_min + back_min <= v.max_route_min
        and arrive + p.service_min + back_min <= v.shift_end_min
    )


def plan_collection_routes(
    hub: Hub,
    pickups: Sequence[Pickup],
    vehicles: Sequence[CollectionVehicle],
    *,
    distance_km: np.ndarray | None = None,
    speed_kmh: float = 40.0,
    circuity: float = 1.3,
    time_limit_s: float = 5.0,
) -> CollectionPlan:
    """Plan one day's pickups from a hub (capacitated VRP with time windows).

    Constraints: vehicle capacity in kg and in packs, class C pickups only on
    vehicles with ``class_c_allowed`` (P911 packaging, ADR SP 376), pickup time
    windows, vehicle shift and maximum route duration (``max_route_min``).
    ``distance_km`` is an optional (1+P)x(1+P) road matrix with the hub first;
    otherwise great-circle × ``circuity``.  Travel time = distance / ``speed_kmh``.
    Pickups no vehicle can take are listed in ``unserved`` with the reason.
    """
    from .geo import road_km_matrix

    t0 = time.perf_counter()
    if not vehicles:
        raise RoutingInputError("no vehicles given; add at least one vehicle to the hub")
    if speed_kmh <= 0:
        raise RoutingInputError(f"speed_kmh is {speed_kmh}; it must be positive")
    seen = set()
    for p in pickups:
        if p.pickup_id in seen:
            raise RoutingInputError(f"pickup id {p.pickup_id} appears twice; ids must be unique")
        seen.add(p.pickup_id)
        if p.mass_kg < 0 or p.packs < 0:
            raise RoutingInputError(f"pickup {p.pickup_id}: negative mass or pack count")
        if p.window_end_min < p.window_start_min:
            raise RoutingInputError(f"pickup {p.pickup_id}: time window ends ({p.window_end_min}) before it starts ({p.window_start_min})")
        if str(p.safety_class).upper() not in ("A", "B", "C"):
            raise RoutingInputError(f"pickup {p.pickup_id}: safety class '{p.safety_class}' unknown; expected A, B or C")
    for v in vehicles:
        if v.capacity_kg <= 0 or v.capacity_packs <= 0:
            raise RoutingInputError(f"vehicle {v.vehicle_id}: capacity must be positive (kg {v.capacity_kg}, packs {v.capacity_packs})")
        if v.max_route_min <= 0 or v.shift_end_min <= v.shift_start_min:
            raise RoutingInputError(f"vehicle {v.vehicle_id}: empty shift or non-positive max_route_min")

    n_all = len(pickups)
    if distance_km is None:
        lat = np.array([hub.lat] + [p.lat for p in pickups])
        lon = np.array([hub.lon] + [p.lon for p in pickups])
        dkm = road_km_matrix(lat, lon, lat, lon, circuity)
    else:
        dkm = np.asarray(distance_km, float)
        if dkm.shape != (n_all + 1, n_all + 1):
            raise RoutingInputError(f"distance matrix is {dkm.shape}; expected {(n_all + 1, n_all + 1)} (hub first, then pickups)")
        if np.any(dkm < 0):
            raise RoutingInputError("distance matrix has negative entries")
    travel_min = dkm / speed_kmh * 60.0

    # Screen pickups that no vehicle can ever take, so the reason is exact.
    unserved: list[tuple[str, str]] = []
    keep: list[int] = []  # indices into pickups
    max_kg = max(v.capacity_kg for v in vehicles)
    max_packs = max(v.capacity_packs for v in vehicles)
    any_c = any(v.class_c_allowed for v in vehicles)
    for k, p in enumerate(pickups):
        cls = p.safety_class.upper()
        node = k + 1
        if not np.isfinite(dkm[0, node]) or not np.isfinite(dkm[node, 0]):
            unserved.append((p.pickup_id, "no road connection to the hub in the distance matrix"))
        elif p.mass_kg > max_kg:
            unserved.append((p.pickup_id, f"{p.mass_kg:.0f} kg exceeds the largest vehicle ({max_kg:.0f} kg); split the pickup"))
        elif p.packs > max_packs:
            unserved.append((p.pickup_id, f"{p.packs} packs exceed the largest vehicle ({max_packs} packs); split the pickup"))
        elif cls == "C" and not any_c:
            unserved.append((p.pickup_id, "class C packs need a vehicle equipped for P911; none at this hub"))
        elif not any(
            _single_visit_fits(v, p, travel_min[0, node], travel_min[node, 0]) for v in vehicles
        ):
            unserved.append((p.pickup_id, "cannot be reached within its time window and a vehicle's shift/max route duration"))
        else:
            keep.append(k)

    nodes = [0] + [k + 1 for k in keep]
    n = len(nodes)
    nv = len(vehicles)
    routes: list[VehicleRoute] = []
    status = "no_pickups"
    if keep:
        sub_km = dkm[np.ix_(nodes, nodes)]
        dist_m = np.rint(sub_km * 1000).astype(np.int64)
        serv = np.array([0] + [pickups[k].service_min for k in keep], float)
        # time transit i->j = service at i + travel i->j, in whole minutes (ceil keeps windows safe)
        t_ij = np.ceil(serv[:, None] + travel_min[np.ix_(nodes, nodes)] - 1e-9).astype(np.int64)
        manager = pywrapcp.RoutingIndexManager(n, nv, 0)
        routing = pywrapcp.RoutingModel(manager)
        for v_i, v in enumerate(vehicles):
            cost_mat = np.rint(dist_m * v.cost_per_km).astype(np.int64)  # cost per metre ×1000 per km
            cb = routing.RegisterTransitMatrix(cost_mat.tolist())
            routing.SetArcCostEvaluatorOfVehicle(cb, v_i)
            routing.SetFixedCostOfVehicle(int(round(v.fixed_cost * 1000)), v_i)
        kg = [0] + [int(math.ceil(pickups[k].mass_kg)) for k in keep]
        pk = [0] + [int(pickups[k].packs) for k in keep]
        routing.AddDimensionWithVehicleCapacity(
            routing.RegisterUnaryTransitVector(kg), 0, [int(math.floor(v.capacity_kg)) for v in vehicles], True, "kg")
        routing.AddDimensionWithVehicleCapacity(
            routing.RegisterUnaryTransitVector(pk), 0, [int(v.capacity_packs) for v in vehicles], True, "packs")
        horizon = max(v.shift_end_min for v in vehicles) + 1
        tcb = routing.RegisterTransitMatrix(t_ij.tolist())
        routing.AddDimension(tcb, horizon, horizon, False, "time")
        tdim = routing.GetDimensionOrDie("time")
        for v_i, v in enumerate(vehicles):
            tdim.CumulVar(routing.Start(v_i)).SetRange(v.shift_start_min, v.shift_end_min)
            tdim.CumulVar(routing.End(v_i)).SetRange(v.shift_start_min, v.shift_end_min)
            tdim.SetSpanUpperBoundForVehicle(int(v.max_route_min), v_i)
            routing.AddVariableMinimizedByFinalizer(tdim.CumulVar(routing.Start(v_i)))
            routing.AddVariableMinimizedByFinalizer(tdim.CumulVar(routing.End(v_i)))
        not_c = [i for i, v in enumerate(vehicles) if not v.class_c_allowed]
        big = int(dist_m.max() * max(v.cost_per_km for v in vehicles) * (n + 1) + 10**6)
        for pos, k in enumerate(keep, start=1):
            p = pickups[k]
            idx = manager.NodeToIndex(pos)
            tdim.CumulVar(idx).SetRange(int(p.window_start_min), int(p.window_end_min))
            if p.safety_class.upper() == "C" and not_c:
                # class segregation: only P911-equipped vehicles may carry class C packs
                routing.VehicleVar(idx).RemoveValues(not_c)
            # Dropping a pickup is allowed only at a price no route saving can match,
            # so a pickup is left out only when no vehicle can take it.
            routing.AddDisjunction([idx], big)
        params = _search_params(time_limit_s, first="PATH_CHEAPEST_ARC")
        sol = routing.SolveWithParameters(params)
        if sol is None:
            status = "no_solution"
            for k in keep:
                unserved.append((pickups[k].pickup_id, "the solver found no feasible plan within the time limit"))
        else:
            status = "feasible"
            served = set()
            for v_i, v in enumerate(vehicles):
                idx = routing.Start(v_i)
                start = sol.Min(tdim.CumulVar(idx))
                stops: list[Stop] = []
                load = 0.0
                npk = 0
                km = 0.0
                prev = 0
                idx = sol.Value(routing.NextVar(idx))
                while not routing.IsEnd(idx):
                    node = manager.IndexToNode(idx)
                    p = pickups[keep[node - 1]]
                    load += p.mass_kg
                    npk += p.packs
                    km += sub_km[prev, node]
                    stops.append(Stop(p.pickup_id, int(sol.Min(tdim.CumulVar(idx))), load, npk))
                    served.add(keep[node - 1])
                    prev = node
                    idx = sol.Value(routing.NextVar(idx))
                if not stops:
                    continue
                km += sub_km[prev, 0]
                end = sol.Min(tdim.CumulVar(idx))
                routes.append(VehicleRoute(v.vehicle_id, stops, float(km), int(start), int(end), load, npk,
                                           float(km * v.cost_per_km + v.fixed_cost)))
            # Name the fleet-level shortage when there is one: it is the usual cause.
            need_kg = sum(pickups[k].mass_kg for k in keep)
            need_packs = sum(pickups[k].packs for k in keep)
            fleet_kg = sum(v.capacity_kg for v in vehicles)
            fleet_packs = sum(v.capacity_packs for v in vehicles)
            short = []
            if need_packs > fleet_packs:
                short.append(f"today's {need_packs} packs exceed the fleet's pack capacity {fleet_packs}")
            if need_kg > fleet_kg:
                short.append(f"today's {need_kg:.0f} kg exceed the fleet's capacity {fleet_kg:.0f} kg")
            why = "; ".join(short) + "; " if short else ""
            for k in keep:
                if k not in served:
                    unserved.append((pickups[k].pickup_id,
                                     why + "no vehicle can fit it together with the other pickups within capacities, "
                                     "time windows and route durations; add a vehicle or widen the window"))
    total_km = float(sum(r.distance_km for r in routes))
    total_cost = float(sum(r.cost for r in routes))
    if unserved and status == "feasible":
        status = "partial"
    elif unserved and status == "no_pickups":
        status = "none_served"  # there were pickups, and no vehicle can take any of them
    return CollectionPlan(routes, unserved, total_km, total_cost, time.perf_counter() - t0, status)
