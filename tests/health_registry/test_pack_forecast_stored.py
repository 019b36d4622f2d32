"""Each assessment stores the pack's forecast: SOH and resistance P10/P50/P90 at years ahead and
the P10/P50/P90 dates of crossing every triage threshold (80, 70, 60, 20 % SOH); the pack page
and the API show it."""

import datetime as dt

import numpy as np
import pytest

from battloop.health.assess import FORECAST_YEARS, assess
from battloop.health.records import HealthAssessment

TODAY = dt.date(2026, 11, 1)  # the demo fixture's today


@pytest.fixture
def demo(demo_instance):
    return demo_instance(6, seed=5)


def _date(s):
    return None if s is None else dt.date.fromisoformat(s)


def test_stored_forecast_is_ordered_and_agrees_with_the_crossing_dates(demo):
    assess(today=TODAY)
    rows = list(HealthAssessment.objects.all())
    assert rows
    for h in rows:
        fc = h.forecast
        assert fc["years_ahead"] == list(FORECAST_YEARS)
        soh = np.array([fc["soh_pct"][q] for q in ("p10", "p50", "p90")])
        res = np.array([fc["resistance_ratio"][q] for q in ("p10", "p50", "p90")])
        assert np.all(soh[0] <= soh[1] + 1e-9) and np.all(soh[1] <= soh[2] + 1e-9)
        assert np.all(res[0] <= res[1] + 1e-9) and np.all(res[1] <= res[2] + 1e-9)
        # capacity only fades and resistance only grows along the forecast, and neither starts below today
        assert np.all(np.diff(soh[1]) <= 1e-9) and np.all(np.diff(res[1]) >= -1e-9)
        assert soh[1, 0] <= h.soh_p50_pct + 1e-6 and res[1, 0] >= h.resistance_ratio_p50 - 1e-6
        assert set(fc["crossings"]) == {"80", "70", "60", "20"}
        c80 = fc["crossings"]["80"]
        # the indexed columns are the same dates
        assert (_date(c80["p10"]), _date(c80["p50"]), _date(c80["p90"])) == (h.eol80_p10, h.eol80_p50, h.eol80_p90)
        assert _date(fc["crossings"]["70"]["p50"]) == h.eol70_p50 and _date(fc["crossings"]["60"]["p50"]) == h.eol60_p50
        for thr, dates in fc["crossings"].items():
            d10, d50, d90 = (_date(dates[q]) for q in ("p10", "p50", "p90"))
            # P10 is the early date; a later quantile may be beyond the horizon (None), an earlier one not
            assert not (d10 is None and d50 is not None) and not (d50 is None and d90 is not None), thr
            if d90 is not None:
                assert TODAY <= d10 <= d50 <= d90
        # a lower threshold is crossed later, if at all
        p50 = [_date(fc["crossings"][t]["p50"]) for t in ("80", "70", "60", "20")]
        known = [d for d in p50 if d is not None]
        assert known == sorted(known) and p50[: len(known)] == known
        # the SOH path and the crossing dates tell the same story: P50 below 80 % at a year ahead
        # exactly when the P50 date of crossing 80 % lies before it
        for j, y in enumerate(FORECAST_YEARS):
            at = TODAY + dt.timedelta(days=int(y * 365.25))
            crossed = h.eol80_p50 is not None and h.eol80_p50 <= at
            if abs(soh[1, j] - 80.0) > 0.05:
                assert crossed == (soh[1, j] < 80.0), (h.pack_id, y)
    # the fleet is old enough that some packs cross 80 % within 15 years
    assert any(h.eol80_p50 for h in rows)


def test_forecast_on_the_pack_page_and_in_the_api(demo, client):
    from django.contrib.auth import get_user_model

    from battloop.web.access import actor_for_user, packs_for

    assess(today=TODAY)
    user = get_user_model().objects.get(username="demo")
    p = packs_for(actor_for_user(user)).filter(health__isnull=False, health__eol80_p50__isnull=False).order_by("serial").first()
    h = HealthAssessment.objects.get(pack=p)
    client.force_login(user)
    data = client.get(f"/api/v1/packs/{p.serial}/health").json()
    assert data["forecast"]["years_ahead"] == list(FORECAST_YEARS)
    assert data["forecast"]["soh_pct"]["p50"] == h.forecast["soh_pct"]["p50"]
    assert data["forecast"]["crossings"]["80"]["p50"] == h.eol80_p50.isoformat()
    html = client.get(f"/packs/{p.serial}/").content.decode()
    assert 'id="pack-forecast"' in html and 'id="pack-crossings"' in html
    table = html[html.index('id="pack-crossings"'):]
    # thresholds from the highest down, whatever order the database keeps the JSON keys in
    assert [table.index(f"<td>{t} %</td>") for t in (80, 70, 60, 20)] == sorted(table.index(f"<td>{t} %</td>") for t in (80, 70, 60, 20))
    assert h.eol80_p50.isoformat() in html
    assert f"{h.forecast['soh_pct']['p50'][0]:.1f} %" in html
    html_zh = client.get(f"/packs/{p.serial}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "未来年数" in html_zh
