"""django-q2 tasks of operations."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from ops.models import OpsSample
from ops.readings import reading

KEEP = dt.timedelta(days=2)


def sample() -> int:
    """Scheduled every minute: one reading for the status page's last-hour charts."""
    now = timezone.now()
    OpsSample.objects.create(taken_at=now, data=reading(now))
    OpsSample.objects.filter(taken_at__lt=now - KEEP).delete()
    return OpsSample.objects.count()
