"""Signals other apps listen to without generation importing them (layers run one way)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once a job has finished and its transaction committed, with `job_id`, `batch_id`
# (None for a job outside a batch) and `status`, for a batch's items and a series' frames
# (`services.SERIES_LABEL` in the job's metadata). batches settles a batch on its last item;
# series starts the next frame.
job_finished = Signal()
