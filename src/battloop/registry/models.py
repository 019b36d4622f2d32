"""Registry persistence: organizations, sites, pack models, packs and their
append-only lifecycle events (DOMAIN.md §1–2, §9)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .lifecycle import OrgKind, State


class Organization(models.Model):
    code = models.SlugField(max_length=64, unique=True, help_text="short unique code used in files and the API")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=[(k.value, k.value.replace("_", " ")) for k in OrgKind])
    uscc = models.CharField("unified social credit code", max_length=18, blank=True)
    province = models.CharField(max_length=32, blank=True)
    recycler_whitelisted = models.BooleanField(default=False, help_text="on the MIIT white-list of compliant recyclers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return f"{self.name} ({self.code})"


class SiteType(models.TextChoices):
    MACRO_BTS = "macro_bts", "macro BTS"
    OUTDOOR_CABINET = "outdoor_cabinet", "outdoor cabinet"
    INDOOR = "indoor", "indoor"
    DATA_CENTRE = "data_centre", "data centre"
    RURAL = "rural", "rural"
    OFF_GRID = "off_grid", "off-grid"


class Site(models.Model):
    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    site_type = models.CharField(max_length=24, choices=SiteType.choices)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    province = models.CharField(max_length=32, blank=True)
    prefecture = models.CharField(max_length=64, blank=True)
    adcode = models.CharField(max_length=12, blank=True, help_text="administrative division code (GB/T 2260)")
    climate_zone = models.CharField(max_length=32, blank=True)
    annual_mean_temp_c = models.FloatField(null=True, blank=True)
    temp_amplitude_c = models.FloatField(null=True, blank=True, help_text="half the difference between the warmest and coldest monthly means")
    cabinet_offset_c = models.FloatField(default=0.0, help_text="how much warmer the battery compartment runs than the outside air")
    required_backup_hours = models.FloatField(default=3.0)
    load_w = models.FloatField(null=True, blank=True, help_text="average DC load the batteries must carry")
    owner = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="sites")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["code"]
        indexes = [models.Index(fields=["province", "prefecture"])]

    def __str__(self):
        return self.code


class Chemistry(models.TextChoices):
    LFP = "LFP", "LFP"
    NMC = "NMC", "NMC"
    NCA = "NCA", "NCA"
    LMO = "LMO", "LMO"
    OTHER = "other", "other"


class PackModel(models.Model):
    code = models.CharField(max_length=64, unique=True)
    oem = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="pack_models")
    name = models.CharField(max_length=200, blank=True)
    chemistry = models.CharField(max_length=8, choices=Chemistry.choices)
    nominal_voltage_v = models.FloatField()
    rated_capacity_ah = models.FloatField()
    energy_kwh = models.FloatField()
    mass_kg = models.FloatField()
    cell_count = models.PositiveIntegerField()
    cell_configuration = models.CharField(max_length=16, help_text="e.g. 15S1P")
    design_life_years = models.FloatField()
    dc_resistance_mohm = models.FloatField(null=True, blank=True, help_text="DC internal resistance of a new pack at 25 °C "
                                           "(datasheet), mΩ: backup time counts the voltage drop across it as it grows")
    bms_protocol = models.CharField(max_length=64, blank=True)
    repurposed_ev = models.BooleanField(default=False, help_text="built from retired EV modules")

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.code


class ImportBatch(models.Model):
    """One import of one file: its content hash makes re-imports no-ops."""

    kind = models.CharField(max_length=16)  # packs | sites | models
    file_name = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    actor = models.CharField(max_length=150)
    options = models.JSONField(default=dict)
    status = models.CharField(max_length=16, default="running")  # running | applied | failed | unchanged
    rows_total = models.PositiveIntegerField(default=0)
    rows_applied = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_quarantined = models.PositiveIntegerField(default=0)
    quarantine_path = models.CharField(max_length=500, blank=True)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]


class Pack(models.Model):
    class Origin(models.TextChoices):
        NEW = "new", "new"
        REPURPOSED_EV = "repurposed_ev", "repurposed EV pack"

    class Grade(models.TextChoices):
        FULL = "full", "full record"
        AUDIT = "audit", "audit-grade (partial field data)"

    serial = models.CharField(max_length=64, unique=True)
    code = models.CharField(max_length=40, null=True, blank=True, unique=True, help_text="GB/T 34014 or GB/T 45565 code")
    code_standard = models.CharField(max_length=16, blank=True)
    model = models.ForeignKey(PackModel, on_delete=models.PROTECT, null=True, blank=True, related_name="packs")
    nameplate_capacity_ah = models.FloatField(null=True, blank=True)
    manufacture_date = models.DateField(null=True, blank=True)
    install_date = models.DateField(null=True, blank=True)
    owner = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="owned_packs")
    custodian = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="held_packs")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, null=True, blank=True, related_name="packs")
    location = models.CharField(max_length=100, blank=True, help_text="slot, cabinet or outlet bay")
    state = models.CharField(max_length=24, choices=[(s.value, s.value.replace("_", " ")) for s in State], db_index=True)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.NEW)
    original_identity = models.CharField(max_length=64, blank=True, help_text="code or serial of the EV pack it was built from")
    original_pack = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="successors")
    record_grade = models.CharField(max_length=8, choices=Grade.choices, default=Grade.FULL)
    row_hash = models.CharField(max_length=32, blank=True, help_text="hash of the last imported row, so re-imports are no-ops")
    import_batch = models.ForeignKey(ImportBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    source_row = models.PositiveIntegerField(null=True, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    last_event_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["serial"]
        # The API lists a scope (owner or custodian), optionally by state, in serial order.
        indexes = [models.Index(fields=["owner", "state", "serial"]), models.Index(fields=["custodian", "state", "serial"]),
                   models.Index(fields=["owner", "serial"]), models.Index(fields=["custodian", "serial"]), models.Index(fields=["site"])]

    def __str__(self):
        return self.serial

    def delete(self, *args, **kwargs):
        raise PermissionError(f"pack {self.serial}: packs are never deleted; record a 'lost' or 'recycled' transition instead")


class EventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("lifecycle events are append-only: they cannot be updated")

    def delete(self):
        raise PermissionError("lifecycle events are append-only: they cannot be deleted")

    def bulk_update(self, *args, **kwargs):
        raise PermissionError("lifecycle events are append-only: they cannot be updated")

    def update_or_create(self, *args, **kwargs):
        raise PermissionError("lifecycle events are append-only: use append_event()")


class PackEvent(models.Model):
    """An append-only, hash-chained fact about a pack (state, location, custody,
    ownership, correction). Created only through :mod:`battloop.registry.events`."""

    class Kind(models.TextChoices):
        REGISTERED = "registered"
        TRANSITION = "transition"
        LOCATION = "location"
        CUSTODY = "custody"
        OWNERSHIP = "ownership"
        CORRECTED = "corrected"
        ALARM = "alarm"
        DECISION = "decision"
        INSPECTION = "inspection"  # a bench test and safety judgement (DOMAIN.md §5)

    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.CharField(max_length=150)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)
    place = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["pack_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["pack", "seq"], name="pack_event_seq_unique")]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError(f"event #{self.pk} is append-only: it cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"event #{self.pk} is append-only: it cannot be deleted")
