"""Subscriptions and their items. Items are stored inside their subscription and carry the
billing period (API 2025-03-31 moved ``current_period_*`` from the subscription to items)."""

from __future__ import annotations

import calendar
import copy
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from .catalog import merge_metadata
from .errors import invalid, missing, no_such
from .routing import Routes
from .store import as_bool, new_id, now, paginate

if TYPE_CHECKING:
    from .server import Emulator

routes = Routes()
LIVE_STATUSES = ("active", "past_due", "trialing", "unpaid", "incomplete")
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")


def add_months(ts: int, months: int = 1) -> int:
    start = datetime.fromtimestamp(ts, UTC)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def render(em: Emulator, sub: dict[str, Any]) -> dict[str, Any]:
    """The wire shape: items as a list object with their prices expanded."""
    out = copy.deepcopy(sub)
    out.pop("_prorations", None)
    items = []
    for item in out.pop("_items"):
        item["price"] = copy.deepcopy(em.store.data["prices"].get(item["price"]))
        items.append(item)
    out["items"] = {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/subscription_items?subscription={sub['id']}",
    }
    return out


def _new_item(em: Emulator, sub_id: str, spec: Any, period: tuple[int, int], n: int) -> dict:
    if not isinstance(spec, dict) or not spec.get("price"):
        raise missing(f"items[{n}][price]")
    price = em.store.get("prices", spec["price"], "price", param=f"items[{n}][price]")
    if price["type"] != "recurring":
        raise invalid(
            f"The price specified ({price['id']}) is not recurring.", param=f"items[{n}][price]"
        )
    metered = price["recurring"]["usage_type"] == "metered"
    if metered and "quantity" in spec:
        raise invalid(
            "Quantity should not be specified where usage_type is `metered`. "
            f"Remove quantity from `items[{n}]`.",
            param=f"items[{n}][quantity]",
        )
    return {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "created": now(),
        "current_period_start": period[0],
        "current_period_end": period[1],
        "metadata": merge_metadata({}, spec.get("metadata")),
        "price": price["id"],
        "quantity": None if metered else int(spec.get("quantity", 1)),
        "subscription": sub_id,
    }


def subscription_create(
    em: Emulator, customer_id: str, item_specs: list[Any], metadata: Any = None
) -> dict[str, Any]:
    em.store.get("customers", customer_id, "customer", param="customer")
    if not item_specs:
        raise missing("items")
    created = now()
    period = (created, add_months(created))
    sub_id = new_id("sub")
    items = [_new_item(em, sub_id, spec, period, n) for n, spec in enumerate(item_specs)]
    sub = {
        "id": sub_id,
        "object": "subscription",
        "billing_cycle_anchor": created,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": em.store.data["prices"][items[0]["price"]]["currency"],
        "customer": customer_id,
        "ended_at": None,
        "latest_invoice": None,
        "livemode": False,
        "metadata": merge_metadata({}, metadata),
        "start_date": created,
        "status": "active",
        "_items": items,
    }
    em.store.put("subscriptions", sub)
    rendered = render(em, sub)
    em.webhooks.emit("customer.subscription.created", rendered)
    return rendered


def subscription_set_status(em: Emulator, sub: dict[str, Any], status: str) -> None:
    if sub["status"] == status:
        return
    previous = {"status": sub["status"]}
    sub["status"] = status
    em.webhooks.emit("customer.subscription.updated", render(em, sub), previous)


def subscription_replace_prices(
    em: Emulator, sub: dict[str, Any], specs: list[dict[str, Any]]
) -> None:
    """Swap the subscription's items for the given prices (a plan change)."""
    previous = render(em, sub)["items"]
    period = (sub["_items"][0]["current_period_start"], sub["_items"][0]["current_period_end"])
    sub["_items"] = [_new_item(em, sub["id"], spec, period, n) for n, spec in enumerate(specs)]
    em.webhooks.emit("customer.subscription.updated", render(em, sub), {"items": previous})


def subscription_cancel(em: Emulator, sub: dict[str, Any]) -> dict[str, Any]:
    if sub["status"] != "canceled":
        sub.update(status="canceled", canceled_at=now(), ended_at=now())
        em.webhooks.emit("customer.subscription.deleted", render(em, sub))
    return render(em, sub)


def live_subscription(em: Emulator, customer_id: str) -> dict[str, Any] | None:
    subs = [
        s
        for s in em.store.all("subscriptions")
        if s["customer"] == customer_id and s["status"] in LIVE_STATUSES
    ]
    return max(subs, key=lambda s: s["created"]) if subs else None


