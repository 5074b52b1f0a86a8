"""django-q2 tasks: thin; the ledger rows are the truth."""

from __future__ import annotations

from billing.sync import sync_pending


def sync_usage() -> str:
    """Scheduled every minute (`billing.sync`): report pending usage to Stripe."""
    return str(sync_pending())
