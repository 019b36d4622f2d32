"""The outlook `battloop assess` stores: each site's backup time against its required hours,
and each owner's retirements per quarter with P10/P50/P90, energy and replacement cost."""

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from battloop.health.outlook import crossing_probability
from battloop.health.records import HealthAssessment, OutlookRun, RetirementForecast, SiteBackupOutlook
from battloop.registry.models import Pack


@pytest.fixture
def assessed(demo_instance):
    demo = demo_instance(40, seed=23)
    call_command("assess", "--price-cny-per-kwh", "650")
    return demo


def test_site_backup_hours_follow_the_sizing_relation(assessed):
    rows = list(SiteBackupOutlook.objects.select_related("site"))
    assert rows, "no site outlook stored"
    checked = 0
    for o in rows:
        packs = list(Pack.objects.filter(site=o.site, health__isnull=False).select_related("model", "health"))
        assert o.packs == len(packs)
        if o.load_w is None:
            assert o.hours_now_p50 is None and o.meets_now is None
            continue
        # usable energy = V x Ah x SOH x 0.9 DOD x 0.95 efficiency, summed over parallel packs, less the
        # share of the window (nominal to 90 % of it) that the voltage drop I R of each pack's grown
        # resistance takes; each pack carries an equal share of the load current
        def usable_wh(p, with_resistance=True):
            wh = p.model.nominal_voltage_v * p.model.rated_capacity_ah * p.health.soh_p50_pct / 100 * 0.9 * 0.95
            if not with_resistance:
                return wh
            ohm = p.model.dc_resistance_mohm / 1000 * p.health.resistance_ratio_p50
            amps = o.load_w / p.model.nominal_voltage_v / len(packs)
            return wh * (1 - amps * ohm / (0.1 * p.model.nominal_voltage_v))

        assert all(p.model.dc_resistance_mohm for p in packs)
        assert o.hours_now_p50 == pytest.approx(sum(usable_wh(p) for p in packs) / o.load_w, rel=2e-3)
        if packs:
            assert o.hours_now_p50 < 0.99 * sum(usable_wh(p, False) for p in packs) / o.load_w
        assert o.hours_now_p10 <= o.hours_now_p50 <= o.hours_now_p90
        assert o.hours_5y_p50 <= o.hours_1y_p50 <= o.hours_now_p50 + 1e-9  # packs only lose capacity
        assert o.meets_now == (o.hours_now_p50 >= o.required_hours)
        if o.short_p10 and o.short_p50:
            assert o.short_p10 <= o.short_p50  # the pessimistic quantile falls short first
        if o.short_p50 and o.short_p90:
            assert o.short_p50 <= o.short_p90
        if not o.meets_now:
            assert o.short_p50 is not None and o.short_p50 <= dt.date.today() + dt.timedelta(days=1)
        first = min((p.health.eol80_p50 for p in packs if p.health.eol80_p50), default=None)
        assert o.earliest_failing_eol80_p50 == first
        checked += 1
    assert checked >= 5


def test_retirements_per_quarter_bound_the_fleet_and_carry_costs(assessed):
    run = OutlookRun.objects.get()
    assert run.replacement_cny_per_kwh == 650 and run.horizon_quarters == 20
    owners = set(RetirementForecast.objects.values_list("owner_id", flat=True))
    assert owners
    for owner in owners:
        first_life = Pack.objects.filter(owner_id=owner, state__in=["installed", "flagged"], health__isnull=False)
        total = RetirementForecast.objects.filter(run=run, owner_id=owner, dimension="owner")
        quarters = [r.quarter for r in total]
        assert len(quarters) == len(set(quarters))
        for r in total:
            assert r.count_p10 <= r.count_p50 <= r.count_p90
            assert r.cost_cny_p50 == pytest.approx(r.kwh_p50 * 650, rel=1e-6)
        # P90 counts over quarters bound the packs that can retire; P50 sums stay within the fleet
        assert sum(r.count_p50 for r in total) <= first_life.count()
        # each pack retires within the horizon with the probability its own P10/P50/P90 end-of-life
        # dates give; packs differ mostly in their own ways, so the fleet's count is about the sum of
        # those probabilities and the cumulative P10-P90 bracket it (all packs fast or slow together
        # would spread it from nearly none to nearly all; test_forecast checks a large fleet's quarters)
        last = total.order_by("quarter").last()
        today = dt.date.today()
        horizon_days = (pd.Period(last.quarter).end_time.date() - today).days

        def days(d):
            return np.inf if d is None else (d - today).days

        h = list(first_life.values_list("health__eol80_p10", "health__eol80_p50", "health__eol80_p90"))
        expected = float(np.sum(crossing_probability(horizon_days, *(np.array([days(r[k]) for r in h], float) for k in range(3)))))
        assert last.cum_count_p10 <= expected + 2 and last.cum_count_p90 >= expected - 2
        assert abs(last.cum_count_p50 - expected) <= max(3.0, 0.15 * expected)
        cum = [r.cum_count_p50 for r in total.order_by("quarter")]
        assert cum == sorted(cum)
        assert last.cum_cost_cny_p50 >= max(r.cost_cny_p50 for r in total) - 1e-6
        # the by-province split adds up to the owner's total in each quarter at the median scenario count
        for dim in ("province", "model"):
            split = RetirementForecast.objects.filter(run=run, owner_id=owner, dimension=dim)
            for q in quarters[:8]:
                parts = [r for r in split if r.quarter == q]
                whole = next(r for r in total if r.quarter == q)
                assert sum(r.count_p90 for r in parts) >= whole.count_p50 - 1e-9
                assert sum(r.count_p10 for r in parts) <= whole.count_p90 + 1e-9


