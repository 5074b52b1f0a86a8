"""django-q2 tasks of batches: thin and idempotent; the rows are the truth."""

from __future__ import annotations

from batches import dispatch as provider_batches


def dispatch() -> int:
    """Doorbell after a batch-mode submit: send queued batch-mode jobs to the provider."""
    return provider_batches.dispatch()


def poll() -> dict[str, int]:
    """Scheduled every minute: dispatch, poll provider batches, ingest, settle batches."""
    return provider_batches.poll()
