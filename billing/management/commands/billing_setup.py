from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.gateway_factory import stripe_gateway
from billing.setup import setup_run
from billing.stripe_gateway import StripeGatewayError, StripeRetryableError
from billing.tokens import switch_time


class Command(BaseCommand):
    help = (
        "Create (idempotently) the Stripe token meters, products and metered prices of "
        "every billable line and plan markup, record the switch-over from the legacy "
        "meters, give existing subscriptions the new prices (keeping the old ones), and "
        "a customer and subscription for each tenant lacking them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="Keep trying this long while Stripe cannot be reached (e.g. at start-up).",
        )
        parser.add_argument("--no-tenants", action="store_true", help="Set up the catalog only.")

    def handle(self, *args: Any, **opts: Any) -> None:
        deadline = time.monotonic() + opts["wait"]
        while True:
            try:
                report = setup_run(gateway=stripe_gateway(), tenants=not opts["no_tenants"])
                break
            except StripeRetryableError as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(f"Stripe cannot be reached: {exc}") from None
                time.sleep(1)  # a command waiting for a server to start, not a test
            except StripeGatewayError as exc:
                raise CommandError(f"Stripe refused the setup: {exc}") from None
        for problem in report.problems:
            self.stderr.write(problem)
        switch = switch_time()
        self.stdout.write(
            f"token meters: {len(report.lines)}; "
            f"token meters from: {switch.isoformat() if switch else 'not yet'}; "
            f"customers created: {report.customers_created}; "
            f"subscriptions created: {report.subscriptions_created}; "
            f"prices added to subscriptions: {report.prices_added}"
        )
