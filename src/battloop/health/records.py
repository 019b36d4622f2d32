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

    class Meta:
        indexes = [models.Index(fields=["eol80_p50"])]
