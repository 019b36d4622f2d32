"""Stored health assessments (Django). Kept out of ``models.py``, which in this package is
the pure aging model (DESIGN.md); the app config imports this module so Django sees it."""

from django.db import models

from battloop.registry.models import Pack


class HealthAssessment(models.Model):
    """The latest assessment of a pack: SOH now and when it crosses the triage thresholds,
    each with P10/P50/P90 (P10 = pessimistic SOH / early crossing)."""

    pack = models.OneToOneField(Pack, on_delete=models.CASCADE, related_name="health")
    assessed_at = models.DateTimeField()
    method = models.CharField(max_length=120)
    evidence_count = models.PositiveIntegerField()
    soh_p10_pct = models.FloatField()
    soh_p50_pct = models.FloatField()
    soh_p90_pct = models.FloatField()
    resistance_ratio_p50 = models.FloatField()
    rate_multiplier_p50 = models.FloatField(help_text="aging rate relative to its chemistry's published model")
    eol80_p10 = models.DateField(null=True, help_text="early (P10) date of falling below 80 % SOH")
    eol80_p50 = models.DateField(null=True)
    eol80_p90 = models.DateField(null=True)
    eol70_p50 = models.DateField(null=True)
    eol60_p50 = models.DateField(null=True)
    anomaly = models.CharField(max_length=300, blank=True, help_text="why the pack ages faster than its cohort, if it does")
    evidence_sources = models.JSONField(default=dict, help_text="SOH evidence used, per source: {bms, capacity_test, outage_discharge: count}")
    resistance_mohm_measured = models.FloatField(null=True, help_text="measured DC resistance (bench DCIR, current steps) at 25 °C, fused; mΩ")
    resistance_mohm_sd = models.FloatField(null=True, help_text="standard deviation of the measured resistance, mΩ")
    resistance_evidence_count = models.PositiveIntegerField(default=0, help_text="resistance measurements fused (within a year of the latest)")
    resistance_measured_on = models.DateField(null=True, help_text="date of the latest resistance measurement")
    forecast = models.JSONField(default=dict, help_text=(
        "SOH % and resistance ratio P10/P50/P90 at years ahead, and the P10/P50/P90 dates of crossing each "
        "triage threshold (80, 70, 60, 20 % SOH; null: not within the horizon)"))

    class Meta:
        indexes = [models.Index(fields=["eol80_p50"])]


class OutlookRun(models.Model):
    """One fleet outlook computed by ``battloop assess``: its horizon and price setting."""

    computed_at = models.DateTimeField()
    start_quarter = models.CharField(max_length=8)
    horizon_quarters = models.PositiveIntegerField()
    retirement_soh_pct = models.FloatField(help_text="SOH at which a pack retires from telecom backup")
    replacement_cny_per_kwh = models.FloatField(help_text="replacement price setting used for the costs")
    packs = models.PositiveIntegerField()
    samples = models.PositiveIntegerField(help_text="joint fleet scenarios behind the P10/P50/P90")


class SiteBackupOutlook(models.Model):
    """A site's backup time now and forecast against its required hours (latest run).

    Hours are P10/P50/P90 (P10 = pessimistic); a ``short_*`` date is when that quantile
    of backup time first falls below the required hours (null: not within the horizon).
    """

    site = models.OneToOneField("registry.Site", on_delete=models.CASCADE, related_name="backup_outlook")
    run = models.ForeignKey(OutlookRun, on_delete=models.CASCADE, related_name="sites")
    packs = models.PositiveIntegerField()
    load_w = models.FloatField(null=True)
    required_hours = models.FloatField()
    hours_now_p10 = models.FloatField(null=True)
    hours_now_p50 = models.FloatField(null=True)
    hours_now_p90 = models.FloatField(null=True)
    hours_1y_p50 = models.FloatField(null=True)
    hours_3y_p50 = models.FloatField(null=True)
    hours_5y_p50 = models.FloatField(null=True)
    meets_now = models.BooleanField(null=True, help_text="null: the site's load is unknown")
    short_p10 = models.DateField(null=True, help_text="early date of falling short of the required backup")
    short_p50 = models.DateField(null=True)
    short_p90 = models.DateField(null=True)
    earliest_failing_pack = models.ForeignKey(Pack, on_delete=models.SET_NULL, null=True, related_name="+")
    earliest_failing_eol80_p50 = models.DateField(null=True)

    class Meta:
        indexes = [models.Index(fields=["short_p50"]), models.Index(fields=["short_p10"])]


class RetirementForecast(models.Model):
    """Packs retiring per quarter for one owner (and one province or pack model, or all),
    with P10/P50/P90 over joint fleet scenarios, energy and replacement cost."""

    class Dimension(models.TextChoices):
        OWNER = "owner"
        PROVINCE = "province"
        MODEL = "model"

    run = models.ForeignKey(OutlookRun, on_delete=models.CASCADE, related_name="retirements")
    owner = models.ForeignKey("registry.Organization", on_delete=models.CASCADE, related_name="+")
    dimension = models.CharField(max_length=10, choices=Dimension.choices)
    group = models.CharField(max_length=100, blank=True, help_text="province or pack model; blank for the owner's whole fleet")
    quarter = models.CharField(max_length=8)
    count_p10 = models.FloatField()
    count_p50 = models.FloatField()
    count_p90 = models.FloatField()
    kwh_p10 = models.FloatField()
    kwh_p50 = models.FloatField()
    kwh_p90 = models.FloatField()
    cost_cny_p10 = models.FloatField()
    cost_cny_p50 = models.FloatField()
    cost_cny_p90 = models.FloatField()
    cum_count_p10 = models.FloatField(help_text="retired from the start of the outlook to the end of this quarter")
    cum_count_p50 = models.FloatField()
    cum_count_p90 = models.FloatField()
    cum_cost_cny_p10 = models.FloatField()
    cum_cost_cny_p50 = models.FloatField()
    cum_cost_cny_p90 = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["run", "owner", "dimension"])]