def test_assess_refuses_a_negative_price(demo_instance):
    from django.core.management.base import CommandError

    demo_instance(10, seed=3)
    with pytest.raises(CommandError, match="price"):
        call_command("assess", "--price-cny-per-kwh", "-5")
    assert not HealthAssessment.objects.exists()


def test_outlook_page_lists_sites_by_when_they_fall_short(assessed, client):
    import re

    from django.contrib.auth import get_user_model

    from battloop.web import access
    from battloop.web.models import Membership

    user = get_user_model().objects.get(username="demo")
    client.force_login(user)
    actor = access.actor_for_user(user)
    r = client.get("/outlook/")
    assert r.status_code == 200
    html = r.content.decode()
    visible = SiteBackupOutlook.objects.filter(site__in=access.sites_for(actor))
    short_now = visible.filter(meets_now=False).count()
    assert re.search(rf'id="kpi-short-now">{short_now}<', html)
    # the site table is ordered by the early (P10) date of falling short; sites short now come first
    codes = re.findall(r'<td><a href="/sites/([^/]+)/">', html)
    assert len(codes) >= 10
    expected = [o.site.code for o in visible.select_related("site").order_by("short_p10", "hours_now_p50", "site__code")
                if o.short_p10 is not None][:len(codes)]
    assert codes[:len(expected)] == expected
    assert 'id="chart-retire"' in html and 'id="data-retire"' in html
    # another organization's member sees none of these sites
    other = Membership.objects.exclude(organization=actor.organization).select_related("user", "organization").first()
    if other is not None:
        client.force_login(other.user)
        html2 = client.get("/outlook/").content.decode()
        for code in codes[:5]:
            assert f'/sites/{code}/' not in html2


def test_what_if_cooling_delays_and_more_outages_hasten_retirements(demo_instance, capsys):
    import json

    demo_instance(30, seed=29)
    call_command("assess", "--what-if", "--temp-offset-c", "-5", "--json")
    cool = json.loads(capsys.readouterr().out)
    assert not HealthAssessment.objects.exists() and not OutlookRun.objects.exists()  # nothing stored
    assert cool["what_if"]["retiring_5y_p50"] < cool["baseline"]["retiring_5y_p50"]
    assert cool["what_if"]["sites_short_within_5y_p50"] <= cool["baseline"]["sites_short_within_5y_p50"]
    call_command("assess", "--what-if", "--outage-multiplier", "30", "--json")
    busy = json.loads(capsys.readouterr().out)
    assert busy["baseline"] == cool["baseline"]
    assert busy["what_if"]["retiring_5y_p50"] > busy["baseline"]["retiring_5y_p50"]


def test_scenario_knobs_without_what_if_are_refused(demo_instance):
    from django.core.management.base import CommandError

    demo_instance(5, seed=4)
    with pytest.raises(CommandError, match="--what-if"):
        call_command("assess", "--temp-offset-c", "-5")


def test_assess_flags_the_fast_aging_pack_with_its_evidence(demo_instance):
    import datetime as dt

    fleet = demo_instance(40, seed=23)
    # the fixture does not hand back the faults: simulate again (same seed, same world) to learn them
    from battloop.demo.world import simulate

    sites = {s["code"]: s for s in fleet.sites}
    models = {m["code"]: m for m in fleet.models}
    _, faults = simulate(fleet.packs, sites, models, dt.date(2026, 11, 1), seed=23)
    assert faults.fast_aging_pack
    call_command("assess")
    flagged = dict(HealthAssessment.objects.exclude(anomaly="").values_list("pack__serial", "anomaly"))
    assert faults.fast_aging_pack in flagged
    # the reason names the cohort it is compared with and the evidence it rests on
    pack = Pack.objects.select_related("model", "site").get(serial=faults.fast_aging_pack)
    reason = flagged[faults.fast_aging_pack]
    assert f"median pack of {pack.model.code} in {pack.site.climate_zone or 'an unknown climate zone'}" in reason
    assert "evidence: " in reason and "where the median pack would be at" in reason
    measured, median_pack = (float(x) for x in re.findall(r"SOH ([\d.]+) % where the median pack would be at ([\d.]+) %", reason)[0])
    assert measured < median_pack
    assert len(flagged) <= 3  # the cell-to-cell spread alone is not an anomaly


