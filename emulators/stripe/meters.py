"""Billing meters, meter events, adjustments, summaries and asynchronous error reports."""

from __future__ import annotations

import hashlib
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .errors import ApiError, invalid, missing
from .routing import Routes
from .store import as_int, new_id, now, paginate
from .webhooks import iso

if TYPE_CHECKING:
    from .server import Emulator

routes = Routes()
MAX_AGE_S = 35 * 24 * 3600
MAX_AHEAD_S = 5 * 60
CANCEL_WINDOW_S = 24 * 3600
WINDOWS = {"hour": 3600, "day": 86400}
FORMULAS = ("sum", "count", "last")


# -- meters ---------------------------------------------------------------------------------


@routes.post("/v1/billing/meters")
def meter_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    for required in ("display_name", "event_name"):
        if not params.get(required):
            raise missing(required)
    formula = (params.get("default_aggregation") or {}).get("formula")
    if not formula:
        raise missing("default_aggregation[formula]")
    if formula not in FORMULAS:
        raise invalid(f"Invalid formula: {formula}", param="default_aggregation[formula]")
    event_name = params["event_name"]
    if len(event_name) > 100:
        raise invalid("event_name must be at most 100 characters.", param="event_name")
    if any(m["event_name"] == event_name for m in em.store.all("meters")):
        raise invalid(f"A meter with event_name `{event_name}` already exists.", param="event_name")
    mapping = params.get("customer_mapping") or {}
    value_settings = params.get("value_settings") or {}
    created = now()
    meter = {
        "id": new_id("mtr"),
        "object": "billing.meter",
        "created": created,
        "customer_mapping": {
            "type": mapping.get("type", "by_id"),
            "event_payload_key": mapping.get("event_payload_key", "stripe_customer_id"),
        },
        "default_aggregation": {"formula": formula},
        "display_name": params["display_name"],
        "event_name": event_name,
        "event_time_window": params.get("event_time_window"),
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": created,
        "value_settings": {"event_payload_key": value_settings.get("event_payload_key", "value")},
    }
    return em.store.put("meters", meter)


@routes.get("/v1/billing/meters")
def meter_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    meters = em.store.all("meters")
    if status := params.get("status"):
        meters = [m for m in meters if m["status"] == status]
    return paginate(meters, params, "/v1/billing/meters")


@routes.get("/v1/billing/meters/{id}")
def meter_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return em.store.get("meters", id, "billing meter")


