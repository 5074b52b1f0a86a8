"""Dashboard pages of the generation domain: generate, gallery, image.

Generating and editing happen in the browser against the REST API (which accepts the
dashboard session), so that the page can show the job live; these views render.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing.pricing import estimate_image_cost, price_for
from config.errors import BunchError, NotFound
from config.paging import EstimatedCountPaginator
from core.catalog import MODELS, RATIO_PIXELS_1K, Mode
from core.money import show_up_to
from generation import selectors, services
from generation.conversations.views import conversation_panel
from generation.forms import GalleryFilterForm
from generation.images import MAX_ZIP_IMAGES, images_zip
from generation.links import signed_image_url
from generation.models import Image, Job
from generation.presets import PRESETS, model_prompt
from generation.services import MAX_COUNT, MAX_INPUT_IMAGES
from tenants.models import Membership, Plan
from tenants.roles import Action
from tenants.views import tenant_page

GALLERY_PAGE_SIZE = 24
SHAPE_BOX_PX = 30


def _ratio_shapes() -> list[dict[str, Any]]:
    """Each aspect ratio as a rectangle that fits a small square box."""
    shapes = []
    for ratio, (width, height) in RATIO_PIXELS_1K.items():
        scale = SHAPE_BOX_PX / max(width, height)
        shapes.append(
            {
                "ratio": ratio,
                "w": max(round(width * scale), 4),
                "h": max(round(height * scale), 4),
                "pixels": f"{width}×{height}",
            }
        )
    return shapes


def _price_sheet(plan: Plan) -> dict[str, dict[str, Any]]:
    """Per tier, what the cost estimate adds up: a base per image, then per input image
    and per prompt byte, from the price book and the plan's markup (billing.pricing).
    `preset_bytes`: what each kind's preset adds to the prompt the model is sent, so the
    page's "up to" counts the same bytes the job's reservation does."""
    preset_bytes = {kind: len(model_prompt(kind, "").encode()) for kind in PRESETS}
    sheet = {}
    for tier in MODELS:
        if not plan.allows_tier(tier):
            continue
        spec = MODELS[tier]

        def estimate(prompt: str = "", inputs: int = 0, tier: str = tier) -> Decimal:
            return estimate_image_cost(
                tier=tier,
                mode=Mode.STANDARD,
                image_size="1K",
                prompt=prompt,
                input_images=inputs,
                markup=plan.markup_per_image,
            ).billed

        base = estimate()
        price = price_for(model=spec.model_id, mode=Mode.STANDARD)
        sheet[tier] = {
            "base": str(base),
            "per_input_image": str(estimate(inputs=1) - base),
            "per_prompt_byte": str(price.input_per_million / Decimal(1_000_000)),
            "preset_bytes": preset_bytes,
        }
    return sheet


def _model_choices(plan: Plan, sheet: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "tier": tier,
            "name": spec.display_name,
            "allowed": plan.allows_tier(tier),
            "per_image": Decimal(sheet[tier]["base"]) if tier in sheet else None,
        }
        for tier, spec in MODELS.items()
    ]


@tenant_page(action=Action.GENERATE)
def generate(request: HttpRequest, membership: Membership) -> HttpResponse:
    plan = membership.tenant.plan
    sheet = _price_sheet(plan)
    context = {
        "presets": list(PRESETS.values()),
        "presets_json": {
            k: {"ratio": p.default_ratio, "examples": list(p.examples)} for k, p in PRESETS.items()
        },
        "ratios": _ratio_shapes(),
        "models": _model_choices(plan, sheet),
        "default_tier": next(iter(sheet), "lite"),
        "price_sheet": sheet,
        "max_count": MAX_COUNT,
        "max_inputs": MAX_INPUT_IMAGES,
        "count_range": range(1, MAX_COUNT + 1),
    }
    return render(request, "dashboard/generate.html", context)


@tenant_page()
def gallery(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = GalleryFilterForm(request.GET or None, tenant=membership.tenant)
    images = form.filter(selectors.images_for_tenant(membership.tenant)).order_by(
        "-created_at", "-id"
    )
    # Asks PostgreSQL's planner first: no COUNT of millions of images for the page count.
    page = EstimatedCountPaginator(images, GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "tiles": [(image, signed_image_url(image.pk, "thumbnail")) for image in page],
        "query": query.urlencode(),
        "filtered": form.active,
    }
    return render(request, "dashboard/gallery.html", context)


@tenant_page()
@require_POST
def gallery_download(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The selected images as one zip, as they were made (their bytes carry C2PA)."""
    ids = request.POST.getlist("images")
    if not ids:
        messages.error(request, "Select some images first.")
        return redirect("dashboard:gallery")
    if len(ids) > MAX_ZIP_IMAGES:
        messages.error(request, f"Select at most {MAX_ZIP_IMAGES} images for one download.")
        return redirect("dashboard:gallery")
    images = selectors.images_for_tenant_by_ids(membership.tenant, ids)
    if not images:
        raise NotFound("No such images.")
    archive = tempfile.TemporaryFile()  # noqa: SIM115  # the response closes it once sent
    images_zip(images, archive)
    archive.seek(0)
    return FileResponse(  # type: ignore[return-value]  # a streamed response, as Django allows
        archive, as_attachment=True, filename="bunch-images.zip", content_type="application/zip"
    )


