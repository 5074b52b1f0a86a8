from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from config.limits import strict_json_strings
        from tenants import keycache, ratelimit, schema  # noqa: F401  (schema: OpenAPI)
        from tenants.models import ApiKey, Plan, Tenant
        from tenants.sessions import mark_signed_in

        user_logged_in.connect(mark_signed_in, dispatch_uid="tenants-session-signed-in-at")
        strict_json_strings()
        post_migrate.connect(ratelimit.create_sqlite_store, sender=self)

        # Remembered keys (keycache) are read again after any change to a key, tenant or plan.
        for model in (ApiKey, Tenant, Plan):
            uid = f"keycache-{model.__name__}"
            post_save.connect(keycache.forget_all, sender=model, dispatch_uid=uid)
            post_delete.connect(keycache.forget_all, sender=model, dispatch_uid=uid)
