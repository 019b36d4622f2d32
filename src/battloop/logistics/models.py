"""Shipments of retired packs and their custody hand-over (Django)."""

from django.db import models
from django.utils import timezone

from battloop.registry.models import Organization, Pack


class Shipment(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        DISPATCHED = "dispatched"
        DISCREPANCY = "discrepancy"
        RECEIVED = "received"
        CLOSED = "closed"

    code = models.CharField(max_length=40, unique=True)
    sender = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="shipments_sent")
    receiver = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="shipments_received")
    carrier = models.ForeignKey(Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="shipments_carried")
    origin = models.CharField(max_length=200)
    destination = models.CharField(max_length=200)
    vehicle = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    manifest = models.JSONField(default=dict, blank=True, help_text="the dispatched manifest, as signed")
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)


class ShipmentItem(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="items")
    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="shipment_items")
    un_number = models.CharField(max_length=8)
    packaging = models.CharField(max_length=8)
    mass_kg = models.FloatField()
    received = models.BooleanField(default=False)
    received_mass_kg = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shipment", "pack"], name="pack_once_per_shipment")]


class Discrepancy(models.Model):
    class Kind(models.TextChoices):
        MISSING = "missing", "on the manifest, not received"
        EXTRA = "extra", "received, not on the manifest"
        SWAPPED = "swapped", "received a pack of another shipment"
        WEIGHT = "weight", "weight differs from the manifest"

    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="discrepancies")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    serial = models.CharField(max_length=64)
    detail = models.CharField(max_length=300)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=300, blank=True)
