"""An `Idempotency-Key`: claimed by the first request, then replayed as the resource it made.

A replay answers with the resource *as it is now* (the job or batch the first request
created), not with a copy of the first response: a client that lost the answer to a
submit and sends it again learns what happened since. The request is compared by its
meaning: the validated input with defaults filled in, so `{"prompt": "x"}` and
`{"prompt": "x", "count": 1}` are the same request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, TypeGuard

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import BunchError, Conflict
from generation.models import IdempotencyRecord
from tenants.models import Tenant

IDEMPOTENCY_TTL = dt.timedelta(hours=24)
MAX_KEY_LENGTH = 255


def key_check(raw: str) -> str:
    """The key as sent (trimmed); '' when none was sent."""
    key = raw.strip()
    if len(key) > MAX_KEY_LENGTH:
        raise BunchError(
            f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters.",
            code="invalid_request",
        )
    return key


def request_fingerprint(*, operation: str, validated: Any) -> str:
    """A digest of what the request asks for: its operation (method and path, ids
    included) and its validated input, so equal meanings give equal digests."""
    text = json.dumps({"operation": operation, "input": validated}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_begin(
    *, tenant: Tenant, key: str, fingerprint: str, now: dt.datetime | None = None
) -> IdempotencyRecord:
    """Claim `key` for this request, or return the record of its first request.

    Called inside the transaction that creates the resource: a returned record with
    `response_status` 0 is ours to complete with `idempotency_finish` in it (a failure rolls
    both back, so the client can retry); any other is a replay: `resource_id` names what
    the first request created.
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
    return record


def is_replay(record: IdempotencyRecord | None) -> TypeGuard[IdempotencyRecord]:
    return record is not None and record.response_status != 0


def resource_id(record: IdempotencyRecord) -> str:
    """The id of the job or batch the first request created."""
    return str(record.response_body["id"])


def idempotency_finish(*, record: IdempotencyRecord, status: int, body: dict[str, Any]) -> None:
    """Remember the first response; a replay reads only its resource id back."""
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        response_status=status, response_body=body
    )
