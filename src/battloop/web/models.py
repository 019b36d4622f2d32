"""People and access: memberships with roles, API tokens, audit grants and the audit log."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from battloop.registry.models import Organization


class Role(models.TextChoices):
    ADMIN = "admin", "admin"
    ASSET_MANAGER = "asset_manager", "asset manager"
    TECHNICIAN = "technician", "technician"
    RECYCLER_OPERATOR = "recycler_operator", "recycler operator"
    AUDITOR = "auditor", "auditor (read-only)"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=24, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org")]

    def __str__(self):
        return f"{self.user} @ {self.organization.code} ({self.role})"


class AuditGrant(models.Model):
    """An organization lets an auditor organization read its records."""

    auditor = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="grants_received")
    grantor = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="grants_given")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["auditor", "grantor"], name="one_grant_per_pair")]


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """A bearer token scoped to one organization and role. Only its SHA-256 is stored;
    the token itself is shown once, when it is created."""

    PREFIX = "blp_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
    role = models.CharField(max_length=24, choices=Role.choices)
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="first characters, to recognise a token in lists")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    @classmethod
    def issue(cls, user, organization, role: str, name: str, days: int = 90) -> tuple["ApiToken", str]:
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, organization=organization, role=role, name=name, token_hash=hash_token(raw),
                                   hint=raw[:10], expires_at=timezone.now() + timezone.timedelta(days=days))
        return token, raw

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class AuditEntry(models.Model):
    """What a user did (and failed logins), for admins to filter."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    username = models.CharField(max_length=150, blank=True)
    organization = models.ForeignKey(Organization, on_delete=models.SET_NULL, null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=8, default="web")  # web | api | cli

    class Meta:
        ordering = ["-at"]


def record(action: str, *, user=None, organization=None, object_type: str = "", object_id: str = "", detail=None,
           ip: str | None = None, via: str = "web", username: str = "") -> AuditEntry:
    return AuditEntry.objects.create(
        action=action, user=user if getattr(user, "is_authenticated", False) else None,
        username=username or (user.get_username() if getattr(user, "is_authenticated", False) else ""),
        organization=organization, object_type=object_type, object_id=str(object_id)[:100], detail=detail or {}, ip=ip, via=via)


class ImportJob(models.Model):
    """An upload waiting for, running or done with its import (web and API)."""

    kind = models.CharField(max_length=16)
    file_name = models.CharField(max_length=255)
    stored_path = models.CharField(max_length=500)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
    options = models.JSONField(default=dict)
    status = models.CharField(max_length=16, default="queued")  # queued | running | done | failed
    batch = models.ForeignKey("registry.ImportBatch", on_delete=models.SET_NULL, null=True, blank=True)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
