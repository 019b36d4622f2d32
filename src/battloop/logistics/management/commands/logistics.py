"""`battloop logistics ...`: solver checks on public benchmark instances."""

from __future__ import annotations

import json
import math

from django.core.management.base import BaseCommand, CommandError

from battloop.logistics.cflp import CflpInfeasible, solve_cflp
from battloop.logistics.instances import InstanceFormatError, read_cvrplib, read_holmberg, read_orlib_cap
from battloop.logistics.routing import RoutingInputError, solve_cvrp


def _positive_float(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return v


def _positive_int(text: str) -> int:
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive whole number")
    return v


class Command(BaseCommand):
    help = "Solve facility-location (CFLP) and vehicle-routing (CVRP) benchmark instances with battloop's solvers."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        c = sub.add_parser("solve-cflp", help="capacitated facility location (OR-Library cap*, Holmberg p*) with HiGHS")
        c.add_argument("file", help="instance file")
        c.add_argument("--format", required=True, choices=["orlib", "holmberg"], help="file format")
        c.add_argument("--capacity", type=_positive_float, default=None,
                       help="capacity substituted for the word 'capacity' (capa/capb/capc) or overriding all capacities")
        c.add_argument("--single-source", action="store_true", help="each customer served by exactly one facility")
        c.add_argument("--time-limit", type=_positive_float, default=None, help="seconds")
        c.add_argument("--json", action="store_true", help="print one JSON object")
        c.add_argument("--assignment", action="store_true", help="include the customer assignment in JSON output")
        v = sub.add_parser("solve-cvrp", help="capacitated vehicle routing (CVRPLIB .vrp, EUC_2D) with OR-Tools")
        v.add_argument("file", help=".vrp instance file")
        v.add_argument("--time-limit", type=_positive_float, default=10.0, help="seconds (default 10)")
        v.add_argument("--vehicles", type=_positive_int, default=None, help="fixed fleet size (default: free)")
        v.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **opts):
        action = opts["action"]
        if action == "solve-cflp":
            return self._cflp(opts)
        if action == "solve-cvrp":
            return self._cvrp(opts)
        raise CommandError(f"unknown action {action}")  # argparse prevents this

    def _emit(self, data: dict, as_json: bool, lines: list[str]) -> None:
        if as_json:
            self.stdout.write(json.dumps(data, ensure_ascii=False))
        else:
            for ln in lines:
                self.stdout.write(ln)

    def _cflp(self, o):
        reader = read_orlib_cap if o["format"] == "orlib" else read_holmberg
        try:
            inst = reader(o["file"], capacity=o["capacity"])
            res = solve_cflp(inst, single_source=o["single_source"], time_limit_s=o["time_limit"])
        except (InstanceFormatError, CflpInfeasible) as exc:
            raise CommandError(str(exc)) from None
        data = res.to_json(with_assignment=o["assignment"])
        lines = [
            f"instance      {inst.name} ({inst.n_facilities} facilities x {inst.n_customers} customers, "
            f"{'single' if o['single_source'] else 'multi'}-source)",
            f"status        {res.status}",
            f"objective     {res.objective if res.objective is not None else '-'}",
            f"bound         {res.bound if res.bound is not None else '-'}",
            f"gap           {res.gap if res.gap is not None else '-'}",
            f"seconds       {res.seconds:.3f}",
            f"open          {res.open_facilities if res.open_facilities is not None else '-'}",
        ]
        if res.message:
            lines.append(f"note          {res.message}")
        self._emit(data, o["json"], lines)
        if not res.has_plan:
            raise CommandError(f"{inst.name}: {res.message}")

    def _cvrp(self, o):
        try:
            inst = read_cvrplib(o["file"])
            res = solve_cvrp(inst, time_limit_s=o["time_limit"], vehicles=o["vehicles"])
        except (InstanceFormatError, RoutingInputError) as exc:
            raise CommandError(str(exc)) from None
        data = res.to_json()
        lines = [
            f"instance      {inst.name} ({inst.n_customers} customers, capacity {inst.capacity})",
            f"status        {res.status}",
            f"cost          {res.cost}",
            f"best known    {inst.best_known if inst.best_known is not None else '-'}"
            + (f"  (gap {res.gap:.2%})" if res.gap is not None else ""),
            f"routes        {res.vehicles_used}",
            *[f"  route {i + 1}: {' '.join(map(str, r))}" for i, r in enumerate(res.routes)],
            f"seconds       {res.seconds:.3f}",
        ]
        self._emit(data, o["json"], lines)
        if res.cost is None:
            raise CommandError(f"{inst.name}: no feasible routing found within {o['time_limit']} s; raise --time-limit")
