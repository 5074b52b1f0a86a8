"""Deliveries to a real HTTP receiver on loopback: signing, retries, filters, redelivery."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from pytest_django.fixtures import Settings
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.plugins.actors import Actor
from webhooks.models import WebhookDelivery
from webhooks.services import RETRY_SCHEDULE, deliveries_due, delivery_attempt, event_emit

pytestmark = pytest.mark.django_db
ENDPOINTS = "/api/v1/webhook-endpoints"
JOB = {"id": "0b7f7c4e-1", "status": "succeeded", "images": 2}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tenant's webhook receiver: answers with the scripted statuses, then 200."""

    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def answer(self, *statuses: int) -> None:
        self.statuses.extend(statuses)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {name.lower(): value for name, value in self.headers.items()}
            state.received.append(Received(self.path, headers, body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"receiver says %d" % status)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/bunch"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def allow_loopback(settings: Settings) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True


def add_endpoint(actor: Actor, url: str, event_types: list[str] | None = None) -> dict[str, Any]:
    body = {"url": url, "event_types": event_types or []}
    response = actor.api().post(ENDPOINTS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def emit(actor: Actor, event_type: str = "job.succeeded") -> list[WebhookDelivery]:
    return event_emit(tenant=actor.tenant, event_type=event_type, data=JOB)


def attempt(delivery: WebhookDelivery, now: dt.datetime | None = None) -> WebhookDelivery:
    """One attempt, as the `deliver_webhook` task makes it."""
    result = delivery_attempt(delivery_id=str(delivery.id), now=now)
    assert result is not None
    return result


def test_delivery_is_signed_verifiably_per_standard_webhooks(
    owner: Actor, receiver: Receiver
) -> None:
    secret = add_endpoint(owner, receiver.url)["secret"]
    (delivery,) = emit(owner)

    delivery = attempt(delivery)

    assert delivery.status == "succeeded"
    (request,) = receiver.received
    assert request.path == "/hooks/bunch"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == delivery.event_id
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"] == JOB
    assert dt.datetime.fromisoformat(payload["timestamp"]) <= timezone.now()


def test_signature_checks_out_by_hand_from_the_spec(owner: Actor, receiver: Receiver) -> None:
    secret = add_endpoint(owner, receiver.url)["secret"]
    (delivery,) = emit(owner)
    attempt(delivery)

    (request,) = receiver.received
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = b"%s.%s.%s" % (
        request.headers["webhook-id"].encode(),
        request.headers["webhook-timestamp"].encode(),
        request.body,
    )
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"
    assert len(key) == 24


def test_a_tampered_body_fails_verification(owner: Actor, receiver: Receiver) -> None:
    secret = add_endpoint(owner, receiver.url)["secret"]
    (delivery,) = emit(owner)
    attempt(delivery)

    (request,) = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"succeeded", b"failed"), request.headers)


def test_after_a_500_the_delivery_is_retried_later_and_then_succeeds(
    owner: Actor, receiver: Receiver
) -> None:
    secret = add_endpoint(owner, receiver.url)["secret"]
    (delivery,) = emit(owner)
    receiver.answer(500)
    first_at = timezone.now()

    failed = attempt(delivery, now=first_at)

    assert failed.status == "pending"
    assert failed.attempts == 1
    assert failed.response_code == 500
    assert "receiver says 500" in failed.last_error
    assert failed.duration_ms is not None
    assert failed.next_attempt_at == first_at + RETRY_SCHEDULE[0]
    assert deliveries_due(first_at) == []
    assert deliveries_due(failed.next_attempt_at) == [str(delivery.id)]

    retried = attempt(delivery, now=failed.next_attempt_at)

    assert retried.status == "succeeded"
    assert retried.attempts == 2
    assert retried.response_code == 200
    assert retried.last_error == ""
    assert retried.next_attempt_at is None
    assert retried.delivered_at == failed.next_attempt_at
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # same message
    Webhook(secret).verify(second.body, second.headers)


def test_an_attempt_before_the_retry_is_due_sends_nothing(owner: Actor, receiver: Receiver) -> None:
    add_endpoint(owner, receiver.url)
    (delivery,) = emit(owner)
    receiver.answer(503)
    now = timezone.now()
    attempt(delivery, now=now)

    again = attempt(delivery, now=now + dt.timedelta(seconds=1))

    assert again.attempts == 1
    assert len(receiver.received) == 1


def test_a_succeeded_delivery_is_not_sent_twice(owner: Actor, receiver: Receiver) -> None:
    add_endpoint(owner, receiver.url)
    (delivery,) = emit(owner)
    attempt(delivery)

    again = attempt(delivery)

    assert (again.status, again.attempts, len(receiver.received)) == ("succeeded", 1, 1)


def test_retries_back_off_over_hours_then_the_delivery_fails(
    owner: Actor, receiver: Receiver
) -> None:
    add_endpoint(owner, receiver.url)
    (delivery,) = emit(owner)
    receiver.answer(*[500] * (len(RETRY_SCHEDULE) + 1))
    now = timezone.now()
    waits = []

    for _ in range(len(RETRY_SCHEDULE)):
        delivery = attempt(delivery, now=now)
        assert delivery.next_attempt_at is not None
        waits.append(delivery.next_attempt_at - now)
        now = delivery.next_attempt_at
    delivery = attempt(delivery, now=now)

    assert waits == list(RETRY_SCHEDULE)
    assert sum(waits, dt.timedelta()) > dt.timedelta(hours=17)
    assert (delivery.status, delivery.attempts) == ("failed", len(RETRY_SCHEDULE) + 1)
    assert delivery.next_attempt_at is None
    assert deliveries_due(now + dt.timedelta(days=1)) == []


