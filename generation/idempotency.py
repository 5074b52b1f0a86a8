"""The first response to an `Idempotency-Key`, claimed, finished and replayed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict
from generation.models import IdempotencyRecord
from tenants.models import Tenant

IDEMPOTENCY_TTL = dt.timedelta(hours=24)


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def idempotency_begin(
    *, tenant: Tenant, key: str, fingerprint: str, now: dt.datetime | None = None
) -> IdempotencyRecord:
    """Claim `key` for this request, or return its finished first response.

    A returned record with `response_status` 0 is ours to complete with
    `idempotency_finish` (or `idempotency_abandon` on failure, so the client can retry).
    """
    since = (now or timezone.now()) - IDEMPOTENCY_TTL
    IdempotencyRecord.objects.filter(tenant=tenant, key=key, created_at__lt=since).delete()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                tenant=tenant,
                key=key,
                request_hash=fingerprint,
                response_status=0,
                response_body={},
            )
    except IntegrityError:
        record = IdempotencyRecord.objects.get(tenant=tenant, key=key)
    if record.request_hash != fingerprint:
        raise Conflict(
            "This Idempotency-Key was used with a different request body.",
            code="idempotency_key_reused",
        )
    if record.response_status == 0:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            code="idempotency_request_in_progress",
        )
    record.replayed = True  # type: ignore[attr-defined]
    return record


def idempotency_finish(*, record: IdempotencyRecord, status: int, body: dict[str, Any]) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        response_status=status, response_body=body
    )


def idempotency_abandon(*, record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, response_status=0).delete()