@routes.post("/v1/billing/meters/{id}")
def meter_update(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    meter = em.store.get("meters", id, "billing meter")
    if params.get("display_name"):
        meter.update(display_name=params["display_name"], updated=now())
    return meter


@routes.post("/v1/billing/meters/{id}/deactivate")
def meter_deactivate(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    meter = em.store.get("meters", id, "billing meter")
    meter.update(status="inactive", updated=now(), status_transitions={"deactivated_at": now()})
    return meter


@routes.post("/v1/billing/meters/{id}/reactivate")
def meter_reactivate(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    meter = em.store.get("meters", id, "billing meter")
    meter.update(status="active", updated=now(), status_transitions={"deactivated_at": None})
    return meter


def active_meter(em: Emulator, event_name: str) -> dict[str, Any]:
    for meter in em.store.all("meters"):
        if meter["event_name"] == event_name and meter["status"] == "active":
            return meter
    raise invalid(
        f"No active meter was found that matches the event_name `{event_name}`.",
        param="event_name",
    )


# -- meter events ---------------------------------------------------------------------------


@routes.post("/v1/billing/meter_events")
def meter_event_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("event_name"):
        raise missing("event_name")
    payload = params.get("payload")
    if not isinstance(payload, dict) or not payload:
        raise missing("payload")
    meter = active_meter(em, params["event_name"])
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    if not payload.get(customer_key):
        raise missing(f"payload[{customer_key}]")
    if meter["default_aggregation"]["formula"] != "count" and value_key not in payload:
        raise missing(f"payload[{value_key}]")
    _check_value(payload.get(value_key, "1"), value_key)
    timestamp = _check_timestamp(params.get("timestamp"))
    identifier = params.get("identifier") or str(uuid.uuid4())
    if len(identifier) > 100:
        raise invalid("identifier must be at most 100 characters.", param="identifier")
    if identifier in em.store.data["meter_events"]:
        raise ApiError(
            f"An event already exists with identifier {identifier}.",
            param="identifier",
            headers={"Stripe-Should-Retry": "false"},
        )
    event = {
        "id": identifier,
        "identifier": identifier,
        "event_name": meter["event_name"],
        "meter": meter["id"],
        "customer": payload[customer_key],
        "value": str(payload.get(value_key, "1")),
        "payload": payload,
        "timestamp": timestamp,
        "created": now(),
        "idempotency_key": em.request.idempotency_key,
        "cancelled": False,
        "error": None,
    }
    em.store.put("meter_events", event)
    if payload[customer_key] not in em.store.data["customers"]:
        _report_error(em, meter, event, "meter_event_customer_not_found")
    return {
        "object": "billing.meter_event",
        "created": event["created"],
        "event_name": event["event_name"],
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": timestamp,
    }


def _check_value(raw: Any, value_key: str) -> None:
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise invalid(f"Invalid value for payload[{value_key}]: {raw}", f"payload[{value_key}]")
    if len(value.normalize().as_tuple().digits) > 15:
        raise invalid(
            f"payload[{value_key}] has more than 15 significant digits.",
            param=f"payload[{value_key}]",
            code="meter_event_value_too_many_digits",
        )


def _check_timestamp(raw: Any) -> int:
    if raw in (None, ""):
        return now()
    timestamp = as_int(raw, "timestamp")
    if timestamp < now() - MAX_AGE_S:
        raise invalid(
            "Timestamp must be within the past 35 days.",
            param="timestamp",
            code="timestamp_too_far_in_past",
        )
    if timestamp > now() + MAX_AHEAD_S:
        raise invalid(
            "Timestamp must be no more than 5 minutes in the future.",
            param="timestamp",
            code="timestamp_in_future",
        )
    return timestamp


def _report_error(em: Emulator, meter: dict[str, Any], event: dict[str, Any], code: str) -> None:
    """Stripe accepts the call, then drops the event and reports it later as a thin event."""
    message = f"Customer {event['customer']} was not found (identifier {event['identifier']})."
    event["error"] = code
    window = iso(time.time())
    thin = em.webhooks.emit_thin(
        "v1.billing.meter.error_report_triggered",
        {"id": meter["id"], "type": "billing.meter", "url": f"/v1/billing/meters/{meter['id']}"},
        {
            "developer_message_summary": f"There is 1 invalid event for meter {meter['id']}.",
            "reason": {
                "error_count": 1,
                "error_types": [
                    {
                        "code": code,
                        "error_count": 1,
                        "sample_errors": [
                            {
                                "error_message": message,
                                "request": {"identifier": event["idempotency_key"] or ""},
                            }
                        ],
                    }
                ],
            },
            "validation_start": window,
            "validation_end": window,
        },
    )
    report = {
        "id": thin["id"],
        "meter": meter["id"],
        "code": code,
        "identifier": event["identifier"],
        "idempotency_key": event["idempotency_key"],
        "created": now(),
    }
    em.store.put("meter_error_reports", report)


# -- adjustments ----------------------------------------------------------------------------


@routes.post("/v1/billing/meter_event_adjustments")
def meter_event_adjustment_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("event_name"):
        raise missing("event_name")
    if params.get("type", "cancel") != "cancel":
        raise invalid("Time period cancellation is not supported yet.", param="type")
    identifier = (params.get("cancel") or {}).get("identifier")
    if not identifier:
        raise missing("cancel[identifier]")
    meter = active_meter(em, params["event_name"])
    event = em.store.data["meter_events"].get(identifier)
    if event is None or event["meter"] != meter["id"]:
        raise invalid(
            f"No meter event exists with identifier {identifier} for event_name "
            f"`{meter['event_name']}`.",
            param="cancel[identifier]",
        )
    if now() - event["created"] > CANCEL_WINDOW_S:
        raise invalid(
            "Meter events can only be cancelled within 24 hours of being received.",
            param="cancel[identifier]",
        )
    event["cancelled"] = True
    adjustment = {
        "id": new_id("mtradj"),
        "object": "billing.meter_event_adjustment",
        "livemode": False,
        "status": "complete",
        "event_name": meter["event_name"],
        "type": "cancel",
        "cancel": {"identifier": identifier},
        "created": now(),
    }
    return em.store.put("meter_event_adjustments", adjustment)


# -- summaries ------------------------------------------------------------------------------


def usage(em: Emulator, meter: dict[str, Any], customer: str, start: int, end: int) -> Decimal:
    """The meter's aggregate for a customer over [start, end), cancelled and failed excluded."""
    events = sorted(
        (
            e
            for e in em.store.all("meter_events")
            if e["meter"] == meter["id"]
            and e["customer"] == customer
            and start <= e["timestamp"] < end
            and not e["cancelled"]
            and not e["error"]
        ),
        key=lambda e: (e["timestamp"], e["created"]),
    )
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return Decimal(len(events))
    if formula == "last":
        return Decimal(events[-1]["value"]) if events else Decimal(0)
    return sum((Decimal(e["value"]) for e in events), Decimal(0))


def json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


@routes.get("/v1/billing/meters/{id}/event_summaries")
def meter_event_summaries(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    meter = em.store.get("meters", id, "billing meter")
    for required in ("customer", "start_time", "end_time"):
        if params.get(required) in (None, ""):
            raise missing(required)
    em.store.get("customers", params["customer"], "customer", param="customer")
    start, end = as_int(params["start_time"], "start_time"), as_int(params["end_time"], "end_time")
    window = params.get("value_grouping_window")
    if window is not None and window not in WINDOWS:
        raise invalid(f"Invalid value_grouping_window: {window}", "value_grouping_window")
    step = WINDOWS.get(window or "", 60)
    for name, value in (("start_time", start), ("end_time", end)):
        if value % step:
            unit = window or "minute"
            raise invalid(f"{name} must be aligned with {unit} boundaries.", param=name)
    if end <= start:
        raise invalid("end_time must be after start_time.", param="end_time")
    bounds = [(t, t + step) for t in range(start, end, step)] if window else [(start, end)]
    summaries = [_summary(em, meter, params["customer"], lo, hi) for lo, hi in reversed(bounds)]
    url = f"/v1/billing/meters/{id}/event_summaries"
    return paginate(summaries, params, url, newest_first=False)


def _summary(
    em: Emulator, meter: dict[str, Any], customer: str, start: int, end: int
) -> dict[str, Any]:
    digest = hashlib.sha256(f"{meter['id']}:{customer}:{start}:{end}".encode()).hexdigest()
    return {
        "id": f"mtrusg_{digest[:24]}",
        "object": "billing.meter_event_summary",
        "aggregated_value": json_number(usage(em, meter, customer, start, end)),
        "start_time": start,
        "end_time": end,
        "livemode": False,
        "meter": meter["id"],
    }
