from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime

from billing.reconcile import Difference, reconcile
from billing.stripe_gateway import StripeGatewayError

HEADER = ("tenant", "line", "meter", "ledger", "stripe", "missing", "pending")


def _since(value: str) -> dt.datetime:
    moment = parse_datetime(value)
    if moment is None and (day := parse_date(value)) is not None:
        moment = dt.datetime.combine(day, dt.time())
    if moment is None:
        raise CommandError(f"--since {value!r} is not an ISO date or date-time.")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def table(differences: list[Difference]) -> list[str]:
    rows = [HEADER] + [
        (d.tenant, d.line, d.meter, str(d.ledger), str(d.stripe), str(d.missing), str(d.pending))
        for d in differences
    ]
    widths = [max(len(row[n]) for row in rows) for n in range(len(HEADER))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


class Command(BaseCommand):
    help = (
        "Compare the ledger's sent usage with Stripe's meter summaries per tenant and line "
        "(images in count, amounts in cents); --fix resends what Stripe lacks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_since, help="ISO date or date-time (UTC).")
        parser.add_argument("--fix", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            report = reconcile(since=opts["since"], fix=opts["fix"])
        except StripeGatewayError as exc:
            raise CommandError(f"Stripe cannot be read: {exc}") from None
        window = f"{report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M} UTC"
        self.stdout.write(f"{report.checked} tenant line(s) checked, {window}")
        if not report.differences:
            self.stdout.write("no differences")
            return
        self.stdout.write("\n".join(table(report.differences)))
        for note in report.notes:
            self.stderr.write(note)
        if opts["fix"]:
            self.stdout.write(
                f"resent {report.resent} event(s), sent {report.corrections} correction(s)"
            )
            if report.remaining:
                self.stdout.write("still different:\n" + "\n".join(table(report.remaining)))
            else:
                self.stdout.write("fixed: no differences remain")
