from __future__ import annotations

from django.db import models
from django.utils import timezone


class OpsSample(models.Model):
    """A minute's reading of the numbers the status page charts over the last hour (written
    by the `ops.sample` schedule; counters are cumulative, the page takes differences)."""

    taken_at = models.DateTimeField(default=timezone.now, db_index=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"sample at {self.taken_at:%Y-%m-%d %H:%M}"
