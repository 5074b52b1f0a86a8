"""Invoices: previews from meter usage × metered price, finalization on demand (a control call).

Each line's amount is quantity × ``unit_amount_decimal`` cents, rounded half-up to a whole cent.
A line whose product has a ``unit_label`` reads like a usage bill:
"Nano Banana 2 Lite: image output, 1,120,000 tokens × $0.00003 = $33.60".
"""

from __future__ import annotations

import copy
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from .errors import ApiError, missing
from .meters import json_number, usage
from .routing import Routes
from .store import new_id, now, paginate
from .subscriptions import add_months, live_subscription, subscription_set_status

if TYPE_CHECKING:
    from .server import Emulator

routes = Routes()


def _line(em: Emulator, sub: dict[str, Any], item: dict[str, Any], end: int) -> dict[str, Any]:
    price = em.store.data["prices"][item["price"]]
    product = em.store.data["products"].get(price["product"], {})
    start = item["current_period_start"]
    if price["recurring"]["usage_type"] == "metered":
        meter = em.store.data["meters"][price["recurring"]["meter"]]
        quantity = usage(em, meter, sub["customer"], start, end)
    else:
        quantity = Decimal(item["quantity"] or 1)
    unit = Decimal(price["unit_amount_decimal"])
    amount = int((quantity * unit).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    name = product.get("name", price["product"])
    description = f"{quantity} × {name}"
    if product.get("unit_label"):
        description = _usage_description(name, quantity, product["unit_label"], unit, amount)
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": description,
        "livemode": False,
        "metadata": {},
        "period": {"start": start, "end": end},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price["product"]},
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": json_number(quantity),
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "subscription": sub["id"],
                "subscription_item": item["id"],
            },
        },
    }


def _plain(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return "0" if text == "-0" else text


def _dollars(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}${whole:,}.{rest:02d}"


def _usage_description(
    name: str, quantity: Decimal, unit_label: str, unit_cents: Decimal, amount: int
) -> str:
    count = f"{int(quantity):,}" if quantity == quantity.to_integral_value() else _plain(quantity)
    unit_usd = _plain(unit_cents / 100)
    return f"{name}, {count} {unit_label} × ${unit_usd} = {_dollars(amount)}"


def _proration_line(em: Emulator, sub: dict[str, Any], pending: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": pending["amount"],
        "currency": sub["currency"],
        "description": pending["description"],
        "livemode": False,
        "metadata": {},
        "period": pending["period"],
        "pricing": {
            "type": "price_details",
            "price_details": {"price": pending["price"], "product": pending["product"]},
            "unit_amount_decimal": None,
        },
        "quantity": 1,
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "subscription": sub["id"],
                "subscription_item": pending["item"],
                "proration": True,
            },
        },
    }


def build_invoice(em: Emulator, sub: dict[str, Any], invoice_id: str, end: int) -> dict[str, Any]:
    lines = [_proration_line(em, sub, p) for p in sub.get("_prorations", [])]
    lines += [_line(em, sub, item, end) for item in sub["_items"]]
    total = sum(line["amount"] for line in lines)
    for line in lines:
        line["invoice"] = invoice_id
    return {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": total,
        "amount_paid": 0,
        "amount_remaining": total,
        "attempted": False,
        "created": now(),
        "currency": sub["currency"],
        "customer": sub["customer"],
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "total_count": len(lines),
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": sub["id"], "metadata": sub["metadata"]},
        },
        "period_start": sub["_items"][0]["current_period_start"],
        "period_end": end,
        "status": "draft",
        "subtotal": total,
        "total": total,
    }


def _subscription_for(em: Emulator, customer: str, sub_id: str | None) -> dict[str, Any]:
    em.store.get("customers", customer, "customer", param="customer")
    sub = em.store.get("subscriptions", sub_id, "subscription", "subscription") if sub_id else None
    sub = sub or live_subscription(em, customer)
    if sub is None or sub["status"] == "canceled":
        raise ApiError(
            f"No upcoming invoices for customer: {customer}",
            status=404,
            code="invoice_upcoming_none",
        )
    return sub


@routes.post("/v1/invoices/create_preview")
def invoice_create_preview(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("customer"):
        raise missing("customer")
    sub = _subscription_for(em, params["customer"], params.get("subscription"))
    end = sub["_items"][0]["current_period_end"]
    return build_invoice(em, sub, f"upcoming_{new_id('in')}", end)


def finalize(em: Emulator, customer: str, pay: bool) -> dict[str, Any]:
    """Close the current period now: invoice it, charge it (or fail), roll the period."""
    sub = _subscription_for(em, customer, None)
    end = now() + 1  # usage stamped this very second still belongs to the closing period
    invoice = build_invoice(em, sub, new_id("in"), end)
    invoice.update(attempted=True, number=f"EMU-{len(em.store.data['invoices']) + 1:04d}")
    em.store.put("invoices", invoice)
    sub["latest_invoice"] = invoice["id"]
    sub["_prorations"] = []
    for item in sub["_items"]:
        item.update(current_period_start=end, current_period_end=add_months(end))
    if pay:
        _mark_paid(em, invoice)
    else:
        invoice["status"] = "open"
        em.webhooks.emit("invoice.payment_failed", invoice)
        subscription_set_status(em, sub, "past_due")
    return invoice


def _mark_paid(em: Emulator, invoice: dict[str, Any]) -> None:
    invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
    em.webhooks.emit("invoice.paid", invoice)
    sub_id = invoice["parent"]["subscription_details"]["subscription"]
    sub = em.store.data["subscriptions"].get(sub_id)
    if sub and sub["status"] in ("past_due", "unpaid"):
        subscription_set_status(em, sub, "active")


@routes.get("/v1/invoices/{id}")
def invoice_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return em.store.get("invoices", id, "invoice")


@routes.post("/v1/invoices/{id}/pay")
def invoice_pay(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    invoice = em.store.get("invoices", id, "invoice")
    if invoice["status"] == "paid":
        raise ApiError("Invoice is already paid", code="invoice_already_paid")
    _mark_paid(em, invoice)
    return invoice


@routes.get("/v1/invoices")
def invoice_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    invoices = [copy.deepcopy(i) for i in em.store.all("invoices")]
    if customer := params.get("customer"):
        invoices = [i for i in invoices if i["customer"] == customer]
    if status := params.get("status"):
        invoices = [i for i in invoices if i["status"] == status]
    if sub := params.get("subscription"):
        invoices = [
            i for i in invoices if i["parent"]["subscription_details"]["subscription"] == sub
        ]
    return paginate(invoices, params, "/v1/invoices")
