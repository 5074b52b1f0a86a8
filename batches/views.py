"""Dashboard pages of batches: progress bars, cost, and the results download.

The downloads link to the REST API (`/api/v1/batches/<id>/results.zip`), which accepts the
dashboard session for the current tenant.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from batches import selectors
from batches.serializers import BatchOut, batch_percent
from tenants.models import Membership
from tenants.views import tenant_page

PAGE_SIZE = 25
ITEMS_PAGE_SIZE = 100


def _row(batch: object) -> dict[str, object]:
    return {"batch": batch, "body": BatchOut(batch).data, "percent": batch_percent(batch)}  # type: ignore[arg-type]


@tenant_page()
def batch_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    batches = selectors.batches_for_tenant(membership.tenant).order_by("-created_at")
    page = Paginator(batches, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [_row(b) for b in page]
    running = any(not r["batch"].is_finished for r in rows)  # type: ignore[attr-defined]
    return render(
        request, "batches/list.html", {"page": page, "rows": rows, "auto_refresh": running}
    )


@tenant_page()
def batch_detail(request: HttpRequest, membership: Membership, batch_id: str) -> HttpResponse:
    batch = selectors.batch_get_for_tenant(membership.tenant, batch_id)
    items = Paginator(selectors.batch_items(batch), ITEMS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {**_row(batch), "items": items, "auto_refresh": not batch.is_finished}
    return render(request, "batches/detail.html", context)