@routes.post("/v1/subscriptions")
def subscription_create_route(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("customer"):
        raise missing("customer")
    items = params.get("items") or []
    return subscription_create(em, params["customer"], items, params.get("metadata"))


@routes.get("/v1/subscriptions/{id}")
def subscription_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return render(em, em.store.get("subscriptions", id, "subscription"))


@routes.post("/v1/subscriptions/{id}")
def subscription_update(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    sub = em.store.get("subscriptions", id, "subscription")
    if sub["status"] == "canceled":
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in PRORATION_BEHAVIORS:
        raise invalid("Invalid proration_behavior", param="proration_behavior")
    before = render(em, sub)
    for n, spec in enumerate(params.get("items") or []):
        _update_item(em, sub, spec, n, prorate=behavior != "none")
    if "cancel_at_period_end" in params:
        sub["cancel_at_period_end"] = as_bool(params["cancel_at_period_end"])
    sub["metadata"] = merge_metadata(sub["metadata"], params.get("metadata"))
    after = render(em, sub)
    changed = {key: before[key] for key in before if before[key] != after[key]}
    if changed:
        em.webhooks.emit("customer.subscription.updated", after, changed)
    return after


def _update_item(
    em: Emulator, sub: dict[str, Any], spec: Any, n: int, *, prorate: bool = True
) -> None:
    if not isinstance(spec, dict):
        raise invalid(f"Invalid items[{n}]", param=f"items[{n}]")
    if not spec.get("id"):
        first = sub["_items"][0]
        period = (first["current_period_start"], first["current_period_end"])
        added = _new_item(em, sub["id"], spec, period, n)
        sub["_items"].append(added)
        if prorate:
            _prorate(em, sub, added, sign=1)
        return
    item = next((i for i in sub["_items"] if i["id"] == spec["id"]), None)
    if item is None:
        raise no_such("subscription item", spec["id"], f"items[{n}][id]")
    if as_bool(spec.get("deleted", False)):
        if prorate:
            _prorate(em, sub, item, sign=-1)
        sub["_items"].remove(item)
        return
    if spec.get("price") or "quantity" in spec:
        period = (item["current_period_start"], item["current_period_end"])
        fields = {"price": item["price"], "quantity": item["quantity"]}
        fields.update({key: spec[key] for key in ("price", "quantity") if key in spec})
        if fields["quantity"] is None:
            fields.pop("quantity")
        replacement = _new_item(em, sub["id"], fields, period, n)
        if prorate:
            _prorate(em, sub, item, sign=-1)
        item.update(price=replacement["price"], quantity=replacement["quantity"])
        if prorate:
            _prorate(em, sub, item, sign=1)
    item["metadata"] = merge_metadata(item["metadata"], spec.get("metadata"))


def _prorate(em: Emulator, sub: dict[str, Any], item: dict[str, Any], *, sign: int) -> None:
    """A licensed item that changes mid-period: credit (sign -1) or charge (+1) the unused
    rest of the period, as a pending line of the next invoice (Stripe's
    ``create_prorations``). Metered items bill what was used and are never prorated."""
    price = em.store.data["prices"][item["price"]]
    if price["recurring"]["usage_type"] != "licensed":
        return
    start, end = item["current_period_start"], item["current_period_end"]
    at = min(max(now(), start), end)
    share = Decimal(end - at) / Decimal(max(end - start, 1))
    full = Decimal(price["unit_amount_decimal"]) * Decimal(item["quantity"] or 1)
    amount = int((full * share).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * sign
    if amount == 0:
        return
    product = em.store.data["products"].get(price["product"], {}).get("name", price["product"])
    what = "Unused time on" if sign < 0 else "Remaining time on"
    sub.setdefault("_prorations", []).append(
        {
            "amount": amount,
            "description": f"{what} {item['quantity'] or 1} × {product}",
            "price": price["id"],
            "product": price["product"],
            "period": {"start": at, "end": end},
            "item": item["id"],
        }
    )


@routes.delete("/v1/subscriptions/{id}")
def subscription_delete(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return subscription_cancel(em, em.store.get("subscriptions", id, "subscription"))


@routes.get("/v1/subscriptions")
def subscription_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    subs = em.store.all("subscriptions")
    if customer := params.get("customer"):
        subs = [s for s in subs if s["customer"] == customer]
    status = params.get("status")
    if status and status != "all":
        subs = [s for s in subs if s["status"] == status]
    elif not status:
        subs = [s for s in subs if s["status"] != "canceled"]
    if price := params.get("price"):
        subs = [s for s in subs if any(i["price"] == price for i in s["_items"])]
    return paginate([render(em, s) for s in subs], params, "/v1/subscriptions")


# -- subscription items ---------------------------------------------------------------------


def _find_item(em: Emulator, item_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for sub in em.store.all("subscriptions"):
        for item in sub["_items"]:
            if item["id"] == item_id:
                return sub, item
    raise no_such("subscription item", item_id)


def _render_item(em: Emulator, item: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(item)
    out["price"] = copy.deepcopy(em.store.data["prices"].get(item["price"]))
    return out


@routes.get("/v1/subscription_items")
def subscription_item_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("subscription"):
        raise missing("subscription")
    sub = em.store.get("subscriptions", params["subscription"], "subscription", "subscription")
    items = [_render_item(em, item) for item in sub["_items"]]
    return paginate(items, params, "/v1/subscription_items")


@routes.get("/v1/subscription_items/{id}")
def subscription_item_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return _render_item(em, _find_item(em, id)[1])


@routes.post("/v1/subscription_items/{id}")
def subscription_item_update(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    sub, item = _find_item(em, id)
    subscription_update(em, {"items": [{**params, "id": id}]}, sub["id"])
    return _render_item(em, item)
