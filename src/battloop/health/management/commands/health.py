"""``battloop health ACTION``: health analytics that run on files, without the registry.

Actions:
  backtest   fit early aging data, predict the rest, compare with linear / sqrt / power-law baselines
"""

from __future__ import annotations

import json
import math
from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from battloop.health.backtest import (BASELINES, BacktestError, cohort_warnings_of, load_long_csv, parse_eol, parse_fit_until, parse_fit_until_list,
                                      remaining_life_mre, run_backtest, run_backtest_sweep, summarise_cells)


def _fmt(v, spec=".3g"):
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf"
    return format(v, spec)


def _eol_text(eol) -> str:
    return f"{eol.value:g} Ah" if eol.unit == "ah" else f"{eol.value:.0%} of first capacity"


def _json_safe(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


class Command(BaseCommand):
    help = "Health analytics on files: 'backtest' checks capacity forecasts against held-out aging data."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        bt = sub.add_parser("backtest", help="fit the early part of each cell's capacity series, predict the rest, report errors and baselines")
        bt.add_argument("--data", required=True, help="CSV in long form: cell_id, t, capacity [, temperature_c, soc, cohort]; cells are calibrated "
                                                         "together per cohort (all together without a cohort column)")
        bt.add_argument("--kind", required=True, choices=["calendar", "cycle"], help="calendar: t in days; cycle: t in cycles")
        bt.add_argument("--eol", required=True, help="end of life: fraction of each cell's first capacity (0.8, 80%%) or Ah (1.4, 0.88Ah)")
        bt.add_argument("--fit-until", required=True, dest="fit_until",
                        help="split: a value of t (180) or a fraction of each cell's observed life (0.5, 50%%); a bare number in (0, 1) is a fraction, "
                             "1 or more a value of t. Several split points (0.3,0.5,0.7 or a range 60:110:10) run the backtest at each "
                             "and report the figures per split and their mean")
        bt.add_argument("--capacity-unit", default="auto", choices=["auto", "ah", "fraction"], dest="capacity_unit",
                        help="unit of the capacity column (auto: fraction when every first value is <= 1.05)")
        bt.add_argument("--chemistry", default=None,
                        help="LFP or NMC: published stress law for cells whose temperature_c/soc varies over time, "
                             "used when the cohort's own steady cells cannot give one (3+ temperature levels)")
        bt.add_argument("--json", action="store_true", help="print the full report as JSON")

    def handle(self, *args, **opts):
        if opts["action"] == "backtest":
            return self._backtest(opts)
        raise CommandError(f"unknown action {opts['action']!r}")  # pragma: no cover - argparse refuses first

    def _backtest(self, opts):
        try:
            items = parse_fit_until_list(opts["fit_until"])
            eol = parse_eol(opts["eol"])
            df = load_long_csv(opts["data"])
            kw = {"capacity_unit": opts["capacity_unit"], "chemistry": opts.get("chemistry")}
            if len(items) > 1:
                report = run_backtest_sweep(df, opts["kind"], eol, items, **kw)
            else:
                split = parse_fit_until(items[0])
                report = run_backtest(df, opts["kind"], eol, split, **kw)
        except BacktestError as exc:
            raise CommandError(str(exc)) from None
        if opts["json"]:
            self.stdout.write(json.dumps(_json_safe(report), indent=2))
        elif len(items) > 1:
            self._print_sweep(opts, eol, report)
        else:
            self._print_report(opts, eol, split, report)

    def _print_report(self, opts, eol, split, report):
        w = self.stdout.write
        eol_txt = _eol_text(eol)
        split_txt = f"t <= {split.value:g}" if split.unit == "t" else f"first {split.value:.0%} of each cell's life"
        w(f"backtest: {opts['data']} ({opts['kind']}), end of life {eol_txt}, fit on {split_txt}")
        unit = next((c for c in report["cells"] if c["status"] == "ok"), None)
        if unit is not None:
            read_as = "a fraction of rated" if unit["capacity_unit"] == "fraction" else "Ah"
            other = "ah" if unit["capacity_unit"] == "fraction" else "fraction"
            pp_of = "rated capacity" if unit["capacity_unit"] == "fraction" else "each cell's first capacity"
            w(f"capacity read as {read_as} ({unit['capacity_unit_reason']}); errors in pp of {pp_of}; "
              f"--capacity-unit {other} reads it otherwise")
        # cells per cohort, in the order of the input
        cohorts = Counter(c["cohort"] for c in report["cells"] if c["status"] == "ok" and "cohort" in c)
        if cohorts:
            w("cohorts calibrated separately: " + ", ".join(f"{name or '(none given)'} ({n} cells)" for name, n in cohorts.items()))
        for warning in cohort_warnings_of(report["cells"]):
            w(f"warning: {warning}")
        for law in dict.fromkeys(c["stress_law"] for c in report["cells"] if "stress_law" in c):
            w(f"stress law for cells whose conditions vary: {law}")
        w(f"{'cell':<24}{'cap err pp':>11}{'EOL actual':>12}{'EOL pred':>10}{'P10..P90':>18}{'coverage':>10}")
        for c in report["cells"]:
            if c["status"] != "ok":
                w(f"{c['cell_id']:<24}skipped: {c['reason']}")
                continue
            m = c["model"]
            # a crossing beyond the forecast horizon is reported at the horizon: say so with ">"
            horizon = c["forecast_horizon_t"]

            def eol_t(v):
                return f">{v:.0f}" if v >= horizon else _fmt(v, ".0f")
            band = f"{eol_t(m['predicted_eol_p10_t'])}..{eol_t(m['predicted_eol_p90_t'])}"
            w(f"{c['cell_id']:<24}{_fmt(m['capacity_error_pp'], '.2f'):>11}{_fmt(c['actual_eol_t'], '.0f'):>12}"
              f"{eol_t(m['predicted_eol_t']):>10}{band:>18}{_fmt(m['coverage_p10_p90'], '.0%'):>10}")
            for note in c.get("notes", []):
                w(f"{'':<24}note: {note}")
        never = [c["cell_id"] for c in report["cells"] if c["status"] == "ok" and not c["reached_eol"]]
        if never:
            w(f"never reached end of life (left out of RUL figures): {', '.join(never)}")
        s = report["summary"]
        w("")
        # (label, method, summary, the report its figures come from)
        rows = [("model", "model", s, report)] + [(name, name, b, report) for name, b in s["baselines"].items()]
        if len(cohorts) > 1:
            # the model per cohort: one cell type's figures are not hidden in the mean of all
            for name in cohorts:
                part = {"cells": [c for c in report["cells"] if c.get("cohort") == name]}
                rows.append((f"model: {name or '(none given)'}", "model", summarise_cells(part["cells"]), part))
        width = max(12, *(len(label) + 1 for label, *_ in rows))
        w(f"{'method':<{width}}{'cap MAE pp':>11}{'RUL MAE':>10}{'RUL MRE':>10}{'of RUL':>9}{'coverage':>10}{'cells':>7}")
        for label, method, r, rep in rows:
            w(f"{label:<{width}}{_fmt(r['capacity_mae_pp'], '.3f'):>11}{_fmt(r['rul_mae'], '.1f'):>10}{_fmt(r['rul_mre'], '.3f'):>10}"
              f"{_fmt(remaining_life_mre(rep, method), '.3f'):>9}{_fmt(r['coverage_p10_p90'], '.0%'):>10}{r['n_cells']:>7}")
        w("RUL MRE: mean |predicted - actual end of life| / actual end-of-life t (json summary rul_mre); "
          "of RUL: the same error / true remaining life after the split (each cell's rul_rel_error)")

    def _print_sweep(self, opts, eol, report):
        w = self.stdout.write
        eol_txt = _eol_text(eol)
        w(f"backtest sweep: {opts['data']} ({opts['kind']}), end of life {eol_txt}, {len(report['splits'])} split points")
        for warning in report["warnings"]:
            w(f"warning: {warning}")
        w(f"{'fit until':<11}{'model':>34}{'linear':>24}{'power law':>12}")
        w(f"{'':<11}{'cap MAE':>9}{'RUL MAE':>9}{'of RUL':>8}{'cov':>8}{'cap MAE':>10}{'RUL MAE':>9}{'of RUL':>8}{'cap MAE':>9}{'cells':>7}")

        def row(label, s, li, pl, cells=""):
            w((f"{label:<11}{_fmt(s['capacity_mae_pp'], '.2f'):>9}{_fmt(s['rul_mae'], '.1f'):>9}{_fmt(s['rul_rel_mean'], '.3f'):>8}"
               f"{_fmt(s['coverage_p10_p90'], '.0%'):>8}{_fmt(li['capacity_mae_pp'], '.2f'):>10}{_fmt(li['rul_mae'], '.1f'):>9}"
               f"{_fmt(li['rul_rel_mean'], '.3f'):>8}{_fmt(pl['capacity_mae_pp'], '.2f'):>9}{cells:>7}").rstrip())
        for sp in report["splits"]:
            b = sp["summary"]["baselines"]
            row(sp["fit_until"], sp["summary"], b["linear"], b["power_law"], sp["summary"]["n_cells"])
        m = report["mean"]
        row("mean", m["model"], m["linear"], m["power_law"])
        w(f"P10-P90 coverage over the splits: {_fmt(m['model']['coverage_min'], '.0%')} to {_fmt(m['model']['coverage_max'], '.0%')}")
        for name in BASELINES:
            b = report["mean"][name]["model_better"]
            w(f"model better than {name}: capacity at {b['capacity_mae_pp']['model_better']} of {b['capacity_mae_pp']['of']} splits, "
              f"RUL at {b['rul_mae']['model_better']} of {b['rul_mae']['of']}")