def test_outlook_api_serves_the_stored_outlook_in_scope(assessed, client):
    from django.contrib.auth import get_user_model

    from battloop.web import access

    user = get_user_model().objects.get(username="demo")
    client.force_login(user)
    actor = access.actor_for_user(user)
    visible = SiteBackupOutlook.objects.filter(site__in=access.sites_for(actor))
    r = client.get("/api/v1/outlook/sites?limit=500")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == visible.count()
    shorts = [i["short_p10"] for i in body["items"]]
    dated = [s for s in shorts if s]
    assert dated == sorted(dated) and shorts[:len(dated)] == dated  # soonest first, never-short last
    first = body["items"][0]
    one = client.get(f"/api/v1/sites/{first['site']}/backup-outlook").json()
    assert one == first
    stored = visible.get(site__code=first["site"])
    assert one["hours_now_p50"] == stored.hours_now_p50 and one["required_hours"] == stored.required_hours
    cutoff = dt.date.today() + dt.timedelta(days=3 * 365)
    soon = client.get(f"/api/v1/outlook/sites?short_before={cutoff.isoformat()}&limit=500").json()
    assert soon["count"] == visible.filter(short_p50__lt=cutoff).count()
    # retirements: only the caller's own organization as owner
    rows = client.get("/api/v1/outlook/retirements?dimension=province").json()
    assert rows and {r["owner"] for r in rows} == {actor.organization.code}
    assert len(rows) == RetirementForecast.objects.filter(owner=actor.organization, dimension="province").count()
    assert client.get("/api/v1/sites/NO-SUCH-SITE/backup-outlook").status_code == 404
    assert client.get("/api/v1/outlook/retirements?dimension=galaxy").status_code == 422


def test_a_site_whose_packs_all_left_service_heads_the_outlook_with_no_backup(assessed):
    site = next(o.site for o in SiteBackupOutlook.objects.select_related("site").order_by("site__code")
                if o.load_w and o.meets_now and o.packs)
    gone = list(Pack.objects.filter(site=site).values_list("serial", flat=True))
    Pack.objects.filter(site=site).update(state="lost")  # stolen from the cabinet
    before = SiteBackupOutlook.objects.filter(meets_now=False).count()
    call_command("assess", "--price-cny-per-kwh", "650")
    o = SiteBackupOutlook.objects.get(site=site)
    assert o.packs == 0 and o.hours_now_p50 == 0 and o.hours_5y_p50 == 0
    assert o.meets_now is False and o.short_p10 == o.short_p50 == dt.date.today()
    assert SiteBackupOutlook.objects.filter(meets_now=False).count() == before + 1
    # the lost packs' last assessments stay on record; the site's row no longer points at them
    assert o.earliest_failing_pack is None and HealthAssessment.objects.filter(pack__serial__in=gone).count() == len(gone)


def test_the_operator_sets_the_retirement_line(assessed, capsys):
    import json

    from django.core.management.base import CommandError

    at_80 = OutlookRun.objects.get()
    retiring_80 = sum(r.count_p50 for r in RetirementForecast.objects.filter(dimension="owner"))
    capsys.readouterr()
    call_command("assess", "--retirement-soh-pct", "75", "--json")
    out = json.loads(capsys.readouterr().out)
    run = OutlookRun.objects.get()
    assert run.retirement_soh_pct == out["retirement_soh_pct"] == 75 and at_80.retirement_soh_pct == 80
    # a lower line: fewer packs retire within five years
    assert sum(r.count_p50 for r in RetirementForecast.objects.filter(dimension="owner")) < retiring_80
    # every pack's stored forecast dates the new line next to the triage thresholds, and a site's
    # earliest failing pack is the first to cross it
    h = HealthAssessment.objects.select_related("pack").all()
    assert all({"80", "75", "70", "60", "20"} <= set(a.forecast["crossings"]) for a in h)
    for o in SiteBackupOutlook.objects.exclude(earliest_failing_pack=None):
        dates = [dt.date.fromisoformat(a.forecast["crossings"]["75"]["p50"]) for a in h
                 if a.pack.site_id == o.site_id and a.forecast["crossings"]["75"]["p50"]]
        assert o.earliest_failing_eol80_p50 == min(dates)
    with pytest.raises(CommandError, match="between 20 and 95"):
        call_command("assess", "--retirement-soh-pct", "0.75")


def test_packs_of_a_chemistry_without_an_aging_law_are_left_out_and_named(assessed, capsys):
    # second-life LMO modules in service: no aging law covers them, so no stand-in is used silently
    # and the rest of the fleet is still assessed
    from battloop.registry.models import PackModel

    model = PackModel.objects.filter(packs__state="installed").distinct().order_by("code").first()
    n = Pack.objects.filter(model=model, state__in=["installed", "flagged", "redeployed"]).exclude(site=None).count()
    total = HealthAssessment.objects.count()
    PackModel.objects.filter(pk=model.pk).update(chemistry="LMO")
    capsys.readouterr()
    call_command("assess", "--price-cny-per-kwh", "650")
    out = capsys.readouterr().out
    assert f"{n:,} packs of a chemistry without an aging law (LMO)" in out
    assert HealthAssessment.objects.filter(pack__model=model).count() == 0
    assert HealthAssessment.objects.count() == total - n
