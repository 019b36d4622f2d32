"""Stored triage decisions and the policy versions that made them."""

from django.db import models
from django.utils import timezone

from battloop.registry.models import ImportBatch, Organization, Pack, PackEvent, Site


class PolicyVersion(models.Model):
    """A policy as it was when it decided: its identity, hash and full text."""

    identity = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=50)
    content_hash = models.CharField(max_length=64)
    text = models.TextField()
    first_used_at = models.DateTimeField()


class TriageDecision(models.Model):
    """One evaluation of a pack's dossier: the route, the rules that fired with their
    values, the policy version and the inputs. The latest per pack is ``current``."""

    pack = models.ForeignKey(Pack, on_delete=models.CASCADE, related_name="triage_decisions")
    policy = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT)
    decided_at = models.DateTimeField()
    route = models.CharField(max_length=24, db_index=True)
    reasons = models.JSONField()
    inputs = models.JSONField()
    current = models.BooleanField(default=True, db_index=True)
    trigger = models.JSONField(default=dict, blank=True, help_text="the new evidence that caused a re-triage, if any")

    class Meta:
        ordering = ["-decided_at"]


class BenchResult(models.Model):
    """One bench test of a pack and the safety judgement graded from it (DOMAIN.md §4–5,
    GB/T 38698.1-2020): capacity at the stated rate and temperature (and at 25 °C),
    DC internal resistance, open-circuit voltage, insulation, cell-voltage spread, visual
    inspection, BMS history counters and the anti-theft lock; who, when and where; the
    file and row it came from. Each one is also an ``inspection`` event on the pack.

    ``safety_class`` is empty when no visual inspection was recorded: a bench sheet
    without one is not a safety judgement, and triage then holds the pack for one."""

    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="bench_results")
    tested_at = models.DateTimeField(help_text="test date from the sheet, else the time of import")
    tested_by = models.CharField(max_length=150, blank=True)
    place = models.CharField(max_length=100, blank=True, help_text="outlet or site where the pack was tested")
    rated_capacity_ah = models.FloatField(null=True)
    capacity_ah = models.FloatField(null=True, help_text="measured in a full discharge test")
    test_rate_c = models.FloatField(null=True)
    test_temp_c = models.FloatField(null=True)
    capacity_25c_ah = models.FloatField(null=True, help_text="capacity corrected to 25 °C (YD/T 799 convention)")
    soh_pct = models.FloatField(null=True, help_text="capacity at 25 °C ÷ rated")
    dcir_mohm = models.FloatField(null=True)
    baseline_dcir_mohm = models.FloatField(null=True)
    ir_ratio = models.FloatField(null=True)
    ocv_v = models.FloatField(null=True)
    ocv_cell_v = models.FloatField(null=True)
    insulation_ohm_per_v = models.FloatField(null=True)
    cell_v_max_mv = models.FloatField(null=True)
    cell_v_min_mv = models.FloatField(null=True)
    cell_spread_mv = models.FloatField(null=True, help_text="max − min cell voltage at rest")
    visual_ok = models.BooleanField(null=True, help_text="inspector found no visible damage")
    visual = models.JSONField(default=dict, help_text="visual findings as inspected: {flag: true/false}")
    thermal_events = models.PositiveIntegerField(null=True)
    fault_count = models.PositiveIntegerField(null=True)
    short_circuit_count = models.PositiveIntegerField(null=True)
    protection_count = models.PositiveIntegerField(null=True)
    overtemp_count = models.PositiveIntegerField(null=True)
    cycle_count = models.PositiveIntegerField(null=True)
    bms_soh_pct = models.FloatField(null=True)
    anti_theft_locked = models.BooleanField(null=True)
    safety_class = models.CharField(max_length=1, blank=True, db_index=True)
    class_rules = models.CharField(max_length=300)
    class_reasons = models.JSONField(default=list)
    safety_rules = models.CharField(max_length=200, help_text="identity of the safety-class rules that graded it")
    notes = models.TextField(blank=True)
    source_file = models.CharField(max_length=500)
    source_sha256 = models.CharField(max_length=64)
    source_row = models.PositiveIntegerField()
    import_batch = models.ForeignKey(ImportBatch, on_delete=models.PROTECT, null=True, related_name="+")
    row_hash = models.CharField(max_length=64, help_text="hash of the row and its inputs: the same row again is a no-op")
    event = models.ForeignKey(PackEvent, on_delete=models.PROTECT, null=True, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-tested_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["pack", "row_hash"], name="bench_result_once_per_row")]
        indexes = [models.Index(fields=["pack", "-tested_at"])]

    @property
    def findings(self) -> list[str]:
        return sorted(k for k, v in (self.visual or {}).items() if v)


class Redeployment(models.Model):
    """A pack put into a second-life application (DOMAIN.md §2 ``second_life_ready →
    redeployed``, §4 second-life warranty): where, by whom, from when, on which warranty
    terms, and the pack's SOH and cycle counter at the start (the baselines the warranty is
    judged against). Created from the ``redeployed`` transition event."""

    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="redeployments")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, null=True, related_name="+")
    demand_id = models.CharField(max_length=64, blank=True, help_text="the second-life demand it serves, if matched")
    integrator = models.ForeignKey(Organization, on_delete=models.PROTECT, null=True, related_name="+")
    start_date = models.DateField()
    warranty_text = models.CharField(max_length=200, blank=True, help_text='e.g. "2 years or 1,000 cycles to 70%"')
    warranty_years = models.FloatField(null=True)
    warranty_cycles = models.PositiveIntegerField(null=True)
    warranty_end_soh_pct = models.FloatField(null=True, help_text="residual capacity the warranty guarantees")
    baseline_soh_pct = models.FloatField(null=True)
    baseline_soh_source = models.CharField(max_length=16, blank=True)  # bench | health
    baseline_cycle_count = models.PositiveIntegerField(null=True)
    event = models.OneToOneField(PackEvent, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-start_date", "-id"]
