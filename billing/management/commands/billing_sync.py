from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.sync import sync_pending


class Command(BaseCommand):
    help = "Report due pending usage events to Stripe as meter events (what the schedule runs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=500)

    def handle(self, *args: Any, **opts: Any) -> None:
        self.stdout.write(str(sync_pending(limit=opts["limit"])))
