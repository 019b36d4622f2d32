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


class PlanRun(models.Model):
    """One solve of the reverse-logistics network (``battloop plan``), kept with its evidence.

    A run that finds no plan is kept too: ``status`` says why (``infeasible``,
    ``input_error``, ``time_limit_no_incumbent``) and ``infeasible_constraint`` /
    ``shortfall_t`` / ``message`` say which constraint and by how much — never an
    empty plan passed off as a result.
    """

    class Status(models.TextChoices):
        OPTIMAL = "optimal"
        TIME_LIMIT = "time_limit", "time limit, feasible plan"
        TIME_LIMIT_NO_INCUMBENT = "time_limit_no_incumbent", "time limit, no plan found"
        INFEASIBLE = "infeasible"
        INPUT_ERROR = "input_error"
        OTHER = "other"

    scenario = models.CharField(max_length=80, default="baseline", db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=32)
    overrides = models.JSONField(default=dict, blank=True, help_text="the scenario's --set values")
    settings = models.JSONField(default=dict, blank=True, help_text="every setting the solve used")
    input_summary = models.JSONField(default=dict, blank=True, help_text="sources, candidate hubs, destinations, tonnes")
    objective = models.FloatField(null=True, blank=True)
    bound = models.FloatField(null=True, blank=True, help_text="proven lower bound on cost")
    gap = models.FloatField(null=True, blank=True, help_text="relative optimality gap")
    opened_hubs = models.JSONField(default=list, blank=True,
                                   help_text="hub_id, prefecture, prefecture_name, throughput_t, capacity_t, use_pct")
    inbound_flows = models.JSONField(default=list, blank=True, help_text="source site → hub, tonnes by commodity")
    outbound_flows = models.JSONField(default=list, blank=True, help_text="hub → destination, tonnes by commodity")
    cost_breakdown = models.JSONField(default=dict, blank=True,
                                      help_text="fixed, handling, transport in/out, packaging, gate fees net, carbon, total")
    transport_co2_kg = models.FloatField(null=True, blank=True)
    binding_constraints = models.JSONField(default=list, blank=True)
    model_size = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(default=0.0)
    infeasible_constraint = models.CharField(max_length=40, blank=True)
    shortfall_t = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"plan {self.pk} ({self.scenario}, {self.status})"

    @property
    def has_plan(self) -> bool:
        return self.objective is not None


class CollectionRouteRun(models.Model):
    """One hub's collection routes for one day, planned on a stored :class:`PlanRun`."""

    plan = models.ForeignKey(PlanRun, on_delete=models.CASCADE, related_name="route_runs")
    hub_id = models.CharField(max_length=40)
    day = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20)
    vehicles = models.JSONField(default=list, help_text="the fleet used: id, kg, packs, class C equipped")
    settings = models.JSONField(default=dict, blank=True, help_text="speed, window, shift, service times")
    pickups = models.JSONField(default=list, help_text="site, packs, kg, worst safety class")
    routes = models.JSONField(default=list)
    unserved = models.JSONField(default=list, help_text="pickup and the reason no vehicle takes it")
    consignments = models.JSONField(default=list, blank=True,
                                    help_text="pickups beyond a day's out-and-back route, sent as dangerous-goods consignments")
    total_distance_km = models.FloatField(default=0.0)
    total_cost = models.FloatField(default=0.0)
    seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-created_at", "-id"]
