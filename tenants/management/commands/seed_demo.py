from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from tenants.models import Membership, Plan, Tenant
from tenants.services import api_key_create, membership_set, tenant_create, user_get_or_create

DEMO_PASSWORD = "bunch-demo-2026"  # local demo data only; never a production credential

PLANS: list[dict[str, Any]] = [
    {
        "slug": "free",
        "name": "Free",
        "monthly_image_quota": 50,
        "monthly_spend_cap": Decimal("5.00"),
        "requests_per_minute": 60,
        "max_concurrent_jobs": 2,
        "weight": 1,
        "markup_per_image": Decimal("0.010"),
        "allowed_tiers": ["lite"],
        "batch_allowed": False,
        "monthly_price": Decimal("0"),
    },
    {
        "slug": "starter",
        "name": "Starter",
        "monthly_image_quota": 5_000,
        "monthly_spend_cap": Decimal("500.00"),
        "requests_per_minute": 600,
        "max_concurrent_jobs": 16,
        "weight": 2,
        "markup_per_image": Decimal("0.008"),
        "allowed_tiers": ["lite", "flash"],
        "batch_allowed": True,
        "monthly_price": Decimal("29"),
    },
    {
        "slug": "scale",
        "name": "Scale",
        "monthly_image_quota": 1_000_000,
        "monthly_spend_cap": Decimal("50000.00"),
        "requests_per_minute": 20_000,
        "max_concurrent_jobs": 500,
        "weight": 4,
        "markup_per_image": Decimal("0.005"),
        "allowed_tiers": ["lite", "flash", "pro"],
        "batch_allowed": True,
        "monthly_price": Decimal("499"),
    },
]


class Command(BaseCommand):
    help = "Create demo plans, tenants and users (idempotent) and print logins and an API key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-key", action="store_true", help="Do not issue an API key.")

    @transaction.atomic
    def handle(self, *args: Any, **opts: Any) -> None:
        plans = {}
        for spec in PLANS:
            plan, _ = Plan.objects.update_or_create(slug=spec["slug"], defaults=spec)
            plans[plan.slug] = plan

        owner = self._user("owner@acme.test")
        member = self._user("member@acme.test")
        globex_owner = self._user("owner@globex.test")
        acme = self._tenant("acme", "Acme Corp", plans["scale"])
        globex = self._tenant("globex", "Globex", plans["starter"])
        membership_set(tenant=acme, user=owner, role=Membership.Role.OWNER)
        membership_set(tenant=acme, user=member, role=Membership.Role.MEMBER)
        membership_set(tenant=globex, user=globex_owner, role=Membership.Role.OWNER)
        # The acme owner also belongs to globex, to show switching between tenants.
        membership_set(tenant=globex, user=owner, role=Membership.Role.MEMBER)

        operator = self._user("admin@bunch.test")
        operator.is_staff = operator.is_superuser = True
        operator.save(update_fields=["is_staff", "is_superuser"])

        self.stdout.write("Demo data ready.")
        self.stdout.write(f"  Dashboard login: owner@acme.test / {DEMO_PASSWORD} (owner of acme)")
        self.stdout.write(f"                   member@acme.test / {DEMO_PASSWORD} (member of acme)")
        self.stdout.write(f"                   owner@globex.test / {DEMO_PASSWORD} (globex)")
        self.stdout.write(f"  Admin login:     admin@bunch.test / {DEMO_PASSWORD}")
        if not opts["no_key"]:
            # Everything the docs show a key doing (webhooks and usage too), but not managing
            # keys: `keys:manage` is never given by default.
            scopes = ["generate", "read", "billing", "webhooks"]
            issued = api_key_create(tenant=acme, name="demo", scopes=scopes, created_by=owner)
            self.stdout.write("  API key for acme (shown once):")
            self.stdout.write(issued.plaintext)

    def _user(self, email: str) -> Any:
        user = user_get_or_create(email=email, password=DEMO_PASSWORD)
        if not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        return get_user_model().objects.get(pk=user.pk)

    def _tenant(self, slug: str, name: str, plan: Plan) -> Tenant:
        tenant = Tenant.objects.filter(slug=slug).first()
        return tenant or tenant_create(name=name, slug=slug, plan=plan)
