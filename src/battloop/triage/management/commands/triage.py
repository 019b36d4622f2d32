"""``battloop triage``: evaluate and compare triage policies, grade bench results, match second-life demand."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from battloop.triage.grading import (GradingError, bench_from_pylontech_console, grade, load_safety_rules,
                                     read_bench_csv, to_dossiers)
from battloop.triage.matching import MatchingError, MatchSettings, match
from battloop.triage.policy import (ROUTES, DossierError, PolicyError, compare, evaluate, load_policy, read_dossiers,
                                    triage_kpis)
from battloop.triage.rules_yaml import RuleFileError


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _read_table(path: str, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"{path}: no such file; give the {what} as CSV")
    try:
        return pd.read_csv(p, encoding="utf-8-sig", skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CommandError(f"{path}: not a readable UTF-8 CSV of {what} ({exc})") from None


class Command(BaseCommand):
    help = "Triage packs: evaluate or compare policies on dossiers, grade bench results, match second-life demand."

    def add_arguments(self, parser):
        # The short form of registry-compare: battloop triage --policy new.yaml --compare current
        parser.add_argument("--policy", dest="top_policy", metavar="POLICY",
                            help="with --compare and no ACTION: the new policy to compare on the registry's packs")
        parser.add_argument("--compare", dest="top_compare", metavar="AGAINST",
                            help="with --policy and no ACTION: the policy in force ('current', 'default' or a path)")
        parser.add_argument("--json", dest="top_json", action="store_true", help="with --policy/--compare: print JSON")
        sub = parser.add_subparsers(dest="action", required=False, metavar="ACTION")

        ev = sub.add_parser("evaluate", help="route every dossier of a CSV with a policy (no database)")
        ev.add_argument("--dossiers", required=True, help="CSV of dossiers (serial, chemistry, soh_pct, ir_ratio, "
                                                          "safety_class, optional columns)")
        ev.add_argument("--policy", default="default", help="policy YAML path or 'default'")
        ev.add_argument("--json", action="store_true", help="print [{serial, route, reasons}] as JSON")
        ev.add_argument("--output", help="write the JSON to this file instead of standard output")
        ev.add_argument("--retired", type=int, help="packs retired in the period: also report the triage KPIs")

        cmp_ = sub.add_parser("compare", help="what changes if a new policy replaces the current one")
        cmp_.add_argument("--dossiers", required=True)
        cmp_.add_argument("--policy", required=True, help="the new policy (path)")
        cmp_.add_argument("--against", default="current", help="the policy in force (path, 'default' or 'current')")
        cmp_.add_argument("--json", action="store_true")

        rn = sub.add_parser("run", help="triage the registry's flagged and out-of-service packs; store decisions as events")
        rn.add_argument("--policy", default="default", help="policy YAML path, 'default' or 'current'")
        rn.add_argument("--json", action="store_true")

        rc = sub.add_parser("registry-compare", help="what would change in the registry if --policy replaced the current one")
        rc.add_argument("--policy", required=True)
        rc.add_argument("--against", default="current", help="the policy in force: 'current' (of the stored "
                                                              "decisions), 'default' or a path")
        rc.add_argument("--json", action="store_true")

        val = sub.add_parser("validate", help="check a policy file and show its stages and identity")
        val.add_argument("--policy", required=True)
        val.add_argument("--json", action="store_true")

        gr = sub.add_parser("grade", help="safety class A/B/C and SOH from bench results")
        gr.add_argument("--bench", required=True, help="CSV of bench results")
        gr.add_argument("--capture", action="append", default=[], help="Pylontech console capture (file or directory) "
                                                                       "whose BMS history fills empty columns")
        gr.add_argument("--rules", default="default", help="safety-class rules YAML (default: the shipped rules)")
        gr.add_argument("--dossiers-out", help="write the graded packs as a dossier CSV for 'evaluate'")
        gr.add_argument("--store", action="store_true", help="store the results in the registry (one transaction; bad "
                                                             "rows quarantined; packs already triaged are re-triaged)")
        gr.add_argument("--quarantine", help="with --store: where to write the quarantined rows (CSV)")
        gr.add_argument("--force", action="store_true", help="with --store: re-read a file imported before")
        gr.add_argument("--actor", default="bench", help="with --store: who records the results")
        gr.add_argument("--json", action="store_true")

        rd = sub.add_parser("redeploy", help="put a triaged pack routed to reuse into second life, with its warranty")
        rd.add_argument("serial")
        rd.add_argument("--site", required=True, help="site code of the second-life application")
        rd.add_argument("--warranty", required=True, help='warranty terms, e.g. "2 years or 1,000 cycles to 70%%"')
        rd.add_argument("--integrator", required=True, help="code of the organization installing it")
        rd.add_argument("--demand", default="", help="the second-life demand it serves (matching's demand_id)")
        rd.add_argument("--start", help="start date YYYY-MM-DD (default today)")
        rd.add_argument("--actor", default="cli")
        rd.add_argument("--json", action="store_true")

        wr = sub.add_parser("warranties", help="warranty status of every redeployed pack")
        wr.add_argument("--as-of", help="judge on this date YYYY-MM-DD (default today)")
        wr.add_argument("--json", action="store_true")

        kp = sub.add_parser("kpis", help="the field's triage KPIs for a period (retired packs evaluated for second "
                                         "life, routed to reuse and recycling, received by certified recyclers)")
        kp.add_argument("--from", dest="date_from", help="first day YYYY-MM-DD (default: 364 days before --to)")
        kp.add_argument("--to", dest="date_to", help="last day YYYY-MM-DD (default today)")
        kp.add_argument("--json", action="store_true")

        mt = sub.add_parser("match", help="group graded packs into strings and assign them to second-life demand")
        mt.add_argument("--supply", required=True, help="CSV: serial, outlet, lat, lon, chemistry, soh_pct, "
                                                        "capacity_ah, ir_mohm, nominal_voltage_v")
        mt.add_argument("--demands", required=True, help="CSV: demand_id, energy_kwh, voltage_v, min_soh_pct, "
                                                         "chemistries, lat, lon, warranty[, cycles_per_year]")
        mt.add_argument("--string-packs", type=int, default=MatchSettings.string_packs)
        mt.add_argument("--max-capacity-spread-pct", type=float, default=MatchSettings.max_capacity_spread_pct)
        mt.add_argument("--max-resistance-spread-pct", type=float, default=MatchSettings.max_resistance_spread_pct)
        mt.add_argument("--max-distance-km", type=float, default=MatchSettings.max_distance_km)
        mt.add_argument("--time-limit", type=float, default=MatchSettings.time_limit_s, help="seconds for the solver")
        mt.add_argument("--assignments-out", help="write the string → demand assignments as CSV")
        mt.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        action = opts.get("action")
        if action is None:
            if not (opts.get("top_policy") and opts.get("top_compare")):
                raise CommandError("give an action (evaluate, compare, run, registry-compare, validate, grade, redeploy, "
                                   "warranties, kpis, match) or compare a policy on the registry: "
                                   "battloop triage --policy new.yaml --compare current")
            action = "registry-compare"
            opts = {**opts, "policy": opts["top_policy"], "against": opts["top_compare"], "json": opts["top_json"]}
        elif opts.get("top_policy") or opts.get("top_compare"):
            raise CommandError(f"--policy/--compare before the action are the short form of registry-compare; "
                               f"put them after '{action}'")
        try:
            return getattr(self, "_" + action.replace("-", "_"))(opts)
        except (PolicyError, RuleFileError) as exc:
            raise CommandError("invalid policy or rule file:\n" + "\n".join(exc.problems)) from None
        except (DossierError, GradingError) as exc:
            raise CommandError("invalid input:\n" + str(exc)) from None
        except MatchingError as exc:
            raise CommandError(str(exc)) from None

    # ------------------------------------------------------------------ actions
    def _run(self, o):
        from battloop.triage.registry_triage import current_policy, run

        policy = current_policy() if o["policy"] == "current" else load_policy(o["policy"])
        result = run(policy)
        if o["json"]:
            return self._emit(result)
        routes = ", ".join(f"{k} {v}" for k, v in result["routes"].items() if v)
        self.stdout.write(f"policy {result['policy']}: {result['packs']:,} packs triaged ({routes}); "
                          f"{result['changed']:,} new or changed decisions recorded as events")

    def _registry_compare(self, o):
        from battloop.triage.registry_triage import compare_with_current

        out = compare_with_current(load_policy(o["policy"]), against=o.get("against") or "current")
        if o["json"]:
            return self._emit(out)
        self._print_comparison(out)

    def _print_comparison(self, out):
        """What would change: packs per route before → after, each move and why (the rules
        that decided before and after, with example serials)."""
        self.stdout.write(f"{out['old']}  →  {out['new']}: {out['changed']:,} of {out['packs']:,} packs change route")
        for r in ROUTES:
            b, a = out["routes_before"][r], out["routes_after"][r]
            self.stdout.write(f"  {r:<20} {b:>8,} → {a:<8,} ({a - b:+,d})")
        for m in out["moves"]:
            self.stdout.write(f"{m['from']} → {m['to']}: {m['packs']:,} packs")
            for w in m["why"]:
                self.stdout.write(f"    {w['packs']:>6,}  was {w['old_rules']}, now {w['new_rules']} "
                                  f"(e.g. {', '.join(w['examples'])})")

    def _emit(self, data, output: str | None = None):
        text = json.dumps(_jsonable(data), ensure_ascii=False, indent=None if isinstance(data, list) else 2)
        if output:
            Path(output).write_text(text + "\n", encoding="utf-8")
        else:
            self.stdout.write(text)

    def _stream_records(self, decisions, output: str | None) -> None:
        """Write the decisions as one JSON list, a chunk at a time (a million packs fit in memory)."""
        sink = open(output, "w", encoding="utf-8") if output else None
        write = sink.write if sink else (lambda text: self.stdout.write(text, ending=""))
        try:
            write("[")
            first = True
            for chunk in decisions.iter_records():
                if not chunk:
                    continue
                body = ", ".join(json.dumps(r, ensure_ascii=False, default=str) for r in chunk)
                write(body if first else ", " + body)
                first = False
            write("]\n")
        finally:
            if sink:
                sink.close()

    def _evaluate(self, o):
        policy = load_policy(o["policy"])
        decisions = evaluate(policy, read_dossiers(o["dossiers"], policies=[policy]))
        if o["json"] or o["output"]:
            self._stream_records(decisions, o["output"])
            sys.stderr.write(f"policy {policy.identity}: {len(decisions)} dossiers evaluated\n")
            return
        counts = decisions.route_counts()
        self.stdout.write(f"policy {policy.identity} ({policy.source})")
        self.stdout.write(f"{len(decisions)} dossiers")
        for r in ROUTES:
            self.stdout.write(f"  {r:<20} {counts[r]:>8}")
        names = pd.Series(decisions.rule_names()).value_counts()
        self.stdout.write("rules that decided:")
        for name, count in names.items():
            self.stdout.write(f"  {name:<40} {count:>8}")
        if o["retired"] is not None:
            try:
                k = triage_kpis(o["retired"], decisions.routes)
            except ValueError as exc:
                raise CommandError(f"--retired: {exc}") from None
            self.stdout.write(f"evaluated for second life: {k['evaluated_for_second_life_share']:.1%} of "
                              f"{k['retired_packs']} retired (target ≥ {k['evaluated_target']:.0%}: "
                              f"{'met' if k['evaluated_target_met'] else 'not met'}); routed to reuse "
                              f"{k['routed_to_reuse_share']:.1%}; to recycling {k['routed_to_recycling_share']:.1%}")

    def _compare(self, o):
        new, old = load_policy(o["policy"]), load_policy(o["against"])
        out = compare(new, old, read_dossiers(o["dossiers"], policies=[new, old]))
        if o["json"]:
            self._emit(out)
            return
        self._print_comparison(out)

    def _validate(self, o):
        policy = load_policy(o["policy"])
        if o["json"]:
            self._emit(policy.summary())
            return
        self.stdout.write(f"{policy.source}: valid — {policy.identity}")
        q = policy.soh_quantile
        self.stdout.write(f"decides on SOH {'point estimate' if abs(q - 0.5) < 1e-9 else f'P{q * 100:g}'}")
        for stage in policy.summary()["stages"]:
            self.stdout.write(f"stage {stage['stage']}:")
            for r in stage["rules"]:
                self.stdout.write(f"  {r['rule']:<30} → {r['route']:<20} when {r['when']}")
        self.stdout.write(f"default → {policy.rules.default_outcome}")

    def _grade(self, o):
        if o["store"]:
            return self._grade_store(o)
        bench = read_bench_csv(o["bench"])
        history = None
        if o["capture"]:
            try:
                history = pd.concat([bench_from_pylontech_console(c) for c in o["capture"]], ignore_index=True)
            except (OSError, ValueError) as exc:
                raise CommandError(f"capture: {exc}") from None
        graded = grade(bench, load_safety_rules(o["rules"]), history=history)
        if o["dossiers_out"]:
            to_dossiers(graded).to_csv(o["dossiers_out"], index=False)
        cols = ["serial", "safety_class", "soh_pct", "ir_ratio", "class_rules", "class_reasons"]
        rows = graded[[c for c in cols if c in graded.columns]].to_dict(orient="records")
        if o["json"]:
            self._emit(rows)
            return
        for r in rows:
            soh = "—" if r["soh_pct"] is None or pd.isna(r["soh_pct"]) else f"{r['soh_pct']:.1f}%"
            self.stdout.write(f"{r['serial']:<24} class {r['safety_class']}  SOH {soh:>7}  {r['class_rules']}")

    def _grade_store(self, o):
        from battloop.registry.importer import ImportFailed
        from battloop.triage.bench import import_bench

        try:
            done = import_bench(o["bench"], captures=o["capture"], rules=o["rules"], actor=o["actor"],
                                quarantine_path=o["quarantine"], force=o["force"])
        except ImportFailed as exc:
            raise CommandError(str(exc)) from None
        r = done.report
        moves = [m for rt in done.retriage for m in rt.get("moves", [])]
        out = {"status": r.status, "batch": r.batch_id, "file_sha256": r.file_sha256, "rows": r.rows_total,
               "stored": r.applied, "unchanged": r.unchanged, "quarantined": r.quarantined,
               "quarantine_path": r.quarantine_path, "errors": [vars(e) for e in r.first_errors],
               "bench_results": done.stored, "retriaged": sum(rt["packs"] for rt in done.retriage),
               "route_changes": moves, "message": r.message}
        if o["json"]:
            return self._emit(out)
        if r.status == "unchanged":
            self.stdout.write(r.message)
            return
        self.stdout.write(f"{Path(o['bench']).name}: {r.rows_total} rows, {r.applied} bench results stored, "
                          f"{r.unchanged} unchanged, {r.quarantined} quarantined (batch {r.batch_id})")
        for e in r.first_errors:
            self.stdout.write(f"  row {e.row}, {e.field or '(row)'}: {e.reason}")
        if r.quarantined:
            self.stdout.write(f"quarantined rows: {r.quarantine_path}")
        self.stdout.write(f"re-triaged {out['retriaged']} packs; {len(moves)} changed route")
        for m in moves:
            self.stdout.write(f"  {m['serial']}: {m['from']} → {m['to']}")

    def _redeploy(self, o):
        import datetime as dt

        from battloop.triage.warranty import RedeployError, redeploy, warranty_status

        try:
            start = dt.date.fromisoformat(o["start"]) if o["start"] else None
        except ValueError:
            raise CommandError(f"--start {o['start']!r} is not a date (YYYY-MM-DD)") from None
        try:
            r = redeploy(o["serial"], site_code=o["site"], integrator=o["integrator"], warranty=o["warranty"],
                         demand_id=o["demand"], start_date=start, actor=o["actor"])
        except RedeployError as exc:
            raise CommandError(str(exc)) from None
        status = warranty_status(r)
        if o["json"]:
            return self._emit(status)
        base = "—" if r.baseline_soh_pct is None else f"{r.baseline_soh_pct:.1f}% ({r.baseline_soh_source})"
        self.stdout.write(f"{r.pack.serial} redeployed at {status['site']} from {r.start_date} by {status['integrator']}; "
                          f"warranty \"{r.warranty_text}\"; baseline SOH {base}")

    def _warranties(self, o):
        import datetime as dt

        from battloop.triage.warranty import warranty_report

        try:
            as_of = dt.date.fromisoformat(o["as_of"]) if o["as_of"] else None
        except ValueError:
            raise CommandError(f"--as-of {o['as_of']!r} is not a date (YYYY-MM-DD)") from None
        rows = warranty_report(as_of)
        if o["json"]:
            return self._emit(rows)
        if not rows:
            self.stdout.write("no redeployed packs")
            return
        counts = pd.Series([r["status"] for r in rows]).value_counts().to_dict()
        self.stdout.write(f"{len(rows)} redeployed packs: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for r in rows:
            soh = "—" if r["soh_pct"] is None else f"{r['soh_pct']:.1f}% ({r['soh_source']})"
            cyc = "—" if r["cycles_since_start"] is None else str(r["cycles_since_start"])
            self.stdout.write(f"  {r['serial']:<20} {r['status']:<15} since {r['start_date']} at {r['site']}; "
                              f"\"{r['warranty']}\"; SOH {soh}; cycles {cyc}")

    def _kpis(self, o):
        import datetime as dt

        from battloop.triage.kpis import registry_kpis

        dates = {}
        for key, flag in (("date_from", "--from"), ("date_to", "--to")):
            try:
                dates[key] = dt.date.fromisoformat(o[key]) if o[key] else None
            except ValueError:
                raise CommandError(f"{flag} {o[key]!r} is not a date (YYYY-MM-DD)") from None
        try:
            k = registry_kpis(dates["date_from"], dates["date_to"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if o["json"]:
            return self._emit(k)
        n = k["retired_packs"]

        def share(x):
            return "—" if x is None else f"{x:.1%}"

        def met(x):
            return "—" if x is None else "met" if x else "NOT met"

        self.stdout.write(f"{k['from']} – {k['to']}: {n:,} packs retired from first life ({k['not_triaged']:,} not triaged yet)")
        self.stdout.write(f"  evaluated for second life  {k['evaluated_for_second_life']:>8,}  "
                          f"{share(k['evaluated_for_second_life_share'] if n else None):>7}  "
                          f"target ≥ {k['evaluated_target']:.0%}: {met(k['evaluated_target_met'] if n else None)}")
        self.stdout.write(f"  routed to reuse            {k['routed_to_reuse']:>8,}  {share(k['routed_to_reuse_share'] if n else None):>7}")
        self.stdout.write(f"  routed to recycling        {k['routed_to_recycling']:>8,}  "
                          f"{share(k['routed_to_recycling_share'] if n else None):>7}")
        self.stdout.write(f"  … received by certified    {k['certified_recycling']:>8,}  {share(k['certified_recycling_share']):>7}  "
                          f"of routed to recycling; target ≥ {k['certified_target']:.0%}: {met(k['certified_target_met'])}")
        self.stdout.write(f"  received by any recycler   {k['received_by_any_recycler']:>8,}  "
                          f"(white-listed: {k['received_by_certified_recycler']:,})")

    def _match(self, o):
        settings = MatchSettings(string_packs=o["string_packs"], max_capacity_spread_pct=o["max_capacity_spread_pct"],
                                 max_resistance_spread_pct=o["max_resistance_spread_pct"],
                                 max_distance_km=o["max_distance_km"], time_limit_s=o["time_limit"])
        result = match(_read_table(o["supply"], "supply"), _read_table(o["demands"], "demands"), settings)
        if o["assignments_out"]:
            a = result.assignments.copy()
            a["serials"] = a["serials"].map(" ".join)
            a.to_csv(o["assignments_out"], index=False)
        summary = result.summary()
        if o["json"]:
            self._emit({"summary": summary, "demands": result.demand_report.to_dict(orient="records")})
            return
        s = summary
        self.stdout.write(f"{s['strings']} strings from {s['packs_strung']} packs ({s['packs_unstrung']} fit no string)")
        self.stdout.write(f"served {s['served']} of {s['demands']} demands, {s['delivered_kwh']:.1f} kWh, "
                          f"{s['kwh_years']:.1f} kWh·years, {s['transport_km']:.0f} string-km")
        self.stdout.write(f"objective {s['objective']:.2f}  bound {s['bound']:.2f}  gap {s['gap']:.3%}  "
                          f"({s['status']}, {s['solve_s']:.1f} s)")
        self.stdout.write(f"greedy baseline {s['greedy_objective']:.2f} ({s['greedy_served']} served)")
