"""Read the Content Credentials of stored images that have none recorded (images stored
before reading existed), or of every image with --all (after the trust list changed)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from generation.images import provenance_check
from generation.models import Image


class Command(BaseCommand):
    help = "Read and verify stored images' C2PA Content Credentials and record the result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="read every image again")
        parser.add_argument("--tenant", type=int, help="only this tenant's images (id)")

    def handle(self, *args: Any, **opts: Any) -> None:
        found = Image.objects.order_by("created_at")
        if not opts["all"]:
            found = found.filter(provenance__isnull=True)
        if opts["tenant"]:
            found = found.filter(tenant_id=opts["tenant"])
        states: dict[str, int] = {}
        for image in found.iterator(chunk_size=200):
            state = provenance_check(image=image).state
            states[state] = states.get(state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
        self.stdout.write(f"Checked {sum(states.values())} images: {summary}.")
