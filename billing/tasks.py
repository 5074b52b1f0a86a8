"""django-q2 tasks: thin; the ledger rows are the truth."""

from __future__ import annotations

from billing.rollups import usage_rollup_fold_all
from billing.sync import sync_pending


def sync_usage() -> str:
    """Scheduled every minute (`billing.sync`): report pending usage to Stripe."""
    return str(sync_pending())


def fold_usage() -> str:
    """Scheduled every minute (`billing.rollups`): fold new usage events into the rollups."""
    return str(usage_rollup_fold_all())
