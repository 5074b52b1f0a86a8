"""Schemathesis fuzzes the API through its own OpenAPI schema, in process (WSGI), with a
real API key: every check, every operation, then stateful sequences along the links
(create → get → list → cancel)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from config.wsgi import application
from tenants.services import api_key_create
from tests.plugins.actors import make_plan

# All checks on. A schema-valid request may still break a rule no schema can say (an
# unknown plan, bytes that are not an image, a date range over 366 days): 400 is allowed
# for it, in the error shape the schema documents.
CHECKS = {
    "positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", "400", "401", "402", "403", "404", "409", "429"],
    }
}
SCHEMA_PATH = "/api/schema/?format=json"
schema = schemathesis.openapi.from_wsgi(
    SCHEMA_PATH, application, config=SchemathesisConfig.from_dict({"checks": CHECKS})
)
# Sequences with valid data (invalid data is the per-operation test's job): a negative
# draw deep in a sequence can be unsatisfiable, which Hypothesis then reports as an error.
sequences = schemathesis.openapi.from_wsgi(
    SCHEMA_PATH,
    application,
    config=SchemathesisConfig.from_dict({"checks": CHECKS, "generation": {"mode": "positive"}}),
)
CURRENT_KEY: dict[str, str] = {}
EXAMPLES: dict[str, int] = {}  # operation → examples sent, for docs/security.md (`-s`)


@sequences.auth(refresh_interval=None, retry_on=[])
@schema.auth(refresh_interval=None, retry_on=[])
class ApiKey:
    """The test's real key, sent as Schemathesis's auth, so that its `ignored_auth` check
    knows what to leave out when it tries the API without credentials."""

    def get(self, case: Any, context: Any) -> str:
        return CURRENT_KEY.get("key", "")  # asked once at collection too, before any test

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def in_process(db: None) -> Iterator[None]:
    """Django's WSGI handler closes the database connection after each request, which
    would close the test's transaction; the test client disconnects the same signals."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield
    for signal in signals:
        signal.connect(close_old_connections)


@pytest.fixture
def fuzz_key(in_process: None, stripe_fake: Any, settings: Any) -> Iterator[str]:
    settings.STRIPE_API_KEY = stripe_fake.api_key
    settings.STRIPE_API_BASE = stripe_fake.api_base
    settings.BILLING_ENABLED = True
    # An event stream of a job no worker runs would stay open until its longest life.
    settings.BUNCH_EVENTS_MAX_S = 1
    from tenants.services import tenant_create

    plan = make_plan(requests_per_minute=1_000_000, monthly_image_quota=1_000_000,
                     monthly_spend_cap="1000000.00")  # fmt: skip
    tenant = tenant_create(name="Fuzz", slug="fuzz", plan=plan)
    CURRENT_KEY["key"] = api_key_create(tenant=tenant, name="fuzz").plaintext
    yield CURRENT_KEY["key"]
    print(f"\nschema fuzz so far: {sum(EXAMPLES.values())} requests, {len(EXAMPLES)} operations")


@schema.parametrize()
@settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_schema(case: Any, fuzz_key: str) -> None:
    response = case.call_and_validate()
    EXAMPLES[case.operation.label] = EXAMPLES.get(case.operation.label, 0) + 1
    assert response.status_code < 500


def test_a_job_event_stream_conforms_to_the_schema_event_by_event(fuzz_key: str) -> None:
    """Each event of a stream (before OpenAPI 3.2 the stream's schema is one event's)."""
    from generation.services import JobParams, job_submit
    from tenants.models import Tenant

    job = job_submit(tenant=Tenant.objects.get(slug="fuzz"), params=JobParams(prompt="a kite"))
    operation = schema["/api/v1/generations/{job_id}/events"]["GET"]
    case = operation.Case(
        path_parameters={"job_id": str(job.pk)}, headers={"Authorization": f"Bearer {fuzz_key}"}
    )

    response = case.call_and_validate()  # no worker: one `status` event, then its end

    assert response.status_code == 200
    assert b"event: status" in response.content


def test_linked_operations_conform_in_sequence(fuzz_key: str) -> None:
    """create → get → list → cancel and the like, along the links Schemathesis infers from
    the schema (path parameters named after the ids that responses carry)."""
    scenarios: list[int] = []
    calls: Counter[str] = Counter()

    class Workflow(sequences.as_state_machine()):  # type: ignore[misc]
        """Each scenario starts from the same database: it runs inside a savepoint that is
        rolled back after it, so a replayed or shrunk scenario meets the same state."""

        def setup(self) -> None:
            self.savepoint = transaction.savepoint()

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)
            cache.clear()
            scenarios.append(self.steps)

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            self.steps = getattr(self, "steps", 0) + 1
            calls[f"{case.method} {case.path} → {response.status_code}"] += 1

    Workflow.run(
        settings=settings(
            max_examples=60,
            stateful_step_count=8,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    linked = {k: v for k, v in calls.items() if "{" in k and not k.endswith(("→ 404", "→ 400"))}
    found = sum(linked.values())
    print(f"\nstateful: {len(scenarios)} scenarios, {sum(scenarios)} calls, {found} to an "
          f"object found through a link: {sorted(linked)}")  # fmt: skip
    assert linked, "no link between operations was followed"
