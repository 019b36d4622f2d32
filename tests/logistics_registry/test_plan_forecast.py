"""Strategic plans: `--set forecast_years=N` adds the packs the health outlook expects to retire
within N years (expected mass at their sites) to today's backlog, and counts N years of hub cost."""

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from battloop.health.records import HealthAssessment
from battloop.triage.models import TriageDecision


@pytest.fixture
def assessed_and_triaged(demo_instance):
    demo_instance(40, seed=23)
    call_command("assess")
    call_command("triage", "run")


def plan_json(capsys, *args):
    call_command("plan", *args, "--json")
    return json.loads(capsys.readouterr().out)


def test_forecast_years_adds_expected_retirements_and_years_of_hub_cost(assessed_and_triaged, capsys):
    capsys.readouterr()
    base = plan_json(capsys)
    five = plan_json(capsys, "--scenario", "five-year", "--set", "forecast_years=5")
    assert base["input"]["forecast_tonnes"] == 0
    added = five["input"]["forecast_tonnes"]
    assert five["input"]["tonnes"] == pytest.approx(base["input"]["tonnes"] + added, abs=2e-3)

    # bounds from the stored end-of-life quantiles alone: packs whose late (P90) date falls inside
    # the five years retire with probability >= 0.9; packs whose early (P10) date falls after it, < 0.1
    horizon = timezone.localdate() + dt.timedelta(days=round(5 * 365.25))
    moving = set(TriageDecision.objects.filter(current=True).values_list("pack__serial", flat=True))
    rows = [h for h in HealthAssessment.objects.filter(pack__state__in=["installed", "flagged"]).select_related("pack__model", "pack")
            if h.pack.serial not in moving]
    sure = sum(h.pack.model.mass_kg for h in rows if h.eol80_p90 and h.eol80_p90 <= horizon) / 1000
    maybe = sum(h.pack.model.mass_kg for h in rows if h.eol80_p10 and h.eol80_p10 <= horizon) / 1000
    rest = sum(h.pack.model.mass_kg for h in rows) / 1000 - maybe
    assert 0.9 * sure - 1e-6 <= added <= maybe + 0.1 * rest + 1e-6
    assert added > 0

    # every tonne is moved, and a hub is paid for the five years it serves
    assert sum(f["tonnes"] for f in five["inbound_flows"]) == pytest.approx(five["input"]["tonnes"], abs=2e-3)
    assert five["cost_breakdown"]["fixed"] == pytest.approx(5 * 250_000.0 * len(five["opened_hubs"]))
    for h in five["opened_hubs"]:
        assert h["capacity_t"] == pytest.approx(5 * 400.0)


def test_forecast_years_beyond_the_health_horizon_is_refused(assessed_and_triaged):
    with pytest.raises(CommandError, match="forecast_years"):
        call_command("plan", "--scenario", "far", "--set", "forecast_years=40")
