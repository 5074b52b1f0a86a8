"""The usage & billing dashboard page: charts, quota bars, estimated invoice, plans.

Checkout and the customer portal are opened from the browser through the billing API
(`/api/v1/billing/checkout`, `/api/v1/billing/portal`), which owns the Stripe calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from billing.gateway_factory import stripe_gateway
from billing.rollups import usage_totals
from billing.selectors import fallbacks_by_day, invoice_estimate
from core.catalog import MODELS
from core.money import to_cents
from tenants.models import Membership, Plan, Tenant
from tenants.roles import Action
from tenants.selectors import quota_snapshot
from tenants.views import tenant_page

CHART_W, CHART_H, CHART_PAD_L, CHART_PAD_B, CHART_PAD_T = 900, 220, 34, 24, 10
CHART_LABEL_W = 48  # room an axis label ("Dec 31") needs at the chart's font size


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    label: str
    value: str
    tick: bool
    # A label near the right edge ends at its bar instead of starting there (and running
    # out of the chart).
    label_x: float = 0.0
    anchor: str = "start"


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _images_per_day(tenant: Tenant, start: dt.date, end: dt.date) -> list[tuple[dt.date, int]]:
    rows = usage_totals(tenant, start=_midnight(start), end=_midnight(end), keys=["day"])
    counts = {row["day"]: row["images"] for row in rows}
    days = (end - start).days
    return [(d, counts.get(d, 0)) for d in (start + dt.timedelta(n) for n in range(days))]


def _spend_per_model(tenant: Tenant, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    names = {spec.model_id: spec.display_name for spec in MODELS.values()}
    rows = usage_totals(tenant, start=_midnight(start), end=_midnight(end), keys=["model", "mode"])
    rows.sort(key=lambda r: r["billed"], reverse=True)
    return [
        {
            "name": names.get(r["model"], r["model"]),
            "mode": r["mode"],
            "images": r["images"],
            "billed": r["billed"],
            "cents": to_cents(r["billed"]),
        }
        for r in rows
    ]


def _day_bars(series: list[tuple[dt.date, int]]) -> dict[str, Any]:
    """Geometry for a server-rendered SVG bar chart of images per day."""
    top = max([n for _, n in series] + [4])
    plot_w = CHART_W - CHART_PAD_L
    plot_h = CHART_H - CHART_PAD_B - CHART_PAD_T
    slot = plot_w / max(len(series), 1)
    bars = []
    for i, (day, n) in enumerate(series):
        h = plot_h * n / top
        x, w = round(CHART_PAD_L + i * slot + slot * 0.15, 1), round(slot * 0.7, 1)
        near_end = x > CHART_W - CHART_LABEL_W
        bars.append(
            Bar(
                x=x,
                y=round(CHART_PAD_T + plot_h - h, 1),
                w=w,
                h=round(h, 1),
                label=day.strftime("%b %-d"),
                value=str(n),
                tick=i % 5 == 0,
                label_x=round(x + w, 1) if near_end else x,
                anchor="end" if near_end else "start",
            )
        )
    gridlines = [
        {"y": round(CHART_PAD_T + plot_h - plot_h * f, 1), "label": round(top * f)}
        for f in (0, 0.5, 1)
    ]
    return {
        "bars": bars,
        "grid": gridlines,
        "width": CHART_W,
        "height": CHART_H,
        "base_y": CHART_H - 6,
        "total": sum(n for _, n in series),
        "pad_l": CHART_PAD_L,
    }


def _spend_bars(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    top = max([r["billed"] for r in rows] + [Decimal("0.000001")])
    return [{**r, "pct": round(float(r["billed"] / top) * 100, 1)} for r in rows]


def _percent(part: Decimal | int, whole: Decimal | int) -> float:
    return min(round(float(part) / float(whole) * 100, 1), 100.0) if whole else 0.0


def _meters(snapshot: dict[str, Any]) -> dict[str, Any]:
    images, spend = snapshot["images"], snapshot["spend"]
    cap = Decimal(spend["cap"])
    return {
        "images": {
            **images,
            "used_pct": _percent(images["used"], images["quota"]),
            "reserved_pct": _percent(images["reserved"], images["quota"]),
        },
        "spend": {
            **spend,
            "used_pct": _percent(Decimal(spend["used"]), cap),
            "reserved_pct": _percent(Decimal(spend["reserved"]), cap),
            "used_cents": to_cents(Decimal(spend["used"])),
        },
    }


@tenant_page(action=Action.USAGE_READ)
def usage(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    snapshot = quota_snapshot(tenant)
    start = dt.date.fromisoformat(snapshot["period_start"])  # type: ignore[arg-type]
    end = dt.date.fromisoformat(snapshot["period_end"])  # type: ignore[arg-type]
    per_model = _spend_per_model(tenant, start, end)
    estimate = invoice_estimate(tenant, gateway=stripe_gateway(), now=timezone.now())
    context = {
        "period_start": start,
        "period_last_day": end - dt.timedelta(days=1),
        "meters": _meters(snapshot),
        "chart": _day_bars(_images_per_day(tenant, start, end)),
        "per_model": _spend_bars(per_model),
        "invoice": estimate,
        "checkout": request.GET.get("checkout", ""),
        "plan_changed": request.GET.get("plan") == "changed",
        # Spend per model above is per served model; these are the images it differs for.
        "fallbacks": fallbacks_by_day(tenant, start=_midnight(start), end=_midnight(end)),
        "plans": Plan.objects.all(),
        "has_subscription": bool(tenant.stripe_subscription_id),
    }
    return render(request, "dashboard/usage.html", context)
