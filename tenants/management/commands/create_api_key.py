from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import BunchError
from tenants.models import Tenant
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key. The key is printed alone on the last line (scripts rely on it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", default="generate,read")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {opts['tenant']!r}.")
        scopes = [s.strip() for s in opts["scopes"].split(",") if s.strip()]
        try:
            issued = api_key_create(tenant=tenant, name=opts["name"], scopes=scopes)
        except BunchError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"API key {opts['name']!r} for {tenant.slug} (scopes: {', '.join(scopes)}). "
            "It is shown once; store it now."
        )
        self.stdout.write(issued.plaintext)
