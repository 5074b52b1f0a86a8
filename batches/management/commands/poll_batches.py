"""`manage.py poll_batches [--until-idle] [--timeout S]`: what the schedule runs each minute."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from batches import dispatch
from batches.models import Batch, ProviderBatch
from core.catalog import Mode
from generation.models import Job


class Command(BaseCommand):
    help = "Send batch-mode jobs to the provider, poll its batch jobs and ingest the results."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="Repeat until no provider batch or batch is left unfinished.",
        )
        parser.add_argument("--interval", type=float, default=5.0, help="Seconds between passes.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Give up after S s.")

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + options["timeout"]
        while True:
            result = dispatch.poll()
            self.stdout.write(" ".join(f"{k}={v}" for k, v in sorted(result.items())))
            if not options["until_idle"] or _idle() or time.monotonic() > deadline:
                return
            time.sleep(options["interval"])


def _idle() -> bool:
    waiting = [Job.Status.QUEUED, Job.Status.RUNNING]
    return not (
        Batch.objects.filter(status__in=waiting).exists()
        or Job.objects.filter(mode=Mode.BATCH, status__in=waiting).exists()
        or ProviderBatch.objects.filter(ingested_at__isnull=True).exists()
    )
