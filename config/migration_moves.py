"""Helpers for migrations that move models from one app to another with their rows."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def content_types_moved(old_app: str, new_app: str, models: list[str]) -> migrations.RunPython:
    """Relabel the models' content types, so that admin history and permissions that point
    at them follow the move (Django would otherwise make new ones and orphan the old)."""

    def relabel(apps: Any, schema_editor: Any, source: str, target: str) -> None:
        content_type = apps.get_model("contenttypes", "ContentType")
        taken = set(
            content_type.objects.filter(app_label=target, model__in=models).values_list(
                "model", flat=True
            )
        )
        content_type.objects.filter(app_label=source, model__in=models).exclude(
            model__in=taken
        ).update(app_label=target)

    return migrations.RunPython(
        lambda apps, editor: relabel(apps, editor, old_app, new_app),
        lambda apps, editor: relabel(apps, editor, new_app, old_app),
    )


def schedule_moved(old_name: str, new_name: str, func: str, old_func: str) -> migrations.RunPython:
    """Rename a django-q2 schedule and point it at the task's new path."""

    def move(apps: Any, schema_editor: Any, source: str, target: str, target_func: str) -> None:
        schedule = apps.get_model("django_q", "Schedule")
        schedule.objects.filter(name=target).delete()
        schedule.objects.filter(name=source).update(name=target, func=target_func)

    return migrations.RunPython(
        lambda apps, editor: move(apps, editor, old_name, new_name, func),
        lambda apps, editor: move(apps, editor, new_name, old_name, old_func),
    )
