from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Plan, Tenant
from tenants.services import tenant_create, user_get_or_create


class Command(BaseCommand):
    help = "Create a tenant on a plan, optionally with an owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", required=True)
        parser.add_argument("--plan", required=True, help="Plan slug, e.g. starter")
        parser.add_argument("--owner-email")

    def handle(self, *args: Any, **opts: Any) -> None:
        plan = Plan.objects.filter(slug=opts["plan"]).first()
        if plan is None:
            known = ", ".join(Plan.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No plan {opts['plan']!r}. Known plans: {known}.")
        if Tenant.objects.filter(slug=opts["slug"]).exists():
            raise CommandError(f"A tenant with slug {opts['slug']!r} already exists.")
        owner = user_get_or_create(email=opts["owner_email"]) if opts["owner_email"] else None
        tenant = tenant_create(name=opts["name"], slug=opts["slug"], plan=plan, owner=owner)
        self.stdout.write(f"Created tenant {tenant.slug} on plan {plan.slug}.")
