"""A request that loses its database connection answers 503 `database_unavailable` with
Retry-After, not a 500; retrying it with the same Idempotency-Key makes the job once.
(Found by `make chaos`, scenario "database": connections reset under the web.)"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from generation.models import Job
from tests.plugins.actors import Actor, assert_error

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


def _terminate_our_backend() -> None:
    """Kill this process's server-side session from another one, as a failover would."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"] or "postgres",
        dbname=s["NAME"],
        password=s["PASSWORD"] or None,
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_submit_whose_database_connection_drops_is_503_and_its_retry_succeeds_once(
    owner: Actor,
) -> None:
    api = owner.api()
    body = {"prompt": "a lamp on a desk"}
    _terminate_our_backend()

    first = api.post("/api/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert_error(first, 503, "database_unavailable")
    assert first.headers["Retry-After"] == "1"
    retry = api.post("/api/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert retry.status_code == 202, retry.content
    assert Job.objects.filter(tenant=owner.tenant).count() == 1
