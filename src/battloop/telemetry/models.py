"""Registry-side projections of the telemetry lake: the latest reading per pack and the
alarms currently open. The readings themselves live in the lake (DESIGN.md principle 3)."""

from django.db import models

from battloop.registry.models import Pack


class LatestReading(models.Model):
    pack = models.OneToOneField(Pack, on_delete=models.CASCADE, related_name="latest_reading")
    ts = models.DateTimeField()
    source = models.CharField(max_length=32, blank=True)
    site_code = models.CharField(max_length=64, blank=True)
    voltage_v = models.FloatField(null=True)
    current_a = models.FloatField(null=True)
    soc_pct = models.FloatField(null=True)
    soh_pct = models.FloatField(null=True, help_text="as the BMS reports it (biased and noisy)")
    cycle_count = models.IntegerField(null=True)
    temp_max_c = models.FloatField(null=True)
    cell_v_min = models.FloatField(null=True)
    cell_v_max = models.FloatField(null=True)
    updated_at = models.DateTimeField(auto_now=True)


class ActiveAlarm(models.Model):
    pack = models.ForeignKey(Pack, on_delete=models.CASCADE, related_name="active_alarms")
    code = models.CharField(max_length=64)
    severity = models.CharField(max_length=16)
    opened_at = models.DateTimeField()
    value = models.FloatField(null=True)
    rule = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pack", "code"], name="one_open_alarm_per_code")]
