"""Keys issued before the scopes `billing` and `webhooks` existed read usage and managed
webhook endpoints with `read` and `generate`. A key holding both (every default key) keeps
what it could do; a key narrowed to one of them was meant to do less and gets neither.
New keys get `generate` and `read` only (tenants.roles.DEFAULT_SCOPES)."""

from django.db import migrations

GRANTED = ("billing", "webhooks")


def grant(apps, schema_editor):  # type: ignore[no-untyped-def]
    ApiKey = apps.get_model("tenants", "ApiKey")
    for key in ApiKey.objects.all().only("pk", "scopes"):
        scopes = list(key.scopes or [])
        if not {"read", "generate"} <= set(scopes):
            continue
        added = [s for s in GRANTED if s not in scopes]
        if added:
            ApiKey.objects.filter(pk=key.pk).update(scopes=[*scopes, *added])


def revoke(apps, schema_editor):  # type: ignore[no-untyped-def]
    ApiKey = apps.get_model("tenants", "ApiKey")
    for key in ApiKey.objects.all().only("pk", "scopes"):
        kept = [s for s in key.scopes or [] if s not in GRANTED]
        ApiKey.objects.filter(pk=key.pk).update(scopes=kept)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_tenant_require_two_factor")]

    operations = [migrations.RunPython(grant, revoke)]
