from typing import Any

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        post_spawn.connect(_worker_spawned, dispatch_uid="generation-worker-spawned")


def _worker_spawned(**_kwargs: Any) -> None:
    """A django-q2 worker process is ready: its start-up objects need no more collecting."""
    from config.warmup import freeze_startup_objects

    freeze_startup_objects()