def test_an_unreachable_receiver_is_recorded_and_retried(owner: Actor, receiver: Receiver) -> None:
    add_endpoint(owner, "http://127.0.0.1:9/nothing-listens-here")
    (delivery,) = emit(owner)

    delivery = attempt(delivery)

    assert delivery.status == "pending"
    assert delivery.response_code is None
    assert "ConnectionError" in delivery.last_error
    assert delivery.next_attempt_at is not None


def test_a_delivery_whose_endpoint_was_deleted_is_dropped(owner: Actor, receiver: Receiver) -> None:
    endpoint_id = add_endpoint(owner, receiver.url)["id"]
    (delivery,) = emit(owner)
    assert owner.api().delete(f"{ENDPOINTS}/{endpoint_id}").status_code == 204

    assert delivery_attempt(delivery_id=str(delivery.id)) is None
    assert receiver.received == []


def test_only_endpoints_that_want_the_event_get_a_delivery(
    owner: Actor, outsider: Actor, receiver: Receiver
) -> None:
    everything = add_endpoint(owner, receiver.url)["id"]
    failures = add_endpoint(owner, receiver.url + "/failed", ["job.failed", "job.canceled"])["id"]
    add_endpoint(outsider, receiver.url + "/outsider")
    disabled = add_endpoint(owner, receiver.url + "/off")["id"]
    owner.api().patch(f"{ENDPOINTS}/{disabled}", {"enabled": False}, format="json")

    succeeded = emit(owner, "job.succeeded")
    failed = emit(owner, "job.failed")

    assert {str(d.endpoint_id) for d in succeeded} == {everything}
    assert {str(d.endpoint_id) for d in failed} == {everything, failures}
    assert len({d.event_id for d in failed}) == 1  # one event, one id at every endpoint
    assert all(d.event_id.startswith("evt_") and len(d.event_id) == 36 for d in failed)


def test_emitting_enqueues_each_delivery_after_commit(
    owner: Actor, receiver: Receiver, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    add_endpoint(owner, receiver.url)
    add_endpoint(owner, receiver.url + "/2")

    with django_capture_on_commit_callbacks() as callbacks:
        deliveries = emit(owner)

    assert len(deliveries) == 2
    assert len(callbacks) == 2
    assert receiver.received == []  # nothing is sent inside the emitting transaction
    assert sorted(deliveries_due()) == sorted(str(d.id) for d in deliveries)


def test_a_loopback_destination_is_refused_at_send_time_when_the_setting_is_off(
    owner: Actor, receiver: Receiver, settings: Settings
) -> None:
    add_endpoint(owner, receiver.url)  # allowed when created…
    (delivery,) = emit(owner)
    settings.WEBHOOKS_ALLOW_LOOPBACK = False  # …but no longer when sent

    delivery = attempt(delivery)

    assert receiver.received == []
    assert delivery.attempts == 1
    assert "not allowed" in delivery.last_error
    assert delivery.status == "pending"


def test_redeliver_sends_a_failed_delivery_again(owner: Actor, receiver: Receiver) -> None:
    endpoint_id = add_endpoint(owner, receiver.url)["id"]
    (delivery,) = emit(owner)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, attempts=7, next_attempt_at=None
    )

    response = owner.api().post(f"{ENDPOINTS}/{endpoint_id}/deliveries/{delivery.id}/redeliver")
    assert response.status_code == 202
    delivery = attempt(delivery)

    assert (delivery.status, delivery.attempts) == ("succeeded", 8)
    assert len(receiver.received) == 1
    log = owner.api().get(f"{ENDPOINTS}/{endpoint_id}/deliveries").json()["results"]
    assert (log[0]["status"], log[0]["response_code"]) == ("succeeded", 200)


def test_after_rotation_both_secrets_verify_during_the_overlap_then_only_the_new(
    owner: Actor, receiver: Receiver
) -> None:
    created = add_endpoint(owner, receiver.url)
    answer = owner.api().post(f"{ENDPOINTS}/{created['id']}/rotate-secret").json()
    rotated = answer["secret"]
    overlap_ends = dt.datetime.fromisoformat(answer["previous_secret_expires_at"])
    assert overlap_ends - timezone.now() > dt.timedelta(hours=23, minutes=59)

    (during,) = emit(owner)
    attempt(during)
    (after,) = emit(owner)
    attempt(after, now=overlap_ends + dt.timedelta(seconds=1))

    first, second = receiver.received
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    Webhook(rotated).verify(first.body, first.headers)
    Webhook(created["secret"]).verify(first.body, first.headers)
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    second_at = dt.datetime.fromtimestamp(int(second.headers["webhook-timestamp"]), dt.UTC)
    with time_machine.travel(second_at, tick=False):
        Webhook(rotated).verify(second.body, second.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(created["secret"]).verify(second.body, second.headers)


def test_a_rotation_with_no_overlap_cuts_the_old_secret_off_at_once(
    owner: Actor, receiver: Receiver
) -> None:
    created = add_endpoint(owner, receiver.url)
    rotated = (
        owner.api()
        .post(f"{ENDPOINTS}/{created['id']}/rotate-secret", {"overlap_seconds": 0}, format="json")
        .json()["secret"]
    )
    (delivery,) = emit(owner)

    attempt(delivery)

    (request,) = receiver.received
    Webhook(rotated).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(created["secret"]).verify(request.body, request.headers)


def test_body_is_the_exact_json_payload(owner: Actor, receiver: Receiver) -> None:
    add_endpoint(owner, receiver.url)
    (delivery,) = emit(owner, "job.failed")
    attempt(delivery)
    (request,) = receiver.received
    assert json.loads(request.body) == delivery.payload
    assert set(delivery.payload) == {"type", "timestamp", "data"}
