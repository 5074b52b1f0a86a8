"""A submit that dies after its job was written and before its Idempotency-Key's answer
was remembered leaves nothing behind: the retry with the same key makes the job once.
(Found by `make chaos`, scenario "web_kills": a SIGKILLed web process left the key's record
half-done, its retries answered 409 for 24 hours, and the job ran with no client knowing.)

The failure is injected in the database, the edge of the system: a trigger refuses the
UPDATE that remembers the answer, as a process dying at that instant would never send it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from generation.models import IdempotencyRecord, Job
from tests.plugins.actors import Actor

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def answer_never_remembered() -> Iterator[None]:
    table = IdempotencyRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION chaos_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the web process died here'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER chaos_refuse BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION chaos_refuse()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS chaos_refuse ON {table}")
        cursor.execute("DROP FUNCTION IF EXISTS chaos_refuse()")


def test_a_submit_that_dies_before_its_answer_is_remembered_leaves_no_job_and_retries_once(
    owner: Actor, answer_never_remembered: None
) -> None:
    api = owner.api()
    body = {"prompt": "a kettle, studio light"}

    dying = api.post("/api/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    assert dying.status_code == 500
    assert not Job.objects.exists()
    assert not IdempotencyRecord.objects.exists()

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER chaos_refuse ON {IdempotencyRecord._meta.db_table}")
    retry = api.post("/api/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    again = api.post("/api/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="k-9")

    assert retry.status_code == 202, retry.content
    assert again.status_code == 202 and again.json()["id"] == retry.json()["id"]
    assert Job.objects.filter(tenant=owner.tenant).count() == 1
