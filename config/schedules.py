"""Periodic django-q2 schedules, created by data migrations through one helper."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def every_minute(name: str, func: str) -> migrations.RunPython:
    """A RunPython operation that creates (or removes) the schedule `name` running `func`.

    Periodic tasks compute their own window and lock (django-q2 may replay or overlap
    runs; see shared/reference/django-q2.md), so the schedule is only a trigger.
    """

    def create(apps: Any, schema_editor: Any) -> None:
        apps.get_model("django_q", "Schedule").objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": 1, "repeats": -1},
        )

    def remove(apps: Any, schema_editor: Any) -> None:
        apps.get_model("django_q", "Schedule").objects.filter(name=name).delete()

    return migrations.RunPython(create, remove)
