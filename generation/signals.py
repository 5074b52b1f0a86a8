"""Signals other apps listen to without generation importing them (layers run one way)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once a job has finished and its transaction committed, with `job_id`, `batch_id`
# (None for a job outside a batch) and `status`. batches settles a batch on its last item.
job_finished = Signal()
