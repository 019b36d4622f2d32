from django.core.management.base import BaseCommand, CommandError

from battloop.registry.lifecycle import OrgKind
from battloop.registry.models import Organization


class Command(BaseCommand):
    help = "Register an organization (operator, tower company, OEM, recycler, integrator, logistics, auditor)."

    def add_arguments(self, parser):
        parser.add_argument("code", help="short unique code, e.g. ctc-gd")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=[k.value for k in OrgKind])
        parser.add_argument("--province", default="")
        parser.add_argument("--whitelisted", action="store_true", help="recycler on the MIIT white-list")

    def handle(self, *args, **o):
        org, created = Organization.objects.get_or_create(
            code=o["code"], defaults={"name": o["name"], "kind": o["kind"], "province": o["province"], "recycler_whitelisted": o["whitelisted"]})
        if not created and (org.name, org.kind) != (o["name"], o["kind"]):
            raise CommandError(f"organization {o['code']} already exists as {org.name} ({org.kind})")
        self.stdout.write(f"{'registered' if created else 'already registered'}: {org}")
