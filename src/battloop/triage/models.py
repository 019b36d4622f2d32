"""Stored triage decisions and the policy versions that made them."""

from django.db import models

from battloop.registry.models import Pack


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

    class Meta:
        ordering = ["-decided_at"]
