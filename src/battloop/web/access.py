"""Who may see and do what. Data is scoped by organization (DESIGN.md; issue: people and access):

- an operator or tower company sees the packs it owns or holds, and its sites;
- a recycler, logistics provider or second-life integrator sees the packs in its custody
  or shipped to it;
- an OEM sees the packs it made (the passport's "legitimate interest") and its own;
- an auditor reads what other organizations granted it, and writes nothing.

Objects outside the scope are "not found" (404), never "forbidden", so IDs do not leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from battloop.registry.lifecycle import OrgKind
from battloop.registry.models import Organization, Pack, PackModel, Site

from .models import AuditGrant, Membership, Role

# role → actions it may perform
PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset({"read", "transition", "import", "manage_tokens", "read_audit_log"}),
    Role.ASSET_MANAGER: frozenset({"read", "transition", "import"}),
    Role.TECHNICIAN: frozenset({"read", "transition"}),
    Role.RECYCLER_OPERATOR: frozenset({"read", "transition"}),
    Role.AUDITOR: frozenset({"read"}),
}


@dataclass(frozen=True)
class Actor:
    user: object
    organization: Organization
    role: str
    via: str = "web"

    def can(self, action: str) -> bool:
        if self.organization.kind == OrgKind.AUDITOR and action != "read":
            return False  # an auditor organization writes nothing, whatever the role says
        return action in PERMISSIONS.get(self.role, frozenset())

    @property
    def name(self) -> str:
        return self.user.get_username()


def actor_for_user(user, organization_code: str | None = None) -> Actor | None:
    """The user's acting membership: the one named, else the first."""
    if not getattr(user, "is_authenticated", False):
        return None
    qs = Membership.objects.select_related("organization").filter(user=user).order_by("id")
    if organization_code:
        qs = qs.filter(organization__code=organization_code)
    m = qs.first()
    return Actor(user, m.organization, m.role) if m else None


def _granted_orgs(org: Organization) -> QuerySet:
    now = timezone.now()
    return AuditGrant.objects.filter(auditor=org).filter(Q(expires_at=None) | Q(expires_at__gt=now)).values("grantor_id")


def pack_scope(actor: Actor) -> Q:
    org = actor.organization
    kind = org.kind
    if kind in (OrgKind.OPERATOR, OrgKind.TOWER_COMPANY):
        return Q(owner=org) | Q(custodian=org)
    if kind == OrgKind.OEM:
        return Q(model__oem=org) | Q(owner=org) | Q(custodian=org)
    if kind == OrgKind.AUDITOR:
        return Q(owner__in=_granted_orgs(org))
    # recyclers, logistics providers, second-life integrators: custody, or shipped to them
    return Q(custodian=org) | Q(events__payload__destination=org.code)


def packs_for(actor: Actor) -> QuerySet:
    scope = pack_scope(actor)
    qs = Pack.objects.filter(scope)
    if actor.organization.kind not in (OrgKind.OPERATOR, OrgKind.TOWER_COMPANY, OrgKind.OEM, OrgKind.AUDITOR):
        qs = qs.distinct()  # the events join may repeat packs
    return qs


def scoped_pack(actor: Actor, serial: str) -> Pack | None:
    """One pack by serial if the actor may see it (None otherwise: out of scope looks like absent)."""
    return (packs_for(actor).select_related("model", "model__oem", "site", "owner", "custodian")
            .filter(serial=serial).first())


def sites_for(actor: Actor) -> QuerySet:
    org = actor.organization
    if org.kind in (OrgKind.OPERATOR, OrgKind.TOWER_COMPANY):
        return Site.objects.filter(owner=org)
    if org.kind == OrgKind.AUDITOR:
        return Site.objects.filter(owner__in=_granted_orgs(org))
    return Site.objects.none()


def portfolio_owner_ids(actor: Actor) -> list[int]:
    """Whose fleet-level figures (retirement outlook) the actor may read: its own organization
    as owner, or, for an auditor, the owners that granted it access."""
    org = actor.organization
    if org.kind == OrgKind.AUDITOR:
        return list(_granted_orgs(org).values_list("grantor_id", flat=True))
    return [org.id]


def models_for(actor: Actor) -> QuerySet:
    return PackModel.objects.all()  # pack models are public reference data
