"""Checkout Sessions (subscription mode) and billing portal sessions, completed on local pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .catalog import customer_create, merge_metadata
from .errors import invalid, missing
from .routing import Routes
from .store import new_id, now, paginate
from .subscriptions import (
    live_subscription,
    render,
    subscription_cancel,
    subscription_create,
    subscription_replace_prices,
)

if TYPE_CHECKING:
    from .server import Emulator

routes = Routes()


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if not key.startswith("_")}


@routes.post("/v1/checkout/sessions")
def checkout_session_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("mode") != "subscription":
        raise invalid("The emulator supports only `mode=subscription`.", param="mode")
    if not params.get("success_url"):
        raise missing("success_url")
    line_items = params.get("line_items") or []
    if not line_items:
        raise missing("line_items")
    for n, line in enumerate(line_items):
        price = em.store.get(
            "prices", (line or {}).get("price", ""), "price", f"line_items[{n}][price]"
        )
        licensed = (price.get("recurring") or {}).get("usage_type") == "licensed"
        if licensed and "quantity" not in line:
            raise missing(f"line_items[{n}][quantity]")
        if not licensed and "quantity" in line:
            raise invalid(
                "Quantity should not be specified where usage_type is `metered`. "
                f"Remove quantity from `line_items[{n}]`.",
                param=f"line_items[{n}][quantity]",
            )
    if customer := params.get("customer"):
        em.store.get("customers", customer, "customer", param="customer")
    session_id = new_id("cs_test", 58)
    created = now()
    session = {
        "id": session_id,
        "object": "checkout.session",
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "created": created,
        "customer": customer or None,
        "customer_email": params.get("customer_email"),
        "expires_at": created + 24 * 3600,
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata")),
        "mode": "subscription",
        "payment_status": "unpaid",
        "status": "open",
        "subscription": None,
        "success_url": params["success_url"],
        "url": f"{em.request.base_url}/_emulator/checkout/{session_id}",
        "_line_items": line_items,
        "_subscription_metadata": (params.get("subscription_data") or {}).get("metadata"),
    }
    return public(em.store.put("checkout_sessions", session))


@routes.get("/v1/checkout/sessions/{id}")
def checkout_session_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return public(em.store.get("checkout_sessions", id, "checkout session"))


@routes.post("/v1/checkout/sessions/{id}/expire")
def checkout_session_expire(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    session = em.store.get("checkout_sessions", id, "checkout session")
    if session["status"] != "open":
        raise invalid(f"Only open sessions can be expired; this one is {session['status']}.")
    session["status"] = "expired"
    return public(session)


@routes.get("/v1/checkout/sessions")
def checkout_session_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    sessions = [public(s) for s in em.store.all("checkout_sessions")]
    if customer := params.get("customer"):
        sessions = [s for s in sessions if s["customer"] == customer]
    if subscription := params.get("subscription"):
        sessions = [s for s in sessions if s["subscription"] == subscription]
    return paginate(sessions, params, "/v1/checkout/sessions")


def checkout_complete(em: Emulator, session: dict[str, Any]) -> None:
    """What paying on Stripe's hosted page does: subscribe (or change plan), then report."""
    if session["status"] != "open":
        return
    customer_id = session["customer"]
    if not customer_id:
        customer = customer_create(em, {"email": session["customer_email"]})
        customer_id = customer["id"]
    specs = [
        {"price": line["price"], **({"quantity": line["quantity"]} if "quantity" in line else {})}
        for line in session["_line_items"]
    ]
    sub = live_subscription(em, customer_id)
    if sub is None:
        metadata = session["_subscription_metadata"]
        sub_id = subscription_create(em, customer_id, specs, metadata)["id"]
    else:
        subscription_replace_prices(em, sub, specs)
        sub_id = sub["id"]
    session.update(
        customer=customer_id, status="complete", payment_status="paid", subscription=sub_id
    )
    em.webhooks.emit("checkout.session.completed", public(session))


# -- billing portal -------------------------------------------------------------------------


@routes.post("/v1/billing_portal/sessions")
def portal_session_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("customer"):
        raise missing("customer")
    em.store.get("customers", params["customer"], "customer", param="customer")
    session_id = new_id("bps")
    session = {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": "bpc_emulator",
        "created": now(),
        "customer": params["customer"],
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": params.get("return_url"),
        "url": f"{em.request.base_url}/_emulator/portal/{session_id}",
    }
    return em.store.put("portal_sessions", session)


def portal_subscriptions(em: Emulator, session: dict[str, Any]) -> list[dict[str, Any]]:
    subs = [s for s in em.store.all("subscriptions") if s["customer"] == session["customer"]]
    return [render(em, s) for s in subs]


def portal_cancel(em: Emulator, session: dict[str, Any], subscription_id: str) -> None:
    sub = em.store.get("subscriptions", subscription_id, "subscription", "subscription")
    if sub["customer"] != session["customer"]:
        raise invalid("That subscription belongs to another customer.", "subscription")
    subscription_cancel(em, sub)
