from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.rollups import usage_rollup_fold_all, usage_rollup_mismatches
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Compare every usage rollup row with the ledger rows folded into it (images, tokens, "
        "provider cost and billed, to the nano-dollar); exits 1 on any difference. --fold "
        "folds pending usage first. Reads the whole ledger: an operator's check, not a page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="A tenant's slug; default every tenant.")
        parser.add_argument("--fold", action="store_true", help="Fold pending usage first.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        if options["fold"]:
            self.stdout.write(f"folded {usage_rollup_fold_all()} usage event(s)")
        mismatches = usage_rollup_mismatches(tenant=tenant)
        for m in mismatches:
            self.stdout.write(f"{m['key']}: ledger {m['ledger']} rollup {m['rollup']}")
        if mismatches:
            raise CommandError(f"{len(mismatches)} rollup row(s) differ from the ledger.")
        self.stdout.write("rollups equal the ledger")
