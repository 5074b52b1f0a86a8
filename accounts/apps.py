from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """What protects a dashboard user's account beyond the password: two-factor sign-in."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
