"""Dashboard pages of series: the storyboards list, a new storyboard, and the storyboard
page (frames in a row, live; a frame's versions; regenerate from here). The storyboard
page polls the REST API (`/api/v1/series/<id>`), which accepts the dashboard session."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.errors import BunchError
from generation.images import image_upload
from series import selectors, services
from series.forms import StoryboardForm
from series.serializers import SeriesOut
from tenants.models import Membership
from tenants.roles import Action
from tenants.views import tenant_page

PAGE_SIZE = 25


@tenant_page()
def storyboard_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    rows = selectors.series_for_tenant(membership.tenant).order_by("-created_at", "-id")
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    form = StoryboardForm()
    return render(request, "series/list.html", {"page": page, "form": form})


@tenant_page(action=Action.GENERATE)
@require_POST
def storyboard_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = StoryboardForm(request.POST, request.FILES)
    if not form.is_valid():
        page = Paginator(selectors.series_for_tenant(membership.tenant), PAGE_SIZE).get_page(1)
        return render(request, "series/list.html", {"page": page, "form": form}, status=400)
    data = form.cleaned_data
    try:
        references = [
            image_upload(tenant=membership.tenant, data=f.read()).pk for f in data["references"]
        ]
        series = services.series_submit(
            tenant=membership.tenant,
            spec=services.SeriesSpec(
                frames=tuple(services.FrameSpec(prompt=p) for p in data["frames"]),
                references=tuple(references),
                consistency=data["consistency"],
                kind=data["kind"],
                aspect_ratio=data["aspect_ratio"] or None,
                name=data["name"],
            ),
            user=request.user,  # type: ignore[arg-type]
        )
    except BunchError as error:
        messages.error(request, error.message)
        return redirect("series:list")
    return redirect("series:detail", series_id=series.pk)


@tenant_page()
def storyboard_detail(request: HttpRequest, membership: Membership, series_id: str) -> HttpResponse:
    series = selectors.series_get_for_tenant(membership.tenant, series_id)
    body = SeriesOut(series).data
    return render(request, "series/detail.html", {"series": series, "body": body})


@tenant_page(action=Action.GENERATE)
@require_POST
def storyboard_cancel(request: HttpRequest, membership: Membership, series_id: str) -> HttpResponse:
    series = selectors.series_get_for_tenant(membership.tenant, series_id)
    try:
        services.series_cancel(series=series)
    except BunchError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Canceled: the frames made are kept; no more will be made.")
    return redirect("series:detail", series_id=series.pk)


@tenant_page(action=Action.GENERATE)
@require_POST
def storyboard_regenerate(
    request: HttpRequest, membership: Membership, series_id: str, index: int
) -> HttpResponse:
    series = selectors.series_get_for_tenant(membership.tenant, series_id)
    prompt = request.POST.get("prompt", "").strip() or None
    cascade = request.POST.get("cascade") == "1"
    try:
        services.frame_regenerate(series=series, index=index, prompt=prompt, cascade=cascade)
    except BunchError as error:
        messages.error(request, error.message)
    else:
        what = f"frame {index} and every frame after it" if cascade else f"frame {index}"
        messages.success(request, f"Regenerating {what}; earlier versions are kept.")
    return redirect("series:detail", series_id=series.pk)
