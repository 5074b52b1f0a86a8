"""Event retrieval (v1 snapshot events, v2 thin events) and the v2 meter event endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import invalid, no_such
from .meters import meter_event_create
from .routing import Routes
from .store import paginate
from .webhooks import iso

if TYPE_CHECKING:
    from .server import Emulator

routes = Routes()


@routes.get("/v1/events/{id}")
def event_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return em.store.get("events", id, "event")


@routes.get("/v1/events")
def event_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    events = em.store.all("events")
    types = params.get("types") or ([params["type"]] if params.get("type") else [])
    if types:
        events = [e for e in events if e["type"] in types]
    return paginate(events, params, "/v1/events")


@routes.get("/v2/core/events/{id}")
def thin_event_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    event = em.store.data["thin_events"].get(id)
    if event is None:
        raise no_such("event", id)
    return event


@routes.post("/v2/billing/meter_events")
def v2_meter_event_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    """The v2 single-event endpoint: JSON body, ISO timestamps, same rules as v1."""
    v1_params = dict(params)
    if params.get("timestamp"):
        try:
            moment = datetime.fromisoformat(str(params["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            raise invalid("timestamp must be an ISO 8601 date-time.", param="timestamp") from None
        v1_params["timestamp"] = int(moment.timestamp())
    event = meter_event_create(em, v1_params)
    return {
        **event,
        "object": "v2.billing.meter_event",
        "created": iso(event["created"]),
        "timestamp": iso(event["timestamp"]),
    }
