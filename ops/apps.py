from django.apps import AppConfig


class OpsConfig(AppConfig):
    """What an operator runs the service from: /metrics, /readyz, the status page."""

    name = "ops"
    default_auto_field = "django.db.models.BigAutoField"
