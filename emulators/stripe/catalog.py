"""Customers, products and prices."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .errors import ApiError, invalid, missing
from .routing import Routes
from .store import as_bool, as_int, new_id, now, paginate

if TYPE_CHECKING:
    from .server import Emulator

routes = Routes()
MAX_DECIMAL_PLACES = 12  # Stripe's limit for `unit_amount_decimal`


def merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Stripe merges metadata keys on update; an empty value removes the key."""
    if update in (None, ""):
        return {} if update == "" else current
    merged = {**current, **update}
    return {key: value for key, value in merged.items() if value != ""}


# -- customers ------------------------------------------------------------------------------


@routes.post("/v1/customers")
def customer_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    customer = {
        "id": new_id("cus", 14),
        "object": "customer",
        "created": now(),
        "email": params.get("email"),
        "name": params.get("name"),
        "description": params.get("description"),
        "metadata": merge_metadata({}, params.get("metadata")),
        "balance": 0,
        "currency": None,
        "delinquent": False,
        "livemode": False,
        "invoice_settings": {"default_payment_method": None},
    }
    return em.store.put("customers", customer)


@routes.get("/v1/customers/{id}")
def customer_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return em.store.get("customers", id, "customer")


@routes.post("/v1/customers/{id}")
def customer_update(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    customer = em.store.get("customers", id, "customer")
    for field in ("email", "name", "description"):
        if field in params:
            customer[field] = params[field] or None
    customer["metadata"] = merge_metadata(customer["metadata"], params.get("metadata"))
    return customer


@routes.get("/v1/customers")
def customer_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    customers = em.store.all("customers")
    if email := params.get("email"):
        customers = [c for c in customers if c.get("email") == email]
    return paginate(customers, params, "/v1/customers")


# -- products -------------------------------------------------------------------------------


@routes.post("/v1/products")
def product_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("name"):
        raise missing("name")
    product_id = params.get("id") or new_id("prod", 14)
    if product_id in em.store.data["products"]:
        raise ApiError(
            f"Product already exists: '{product_id}'", code="resource_already_exists", param="id"
        )
    return em.store.put("products", _product(product_id, params))


def _product(product_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": product_id,
        "object": "product",
        "active": as_bool(params.get("active", True)),
        "created": now(),
        "updated": now(),
        "name": params["name"],
        "description": params.get("description"),
        "metadata": merge_metadata({}, params.get("metadata")),
        "default_price": None,
        "livemode": False,
        "unit_label": params.get("unit_label") or None,
    }


@routes.get("/v1/products/{id}")
def product_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return em.store.get("products", id, "product")


@routes.post("/v1/products/{id}")
def product_update(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    product = em.store.get("products", id, "product")
    for field in ("name", "description", "unit_label"):
        if field in params:
            product[field] = params[field] or None
    if "active" in params:
        product["active"] = as_bool(params["active"])
    product["metadata"] = merge_metadata(product["metadata"], params.get("metadata"))
    product["updated"] = now()
    return product


@routes.get("/v1/products")
def product_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    products = em.store.all("products")
    if "active" in params:
        products = [p for p in products if p["active"] == as_bool(params["active"])]
    return paginate(products, params, "/v1/products")


# -- prices ---------------------------------------------------------------------------------


@routes.post("/v1/prices")
def price_create(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("currency"):
        raise missing("currency")
    product_id = _price_product(em, params)
    unit_amount, unit_amount_decimal = _price_amounts(params)
    recurring = _price_recurring(em, params.get("recurring"))
    lookup_key = params.get("lookup_key") or None
    if lookup_key:
        _claim_lookup_key(em, lookup_key, as_bool(params.get("transfer_lookup_key", False)))
    price = {
        "id": new_id("price"),
        "object": "price",
        "active": as_bool(params.get("active", True)),
        "billing_scheme": "per_unit",
        "created": now(),
        "currency": params["currency"].lower(),
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": merge_metadata({}, params.get("metadata")),
        "nickname": params.get("nickname"),
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount_decimal,
    }
    return em.store.put("prices", price)


def _price_product(em: Emulator, params: dict[str, Any]) -> str:
    if product_data := params.get("product_data"):
        if not isinstance(product_data, dict) or not product_data.get("name"):
            raise missing("product_data[name]")
        product = _product(new_id("prod", 14), product_data)
        return em.store.put("products", product)["id"]
    if not params.get("product"):
        raise missing("product")
    return em.store.get("products", params["product"], "product", param="product")["id"]


def _price_amounts(params: dict[str, Any]) -> tuple[int | None, str]:
    if "unit_amount" in params and "unit_amount_decimal" in params:
        raise invalid("You may only specify one of unit_amount and unit_amount_decimal.")
    raw = params.get("unit_amount_decimal", params.get("unit_amount"))
    if raw is None:
        raise missing("unit_amount")
    param = "unit_amount_decimal" if "unit_amount_decimal" in params else "unit_amount"
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise invalid(f"Invalid decimal: {raw}", param=param) from None
    if amount < 0 or not amount.is_finite():
        raise invalid(f"Invalid decimal: {raw}", param=param)
    places = -amount.normalize().as_tuple().exponent
    if isinstance(places, int) and places > MAX_DECIMAL_PLACES:
        raise invalid(
            f"Invalid decimal: {raw}. The `{param}` must have at most "
            f"{MAX_DECIMAL_PLACES} decimal places.",
            param=param,
        )
    whole = amount == amount.to_integral_value()
    return (int(amount) if whole else None), _decimal_str(amount)


def _decimal_str(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return text


def _price_recurring(em: Emulator, recurring: Any) -> dict[str, Any] | None:
    if recurring in (None, ""):
        return None
    if not isinstance(recurring, dict) or not recurring.get("interval"):
        raise missing("recurring[interval]")
    if recurring["interval"] not in ("day", "week", "month", "year"):
        raise invalid("Invalid recurring[interval]", param="recurring[interval]")
    for removed in ("aggregate_usage", "billing_thresholds"):
        if removed in recurring:
            raise invalid(
                f"Received unknown parameter: recurring[{removed}]",
                param=f"recurring[{removed}]",
                code="parameter_unknown",
            )
    usage_type = recurring.get("usage_type", "licensed")
    meter_id = recurring.get("meter") or None
    if usage_type == "metered" and not meter_id:
        raise ApiError(
            "Metered prices must be backed by a meter. Specify `recurring[meter]` "
            "when `recurring[usage_type]` is `metered`.",
            code="parameter_missing",
            param="recurring[meter]",
        )
    if meter_id:
        if usage_type != "metered":
            raise invalid(
                "`recurring[meter]` can only be set when `recurring[usage_type]` is `metered`.",
                param="recurring[meter]",
            )
        meter = em.store.get("meters", meter_id, "billing meter", param="recurring[meter]")
        if meter["status"] != "active":
            raise invalid(f"The meter {meter_id} is inactive.", param="recurring[meter]")
    return {
        "interval": recurring["interval"],
        "interval_count": as_int(recurring.get("interval_count", 1), "recurring[interval_count]"),
        "meter": meter_id,
        "trial_period_days": None,
        "usage_type": usage_type,
    }


def _claim_lookup_key(em: Emulator, lookup_key: str, transfer: bool) -> None:
    for price in em.store.all("prices"):
        if price.get("lookup_key") != lookup_key:
            continue
        if not transfer:
            raise invalid(
                f"A price ({price['id']}) already uses that lookup key.", param="lookup_key"
            )
        price["lookup_key"] = None


@routes.get("/v1/prices/{id}")
def price_retrieve(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    return em.store.get("prices", id, "price")


@routes.post("/v1/prices/{id}")
def price_update(em: Emulator, params: dict[str, Any], id: str) -> dict[str, Any]:
    price = em.store.get("prices", id, "price")
    if "lookup_key" in params:
        lookup_key = params["lookup_key"] or None
        if lookup_key:
            _claim_lookup_key(em, lookup_key, as_bool(params.get("transfer_lookup_key", False)))
        price["lookup_key"] = lookup_key
    if "active" in params:
        price["active"] = as_bool(params["active"])
    if "nickname" in params:
        price["nickname"] = params["nickname"]
    price["metadata"] = merge_metadata(price["metadata"], params.get("metadata"))
    return price


@routes.get("/v1/prices")
def price_list(em: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    prices = em.store.all("prices")
    if lookup_keys := params.get("lookup_keys"):
        wanted = set(lookup_keys if isinstance(lookup_keys, list) else [lookup_keys])
        prices = [p for p in prices if p.get("lookup_key") in wanted]
    if product := params.get("product"):
        prices = [p for p in prices if p["product"] == product]
    if "active" in params:
        prices = [p for p in prices if p["active"] == as_bool(params["active"])]
    if price_type := params.get("type"):
        prices = [p for p in prices if p["type"] == price_type]
    return paginate(prices, params, "/v1/prices")
