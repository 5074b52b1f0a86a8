from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        post_spawn.connect(_worker_spawned, dispatch_uid="webhooks-worker-spawned")


def _worker_spawned(**_kwargs: object) -> None:
    """A django-q2 worker process: retries it records are rung at their time."""
    from django_q.conf import Conf

    from webhooks import doorbell

    if not Conf.SYNC:  # tasks run inline (tests): this is no worker process
        doorbell.enable()
