"""The hosted pages Stripe would show: a checkout page with a Pay button and a portal page."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import ApiError
from .sessions import checkout_complete, portal_cancel, portal_subscriptions

if TYPE_CHECKING:
    from .server import Emulator

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:36rem;margin:3rem auto}}
button{{font-size:1rem;padding:.5rem 1.5rem}}</style></head>
<body><h1>{title}</h1><p><small>Stripe emulator: test mode</small></p>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = _PAGE.format(title=escape(title), body=body)
    return web.Response(text=html, status=status, content_type="text/html")


def install(app: web.Application, em: Emulator) -> None:
    def session_or_404(collection: str, request: web.Request) -> dict:
        session = em.store.data[collection].get(request.match_info["id"])
        if session is None:
            raise web.HTTPNotFound(text="No such session")
        return session

    async def checkout_page(request: web.Request) -> web.Response:
        session = session_or_404("checkout_sessions", request)
        if session["status"] != "open":
            return _page("Checkout", f"<p>This session is {escape(session['status'])}.</p>", 410)
        rows = []
        for line in session["_line_items"]:
            price = em.store.data["prices"].get(line["price"], {})
            product = em.store.data["products"].get(price.get("product", ""), {})
            amount = price.get("unit_amount_decimal", "?")
            name = escape(product.get("name", line["price"]))
            currency = escape(price.get("currency", "").upper())
            if (price.get("recurring") or {}).get("usage_type") == "licensed":
                cents = int(price.get("unit_amount") or 0) * int(line.get("quantity") or 1)
                interval = escape((price.get("recurring") or {}).get("interval", "month"))
                rows.append(
                    f'<li data-kind="licensed">{name}: {cents // 100:,}.{cents % 100:02d} '
                    f"{currency} per {interval}</li>"
                )
                continue
            rows.append(
                f'<li data-kind="metered">{name}: {escape(amount)}¢ {currency} per unit</li>'
            )
        action = f"/_emulator/checkout/{escape(session['id'])}"
        body = (
            f"<ul>{''.join(rows)}</ul>"
            f'<form method="post" action="{action}/pay"><button type="submit">Pay</button></form>'
            f'<form method="post" action="{action}/cancel"><button type="submit">Cancel</button>'
            "</form>"
        )
        return _page("Subscribe", body)

    async def checkout_pay(request: web.Request) -> web.Response:
        session = session_or_404("checkout_sessions", request)
        checkout_complete(em, session)
        em.store.save()
        target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
        raise web.HTTPSeeOther(target)

    async def checkout_cancel(request: web.Request) -> web.Response:
        session = session_or_404("checkout_sessions", request)
        raise web.HTTPSeeOther(session.get("cancel_url") or session["success_url"])

    async def portal_page(request: web.Request) -> web.Response:
        session = session_or_404("portal_sessions", request)
        rows = []
        for sub in portal_subscriptions(em, session):
            cancel = ""
            if sub["status"] != "canceled":
                action = f"/_emulator/portal/{escape(session['id'])}/cancel"
                cancel = (
                    f'<form method="post" action="{action}">'
                    f'<input type="hidden" name="subscription" value="{escape(sub["id"])}">'
                    '<button type="submit">Cancel subscription</button></form>'
                )
            rows.append(f"<li>{escape(sub['id'])}: {escape(sub['status'])}{cancel}</li>")
        back = escape(session.get("return_url") or "#")
        body = f"<ul>{''.join(rows) or '<li>No subscriptions</li>'}</ul><a href='{back}'>Return</a>"
        return _page("Billing portal", body)

    async def portal_cancel_view(request: web.Request) -> web.Response:
        session = session_or_404("portal_sessions", request)
        form = await request.post()
        try:
            portal_cancel(em, session, str(form.get("subscription", "")))
        except ApiError as exc:
            return _page("Billing portal", f"<p>{escape(exc.message)}</p>", exc.status)
        em.store.save()
        raise web.HTTPSeeOther(session.get("return_url") or f"/_emulator/portal/{session['id']}")

    router = app.router
    router.add_get("/_emulator/checkout/{id}", checkout_page)
    router.add_post("/_emulator/checkout/{id}/pay", checkout_pay)
    router.add_post("/_emulator/checkout/{id}/cancel", checkout_cancel)
    router.add_get("/_emulator/portal/{id}", portal_page)
    router.add_post("/_emulator/portal/{id}/cancel", portal_cancel_view)
