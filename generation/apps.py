from typing import Any

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from generation import shutdown

        post_spawn.connect(_worker_spawned, dispatch_uid="generation-worker-spawned")
        shutdown.install()  # SIGTERM to `qcluster` drains its runner loops


def _worker_spawned(**_kwargs: Any) -> None:
    """A django-q2 worker process is ready: load what its first task would (the runner and
    the Gemini SDK: about 1 s here, which a fresh worker's first jobs used to wait for),
    then freeze the start-up objects out of the garbage collector's sight."""
    import generation.tasks  # noqa: F401
    from config.warmup import freeze_startup_objects
    from generation import heartbeat, sweeper
    from generation.gateway import get_provider

    get_provider().close()
    from django_q.conf import Conf

    if not Conf.SYNC:  # tasks run inline (tests): this is no worker process
        heartbeat.start()
        sweeper.start()  # the sweep, without waiting behind job tasks on the queue
        _gil_switch_set()
    freeze_startup_objects()


def _gil_switch_set() -> None:
    """A worker's database threads and Content Credentials reads give the GIL up on every
    round trip and stream callback (~150 per image), then wait for it behind the event
    loop's JSON and pydantic work for up to the switch interval each time."""
    import sys

    from django.conf import settings

    sys.setswitchinterval(settings.BUNCH_WORKER_GIL_SWITCH_MS / 1000)
