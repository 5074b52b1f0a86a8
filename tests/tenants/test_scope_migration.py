"""Migration tenants.0003: keys made before the `billing` and `webhooks` scopes keep what
they could do; keys narrowed to one scope get nothing new."""

from __future__ import annotations

import pytest

from tests.plugins.migrations import migrate_to, migrate_to_latest

BEFORE = ("tenants", "0004_tenant_require_two_factor")
AFTER = ("tenants", "0005_api_key_scopes_billing_webhooks")


@pytest.mark.django_db(transaction=True)
def test_full_keys_keep_usage_and_webhooks_narrow_keys_stay_narrow() -> None:
    apps = migrate_to(BEFORE)
    plan = apps.get_model("tenants", "Plan").objects.create(
        name="Old", slug="old", monthly_image_quota=10, monthly_spend_cap=1
    )
    tenant = apps.get_model("tenants", "Tenant").objects.create(name="A", slug="a", plan=plan)
    keys = apps.get_model("tenants", "ApiKey").objects
    for prefix, scopes in (("full", ["generate", "read"]), ("reader", ["read"])):
        keys.create(tenant=tenant, name=prefix, prefix=prefix, secret_hash="x", scopes=scopes)
    try:
        apps = migrate_to(AFTER)
        migrated = {k.prefix: k.scopes for k in apps.get_model("tenants", "ApiKey").objects.all()}
    finally:
        migrate_to_latest()

    assert migrated == {"full": ["generate", "read", "billing", "webhooks"], "reader": ["read"]}