def _image_facts(image: Image) -> dict[str, Any]:
    job = image.job
    usage = getattr(image, "usage", None)
    spec = MODELS.get(job.tier) if job else None
    return {
        "prompt": job.prompt if job else "",
        "kind": PRESETS[job.kind].label if job and job.kind in PRESETS else "Upload",
        "model": spec.display_name if spec else "—",
        "usage": usage,
        "tokens_in": (usage.input_text_tokens + usage.input_image_tokens) if usage else None,
        "tokens_out": (usage.output_text_tokens + usage.output_image_tokens) if usage else None,
        "provenance": getattr(image, "provenance", None),
        "tokens_thinking": usage.thoughts_tokens if usage else None,
    }


@tenant_page()
def image_detail(request: HttpRequest, membership: Membership, image_id: str) -> HttpResponse:
    image = selectors.image_get_for_tenant(membership.tenant, image_id)
    versions = selectors.image_versions(image)
    numbers = {version.pk: n for n, version in enumerate(versions, start=1)}
    original_tier = image.job.tier if image.job else None
    context = {
        "image": image,
        "facts": _image_facts(image),
        "content_url": signed_image_url(image.pk, "content"),
        "versions": [
            (numbers[version.pk], version, signed_image_url(version.pk, "thumbnail"))
            for version in versions
        ],
        "version_number": numbers[image.pk],
        "edited_from": numbers.get(image.parent_id) if image.parent_id else None,
        "next_version": len(versions) + 1,
        "default_tier": original_tier
        if membership.tenant.plan.allows_tier(original_tier or "")
        else "lite",
        "price_sheet": _price_sheet(membership.tenant.plan),
        "conversation": conversation_panel(membership.tenant, image),
        "allowed_models": [
            (tier, spec.display_name)
            for tier, spec in MODELS.items()
            if membership.tenant.plan.allows_tier(tier)
        ],
    }
    return render(request, "dashboard/image.html", context)


# Jobs ----------------------------------------------------------------------------------

JOBS_PAGE_SIZE = 25
JOB_FILTERS = ("failed", "running", "queued", "succeeded", "canceled")


@tenant_page()
def jobs(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Every job, newest first; `?status=failed` lists the failed ones with why, and a
    retry for each."""
    status = request.GET.get("status", "")
    status = status if status in JOB_FILTERS else ""
    found = selectors.job_list(membership.tenant, status=status or None).order_by("-created_at")
    # A Scale tenant has millions of jobs: the planner's estimate past 10,000, not a COUNT.
    page = EstimatedCountPaginator(found, JOBS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "status": status, "filters": JOB_FILTERS}
    return render(request, "dashboard/jobs.html", context)


@tenant_page(action=Action.GENERATE)
@require_POST
def job_retry(request: HttpRequest, membership: Membership, job_id: str) -> HttpResponse:
    job = selectors.job_get_for_tenant(membership.tenant, job_id)
    if job.status != Job.Status.FAILED:
        messages.error(request, f"Only a failed job can be retried; this one is {job.status}.")
        return redirect(f"{reverse('dashboard:jobs')}?status=failed")
    try:
        retried = services.job_retry(job=job)
    except BunchError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Retrying as a new job ({retried.count} image"
            f"{'s' if retried.count != 1 else ''}, up to "
            f"{show_up_to(retried.estimated_cost)}).",
        )
    return redirect(f"{reverse('dashboard:jobs')}?status=failed")
